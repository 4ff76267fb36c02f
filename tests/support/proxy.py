"""A TCP proxy in front of PostgreSQL that can hang its connections, as a dead network path does.

Killing a backend closes the socket, which the client notices at once; a half-open connection (a
NAT or a firewall dropping the path) stays open and silent, and only a heartbeat notices it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from rapidly import db


class FreezableProxy:
    def __init__(self, upstream: db.Credentials) -> None:
        self.upstream = upstream
        #: New connections are accepted and closed at once while this is set (the database "is down").
        self.refuse = False
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []

    async def start(self) -> db.Credentials:
        """Listen on loopback; returns `upstream`'s credentials pointed at the proxy."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return replace(self.upstream, host="127.0.0.1", port=port)

    @property
    def accepted(self) -> int:
        """Connections accepted and forwarded so far."""
        return len(self._links)

    @property
    def open(self) -> int:
        """Forwarded connections that neither side has closed yet."""
        return sum(1 for link in self._links if not all(task.done() for task in link.tasks))

    def freeze(self) -> None:
        """Stop forwarding on every open connection, in both directions, without closing any."""
        for link in self._links:
            link.frozen.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            link.close()
        tasks = [task for link in self._links for task in link.tasks]
        if tasks:
            await asyncio.wait(tasks)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        host, port = self.upstream.host or "localhost", self.upstream.port
        try:
            if host.startswith("/"):
                up_reader, up_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        link.tasks = [
            asyncio.create_task(link.pump(reader, up_writer)),
            asyncio.create_task(link.pump(up_reader, writer)),
        ]
        self._links.append(link)


class _Link:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        self.frozen = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if self.frozen.is_set():
                    await asyncio.Event().wait()  # hang, as a dead path does
                sink.write(data)
                await sink.drain()
        self.close()

    def close(self) -> None:
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in self.writers:
            writer.close()
