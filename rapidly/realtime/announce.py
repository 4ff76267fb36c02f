"""Announcing committed events: the NOTIFY leaves the writer's transaction.

A transaction that NOTIFYs holds a cluster-wide lock from its pre-commit until its commit record is
flushed, so notifying transactions commit one at a time, each waiting for its own WAL flush, and
saves could not share a flush (group commit). With the NOTIFY in every save, `bench/save_field.py`
measured about 20% less throughput and a p99 a third higher than without it.

So a writer only logs the event (`contact_event`, in its own transaction), and once that has
committed hands the payload to its process's `Announcer`, which sends whatever has gathered meanwhile
as one statement: many events, one short transaction, and an asynchronous commit (it writes nothing
that must survive a crash: the events are already in the log). A process that dies between a
commit and its announcement leaves events that were logged but never announced; every hub's sweep
(`EventHub`, at each heartbeat) finds them in the log and delivers them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager

import asyncpg

from rapidly import db
from rapidly.realtime.events import CHANNEL

log = logging.getLogger(__name__)

#: One notification per payload, in order, in one transaction that commits without waiting for
#: its WAL flush (`set_config(..., true)` is SET LOCAL: it ends with this statement's transaction).
_ANNOUNCE = f"""
SELECT set_config('synchronous_commit', 'off', true),
       (SELECT count(pg_notify('{CHANNEL}', payload)) FROM unnest($1::text[]) AS payload)
"""  # noqa: S608 -- a module constant; the payloads are a bind parameter


class Announcer:
    """Sends the NOTIFYs of this process's committed events, in batches, in the order handed over.

    `announce()` never waits: it queues, and one task per event loop sends what has gathered while
    the previous batch was on its way. A failed batch is tried again with backoff; beyond
    `max_pending` the oldest payloads are dropped (they stay in the log, for the hubs' sweeps).
    """

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]] = db.connection,
        *,
        max_batch: int = 1000,
        max_pending: int = 100_000,
        retry_min_seconds: float = 0.05,
        retry_max_seconds: float = 2.0,
    ) -> None:
        self._connection = connection
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        #: Counters for tests and operators.
        self.announced = 0
        self.batches = 0
        self.failures = 0
        self.dropped = 0
        self._pending: list[str] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def announce(self, payloads: Iterable[str]) -> None:
        """Queue the NOTIFY payloads of events that have committed."""
        self._pending.extend(payloads)
        self._trim()
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rapidly-realtime-announcer")

    def _trim(self) -> None:
        if len(self._pending) > self.max_pending:
            excess = len(self._pending) - self.max_pending
            del self._pending[:excess]
            self.dropped += excess
            log.warning("realtime announcer dropped %d event(s); the hubs' sweeps will deliver them", excess)

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
            task.cancel()
            log.warning("realtime announcer gave up on %d event(s) at shutdown", len(self._pending))
            return False
        return True

    async def _run(self) -> None:
        attempt = 0
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                async with self._connection() as conn:
                    await conn.execute(_ANNOUNCE, batch)
            except Exception as exc:  # whatever it was (the pool closing, too), try again; the type says enough
                self.failures += 1
                self._announce_again(batch)
                delay = min(self.retry_max_seconds, self.retry_min_seconds * 2 ** min(attempt, 16))
                attempt += 1
                log.warning("realtime announcer failed (%s); trying again in %.2f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.announced += len(batch)
            self.batches += 1

    def _announce_again(self, batch: list[str]) -> None:
        """Put a batch that failed back in front of what has been queued since."""
        self._pending[:0] = batch
        self._trim()


#: The process's announcer: events reach the other processes' hubs through it.
announcer = Announcer()
