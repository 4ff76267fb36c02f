"""uvicorn as Rapidly runs it: the options every listener gets, its sockets, and how it stops.

Every `uvicorn.Config` of Rapidly's is built by `uvicorn_config()`: uvicorn applies its own logging
configuration whenever a Config is built without `log_config=None`, and that brings back its access
log, whose lines hold request paths, and those hold the tokens of customers' links.

Stopping: the first Ctrl-C (or SIGTERM) stops a server gracefully, its application's shutdown
included; a second one ends it at once. A terminal sends Ctrl-C to every process of the command, so
the processes of `serve --workers N` leave it to their `Supervisor`, which stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from multiprocessing import resource_tracker
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.supervisors import Multiprocess

from rapidly.errors import StartupRefused

log = logging.getLogger(__name__)

#: How long a message to a WebSocket client may wait for room in its connection's buffers. A client
#: that reads keeps them empty; one that has stopped (a stalled phone, a hostile client) is cut off.
SEND_DEADLINE_SECONDS = 10.0
#: The kernel's send buffer of a WebSocket connection (Linux doubles it; autotuned, it grows to
#: 4 MiB): room for thousands of events, and what a stalled client can hold of the kernel's memory.
SEND_BUFFER_BYTES = 64 * 1024
#: WebSocket pings (answered by browsers whatever their page is doing): a client that answers none
#: for this long is disconnected, which also ends a client that stopped reading while the buffers
#: still had room.
PING_INTERVAL_SECONDS = 20.0
PING_TIMEOUT_SECONDS = 20.0
#: How long a stop waits for requests under way (uvicorn's default: for ever).
GRACEFUL_SHUTDOWN_SECONDS = 10.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, with a deadline on every send.

    Without it a client that stops reading keeps its connection, its subscriptions and their tasks
    for ever: sends wait for buffer room that never comes, and even a close waits for the buffer
    to be written first. Past the deadline the connection is aborted: everything it held is freed,
    and the application sees a disconnected client.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)

    async def send(self, message: Any) -> None:
        try:
            async with asyncio.timeout(SEND_DEADLINE_SECONDS):
                await super().send(message)
        except TimeoutError:
            log.info("WebSocket client cut off: it read nothing for %.0f s", SEND_DEADLINE_SECONDS)
            self.transport.abort()
            raise ClientDisconnected() from None


#: What every listener of Rapidly's runs with.
OPTIONS: dict[str, Any] = {
    # Logging is `rapidly.logs`'s: uvicorn's records go through the same handler and rules.
    "log_config": None,
    # No access log: request paths of links carry tokens, and tokens never reach a log.
    "access_log": False,
    "ws": WebSocketProtocol,
    # No permessage-deflate: an event is a hundred bytes or so, and a compressor per connection cost
    # 40 KiB more memory per open WebSocket (103 KiB against 61) and CPU for every message sent.
    "ws_per_message_deflate": False,
    "ws_ping_interval": PING_INTERVAL_SECONDS,
    "ws_ping_timeout": PING_TIMEOUT_SECONDS,
    "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
}


def uvicorn_config(app: Any, **options: Any) -> uvicorn.Config:
    """A uvicorn Config with Rapidly's options (`OPTIONS`); the others as given."""
    return uvicorn.Config(app, **{**options, **OPTIONS})


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for a server (or the processes of `serve --workers N`); a port
    that is taken or an address this machine does not have is a refusal to start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupRefused(
            "listen",
            f"cannot listen on {host}:{port} ({exc.strerror}): choose another port (--port) or address (--host)",
        ) from None
    sock.set_inheritable(True)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, stopped as the module says. uvicorn itself skips the application's shutdown
    on a second Ctrl-C yet waits for it when it has begun, and raises the signals again at the end,
    which printed two tracebacks (KeyboardInterrupt, then the lifespan's CancelledError)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._forced: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._loop, self._forced = asyncio.get_running_loop(), asyncio.Event()
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: object) -> None:
        if self.should_exit:
            self.force_exit = True
            if self._loop is not None and self._forced is not None:
                self._loop.call_soon_threadsafe(self._forced.set)
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        graceful = asyncio.ensure_future(super().shutdown(sockets))
        waits = [graceful]
        if self._forced is not None:
            waits.append(asyncio.ensure_future(self._forced.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await graceful
        if self.force_exit:
            # What is still running (requests, the application's shutdown) is cancelled as the loop
            # ends, and uvicorn would log each as an error with its traceback: the stop asked for.
            logging.getLogger("uvicorn.error").addFilter(_not_cancelled)


def _not_cancelled(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class Supervisor(Multiprocess):
    """uvicorn's supervisor of the processes of `serve --workers N`: Ctrl-C stops them in order (they
    ignore the terminal's own: `ignore_terminal_interrupts`), a second one ends them at once."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, sig: int, frame: object) -> None:
        if self.should_exit.is_set():  # the second: the processes are being stopped; end them now
            for process in self.processes:
                if process.process.pid is not None and process.process.exitcode is None:
                    with contextlib.suppress(OSError):
                        os.kill(process.process.pid, signal.SIGKILL)
        self.signal_queue.append(sig)

    def init_processes(self) -> None:
        # The processes inherit SIGINT ignored (an ignored signal stays ignored across exec) and so
        # never see the terminal's Ctrl-C, even while they start; the supervisor stops them itself,
        # with SIGTERM. SIGINT is blocked meanwhile: a Ctrl-C typed while they are spawned stays
        # pending (Linux keeps a blocked signal even while it is ignored) and reaches the supervisor's
        # handler once it is back, rather than being lost (the processes then started, and never stopped).
        # multiprocessing's resource tracker unblocks SIGINT after it starts, so it is started first.
        resource_tracker.ensure_running()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            super().init_processes()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    @property
    def refused(self) -> bool:
        """A process failed to start (it has said why)."""
        return any(process.process.exitcode == STARTUP_FAILURE for process in self.processes)


def ignore_terminal_interrupts() -> None:
    """In a process of `serve --workers N`, once uvicorn has set its handlers: the terminal's Ctrl-C
    reaches every process of the command, and the supervisor stops its processes itself (SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
