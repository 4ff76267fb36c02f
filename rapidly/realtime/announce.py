"""Announcing committed events: the NOTIFY leaves the writer's transaction.

A transaction that NOTIFYs holds a cluster-wide lock from its pre-commit until its commit is
recorded, so notifying transactions commit one at a time, each waiting for its own WAL flush, and
cannot share a flush (group commit). `bench/notify_commits.py`: 16 connections committing one event
each per transaction reach about 4,800 commits a second with the NOTIFY inside, about 12,400 with
it sent after the commit, 14,500 with none, on the embedded PostgreSQL 18 of a 2-core machine. That
ceiling is for the whole database, whatever the number of server processes.

So a writer only logs the event (`contact_event`, in its own transaction), and once that has
committed hands the payload to its process's `Announcer`, which sends whatever has gathered meanwhile
as one statement: many events, one short transaction. It writes no WAL before its commit record, so
PostgreSQL commits it without waiting for a flush. A process that dies between a commit and its
announcement leaves events that were logged but never announced; every hub's sweep (`EventHub`, at
each heartbeat) finds them in the log and delivers them.

Order: one process announces its events in the order their commits returned; events of different
processes interleave as their batches arrive, not strictly in commit order. Every event carries its
sequence number, and subscribers fetch the current state rather than replay events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager

import asyncpg
from tortoise import connections

from rapidly import db
from rapidly.realtime.events import CHANNEL

log = logging.getLogger(__name__)

#: One notification per payload, in the order given.
_ANNOUNCE = f"SELECT count(pg_notify('{CHANNEL}', payload)) FROM unnest($1::text[]) AS payload"  # noqa: S608 -- a constant

#: Seconds between two warnings about dropped announcements (not one per event).
_WARN_EVERY = 10.0


def _connection() -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A pool connection as it is, outside any tenant's transaction: a NOTIFY reads no table, and the
    sending task (a copy of the context of whichever request handed over first) must not wrap every
    batch, of any tenant's events, in that request's tenant's transaction (`db.connection()` would:
    two more round trips a batch)."""
    return connections.get("default").acquire_unscoped()  # type: ignore[attr-defined]


class Announcer:
    """Sends the NOTIFYs of this process's committed events, in batches, in the order handed over.

    `announce()` never waits: it queues, and one task sends what has gathered while the previous
    batch was on its way. A batch that fails is tried again with backoff (one the database refuses
    as invalid is dropped); beyond `max_pending` the oldest payloads are dropped. Dropped events stay
    in the log, where the hubs' sweeps find them (`max_pending` is no more than the hubs'
    `max_skipped`, the run of missing numbers a sweep looks for).
    """

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]] = _connection,
        *,
        max_batch: int = 1000,
        max_pending: int = 10_000,
        timeout: float = 5.0,
        retry_min_seconds: float = 0.05,
        retry_max_seconds: float = 2.0,
    ) -> None:
        self._connection = connection
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.timeout = timeout
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        #: Counters for tests and operators.
        self.announced = 0
        self.batches = 0
        self.failures = 0
        self.dropped = 0
        self._pending: list[str] = []
        self._in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._warned_at = -_WARN_EVERY
        self._unwarned = 0

    @property
    def pending(self) -> int:
        """Payloads not sent yet, the batch on its way included."""
        return len(self._pending) + self._in_flight

    def announce(self, payloads: Iterable[str]) -> None:
        """Queue the NOTIFY payloads of events that have committed. Call it where no transaction is
        open, as `db.on_commit()` does: the sending task copies the caller's context, and a
        transaction's connection there would carry every later batch."""
        self._pending.extend(payloads)
        self._trim()
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            if db.transaction_open():
                raise RuntimeError("announce() inside a transaction: use rapidly.db.on_commit()")
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rapidly-realtime-announcer")

    async def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been sent (at shutdown); False if it could not
        be within `timeout` (what is left stays in the log, for the sweeps)."""
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            return not self._pending
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            log.warning("realtime announcer gave up on %d event(s) at shutdown", self.pending)
            task.cancel()
            await asyncio.wait([task])
            return False
        return True

    def _trim(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess > 0:
            del self._pending[:excess]
            self._dropped(excess, "too many waiting")

    def _dropped(self, count: int, why: str) -> None:
        self.dropped += count
        self._unwarned += count
        if time.monotonic() - self._warned_at >= _WARN_EVERY:
            log.warning(
                "realtime announcer dropped %d event(s) (%s); the hubs' sweeps deliver them", self._unwarned, why
            )
            self._warned_at, self._unwarned = time.monotonic(), 0

    async def _run(self) -> None:
        attempt = 0
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._in_flight = len(batch)
            try:
                async with asyncio.timeout(self.timeout), self._connection() as conn:
                    await conn.execute(_ANNOUNCE, batch)
            except asyncpg.DataError as exc:  # refused as invalid: trying again would block the rest
                self._dropped(len(batch), type(exc).__name__)
            except Exception as exc:  # the database unreachable, the pool closing, a timeout: again
                self.failures += 1
                self._in_flight = 0
                self._pending[:0] = batch
                self._trim()
                delay = min(self.retry_max_seconds, self.retry_min_seconds * 2 ** min(attempt, 16))
                attempt += 1
                log.warning("realtime announcer failed (%s); trying again in %.2f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            else:
                attempt = 0
                self.announced += len(batch)
                self.batches += 1
            finally:
                self._in_flight = 0


#: The process's announcer: events reach the other processes' hubs through it.
announcer = Announcer()
