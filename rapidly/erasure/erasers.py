"""What an eraser is. Each domain that stores contact data declares one per store; the app lists
them in `erasure.stores.default_erasers()`, and the canary test proves together they leave nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient


@dataclass(frozen=True, slots=True)
class Target:
    tenant_id: UUID
    contact_id: UUID


class Eraser(Protocol):
    #: The store's name in receipts and in the ledger, e.g. "field_values".
    store: str
    #: True: runs inside the erasure's database transaction, all or nothing with the contact row.
    #: False: a store outside the database (object storage); runs after the commit and is retried
    #: until it succeeds, so it must be idempotent.
    transactional: bool

    async def erase(self, target: Target, conn: BaseDBAsyncClient) -> int:
        """Remove everything this store holds about the target; return how many items went."""
        ...


@dataclass(frozen=True, slots=True)
class SqlEraser:
    """A table's rows of one contact, removed by one statement taking ($1 tenant_id, $2 contact_id)."""

    store: str
    sql: str
    transactional: bool = True

    async def erase(self, target: Target, conn: BaseDBAsyncClient) -> int:
        count, _ = await conn.execute_query(self.sql, [target.tenant_id, target.contact_id])
        return count
