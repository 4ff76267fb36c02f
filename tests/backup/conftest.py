"""Backup tests: a database of their own on the session's server (they drop and restore it), and a
versioned bucket of their own on the session's S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from rapidly import db
from rapidly.backup import pgtools
from rapidly.backup.seal import unseal
from rapidly.config import Settings
from rapidly.storage import Storage, storage_for
from tests.conftest import GraphQLClient, free_port, with_database
from tests.contacts.test_contacts_api import save, start

BACKUP_KEY = "backup passphrase of the tests, " + "b" * 16
METRICS_TOKEN = "metrics-token-of-the-tests-" + "m" * 16


def _admin(database_url: str) -> db.Credentials:
    return db.Credentials.from_url(database_url)


async def _run(database_url: str, *statements: str) -> None:
    conn = await _admin(database_url).connect()
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class Scratch:
    """A database that a test may fill, back up, drop and restore."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"rapidly_backup_{uuid.uuid4().hex[:10]}"
        self.url = with_database(server_url, self.name)

    async def create(self) -> None:
        await _run(self.server_url, f"CREATE DATABASE \"{self.name}\" TEMPLATE template0 ENCODING 'UTF8'")

    async def drop(self) -> None:
        await _run(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def recreate(self) -> None:
        """As after losing the database: an empty one of the same name."""
        await self.drop()
        await self.create()

    async def fetchval(self, sql: str, *args: object) -> object:
        conn = await _admin(self.url).connect()
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[Scratch]:
    database = Scratch(database_url)
    await database.create()
    yield database
    await database.drop()
    with contextlib.suppress(Exception):
        await _run(database_url, f'DROP ROLE IF EXISTS "{database.name}_app"')


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[str]:
    """A versioned bucket in eu-north-1 of this test's own; emptied of every version afterwards."""
    name = f"rapidly-backup-{uuid.uuid4().hex[:10]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for version in versions(client, name):
        client.delete_object(Bucket=name, Key=version["Key"], VersionId=version["VersionId"])
    client.delete_bucket(Bucket=name)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-north-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def versions(client, bucket: str, prefix: str = "") -> list[dict]:  # type: ignore[no-untyped-def]
    """Every object version and delete marker in the bucket under the prefix."""
    listed = client.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]


def scratch_settings(settings: Settings, scratch: Scratch, data_dir: Path, **overrides: object) -> Settings:
    return settings.model_copy(
        update={"database_url": scratch.url, "data_dir": data_dir, "backup_key": BACKUP_KEY, **overrides}
    )


@contextlib.asynccontextmanager
async def opened_storage(settings: Settings) -> AsyncIterator[Storage]:
    """The object storage `settings` name, started, and closed afterwards."""
    storage = storage_for(settings)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.close()


def scratch_env(env: dict[str, str], scratch: Scratch, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **env,
        "RAPIDLY_DATABASE_URL": scratch.url,
        "RAPIDLY_DATA_DIR": str(data_dir),
        "RAPIDLY_BACKUP_KEY": BACKUP_KEY,
        **extra,
    }


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "RAPIDLY_STORAGE": "s3",
        "RAPIDLY_S3_ENDPOINT_URL": endpoint,
        "RAPIDLY_S3_BUCKET": bucket,
        "RAPIDLY_S3_REGION": "eu-north-1",
        "RAPIDLY_S3_ACCESS_KEY_ID": "testing",
        "RAPIDLY_S3_SECRET_ACCESS_KEY": "testing",
    }


class Serving:
    """`rapidly serve` in a process of its own, its output kept for scanning."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.process: subprocess.Popen | None = None

    async def start(self) -> Serving:
        out = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "serve", "--port", str(self.port)],
            env={**self.env, "RAPIDLY_BASE_URL": self.url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return self
                assert self.process.poll() is None, self.log()
                assert time.monotonic() < deadline, "rapidly serve did not become ready"
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        assert self.process.wait(timeout=30) == 0, self.log()

    def log(self) -> str:
        return self.log_path.read_text()


# -- people, as the drills fill them in ----------------------------------------------------------------

CHAT = "mutation C($body: String!) { sendChatMessage(body: $body) { __typename } }"
ERASE = "mutation { deleteMyData { __typename ... on ErasureReceipt { complete } } }"
#: What a contact sees of themselves: their ID, their values and their chat, opened.
ME = "query { me { contactId values { key value } chatMessages { edges { node { body } } } } }"


def person() -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "name": f"Drill Näme {tag}",
        "email": f"drill.{tag}@example.com",
        "phone": f"+35840{random.randrange(10**6, 10**7)}",
        "street_address": f"Kanarialintukuja {tag}",
        "damage_description": f"katto vuotaa {tag}",
        "chat": f"drill chat {tag}",
    }


def needles(values: dict[str, str]) -> list[str]:
    return [v for k, v in values.items() if k != "phone"] + [values["phone"][-9:]]


async def fill(gql: GraphQLClient, values: dict[str, str]) -> str:
    """A new contact of the tenant "drill" with every value saved and one chat message; its token."""
    token = await start(gql, "drill")
    for key, value in values.items():
        if key != "chat":
            assert (await save(gql, token, key, value))["__typename"] == "FieldSaved"
    assert (await gql(CHAT, {"body": values["chat"]}, token=token))["sendChatMessage"]["__typename"] == (
        "ChatMessageSent"
    )
    return token


def every_object(client, bucket: str) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Every stored version of every object, by key and version."""
    found = {}
    for version in versions(client, bucket):
        if "Size" in version:  # not a delete marker
            body = client.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"]
            found[f"{version['Key']}@{version['VersionId']}"] = body.read()
    return found


# -- what a local backup store holds -------------------------------------------------------------------


def days_pass(store: Path, days: float) -> None:
    """The clock of a local backup store moves `days` on: every object in it is made that much older
    (prune goes by an object's oldest version's time where it is older than its ID's)."""
    shift = days * 86400
    for path in store.iterdir():
        stat = path.stat()
        os.utime(path, (stat.st_atime - shift, stat.st_mtime - shift))


def unsealed(path: Path, sealed_as: str) -> bytes:
    """The plain content of a sealed file: a dump is sealed as its backup's ID, a key snapshot as its
    object's name (`<ID>.keys`)."""
    out = io.BytesIO()
    with path.open("rb") as source:
        unseal(source, out, BACKUP_KEY, sealed_as)
    return out.getvalue()


async def _tools(url: str) -> pgtools.Tools:
    conn = await _admin(url).connect()
    try:
        return pgtools.find(int(await conn.fetchval("SHOW server_version_num")) // 10000)
    finally:
        await conn.close()


async def archive_contents(archive: Path, url: str) -> list[str]:
    """`pg_restore --list` of a dump: one line per table, table data and such it holds."""
    tools = await _tools(url)
    done = subprocess.run([tools["pg_restore"], "--list", str(archive)], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line and not line.startswith(";")]


async def load_archive(archive: Path, url: str) -> None:
    """A dump loaded into the database at `url` as it is: no migration, no keys, no erasure."""
    tools = await _tools(url)
    env = pgtools.environment(_admin(url), tools.major)
    command = [tools["pg_restore"], "--no-owner", "--no-acl", "--exit-on-error", "--dbname", _admin(url).database]
    done = subprocess.run([*command, str(archive)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
