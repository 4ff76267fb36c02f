"""Where backups live: the configured object storage, under a prefix of their own.

S3: `backups/` in `RAPIDLY_S3_BUCKET` (every version of a deleted backup goes too). Local storage:
`RAPIDLY_DATA_DIR/backups`, beside the media directory, files readable by the service's user only.
Names are the backup's ID and a suffix, or the manifest's; nothing else is written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rapidly.storage import Storage
from rapidly.storage.local import write_whole

if TYPE_CHECKING:
    from rapidly.storage.s3 import S3Storage

PREFIX = "backups/"


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    size: int
    modified: datetime


class NoSuchObject(Exception):
    """The named object is not in the backup store."""


class BackupStore(Protocol):
    #: Where, for people: `s3://bucket/backups/` or a directory.
    location: str

    def staging(self, name: str) -> AbstractAsyncContextManager[Path]:
        """A file to write a new backup into; stored under `name` when the block ends without an
        error, and gone either way."""

    async def download(self, name: str, path: Path) -> None: ...
    async def write(self, name: str, data: bytes) -> None:
        """Replace a small object (the manifest), leaving no older version of it behind."""

    async def read(self, name: str) -> bytes | None: ...
    async def entries(self) -> list[Entry]:
        """The objects there now."""

    async def stored(self) -> dict[str, datetime]:
        """Every name with any stored version (also one deleted in a versioned bucket), and when its
        oldest version was written."""

    async def abort_unfinished(self, older_than: datetime) -> int:
        """Remove the parts of uploads that never finished (a process killed mid-upload)."""

    async def remove(self, name: str) -> int:
        """Delete the object with every stored version; how many went."""


def backup_store(storage: Storage, data_dir: Path) -> BackupStore:
    from rapidly.storage.s3 import S3Storage

    if isinstance(storage, S3Storage):
        return S3Backups(storage)
    return LocalBackups(data_dir / "backups")


class S3Backups:
    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.bucket = storage.bucket
        self.location = f"s3://{self.bucket}/{PREFIX}"

    @property
    def client(self):  # type: ignore[no-untyped-def]
        return self.storage.client

    @contextlib.asynccontextmanager
    async def staging(self, name: str) -> AsyncIterator[Path]:
        with tempfile.TemporaryDirectory(prefix="rapidly-backup-") as work:
            path = Path(work) / name
            yield path
            # Multipart for large files, parts retried, the upload aborted on failure (boto3's transfer).
            await self.client.upload_file(str(path), self.bucket, PREFIX + name)

    async def download(self, name: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            await self.client.download_file(self.bucket, PREFIX + name, str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise NoSuchObject(name) from None
            raise

    async def write(self, name: str, data: bytes) -> None:
        key = PREFIX + name
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        stale = []
        paginator = self.client.get_paginator("list_object_versions")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            stale += [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                if v["Key"] == key and not v.get("IsLatest")
            ]
        for start in range(0, len(stale), 1000):
            await self.storage.delete_versions(stale[start : start + 1000])  # raises on any refusal

    async def read(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=PREFIX + name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        async with response["Body"] as body:
            return await body.read()

    async def entries(self) -> list[Entry]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            found += [
                Entry(o["Key"].removeprefix(PREFIX), o["Size"], o["LastModified"]) for o in page.get("Contents", [])
            ]
        return found

    async def stored(self) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        paginator = self.client.get_paginator("list_object_versions")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                name = version["Key"].removeprefix(PREFIX)
                found[name] = min(found.get(name, version["LastModified"]), version["LastModified"])
        return found

    async def abort_unfinished(self, older_than: datetime) -> int:
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < older_than:
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted

    async def remove(self, name: str) -> int:
        return await self.storage.delete_prefix(PREFIX + name)


class LocalBackups:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.location = str(self.directory)

    def _path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError("not a backup name")
        return self.directory / name

    @contextlib.asynccontextmanager
    async def staging(self, name: str) -> AsyncIterator[Path]:
        """A draft beside the backups (no copy afterwards), flushed and renamed into place."""
        target = self._path(name)
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True, mode=0o700)
        draft = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            yield draft
            await asyncio.to_thread(self._keep, draft, target)
        finally:
            draft.unlink(missing_ok=True)

    @staticmethod
    def _keep(draft: Path, target: Path) -> None:
        draft.chmod(0o600)
        with draft.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(draft, target)  # readers see a whole backup or none

    async def download(self, name: str, path: Path) -> None:
        source = self._path(name)
        if not source.is_file():
            raise NoSuchObject(name)
        await asyncio.to_thread(shutil.copyfile, source, path)

    async def write(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(write_whole, self._path(name), data)

    async def read(self, name: str) -> bytes | None:
        path = self._path(name)
        return await asyncio.to_thread(path.read_bytes) if path.is_file() else None

    async def entries(self) -> list[Entry]:
        def scan() -> list[Entry]:
            if not self.directory.is_dir():
                return []
            return [
                Entry(p.name, (stat := p.stat()).st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
                for p in sorted(self.directory.iterdir())
                if p.is_file() and not p.name.startswith(".")
            ]

        return await asyncio.to_thread(scan)

    async def stored(self) -> dict[str, datetime]:
        return {entry.name: entry.modified for entry in await self.entries()}

    async def abort_unfinished(self, older_than: datetime) -> int:
        def sweep() -> int:
            drafts = [p for p in self.directory.glob(".*") if p.is_file()] if self.directory.is_dir() else []
            stale = [p for p in drafts if datetime.fromtimestamp(p.stat().st_mtime, UTC) < older_than]
            for path in stale:
                path.unlink(missing_ok=True)
            return len(stale)

        return await asyncio.to_thread(sweep)

    async def remove(self, name: str) -> int:
        path = self._path(name)
        if not path.exists():
            return 0
        await asyncio.to_thread(path.unlink)
        return 1
