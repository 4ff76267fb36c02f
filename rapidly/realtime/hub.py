"""`EventHub`: one LISTEN connection per process, fanned out to in-process subscribers.

The listener connection is dedicated (a pooled connection is reset, and so UNLISTENed, when it is
released) and asyncpg never reconnects by itself, so the hub supervises it: a termination listener
notices a closed socket at once, a heartbeat query with a timeout notices a connection that hangs,
and a lost connection is replaced with exponential backoff and jitter until `stop()`.

Notifications sent while no connection was listening are gone, so after every reconnect the hub
reads the `contact_event` log: rows created since the last moment the old connection was known to
be alive (less a margin, because sequence numbers are taken at INSERT but transactions commit in
any order) and rows newer than the newest event seen. They are delivered in sequence order, and
every event, however it arrived, is delivered at most once (a bounded window of recent sequence
numbers). LISTEN is issued before the log is read and notifications are held back until the
resync has been delivered, so nothing falls between the two and order is kept.

Events are announced after their writer's commit (`rapidly.realtime.announce`), so a writer that
dies in between leaves events that are logged but never announced. Each heartbeat therefore also
sweeps the log for events logged more than `sweep_grace_seconds` ago (announcements on their way
are left to arrive) that were not delivered: rows newer than the newest event seen, and sequence
numbers skipped so far (a later number arrived first). A skipped number is looked for until it is
`give_up_seconds` old: by then it was rolled back, or belongs to a transaction still open, whose
writer will announce it. A resync after a reconnect covers announcements delayed by less than
`resync_margin`; the sweeps cover the rest. Not covered: the numbers taken by transactions still
open when the hub starts (it begins at the sequence's last value), should their writer then die
between commit and announcement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

from rapidly import metrics
from rapidly.realtime.events import CHANNEL, CREDENTIALS_CHANNEL, ContactEvent

if TYPE_CHECKING:
    from rapidly.db import Credentials

log = logging.getLogger(__name__)

#: The log across tenants, through migration 0008's functions (IDs, kinds and times only): the
#: listener delivers every tenant's events to that tenant's subscribers.
_RESYNC = "SELECT id, tenant_id, contact_id, kind, created_at FROM rapidly_events_since($1, $2)"
#: Two index scans, not one `id > $1 OR id = ANY($2)`: a generic plan of that reads the whole log.
_SWEEP = "SELECT id, tenant_id, contact_id, kind, created_at FROM rapidly_events_settled($1, $2, $3, $4)"
#: The newest sequence number handed out, logged or not: an empty (pruned) log does not make the
#: numbers before the first new event look skipped. The sequence, not the log (which reads as empty
#: to the app role without a tenant: row-level security), and every ID comes from the sequence.
_LATEST = """
SELECT clock_timestamp() AS now,
    coalesce(pg_sequence_last_value(pg_get_serial_sequence('contact_event', 'id')::regclass), 0) AS max_seq
"""


class SubscriptionOverflow(Exception):
    """The subscriber fell further behind than its queue holds and was cut off.

    Whatever it shows may be stale: fetch the current state and subscribe again.
    """


class Subscription:
    """The events of one tenant (or of one contact of it), as an async iterator.

    Ends when the hub stops; raises `SubscriptionOverflow` when the consumer falls too far behind.
    """

    __slots__ = ("_closed", "_error", "_items", "_max_queue", "_wakeup", "contact_id", "tenant_id")

    def __init__(self, tenant_id: UUID, contact_id: UUID | None, max_queue: int) -> None:
        self.tenant_id = tenant_id
        self.contact_id = contact_id
        self._max_queue = max_queue
        self._items: deque[ContactEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def backlog(self) -> int:
        """Events queued and not yet taken."""
        return len(self._items)

    def matches(self, event: ContactEvent) -> bool:
        return event.tenant_id == self.tenant_id and (self.contact_id is None or event.contact_id == self.contact_id)

    def end(self, error: BaseException) -> None:
        """End the stream: the consumer's next step raises `error` (its credentials no longer hold)."""
        self._close(error)

    def _offer(self, event: ContactEvent) -> bool:
        """Queue the event; False (and cut off) when the queue is full or already closed."""
        if self._closed:
            return False
        if len(self._items) >= self._max_queue:
            self._close(SubscriptionOverflow(f"more than {self._max_queue} events undelivered"))
            return False
        self._items.append(event)
        self._wakeup.set()
        return True

    def _close(self, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        if error is not None:
            self._items.clear()  # a cut-off subscriber resyncs from the API, not from a stale backlog
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ContactEvent:
        while True:
            if self._error is not None:
                raise self._error
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()


class EventHub:
    """Receives every contact event once per process and hands each to the subscribers it concerns."""

    def __init__(
        self,
        *,
        heartbeat_seconds: float = 5.0,
        heartbeat_timeout: float | None = None,
        reconnect_min_seconds: float = 0.1,
        reconnect_max_seconds: float = 5.0,
        connect_timeout: float = 10.0,
        resync_margin: timedelta = timedelta(seconds=5),
        queue_size: int = 1000,
        dedupe_window: int = 20_000,
        max_skipped: int = 10_000,
        sweep_limit: int = 10_000,
        sweep_grace_seconds: float = 1.0,
        give_up_seconds: float | None = None,
        application_name: str = "rapidly-listener",
    ) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        self.heartbeat_timeout = heartbeat_timeout if heartbeat_timeout is not None else heartbeat_seconds
        self.reconnect_min_seconds = reconnect_min_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self.connect_timeout = connect_timeout
        self.resync_margin = resync_margin
        self.queue_size = queue_size
        self.dedupe_window = dedupe_window
        self.max_skipped = max_skipped
        self.sweep_limit = sweep_limit
        self.sweep_grace_seconds = sweep_grace_seconds
        self.give_up_seconds = give_up_seconds if give_up_seconds is not None else max(30.0, 3 * heartbeat_seconds)
        self.application_name = application_name
        #: Counters for tests and operators.
        self.reconnects = 0
        self.reconnect_failures = 0
        self.resynced = 0
        self.swept = 0
        self.given_up = 0
        self.dropped_subscribers = 0

        self._connect_kwargs: dict[str, object] = {}
        self._conn: asyncpg.Connection | None = None
        self._lost: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._subscribers: dict[UUID, set[Subscription]] = {}
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._max_seq = 0
        #: Sequence numbers skipped (a later one arrived first), oldest first, with when they were.
        self._skipped: OrderedDict[int, float] = OrderedDict()
        #: One query at a time on the listener connection (the heartbeat's, or `sweep()`'s).
        self._querying = asyncio.Lock()
        #: Database time at which the current (or last) connection was last known to be listening.
        self._alive_at: datetime | None = None
        #: Notifications held back while a resync is being delivered.
        self._held: list[ContactEvent] | None = None
        self._credential_watchers: list[Callable[[str | None], None]] = []

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, credentials: Credentials) -> None:
        """Connect and LISTEN (raises if the database cannot be reached), then supervise."""
        if self._task is not None:
            raise RuntimeError("event hub already started")
        self._stopped = False
        self._connect_kwargs = credentials.connect_kwargs()
        self._conn = await self._open(resync=False)
        self._task = asyncio.create_task(self._supervise(), name="rapidly-realtime-listener")
        log.info("realtime listener started (backend pid %s)", self.backend_pid)

    async def stop(self) -> None:
        """Close the listener and end every subscription. Safe to call more than once."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("realtime listener supervisor had failed: %s", type(task.exception()).__name__)
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber._close()
        self._subscribers.clear()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def skipped(self) -> list[int]:
        """Sequence numbers skipped so far (a later one arrived first) that the sweeps still look for."""
        return sorted(self._skipped)

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the listener connection, while connected."""
        return self._conn.get_server_pid() if self.connected else None  # type: ignore[union-attr]

    # -- subscribers ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: UUID, contact_id: UUID | None = None) -> AsyncIterator[Subscription]:
        """Events of `tenant_id` (staff), or only of `contact_id` in it (the end user)."""
        if self._stopped:
            raise RuntimeError("event hub is stopped")
        subscriber = Subscription(tenant_id, contact_id, self.queue_size)
        self._subscribers.setdefault(tenant_id, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            subscriber._close()
            self._unsubscribe(subscriber)

    def subscriber_count(self, tenant_id: UUID | None = None) -> int:
        if tenant_id is not None:
            return len(self._subscribers.get(tenant_id, ()))
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    def _unsubscribe(self, subscriber: Subscription) -> None:
        subscribers = self._subscribers.get(subscriber.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.tenant_id]

    def watch_credentials(self, watcher: Callable[[str | None], None]) -> Callable[[], None]:
        """Call `watcher` with each credential change announced (`staff:<id>`, `contact:<id>`,
        `tenant:<id>`: migration 0013), and with None after a reconnect, when changes may have been
        missed; returns the function that stops it."""
        self._credential_watchers.append(watcher)
        return lambda: self._credential_watchers.remove(watcher)

    def _on_credentials(self, _conn: object, _pid: int, _channel: str, payload: str | None) -> None:
        for watcher in list(self._credential_watchers):
            try:
                watcher(payload)
            except Exception as exc:  # one watcher's failure must not stop the listener's callbacks
                log.error("credential watcher failed (%s)", type(exc).__name__)

    def _record(self, seq: int) -> bool:
        """Note an event's sequence number; False if it was seen before."""
        if seq in self._seen:
            return False
        self._seen.add(seq)
        self._seen_order.append(seq)
        while len(self._seen_order) > self.dedupe_window:
            self._seen.discard(self._seen_order.popleft())
        if seq > self._max_seq:
            if seq > self._max_seq + 1:
                now = time.monotonic()
                for skipped in range(max(self._max_seq + 1, seq - self.max_skipped), seq):
                    self._skipped[skipped] = now
                while len(self._skipped) > self.max_skipped:
                    self._skipped.popitem(last=False)
                    self.given_up += 1
            self._max_seq = seq
        elif self._skipped:
            self._skipped.pop(seq, None)
        return True

    def _deliver(self, event: ContactEvent) -> bool:
        """Hand the event to its subscribers unless it was delivered before; True if it was new."""
        if not self._record(event.seq):
            return False
        for subscriber in list(self._subscribers.get(event.tenant_id, ())):
            if not subscriber.matches(event):
                continue
            if subscriber._offer(event):
                metrics.EVENTS_DELIVERED.inc()
            else:
                self._unsubscribe(subscriber)
                self.dropped_subscribers += 1
                log.warning(
                    "realtime subscriber of tenant %s cut off: more than %d events undelivered",
                    event.tenant_id,
                    self.queue_size,
                )
        return True

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            if self._held is None and not self._subscribers:  # nobody here listens: only the number counts
                self._record(ContactEvent.seq_of(payload))
                return
            event = ContactEvent.from_payload(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("realtime listener ignored a malformed notification")  # the payload is not logged
            return
        if self._held is not None:
            self._held.append(event)
        else:
            self._deliver(event)

    # -- the connection -------------------------------------------------------------------------

    async def _open(self, *, resync: bool) -> asyncpg.Connection:
        """A new listening connection; with `resync`, first deliver what the log holds that we missed."""
        conn: asyncpg.Connection = await asyncpg.connect(
            **self._connect_kwargs,  # type: ignore[arg-type]
            timeout=self.connect_timeout,
            server_settings={"application_name": self.application_name},
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            self._held = []
            await conn.add_listener(CHANNEL, self._on_notify)
            await conn.add_listener(CREDENTIALS_CHANNEL, self._on_credentials)
            latest = await conn.fetchrow(_LATEST, timeout=self.connect_timeout)
            if resync and self._alive_at is not None:
                since = self._alive_at - self.resync_margin
                rows = await conn.fetch(_RESYNC, since, self._max_seq, timeout=self.connect_timeout)
                delivered = sum(self._deliver(ContactEvent.from_row(row)) for row in rows)
                self.resynced += delivered
                self._on_credentials(conn, 0, CREDENTIALS_CHANNEL, None)  # changes while nobody listened
                log.info("realtime listener resynced: %d missed event(s) of %d logged", delivered, len(rows))
            else:
                self._max_seq = max(self._max_seq, latest["max_seq"])
            held, self._held = self._held, None
            for event in held:
                self._deliver(event)
        except BaseException:
            self._held = None
            conn.terminate()
            raise
        # Only now: if this attempt failed, the next one must resync from the old connection's time.
        self._alive_at = latest["now"]
        self._lost = lost
        return conn

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopped:
            conn, lost = self._conn, self._lost
            if conn is not None and lost is not None:
                reason = await self._watch(conn, lost)
                self._conn = None
                conn.terminate()
                log.warning("realtime listener lost its connection (%s); reconnecting", reason)
                attempt = 0
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1
            try:
                self._conn = await self._open(resync=True)
            except Exception as exc:  # whatever it was, keep trying until stop(); the type says enough
                self.reconnect_failures += 1
                log.warning("realtime listener reconnect attempt %d failed (%s)", attempt, type(exc).__name__)
                continue
            self.reconnects += 1
            log.info("realtime listener reconnected (backend pid %s)", self.backend_pid)

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> str:
        """Return (with the reason) once the connection is closed or stops answering the heartbeat."""
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel (stop()) that
                # arrives as the inner wait completes, and the supervisor would outlive stop().
                async with asyncio.timeout(self.heartbeat_seconds):
                    await lost.wait()
            except TimeoutError:
                pass
            else:
                return "closed"
            try:
                async with self._querying:
                    self._alive_at = await conn.fetchval("SELECT clock_timestamp()", timeout=self.heartbeat_timeout)
            except Exception as exc:
                return f"heartbeat failed: {type(exc).__name__}"
            try:
                await self.sweep()
            except Exception as exc:  # the connection's own failure shows at the next heartbeat
                log.warning("realtime sweep failed (%s)", type(exc).__name__)

    async def sweep(self) -> int:
        """Deliver events logged more than `sweep_grace_seconds` ago that never arrived: their writer
        died before announcing them, or the announcement is late (its announcer retrying); returns
        how many. Runs at every heartbeat."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return 0
        now = time.monotonic()
        grace = self.sweep_grace_seconds
        looked_for = [seq for seq, at in self._skipped.items() if now - at >= grace]
        async with self._querying:
            rows = await conn.fetch(
                _SWEEP,
                self._max_seq,
                looked_for,
                self.sweep_limit,
                timedelta(seconds=grace),
                timeout=max(self.heartbeat_timeout, 1.0),
            )
        delivered = sum(self._deliver(ContactEvent.from_row(row)) for row in rows)
        if delivered:
            self.swept += delivered
            log.info("realtime sweep delivered %d logged event(s) that had not been announced", delivered)
        for seq in looked_for:  # found, or still missing: rolled back, or its writer announces it
            at = self._skipped.get(seq)
            if at is not None and now - at >= self.give_up_seconds:
                del self._skipped[seq]
                self.given_up += 1
        return delivered

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the step fixed, half random."""
        step = min(self.reconnect_max_seconds, self.reconnect_min_seconds * 2 ** min(attempt, 32))
        return step / 2 + random.uniform(0, step / 2)  # noqa: S311 -- jitter, not a secret


async def _close(conn: asyncpg.Connection) -> None:
    try:
        async with asyncio.timeout(2):
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        conn.terminate()
