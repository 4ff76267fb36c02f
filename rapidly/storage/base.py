"""What every storage backend does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

#: Where the erasure journal lives: one empty-ish object per erased contact, IDs only.
JOURNAL = "erasures"


def contact_prefix(tenant_id: UUID, contact_id: UUID) -> str:
    """Every object of one contact lives under this prefix, so erasure can find them all by IDs."""
    return f"{tenant_id}/{contact_id}/"


def object_key(tenant_id: UUID, contact_id: UUID, media_id: UUID) -> str:
    return f"{contact_prefix(tenant_id, contact_id)}{media_id}"


def journal_key(tenant_id: UUID, contact_id: UUID) -> str:
    return f"{JOURNAL}/{tenant_id}/{contact_id}"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    modified: datetime


class Storage(Protocol):
    async def start(self) -> None:
        """Open connections; called once when the app starts."""

    async def close(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key` (IDs only)."""

    async def replace(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key` and delete every earlier version of it."""

    async def get(self, key: str) -> bytes:
        """The object's bytes; `KeyError` (or `FileNotFoundError`) when there is none."""

    def pieces(self, key: str, size: int) -> AsyncIterator[bytes]:
        """The object's bytes in pieces of `size` (the last shorter), for a photo served as it is
        opened; the first piece raises `KeyError` (or `FileNotFoundError`) when there is none. A local
        file is read piece by piece; an S3 object whole first (see `S3Storage.pieces`)."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`, with every stored version and delete marker; return
        how many versions (or files) went. Idempotent."""

    async def list(self, prefix: str) -> list[StoredObject]:
        """The current objects under `prefix`."""

    async def delete(self, key: str) -> None:
        """Delete one object (every version)."""
