"""One erasure service behind every way to erase: the end user's button and `deleteMyData`, the
staff's `deleteContact`, the retention sweeper, and the replay after a backup is restored.

In one transaction it locks the contact, empties every database store, deletes the contact row,
writes the ledger and publishes DELETED: from the commit on, the contact is unreachable. Stores
outside the database run after the commit; one that fails is retried with backoff until it
succeeds, and the ledger stays pending until then.

The ledger is also journaled outside the database, as one object per erasure (IDs only) in the
object storage: a restored database backup brings back contacts erased since the backup *and* an
old ledger that does not know about them, so the replay reads the journal instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise import connections

from rapidly import db, metrics, telemetry, tenancy
from rapidly.erasure.erasers import Eraser, Target
from rapidly.erasure.models import Requester
from rapidly.errors import NotFound, for_the_log
from rapidly.realtime import EventKind, publish
from rapidly.storage import JOURNAL, Storage, journal_key

log = logging.getLogger(__name__)

#: The contact row itself, counted last in every receipt.
CONTACT_STORE = "contact"
#: A pending step that is not a store: writing the journal entry (not shown in receipts).
JOURNAL_STEP = "journal"
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
#: How long the request that erases waits for outside stores before leaving them to the retries.
INLINE_WAIT_SECONDS = 10
#: Journal entries are kept this long: longer than any backup may be kept (30 days, P7).
JOURNAL_DAYS = 35

_LOCK_CONTACT = "SELECT id FROM contact WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
# The retention sweeper's lock: the contact must still be past its tenant's retention. A contact
# locked by a save is active, and one locked by another sweeper is being erased: skipped, not awaited.
_LOCK_EXPIRED_CONTACT = """
SELECT c.id FROM contact c JOIN tenant t ON t.id = c.tenant_id
WHERE c.id = $1 AND c.tenant_id = $2
  AND t.retention_days IS NOT NULL AND c.updated_at < now() - make_interval(days => t.retention_days)
FOR UPDATE OF c SKIP LOCKED
"""
_DELETE_CONTACT = "DELETE FROM contact WHERE id = $1 AND tenant_id = $2"
_COLUMNS = "id, tenant_id, contact_id, requested_by, requested_at, completed_at, removed, pending, attempts"
_LEDGER_ROW = f"SELECT {_COLUMNS} FROM erasure WHERE tenant_id = $1 AND contact_id = $2"  # noqa: S608
# Locked only when the contact is there to erase (again, after a restore): an erasure that finds it
# gone only reads the receipt, and must not hold up the retries of the one that erased it.
_LEDGER_ROW_LOCKED = _LEDGER_ROW + " FOR UPDATE"
# Inserted, or (a contact erased before and restored from a backup) reused with the counts added.
_WRITE_LEDGER = f"""
INSERT INTO erasure (id, tenant_id, contact_id, requested_by, requested_at, completed_at, removed, pending,
                     attempts, next_attempt_at)
VALUES ($1, $2, $3, $4, COALESCE($8, clock_timestamp()), CASE WHEN $6::jsonb = '[]' THEN clock_timestamp() END,
        $5::jsonb, $6::jsonb, 0, clock_timestamp() + $7::interval)
ON CONFLICT (tenant_id, contact_id) DO UPDATE SET
    completed_at = excluded.completed_at, removed = excluded.removed, pending = excluded.pending,
    attempts = 0, next_attempt_at = excluded.next_attempt_at
RETURNING {_COLUMNS}
"""  # noqa: S608
_DUE = """
SELECT id FROM erasure WHERE completed_at IS NULL AND next_attempt_at <= clock_timestamp()
ORDER BY next_attempt_at LIMIT $1
"""
# Whoever holds the row works on it; everyone else skips it. Held across the outside calls, so two
# processes never run the same attempt and a finished erasure cannot be reopened.
_CLAIM = f"SELECT {_COLUMNS} FROM erasure WHERE id = $1 AND completed_at IS NULL FOR UPDATE SKIP LOCKED"  # noqa: S608
_RECORD_ATTEMPT = f"""
UPDATE erasure SET removed = $2::jsonb, pending = $3::jsonb, attempts = attempts + 1,
    completed_at = CASE WHEN $3::jsonb = '[]' THEN clock_timestamp() END,
    next_attempt_at = clock_timestamp() + $4::interval
WHERE id = $1
RETURNING {_COLUMNS}
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an erasure removed, store by store. IDs, a time and counts: nothing personal."""

    contact_id: uuid.UUID
    requested_by: Requester
    erased_at: datetime
    removed: dict[str, int]
    #: Steps still being retried (e.g. object storage was down); empty once everything is gone.
    pending: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending


class ErasureService:
    def __init__(self, erasers: Sequence[Eraser], journal: Storage | None = None) -> None:
        stores = [e.store for e in erasers]
        if len(set(stores)) != len(stores) or {CONTACT_STORE, JOURNAL_STEP} & set(stores):
            raise ValueError(f"eraser store names must be unique and not reserved: {stores}")
        self.erasers = list(erasers)
        self.journal = journal
        self._by_store = {e.store: e for e in erasers}
        self._order = [*stores, CONTACT_STORE]

    async def erase(
        self, tenant_id: uuid.UUID, contact_id: uuid.UUID, requested_by: Requester, *, expired_only: bool = False
    ) -> Receipt:
        """Erase the contact everywhere; the receipt says what went.

        Raises `NotFound` for a contact that is absent or another tenant's. Erasing an erased
        contact again returns the first receipt and changes nothing. With `expired_only` (the
        retention sweeper), a contact that became active again meanwhile is left alone (NotFound).
        """
        # The span holds the tenant, who asked and the counts; not the contact's ID, pseudonymous as it is.
        attributes = {"rapidly.tenant.id": str(tenant_id), "rapidly.erasure.requested_by": requested_by.value}
        with tenancy.scoped(tenant_id), telemetry.span("erase contact", attributes) as span:
            receipt = await self._erase(tenant_id, contact_id, requested_by, expired_only)
            span.set_attributes({f"rapidly.erasure.removed.{store}": n for store, n in receipt.removed.items()})
            span.set_attribute("rapidly.erasure.pending", len(receipt.pending))
            return receipt

    async def _erase(
        self, tenant_id: uuid.UUID, contact_id: uuid.UUID, requested_by: Requester, expired_only: bool
    ) -> Receipt:
        target = Target(tenant_id, contact_id)
        async with db.transaction() as conn:
            lock = _LOCK_EXPIRED_CONTACT if expired_only else _LOCK_CONTACT
            found = await conn.execute_query_dict(lock, [contact_id, tenant_id])
            earlier = await conn.execute_query_dict(
                _LEDGER_ROW_LOCKED if found else _LEDGER_ROW, [tenant_id, contact_id]
            )
            if not found:
                if earlier and not expired_only:
                    return self._receipt(earlier[0])
                raise NotFound("No such contact.")
            removed: dict[str, int] = dict(_json(earlier[0]["removed"])) if earlier else {}  # type: ignore[call-overload]
            for eraser in self.erasers:
                if eraser.transactional:
                    removed[eraser.store] = removed.get(eraser.store, 0) + await eraser.erase(target, conn)
            deleted, _ = await conn.execute_query(_DELETE_CONTACT, [contact_id, tenant_id])
            removed[CONTACT_STORE] = removed.get(CONTACT_STORE, 0) + deleted
            pending = [e.store for e in self.erasers if not e.transactional]
            if self.journal is not None:
                pending.append(JOURNAL_STEP)
            rows = await conn.execute_query_dict(
                _WRITE_LEDGER,
                [
                    uuid.uuid4(),
                    tenant_id,
                    contact_id,
                    earlier[0]["requested_by"] if earlier else requested_by.value,
                    json.dumps(removed),
                    json.dumps(pending),
                    FIRST_BACKOFF,
                    earlier[0]["requested_at"] if earlier else None,
                ],
            )
            await publish(tenant_id, contact_id, EventKind.DELETED, connection=conn)
        row = rows[0]
        log.info("erased contact %s of tenant %s (%s)", contact_id, tenant_id, requested_by.value)
        if pending:  # outside stores: try at once, so that the receipt is complete when they are up
            try:
                row = await asyncio.wait_for(self._attempt(row["id"]), INLINE_WAIT_SECONDS) or row
            except TimeoutError:
                log.warning("erasure %s: outside stores slow; left to the retries", row["id"])
        return self._receipt(row)

    async def finish_pending(self, limit: int = 20) -> int:
        """Retry the outside stores of unfinished erasures that are due; returns how many completed.

        Safe with several processes: an erasure being worked on by one is skipped by the others.
        """
        conn = connections.get("default")
        completed = tried = 0
        for tenant in await conn.execute_query_dict("SELECT rapidly_tenants_with_due_erasures() AS id"):
            with tenancy.as_tenant(tenant["id"]):  # tenant by tenant, `limit` in all
                for row in await conn.execute_query_dict(_DUE, [limit - tried]):
                    tried += 1
                    with telemetry.span("retry erasure", {"rapidly.tenant.id": str(tenant["id"])}):
                        done = await self._attempt(row["id"])
                    if done is not None and not _json(done["pending"]):
                        completed += 1
            if tried >= limit:
                break
        return completed

    async def replay(self) -> int:
        """Erase again every contact in the journal that exists: after a database backup is
        restored, this makes every erasure since that backup true again. Returns how many.

        Also drops journal entries older than any backup may be. Which journaled contacts exist is
        asked in batches: `serve` runs this before its first request, over 35 days of erasures.
        """
        if self.journal is None:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=JOURNAL_DAYS)
        journaled: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
        for entry in await self.journal.list(f"{JOURNAL}/"):
            if entry.modified < cutoff:
                await self.journal.delete(entry.key)
            elif (target := _journaled(entry.key)) is not None:
                journaled[target] = entry.key
        replayed = failed = 0
        for tenant_id, contact_id in await _existing(list(journaled)):
            try:
                await self.erase(tenant_id, contact_id, await self._requester(journaled[tenant_id, contact_id]))
                replayed += 1
            except Exception as exc:
                failed += 1
                log.error("replaying the erasure of contact %s failed: %s", contact_id, for_the_log(exc))
        if failed:
            raise ReplayIncomplete(failed, replayed)
        return replayed

    async def _requester(self, key: str) -> Requester:
        """Who asked, as the entry says; an entry that says nothing readable is erased all the same."""
        assert self.journal is not None
        try:
            return Requester(json.loads(await self.journal.get(key))["requestedBy"])
        except (ValueError, KeyError, TypeError):
            return Requester.RETENTION

    async def _attempt(self, erasure_id: uuid.UUID) -> dict | None:
        """One try at each pending outside step, holding the ledger row; None if another process
        holds it or it is complete."""
        async with db.transaction() as conn:
            rows = await conn.execute_query_dict(_CLAIM, [erasure_id])
            if not rows:
                return None
            row = rows[0]
            target = Target(row["tenant_id"], row["contact_id"])
            removed: dict[str, int] = dict(_json(row["removed"]))  # type: ignore[call-overload]
            pending = []
            for step in _json(row["pending"]):  # type: ignore[union-attr]
                try:
                    if step == JOURNAL_STEP:
                        await self._write_journal(row)
                    elif (eraser := self._by_store.get(step)) is not None:  # else: no longer installed
                        removed[step] = removed.get(step, 0) + await eraser.erase(target, conn)
                except Exception as exc:  # any failure is retried; its type is enough to log
                    log.warning("erasure %s: %s failed (%s); will retry", row["id"], step, type(exc).__name__)
                    metrics.ERASURE_RETRIES.labels(step).inc()
                    pending.append(step)
            backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(row["attempts"], 10))
            rows = await conn.execute_query_dict(
                _RECORD_ATTEMPT, [row["id"], json.dumps(removed), json.dumps(pending), backoff]
            )
        return rows[0]

    async def _write_journal(self, row: dict) -> None:
        assert self.journal is not None
        entry = {"requestedBy": row["requested_by"], "requestedAt": row["requested_at"].isoformat()}
        await self.journal.put(
            journal_key(row["tenant_id"], row["contact_id"]), json.dumps(entry).encode(), "application/json"
        )

    def _receipt(self, row: dict) -> Receipt:
        """From a ledger row; stores in eraser order (jsonb keeps its own key order)."""
        removed: dict[str, int] = _json(row["removed"])  # type: ignore[assignment]
        rank = {store: i for i, store in enumerate(self._order)}
        return Receipt(
            contact_id=row["contact_id"],
            requested_by=Requester(row["requested_by"]),
            erased_at=row["requested_at"],
            removed=dict(sorted(removed.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))),
            pending=_json(row["pending"]),  # type: ignore[arg-type]
        )


class ReplayIncomplete(Exception):
    """Some journaled contacts are still in the database: nothing may be served until they are erased."""

    def __init__(self, failed: int, replayed: int) -> None:
        super().__init__(f"{failed} contacts erased since the backup could not be erased again ({replayed} were)")
        self.failed, self.replayed = failed, replayed


def _journaled(key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant, contact) of a journal key; None for an object that is none of ours."""
    try:
        _, tenant, contact = key.split("/")
        return uuid.UUID(tenant), uuid.UUID(contact)
    except ValueError:
        return None


#: Journaled contacts asked about in one statement.
_EXISTING_BATCH = 10_000
_EXISTING = "SELECT id FROM contact WHERE tenant_id = $1 AND id = ANY($2::uuid[])"


async def _existing(targets: list[tuple[uuid.UUID, uuid.UUID]]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Those of the (tenant, contact) pairs whose contact exists, asked tenant by tenant."""
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for tenant_id, contact_id in targets:
        by_tenant.setdefault(tenant_id, []).append(contact_id)
    found = []
    for tenant_id, contact_ids in by_tenant.items():
        with tenancy.as_tenant(tenant_id):
            for start in range(0, len(contact_ids), _EXISTING_BATCH):
                rows = await connections.get("default").execute_query_dict(
                    _EXISTING, [tenant_id, contact_ids[start : start + _EXISTING_BATCH]]
                )
                found += [(tenant_id, row["id"]) for row in rows]
    return found


async def pending_count() -> int:
    """Erasures whose outside stores are not done yet (all tenants; a count, for /metrics)."""
    rows = await connections.get("default").execute_query_dict("SELECT erasures FROM rapidly_pending_counts()")
    return rows[0]["erasures"]


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value
