"""Prometheus metrics, served at `GET /metrics` to the bearer of `RAPIDLY_METRICS_TOKEN`.

Labels are names from the code and the schema (operations, routes, channels, stores, outcomes),
never anything a user typed, a token or an ID: an operation is the root field of a document that
validated against the schema, a page is its route's template (`/my/{token}`), not its path.

With `serve --workers N`, every process writes its figures to `PROMETHEUS_MULTIPROC_DIR` and any of
them answers a scrape with the sum (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send

from rapidly import logs, telemetry, tenancy

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter(
    "rapidly_requests_total",
    "Requests by GraphQL operation (root field) or page route, and outcome",
    ["operation", "outcome"],
)
LATENCY = Histogram(
    "rapidly_request_duration_seconds",
    "Time to answer a request, by GraphQL operation or page route",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SAVES = Counter("rapidly_saves_total", "Answers saved (saveField)")
EVENTS_DELIVERED = Counter("rapidly_events_delivered_total", "Live events handed to subscribers")
SUBSCRIBERS_CUT_OFF = Counter(
    "rapidly_subscribers_cut_off_total", "Live WebSockets cut off for letting their events pile up unread"
)
SUBSCRIBERS = Gauge("rapidly_subscribers", "Open live subscriptions", multiprocess_mode="livesum")
TASKS = Gauge(
    "rapidly_tasks",
    "asyncio tasks alive (one or two per open connection and subscription)",
    multiprocess_mode="livesum",
)
OUTBOX_DEPTH = Gauge("rapidly_outbox_depth", "Messages waiting to be sent", multiprocess_mode="mostrecent")
MESSAGE_ATTEMPTS = Counter(
    "rapidly_message_attempts_total", "Attempts to send a message, by channel and outcome", ["channel", "outcome"]
)
ERASURES_PENDING = Gauge(
    "rapidly_erasures_pending", "Erasures whose outside stores are not done yet", multiprocess_mode="mostrecent"
)
ERASURE_RETRIES = Counter("rapidly_erasure_retries_total", "Failed attempts at an erasure's outside store", ["store"])
BACKUPS = Counter("rapidly_backups_total", "Scheduled backups, by outcome", ["outcome"])
BACKUP_LAST = Gauge(
    "rapidly_backup_last_timestamp_seconds", "When the newest backup was made (Unix time)", multiprocess_mode="max"
)
BACKUP_FAILED = Gauge(
    "rapidly_backup_last_failure_timestamp_seconds",
    "When the last scheduled backup failed (Unix time; 0: none since start)",
    multiprocess_mode="max",
)
POOL = Gauge(
    "rapidly_db_pool_connections", "Database pool connections, by state", ["state"], multiprocess_mode="livesum"
)
SPANS_DROPPED = Counter(
    "rapidly_spans_dropped",
    "Trace spans not delivered to the collector (rapidly/telemetry.py), by reason: queue_full, export_failed",
    ["reason"],
)

#: Requests that are neither GraphQL operations nor pages of a route.
OTHER = "other"
GRAPHQL = "/graphql"


class _BackupAge:
    """`rapidly_backup_age_seconds`, from the newest backup's time as all processes together know it
    (a gauge of each process's own would be stale in every process but the one that made it)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        newest = self.registry.get_sample_value("rapidly_backup_last_timestamp_seconds") or 0.0
        age = GaugeMetricFamily("rapidly_backup_age_seconds", "Age of the newest backup (absent: none known yet)")
        if newest > 0:
            age.add_metric([], max(0.0, time.time() - newest))
        yield age


def exposition() -> bytes:
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        figures = CollectorRegistry()
        multiprocess.MultiProcessCollector(figures)
    else:
        figures = REGISTRY
    answer = CollectorRegistry()
    answer.register(figures)  # a registry is a collector of its own metrics
    answer.register(_BackupAge(figures))
    return generate_latest(answer)


CONTENT_TYPE = CONTENT_TYPE_LATEST


def forget_process() -> None:
    """At a process's end (`serve --workers N`): its live gauges no longer count in the sums."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


class _Record:
    __slots__ = ("operation", "outcome")

    def __init__(self) -> None:
        self.operation: str | None = None
        self.outcome: str | None = None


_current: ContextVar[_Record | None] = ContextVar("rapidly_request_record", default=None)


def record_operation(operation: str) -> None:
    """Name the GraphQL operation being served (a root field of the schema)."""
    if (record := _current.get()) is not None and record.operation is None:
        record.operation = operation


def record_outcome(outcome: str) -> None:
    """`rejected` (an expected error), `invalid`, `unavailable` or `error`; the first one sticks."""
    if (record := _current.get()) is not None and record.outcome is None:
        record.outcome = outcome


class Observe:
    """Outermost ASGI layer: a request reference for the log, and each HTTP request counted and timed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # background tasks are no request
            await self.app(scope, receive, logs.without_traceback(send))
            return
        logs.begin_request()
        tenancy.begin_request()
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = _Record()
        _current.set(record)
        status = 500
        started = time.perf_counter()
        traced = telemetry.request(scope["method"])  # None when tracing is off
        failure: Exception | None = None

        async def sending(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)  # type: ignore[arg-type]

        try:
            await self.app(scope, receive, sending)  # type: ignore[arg-type]
        except Exception as exc:
            failure = exc
            raise
        finally:
            operation = record.operation or _route_of(scope)
            count, time_it = _series(operation, record.outcome or _outcome_of(status))
            count.inc()
            time_it.observe(time.perf_counter() - started)
            if traced is not None:  # named by the route's template, like the metrics
                route = _route_of(scope)
                traced.end(None if route == OTHER else route, status, failure)


@functools.cache
def _series(operation: str, outcome: str) -> tuple[Counter, Histogram]:
    """A request's counter and histogram, found once per label pair (a closed set of pairs) rather
    than by `labels()` on every request, which builds and checks the pair anew each time."""
    return REQUESTS.labels(operation, outcome), LATENCY.labels(operation)


def _route_of(scope: Scope) -> str:
    """A route's template, never the path itself (which may hold a token)."""
    if scope["path"] == GRAPHQL:  # a document that named no operation of the schema (it did not validate)
        return GRAPHQL
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else OTHER


def _outcome_of(status: int) -> str:
    if status == 503:
        return "unavailable"
    if status >= 500:
        return "error"
    if status >= 400:
        return "rejected"
    return "ok"
