"""One erasure service behind every way to erase: the end user's button and `deleteMyData`, the
staff's `deleteContact`, the retention sweeper, and the replay after a backup is restored.

In one transaction it locks the contact, empties every database store, deletes the contact row,
writes the ledger and publishes DELETED: from the commit on, the contact is unreachable. Stores
outside the database run after the commit; one that fails is retried with backoff until it
succeeds, and the ledger stays pending until then.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise import connections
from tortoise.transactions import in_transaction

from rapidly.erasure.erasers import Eraser, Target
from rapidly.erasure.models import Requester
from rapidly.errors import NotFound
from rapidly.realtime import EventKind, publish

log = logging.getLogger(__name__)

#: The contact row itself, counted last in every receipt.
CONTACT_STORE = "contact"
MAX_BACKOFF = timedelta(hours=1)
FIRST_BACKOFF = timedelta(seconds=30)

_LOCK_CONTACT = "SELECT id FROM contact WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
_DELETE_CONTACT = "DELETE FROM contact WHERE id = $1 AND tenant_id = $2"
_LEDGER_COLUMNS = "id, tenant_id, contact_id, requested_by, requested_at, completed_at, removed, pending, attempts"
_LEDGER_ROW = f"SELECT {_LEDGER_COLUMNS} FROM erasure WHERE tenant_id = $1 AND contact_id = $2"  # noqa: S608
# A contact erased before can only exist again if a backup was restored: the ledger row is reused.
_WRITE_LEDGER = f"""
INSERT INTO erasure (id, tenant_id, contact_id, requested_by, requested_at, completed_at, removed, pending,
                     attempts, next_attempt_at)
VALUES ($1, $2, $3, $4, clock_timestamp(), CASE WHEN $6::jsonb = '[]' THEN clock_timestamp() END, $5::jsonb,
        $6::jsonb, 0, clock_timestamp() + $7::interval)
ON CONFLICT (tenant_id, contact_id) DO UPDATE SET
    completed_at = excluded.completed_at, removed = excluded.removed, pending = excluded.pending,
    attempts = 0, next_attempt_at = excluded.next_attempt_at
RETURNING {_LEDGER_COLUMNS}
"""  # noqa: S608
_CLAIM_PENDING = f"""
UPDATE erasure SET next_attempt_at = clock_timestamp() + $2::interval
WHERE id IN (
    SELECT id FROM erasure WHERE completed_at IS NULL AND next_attempt_at <= clock_timestamp()
    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING {_LEDGER_COLUMNS}
"""  # noqa: S608
_RECORD_ATTEMPT = f"""
UPDATE erasure SET removed = $2::jsonb, pending = $3::jsonb, attempts = attempts + 1,
    completed_at = CASE WHEN $3::jsonb = '[]' THEN clock_timestamp() END,
    next_attempt_at = clock_timestamp() + $4::interval
WHERE id = $1
RETURNING {_LEDGER_COLUMNS}
"""  # noqa: S608
_RESTORED = """
SELECT c.tenant_id, c.id, e.requested_by FROM contact c
JOIN erasure e ON e.tenant_id = c.tenant_id AND e.contact_id = c.id
LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an erasure removed, store by store. IDs, a time and counts: nothing personal."""

    contact_id: uuid.UUID
    requested_by: Requester
    erased_at: datetime
    removed: dict[str, int]
    #: Stores still being retried (e.g. object storage was down); empty once everything is gone.
    pending: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending

    @classmethod
    def of(cls, row: dict, order: Sequence[str] = ()) -> Receipt:
        """From a ledger row; stores in `order` first (jsonb keeps its own key order)."""
        removed: dict[str, int] = _json(row["removed"])  # type: ignore[assignment]
        rank = {store: i for i, store in enumerate(order)}
        return cls(
            contact_id=row["contact_id"],
            requested_by=Requester(row["requested_by"]),
            erased_at=row["requested_at"],
            removed=dict(sorted(removed.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))),
            pending=_json(row["pending"]),  # type: ignore[arg-type]
        )


class ErasureService:
    def __init__(self, erasers: Sequence[Eraser]) -> None:
        stores = [e.store for e in erasers]
        if len(set(stores)) != len(stores) or CONTACT_STORE in stores:
            raise ValueError(f"eraser store names must be unique and not {CONTACT_STORE!r}: {stores}")
        self.erasers = list(erasers)
        self._by_store = {e.store: e for e in erasers}
        self._order = [*stores, CONTACT_STORE]

    async def erase(self, tenant_id: uuid.UUID, contact_id: uuid.UUID, requested_by: Requester) -> Receipt:
        """Erase the contact everywhere; the receipt says what went.

        Raises `NotFound` for a contact that is absent or another tenant's. Erasing an erased
        contact again returns the first receipt and changes nothing.
        """
        target = Target(tenant_id, contact_id)
        async with in_transaction() as conn:
            if not await conn.execute_query_dict(_LOCK_CONTACT, [contact_id, tenant_id]):
                rows = await conn.execute_query_dict(_LEDGER_ROW, [tenant_id, contact_id])
                if rows:
                    return Receipt.of(rows[0], self._order)
                raise NotFound("No such contact.")
            removed: dict[str, int] = {}
            for eraser in self.erasers:
                if eraser.transactional:
                    removed[eraser.store] = await eraser.erase(target, conn)
            removed[CONTACT_STORE], _ = await conn.execute_query(_DELETE_CONTACT, [contact_id, tenant_id])
            pending = [e.store for e in self.erasers if not e.transactional]
            rows = await conn.execute_query_dict(
                _WRITE_LEDGER,
                [
                    uuid.uuid4(),
                    tenant_id,
                    contact_id,
                    requested_by.value,
                    json.dumps(removed),
                    json.dumps(pending),
                    FIRST_BACKOFF,
                ],
            )
            await publish(tenant_id, contact_id, EventKind.DELETED, connection=conn)
        row = rows[0]
        if pending:  # outside stores: try at once, so that the receipt is complete when they are up
            row = await self._attempt(row)
        log.info("erased contact %s of tenant %s (%s)", contact_id, tenant_id, requested_by.value)
        return Receipt.of(row, self._order)

    async def receipt(self, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> Receipt | None:
        rows = await connections.get("default").execute_query_dict(_LEDGER_ROW, [tenant_id, contact_id])
        return Receipt.of(rows[0], self._order) if rows else None

    async def finish_pending(self, limit: int = 20) -> int:
        """Retry the outside stores of unfinished erasures that are due; returns how many completed.

        Safe with several processes: each claims its rows (SKIP LOCKED) and leases them for a while.
        """
        rows = await connections.get("default").execute_query_dict(_CLAIM_PENDING, [limit, timedelta(minutes=5)])
        completed = 0
        for row in rows:
            if not _json((await self._attempt(row))["pending"]):
                completed += 1
        return completed

    async def replay(self, limit: int = 500) -> int:
        """Erase again every contact that the ledger says is erased but exists: after a backup is
        restored, this makes the erasures since the backup true again. Returns how many."""
        rows = await connections.get("default").execute_query_dict(_RESTORED, [limit])
        for row in rows:
            await self.erase(row["tenant_id"], row["id"], Requester(row["requested_by"]))
        return len(rows)

    async def _attempt(self, row: dict) -> dict:
        """One try at each pending outside store; the ledger records what went and what is left."""
        target = Target(row["tenant_id"], row["contact_id"])
        removed, pending = _json(row["removed"]), []
        conn = connections.get("default")
        for store in _json(row["pending"]):
            eraser = self._by_store.get(store)
            if eraser is None:  # a store no longer installed: nothing left to erase there
                continue
            try:
                removed[store] = removed.get(store, 0) + await eraser.erase(target, conn)
            except Exception as exc:  # any failure is retried; its type is enough to log
                log.warning("erasure %s: store %s failed (%s); will retry", row["id"], store, type(exc).__name__)
                pending.append(store)
        backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(row["attempts"], 10))
        rows = await conn.execute_query_dict(
            _RECORD_ATTEMPT, [row["id"], json.dumps(removed), json.dumps(pending), backoff]
        )
        return rows[0]


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value
