"""Media in S3 (moto's server over HTTP): versioned and unversioned buckets, erasure of every
version, photos stored sealed, and erasure retried while the storage is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import boto3
import pytest
from tortoise import connections

from rapidly import tenancy
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.models import Erasure, Requester
from rapidly.erasure.stores import erasure_service
from rapidly.keys.sealing import SEGMENT, SEGMENTED
from rapidly.media import service as media
from rapidly.media.models import Media
from rapidly.storage import contact_prefix, object_key
from rapidly.storage.s3 import S3Storage
from tests.contacts.test_contacts_api import save, start
from tests.media import images


def s3_settings(settings: Settings, endpoint: str, bucket: str) -> Settings:
    return settings.model_copy(
        update={
            "storage": "s3",
            "s3_endpoint_url": endpoint,
            "s3_bucket": bucket,
            "s3_region": "eu-north-1",
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
        }
    )


@contextlib.asynccontextmanager
async def s3_storage(settings: Settings):  # type: ignore[no-untyped-def]
    storage = S3Storage(settings)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.close()


def versions(endpoint: str, bucket: str, prefix: str) -> list[tuple[str, str]]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-north-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    listing = client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [("version", v["Key"]) for v in listing.get("Versions", [])] + [
        ("marker", m["Key"]) for m in listing.get("DeleteMarkers", [])
    ]


@pytest.mark.parametrize("bucket", ["rapidly-versioned", "rapidly-stockholm"])
async def test_delete_prefix_removes_every_version_and_marker_of_one_contact_only(settings, s3_endpoint, bucket):
    # given
    async with s3_storage(s3_settings(settings, s3_endpoint, bucket)) as storage:
        tenant, mine, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        key = object_key(tenant, mine, uuid.uuid4())
        await storage.put(key, b"first", "image/jpeg")
        await storage.put(key, b"second", "image/jpeg")  # a second version where versioning is on
        await storage.put(object_key(tenant, mine, uuid.uuid4()), b"other", "image/png")
        await storage.client.delete_object(Bucket=bucket, Key=key)  # a delete marker where versioning is on
        kept = object_key(tenant, theirs, uuid.uuid4())
        await storage.put(kept, b"theirs", "image/jpeg")
        before = versions(s3_endpoint, bucket, contact_prefix(tenant, mine))

        # when
        deleted = await storage.delete_prefix(contact_prefix(tenant, mine))

        # then
        expected = 4 if bucket == "rapidly-versioned" else 1
        assert len(before) == deleted == expected
        assert versions(s3_endpoint, bucket, contact_prefix(tenant, mine)) == []
        assert await storage.get(kept) == b"theirs"
        assert await storage.delete_prefix(contact_prefix(tenant, mine)) == 0


async def test_a_photo_in_the_bucket_is_ciphertext_and_rapidly_alone_opens_it(
    settings, s3_endpoint, gql, world, plugins
):
    """The bucket's administrator sees sealed bytes, not an image; Rapidly opens them under the
    contact's key and serves them itself (the bucket cannot: no presigned URL to it exists)."""
    # given
    config = s3_settings(settings, s3_endpoint, "rapidly-stockholm")
    await world.tenant("kattohuolto")
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    contact = await contacts.contact_for_token(token)
    photo = images.noisy_jpeg()
    async with s3_storage(config) as storage:
        # when
        item = await media.upload(config, plugins, storage, contact, "roof_photos", _reader(photo))
        stored = await storage.get(object_key(contact.tenant_id, contact.id, item.id))
        opened = await media.photo_bytes(storage, contact.tenant_id, contact.id, item.id)

    # then: sealed in segments, opened as the GET's body is read in pieces
    assert not images.is_image(stored) and stored[:1] == SEGMENTED and len(stored) > 4 * SEGMENT
    assert images.is_image(opened) and opened[:2] == b"\xff\xd8" and len(opened) < len(stored)
    assert media.signed_url(config, item).startswith(f"{settings.base_url}/media/")


async def test_erasure_removes_every_version_of_the_contacts_photos(settings, s3_endpoint, gql, world, plugins):
    # given: photos replaced by re-uploads in a versioned bucket
    config = s3_settings(settings, s3_endpoint, "rapidly-versioned")
    await world.tenant("kattohuolto")
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    contact = await contacts.contact_for_token(token)
    async with s3_storage(config) as storage:
        for size in (16, 24):
            item = await media.upload(
                config, plugins, storage, contact, "roof_photos", _reader(images.jpeg(size, size))
            )
        await storage.put(object_key(contact.tenant_id, contact.id, item.id), b"overwritten", "image/jpeg")
        prefix = contact_prefix(contact.tenant_id, contact.id)
        assert len(versions(s3_endpoint, "rapidly-versioned", prefix)) == 3

        # when
        receipt = await erasure_service(storage, config).erase(contact.tenant_id, contact.id, Requester.END_USER)

        # then
        assert receipt.complete
        assert receipt.removed["media"] == 2 and receipt.removed["media_objects"] == 3
        assert versions(s3_endpoint, "rapidly-versioned", prefix) == []
        journal = await storage.list(f"erasures/{contact.tenant_id}/")
        assert [entry.key for entry in journal] == [f"erasures/{contact.tenant_id}/{contact.id}"]


async def test_erasure_is_retried_while_the_storage_is_down_and_the_contact_never_comes_back(
    settings, s3_endpoint, gql, world, plugins
):
    # given: the storage behind a proxy that can refuse connections
    proxy = Proxy(s3_endpoint)
    endpoint = await proxy.start()
    config = s3_settings(settings, endpoint, "rapidly-versioned")
    await world.tenant("kattohuolto")
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    contact = await contacts.contact_for_token(token)
    try:
        async with s3_storage(config) as storage:
            await media.upload(config, plugins, storage, contact, "roof_photos", _reader(images.jpeg()))
            erasure = erasure_service(storage, config)
            proxy.refuse = True

            # when: erased while the storage is down
            receipt = await erasure.erase(contact.tenant_id, contact.id, Requester.END_USER)

            # then: unreachable at once; the photo and the journal entry wait
            assert not receipt.complete and set(receipt.pending) == {"media_objects", "journal"}
            assert await contacts.contact_for_token(token) is None
            with tenancy.as_tenant(contact.tenant_id):
                assert not await Contact.exists(id=contact.id) and not await Media.exists(contact_id=contact.id)
            assert versions(s3_endpoint, "rapidly-versioned", contact_prefix(contact.tenant_id, contact.id))
            assert await erasure.finish_pending() == 0  # not due yet

            # when: due again, still down; then up
            await _make_due(contact.tenant_id)
            assert await erasure.finish_pending() == 0
            proxy.refuse = False
            await _make_due(contact.tenant_id)
            completed = await erasure.finish_pending()

            # then
            assert completed == 1
            with tenancy.as_tenant(contact.tenant_id):
                row = await Erasure.get(contact_id=contact.id)
            assert row.completed_at is not None and row.pending == [] and row.attempts == 3
            assert versions(s3_endpoint, "rapidly-versioned", contact_prefix(contact.tenant_id, contact.id)) == []
            with tenancy.as_tenant(contact.tenant_id):
                assert not await Contact.exists(id=contact.id)
    finally:
        await proxy.close()


def _reader(data: bytes):  # type: ignore[no-untyped-def]
    async def read(n: int) -> bytes:
        return data[:n]

    return read


async def _make_due(tenant_id: uuid.UUID) -> None:
    with tenancy.as_tenant(tenant_id):
        await connections.get("default").execute_query("UPDATE erasure SET next_attempt_at = now() - interval '1s'")


class Proxy:
    """A TCP proxy on loopback that forwards to the S3 server, or refuses while `refuse` is set."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.refuse = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()
