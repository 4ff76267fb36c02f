"""Media in an S3 bucket (AWS or any S3 API), through aioboto3 with one client for the process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiobotocore.config import AioConfig

from rapidly.config import Settings
from rapidly.storage.base import StoredObject

#: DeleteObjects takes at most this many keys per call.
_DELETE_BATCH = 1000


class S3Storage:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket or ""
        self._stack = contextlib.AsyncExitStack()
        self._client = None

    async def start(self) -> None:
        import aioboto3

        session = aioboto3.Session(
            aws_access_key_id=self.settings.s3_access_key_id,
            aws_secret_access_key=self.settings.s3_secret_access_key,
        )
        config = AioConfig(
            connect_timeout=5,
            read_timeout=30,
            retries={"total_max_attempts": 3, "mode": "standard"},
            ignore_configured_endpoint_urls=True,
            s3={"addressing_style": "path" if self.settings.s3_endpoint_url else "auto"},
            signature_version="s3v4",
        )
        self._client = await self._stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=self.settings.s3_endpoint_url,
                region_name=self.settings.s3_region or "us-east-1",
                config=config,
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self):  # type: ignore[no-untyped-def]
        if self._client is None:
            raise RuntimeError("storage not started")
        return self._client

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def replace(self, key: str, data: bytes, content_type: str) -> None:
        put = await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        current = put.get("VersionId")
        listing = await self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        earlier = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
            if v["Key"] == key and v["VersionId"] != current and current is not None
        ]
        if earlier:
            await self.delete_versions(earlier)

    async def get(self, key: str) -> bytes:
        """The object's bytes; `KeyError` when there is none."""
        async with await self._body(key) as body:
            return await body.read()

    async def pieces(self, key: str, size: int) -> AsyncIterator[bytes]:
        """Read whole, then given in pieces: a client reading a photo slowly must not hold one of the
        S3 client's pooled connections (10) for as long as it takes, which a few slow readers with
        signed URLs would use up, stalling every upload and erasure of the process."""
        data = await self.get(key)
        with memoryview(data) as view:
            for at in range(0, len(data), size):
                yield view[at : at + size].tobytes()

    async def _body(self, key: str):  # type: ignore[no-untyped-def]
        from botocore.exceptions import ClientError

        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise KeyError("no such object") from None
            raise
        return response["Body"]

    async def delete_prefix(self, prefix: str) -> int:
        """Every version and delete marker under the prefix (an unversioned bucket lists each object
        once, as version "null")."""
        deleted = 0
        paginator = self.client.get_paginator("list_object_versions")
        batch: list[dict[str, str]] = []
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                batch.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
                if len(batch) == _DELETE_BATCH:
                    deleted += await self.delete_versions(batch)
                    batch = []
        if batch:
            deleted += await self.delete_versions(batch)
        return deleted

    async def list(self, prefix: str) -> list[StoredObject]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found += [StoredObject(o["Key"], o["LastModified"]) for o in page.get("Contents", [])]
        return found

    async def delete(self, key: str) -> None:
        await self.delete_prefix(key)

    async def delete_versions(self, objects: list[dict[str, str]]) -> int:
        response = await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        if response.get("Errors"):
            # Codes only: the keys are IDs, but an error message may echo anything.
            codes = sorted({e.get("Code", "?") for e in response["Errors"]})
            raise RuntimeError(f"S3 refused to delete {len(response['Errors'])} objects: {', '.join(codes)}")
        return len(objects)
