"""Media in a local directory, served by the app itself through app-signed, expiring URLs."""

from __future__ import annotations

import asyncio
import hmac
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from rapidly import security
from rapidly.storage.base import JOURNAL, StoredObject


class LocalStorage:
    def __init__(self, root: Path, base_url: str, signing_key: bytes) -> None:
        self.root = root.resolve()
        self.base_url = base_url
        self._key = signing_key

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

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_of(key).read_bytes)

    async def signed_url(self, key: str, content_type: str, expires_seconds: int) -> str:
        expires = int(time.time()) + expires_seconds
        query = {"expires": expires, "type": content_type, "signature": self.sign(key, expires, content_type)}
        return f"{self.base_url}/media/{key}?{urlencode(query)}"

    def sign(self, key: str, expires: int, content_type: str) -> str:
        return security.keyed_digest(self._key, "media", key, str(expires), content_type)

    def verify(self, key: str, expires: str, content_type: str, signature: str) -> bool:
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(self.sign(key, int(expires), content_type), signature)

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

    def url_origin(self) -> str | None:
        return None


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
