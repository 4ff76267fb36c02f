"""Traces for operators: Rapidly's own spans, exported over OTLP/HTTP to `RAPIDLY_OTEL_ENDPOINT`.

Unset, nothing here runs: no SDK pipeline, no thread, no hook on the database's connections, and
every other hook is one `is None` test.

What a span holds is decided here, by construction, as for /metrics' labels: names from the code and
the schema (a route's template, `GET /my/{token}`; a GraphQL operation's type and root field, `mutation
saveField`; a statement's verb and relation, `SELECT contact`; a channel, a store, a count, a tenant's
ID) and an exception's type. Never a path, a query string, a header, the client's address, a GraphQL
document, its variables or the name a client gave its operation, SQL text or its parameters, an
exception's message or stack: any of them can hold a token or what someone typed.

The spans go to `RAPIDLY_OTEL_ENDPOINT`, checked by the residency guard like every other backend, and
nowhere else. Every option of the provider, the processor and the exporter is given here, so no
`OTEL_*` variable can redirect them, sample them, add resource attributes (`OTEL_RESOURCE_ATTRIBUTES`,
resource detectors) or send them through a proxy (`HTTPS_PROXY`). Taken from the environment, as the
SDK documents them, are only `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (a collector's API key) and
`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`/`CLIENT_KEY`/`CLIENT_CERTIFICATE` (TLS to it): they say how to
reach the checked host, not where to send; and `OTEL_SDK_DISABLED=true`, which can only send less. The
provider is Rapidly's own, never the global one, so no library can export its spans through it.

A collector that is down or slow costs requests nothing: spans wait in a bounded queue that a thread
exports, each export given up after `EXPORT_TIMEOUT_SECONDS`; spans lost to a full queue or a failed
export are counted in `rapidly_spans_dropped_total`.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, StatusCode

from rapidly import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue
    from prometheus_client import Counter

    from rapidly.config import Settings

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

#: Spans waiting for the exporter; beyond this, new ones push out the oldest (counted as dropped).
QUEUE_SIZE = 2048
BATCH_SIZE = 512
EXPORT_EVERY_MILLIS = 1000
#: One export's whole time, retries included; the queue takes the spans meanwhile.
EXPORT_TIMEOUT_SECONDS = 2.0
#: Attribute limits: Rapidly's spans have a handful of short ones.
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_LENGTH = 256
TRACES_PATH = "/v1/traces"

_tracer: Tracer | None = None
_pipeline: Pipeline | None = None
_OFF: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)


def tracing() -> bool:
    return _tracer is not None


def start(settings: Settings) -> None:
    """Export this process's spans to `RAPIDLY_OTEL_ENDPOINT`, when it is set (`serve`'s lifespan,
    after the residency guard has passed it)."""
    global _tracer, _pipeline
    if settings.otel_endpoint is None or _pipeline is not None:
        return
    from rapidly.metrics import SPANS_DROPPED  # here: rapidly.metrics imports this module

    pipeline = Pipeline(settings.otel_endpoint, SPANS_DROPPED)
    if not pipeline.recording:
        log.warning("OTEL_SDK_DISABLED is set: no traces are exported (unset it, or RAPIDLY_OTEL_ENDPOINT)")
        pipeline.close()
        return
    # The exporter's and the batch processor's own lines repeat for every batch of an outage; ours
    # (`_Delivery`) say it once, and the counter keeps the figures.
    for name in ("opentelemetry.exporter.otlp.proto.http", "opentelemetry.sdk._shared_internal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _pipeline, _tracer = pipeline, pipeline.tracer
    log.info("traces: exported to %s", _host_of(settings.otel_endpoint))


def stop() -> None:
    """Send what is queued, briefly (a collector that fails is not waited for twice), and end."""
    global _tracer, _pipeline
    pipeline, _pipeline, _tracer = _pipeline, None, None
    if pipeline is not None:
        pipeline.close()


class Pipeline:
    """Provider, batch processor and OTLP/HTTP exporter, every option explicit (see the module's
    docstring for what the environment may still say)."""

    def __init__(self, endpoint: str, dropped: Counter, *, queue_size: int = QUEUE_SIZE) -> None:
        import requests
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace import Tracer as SdkTracer
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        session = requests.Session()
        session.trust_env = False  # no proxy, .netrc or CA bundle from the environment
        no_meters = NoOpMeterProvider()  # the SDK's own metrics would go to the global meter provider
        exporter = OTLPSpanExporter(
            endpoint=endpoint.rstrip("/") + TRACES_PATH,
            timeout=EXPORT_TIMEOUT_SECONDS,
            compression=Compression.Gzip,
            session=session,
            meter_provider=no_meters,
        )
        self.delivery = _Delivery(exporter, dropped, _host_of(endpoint))
        batch = BatchSpanProcessor(
            self.delivery,  # type: ignore[arg-type]
            max_queue_size=queue_size,
            schedule_delay_millis=EXPORT_EVERY_MILLIS,
            max_export_batch_size=min(BATCH_SIZE, queue_size),
            export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000,
            meter_provider=no_meters,
        )
        self.processor = _BoundedBatch(batch, dropped)
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource({"service.name": "rapidly", "service.version": __version__}),
            shutdown_on_exit=False,  # `stop()`, with its short flush
            id_generator=RandomIdGenerator(),
            span_limits=SpanLimits(
                max_attributes=MAX_ATTRIBUTES,
                max_events=8,
                max_links=0,
                max_span_attributes=MAX_ATTRIBUTES,
                max_event_attributes=MAX_ATTRIBUTES,
                max_link_attributes=0,
                max_attribute_length=MAX_ATTRIBUTE_LENGTH,
                max_span_attribute_length=MAX_ATTRIBUTE_LENGTH,
            ),
            meter_provider=no_meters,
        )
        self.provider.add_span_processor(self.processor)  # type: ignore[arg-type]
        self.tracer: Tracer = self.provider.get_tracer("rapidly", __version__)
        self.recording = isinstance(self.tracer, SdkTracer)  # not with OTEL_SDK_DISABLED=true

    def close(self) -> None:
        self.delivery.closing = True
        self.provider.shutdown()


def _host_of(endpoint: str) -> str:
    return urlsplit(endpoint).hostname or "?"


class _BoundedBatch:
    """The SDK's batch processor, counting the spans that its full queue pushes out. (The SDK counts
    them only in metrics of its own, off unless an environment variable says otherwise; its queue is
    read here as it reads it, and tests/test_telemetry.py fails if that changes.)"""

    def __init__(self, batch: Any, dropped: Counter) -> None:
        self.batch = batch
        self._inside = batch._batch_processor  # its queue, and the queue's bound
        self.full = dropped.labels("queue_full")
        self._warned_at = -60.0

    def on_start(self, span: Span, parent_context: object = None) -> None:
        pass

    def _on_ending(self, span: Span) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if len(self._inside._queue) >= self._inside._max_queue_size:
            self.full.inc()
            if (now := time.monotonic()) - self._warned_at >= 60:
                self._warned_at = now
                log.warning("traces: the queue is full (the collector is slow or down); spans are dropped")
        self.batch.on_end(span)

    def shutdown(self) -> None:
        self.batch.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.batch.force_flush(timeout_millis)


class _Delivery:
    """The OTLP exporter, counting the spans of each batch it could not deliver, and saying once when
    the collector fails and when it answers again. Closing, a collector that has failed is not tried
    again: the process ends without waiting for it."""

    def __init__(self, exporter: Any, dropped: Counter, host: str) -> None:
        self.exporter = exporter
        self.failed = dropped.labels("export_failed")
        self.host = host
        self.failing = False
        self.closing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = SpanExportResult.FAILURE if self.closing and self.failing else self.exporter.export(spans)
        if result is SpanExportResult.SUCCESS:
            if self.failing:
                self.failing = False
                log.info("traces: the collector at %s takes spans again", self.host)
            return result
        self.failed.inc(len(spans))
        if not self.failing:
            self.failing = True
            log.warning(
                "traces: the collector at %s did not take %d spans; dropped, and counted", self.host, len(spans)
            )
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# -- spans -------------------------------------------------------------------------------------------


class _Current:
    """A span that is the current one for its block: children (statements) find it. An exception
    leaving the block marks it failed, by type."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if isinstance(error, Exception):  # not a cancellation
            failed(error, self.span)
        context.detach(self._token)  # type: ignore[arg-type]
        self.span.end()


def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> AbstractContextManager[Span]:
    """A span of Rapidly's own work (`erase contact`, `send email`), current for the block; off, a
    span that records nothing. `name` and `attributes` come from the code, never from input."""
    if _tracer is None:
        return _OFF
    return _Current(_tracer.start_span(name, attributes=attributes, record_exception=False))


def traced(name: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """A coroutine function each of whose calls is a span `name` (`span()`)."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with span(name):
                return await function(*args, **kwargs)

        return run

    return decorate


def current() -> Span:
    """The current span, to add an attribute to; off, one that records nothing."""
    return trace.get_current_span() if _tracer is not None else trace.INVALID_SPAN


def operation(kind: str, root_field: str | None) -> AbstractContextManager[Span]:
    """A GraphQL operation, after OpenTelemetry's GraphQL conventions but without
    `graphql.operation.name` (the client chooses it) or `graphql.document`: its type and the root
    field it runs, both names of the schema (`mutation saveField`)."""
    if _tracer is None:
        return _OFF
    name = f"{kind} {root_field}" if root_field else kind
    return _Current(_tracer.start_span(name, attributes={"graphql.operation.type": kind}, record_exception=False))


#: Methods named as they are; any other is `_OTHER` (a client can send any token as a method).
_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})


class Request(_Current):
    """An HTTP request's server span, current from its start: named by its method until `end()` names
    its route's template. It has no `url.path`, `url.full`, `url.query`, header, client address or user
    agent."""

    __slots__ = ("method",)

    def __init__(self, span: Span, method: str) -> None:
        super().__init__(span)
        self.method = method
        self.__enter__()

    def end(self, route: str | None, status: int, error: BaseException | None = None) -> None:
        """`route`: the matched route's template (`/my/{token}`), None for none."""
        span = self.span
        if route is not None:
            span.update_name(f"{self.method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if error is None and status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(StatusCode.ERROR)
        self.__exit__(None, error, None)


def request(method: str) -> Request | None:
    """The server span of an HTTP request (`metrics.Observe`); None when tracing is off."""
    if _tracer is None:
        return None
    known = method in _METHODS
    name = method if known else "HTTP"
    attributes = {"http.request.method": method if known else "_OTHER"}
    return Request(_tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes, record_exception=False), name)


def failed(error: BaseException, span: Span | None = None) -> None:
    """Mark `span` (else the current one) failed: the error's type, never its message, which can quote
    personal data (`rapidly.errors.for_the_log`); the status carries no description either."""
    if _tracer is None:
        return
    span = span or trace.get_current_span()
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    span.set_attribute("error.type", name)
    span.add_event("exception", {"exception.type": name})
    span.set_status(StatusCode.ERROR)


# -- database statements -------------------------------------------------------------------------------

#: Verbs named as they are; anything else is `SQL`.
_VERBS = frozenset(
    {
        "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE",
        "NOTIFY", "LISTEN", "UNLISTEN", "TRUNCATE", "LOCK", "SET", "SHOW",
    }
)  # fmt: skip
_RELATION = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?([a-z_][a-z0-9_]*)', re.IGNORECASE)


def summary(sql: str, relations: frozenset[str]) -> str:
    """`VERB relation` (`SELECT contact`), or the verb alone: the verb from a closed set, the relation
    only one of `relations` (the schema's tables and routines). Never the SQL text: Tortoise and
    Rapidly write some values into it (the tenant's ID in `BEGIN`, limits), and its parameters are
    what people typed. So a span's name is one of a closed set, like a metric's label."""
    first = sql.lstrip()[:12].split(None, 1)
    verb = first[0].rstrip(";").upper() if first else ""
    verb = verb if verb in _VERBS else "SQL"
    for found in _RELATION.finditer(sql):
        if found.group(1) in relations:
            return f"{verb} {found.group(1)}"
    return verb


class _Statements:
    """asyncpg's query logger (its public hook, called soon after each statement, in the statement's
    context): a span for every statement run inside traced work, timed by asyncpg. A statement
    outside any (the dispatcher's polling, heartbeats) makes none."""

    def __init__(self, relations: frozenset[str]) -> None:
        self.relations = relations

    def __call__(self, record: Any) -> None:
        tracer = _tracer
        if tracer is None or not trace.get_current_span().get_span_context().is_valid:
            return
        ended = time.time_ns()
        name = summary(record.query, self.relations)
        span = tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            start_time=ended - int(record.elapsed * 1e9),
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": name.partition(" ")[0],
                "db.query.summary": name,
            },
            record_exception=False,
        )
        if isinstance(record.exception, Exception):
            failed(record.exception, span)
        span.end(end_time=ended)


def traced_connections(relations: frozenset[str]) -> Callable[[Any], Awaitable[None]]:
    """The `init` of a pool whose statements become spans; `relations` name them (see `summary`)."""
    statements = _Statements(relations)

    async def init(connection: Any) -> None:
        connection.add_query_logger(statements)

    return init
