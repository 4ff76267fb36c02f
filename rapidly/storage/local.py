"""Objects (sealed photos, the erasure journal) in a local directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from rapidly.storage.base import JOURNAL, StoredObject


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def close(self) -> None:
        pass

    def path_of(self, key: str) -> Path:
        """The file for a key: three UUIDs, or the journal and two, so nothing points outside the root."""
        parts = key.split("/")
        if len(parts) != 3 or not (_is_uuid(parts[0]) or parts[0] == JOURNAL) or not all(map(_is_uuid, parts[1:])):
            raise KeyError("not a storage key")
        return self.root.joinpath(*parts)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(write_whole, self.path_of(key), data)

    async def replace(self, key: str, data: bytes, content_type: str) -> None:
        await self.put(key, data, content_type)  # a whole new file in its place: no versions

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_of(key).read_bytes)

    async def pieces(self, key: str, size: int) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(self.path_of(key).open, "rb")
        try:
            while piece := await asyncio.to_thread(file.read, size):
                yield piece
        finally:
            file.close()

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_tree, prefix)

    async def list(self, prefix: str) -> list[StoredObject]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[StoredObject]:
        parts = prefix.rstrip("/").split("/")
        if not all(p == JOURNAL or _is_uuid(p) for p in parts) or len(parts) > 3:
            raise ValueError("not a storage prefix")
        base = self.root.joinpath(*parts)
        if not base.is_dir():
            return []
        return [
            StoredObject(str(p.relative_to(self.root)), datetime.fromtimestamp(p.stat().st_mtime, UTC))
            for p in sorted(base.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        ]

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)

    def _delete_tree(self, prefix: str) -> int:
        tenant, contact = prefix.rstrip("/").split("/")
        if not (_is_uuid(tenant) and _is_uuid(contact)):
            raise ValueError("not a contact prefix")
        directory = self.root / tenant / contact
        if not directory.exists():
            return 0
        count = sum(1 for p in directory.rglob("*") if p.is_file())
        shutil.rmtree(directory)
        return count


def write_whole(path: Path, data: bytes) -> None:
    """Write a file readable by this user alone, so that readers see the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(draft, path)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
