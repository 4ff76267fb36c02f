"""An OTLP/HTTP receiver on loopback: what an operator's OpenTelemetry collector would get.

It takes a POST on any path (traces at `/v1/traces`; FastAPI's own instrumentation would also send
`/v1/metrics` and `/v1/logs`), gzip or not, keeps every body as it came, and answers as a collector
does. `delay` makes it a slow collector: each answer waits that long.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass
class Span:
    """One received span, decoded: what a collector would store."""

    name: str
    kind: int
    scope: str
    attributes: dict[str, object]
    events: list[tuple[str, dict[str, object]]]
    status_code: int
    status_message: str
    parent: bytes
    trace_id: bytes
    span_id: bytes


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes  # decompressed


@dataclass
class Receiver:
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver.delay)
                answer = ExportTraceServiceResponse().SerializeToString()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/x-protobuf")
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the exporter gave up waiting
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def requests(self) -> list[ExportTraceServiceRequest]:
        return [ExportTraceServiceRequest.FromString(r.body) for r in list(self.received) if r.path == "/v1/traces"]

    def spans(self) -> list[Span]:
        return [
            Span(
                name=span.name,
                kind=span.kind,
                scope=scope_spans.scope.name,
                attributes=_attributes(span.attributes),
                events=[(event.name, _attributes(event.attributes)) for event in span.events],
                status_code=span.status.code,
                status_message=span.status.message,
                parent=span.parent_span_id,
                trace_id=span.trace_id,
                span_id=span.span_id,
            )
            for request in self.requests()
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def resources(self) -> list[dict[str, object]]:
        return [
            _attributes(resource_spans.resource.attributes)
            for request in self.requests()
            for resource_spans in request.resource_spans
        ]

    def wait_for(self, condition: Callable[[list[Span]], bool], timeout: float = 15) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if condition(spans):
                return spans
            assert time.monotonic() < deadline, sorted({s.name for s in spans})
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attributes(pairs: list[KeyValue]) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None
