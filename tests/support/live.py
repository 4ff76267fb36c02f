"""Live load on a served Rapidly: customers typing over HTTP, watchers on graphql-transport-ws."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

START = "mutation S($t: String!) { startContact(tenant: $t) { __typename ... on ContactSession { token } } }"
SAVE = "mutation Save($key: String!, $value: JSON) { saveField(key: $key, value: $value) { __typename } }"
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename ... on LoginSuccess { token } }
}
"""
LOGOUT = "mutation { logout }"
DELETE_MY_DATA = "mutation { deleteMyData { __typename } }"
CONTACT_EVENTS = "subscription { contactEvents { kind contactId } }"
MY_EVENTS = "subscription { myEvents { kind contactId } }"


async def start_contacts(http: httpx.AsyncClient, tenant: str, count: int) -> list[str]:
    """`count` new contacts of `tenant`; their tokens."""
    tokens = []
    for _ in range(count):
        response = await http.post("/graphql", json={"query": START, "variables": {"t": tenant}})
        session = response.json()["data"]["startContact"]
        assert session["__typename"] == "ContactSession", session
        tokens.append(session["token"])
    return tokens


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> str:
    response = await http.post("/graphql", json={"query": LOGIN, "variables": {"email": email, "password": password}})
    result = response.json()["data"]["login"]
    assert result["__typename"] == "LoginSuccess", result
    return result["token"]


class Typists:
    """Customers typing: each saves its name every `every` seconds, one save in flight each (as the
    form sends them), spread evenly over the interval. `saves` counts those that were saved."""

    def __init__(self, url: str, tokens: list[str], every: float = 0.3) -> None:
        self.url, self.tokens, self.every = url, tokens, every
        self.saves = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._http = httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=len(tokens)))

    async def __aenter__(self) -> Typists:
        self._tasks = [asyncio.create_task(self._type(i, token)) for i, token in enumerate(self.tokens)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._http.aclose()

    async def _type(self, index: int, token: str) -> None:
        headers = {"authorization": f"Bearer {token}"}
        next_at = time.monotonic() + self.every * index / len(self.tokens)
        step = 0
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += self.every
            step += 1
            body = {"query": SAVE, "variables": {"key": "name", "value": f"Asiakas {index} {'x' * (step % 40)}"}}
            try:
                response = await self._http.post("/graphql", json=body, headers=headers)
                saved = response.json()["data"]["saveField"]["__typename"] == "FieldSaved"
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
                self.failures.append(type(exc).__name__)
                continue
            if saved:
                self.saves += 1
            else:
                self.failures.append(response.text[:200])


class Watcher:
    """One graphql-transport-ws connection with one subscription, counting the events it is sent.

    `reads=False`: a client that stops reading once subscribed (its receive window shrinks to nothing,
    as a stalled phone's does), to see what the server does about it."""

    def __init__(self, url: str, token: str, query: str = CONTACT_EVENTS, *, reads: bool = True) -> None:
        self.url = url.replace("http://", "ws://") + "/graphql"
        self.token, self.query, self.reads = token, query, reads
        self.events = 0
        #: Events by subscription ID.
        self.received: dict[str, int] = {}
        self.errors: list[object] = []
        self.completed = False
        self._pong = asyncio.Event()
        self.ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None

    async def open(self, subscription_id: str = "1") -> Watcher:
        sock = None
        if not self.reads:  # a small receive buffer fills at once; then the window is closed
            parts = urlsplit(self.url)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        self.ws = await websockets.connect(
            self.url, subprotocols=["graphql-transport-ws"], sock=sock, max_queue=None if self.reads else 1
        )
        await self.ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}})
        )
        ack = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
        assert ack["type"] == "connection_ack", ack
        await self.subscribe(subscription_id)
        if self.reads:
            self._task = asyncio.create_task(self._read())
        return self

    async def subscribe(self, subscription_id: str) -> None:
        assert self.ws is not None
        message = {"id": subscription_id, "type": "subscribe", "payload": {"query": self.query}}
        await self.ws.send(json.dumps(message))

    async def ping(self) -> None:
        """A graphql-transport-ws ping, answered once the server has handled every earlier message
        (and, having waited for it, run what they started)."""
        assert self.ws is not None
        self._pong.clear()
        await self.ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(self._pong.wait(), 10)

    async def complete(self, subscription_id: str) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({"id": subscription_id, "type": "complete"}))

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code if self.ws is not None else None

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] == "next":
                    if message["payload"].get("errors"):
                        self.errors.append(message["payload"]["errors"])
                    else:
                        self.events += 1
                        self.received[message["id"]] = self.received.get(message["id"], 0) + 1
                elif message["type"] == "error":
                    self.errors.append(message["payload"])
                elif message["type"] == "complete":
                    self.completed = True
                elif message["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif message["type"] == "pong":
                    self._pong.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.ws is not None:
            await self.ws.close()

    def drop(self) -> None:
        """Gone without a word: the TCP connection is cut, no close frame (a phone losing its network)."""
        if self._task is not None:
            self._task.cancel()
        if self.ws is not None:
            self.ws.transport.abort()


async def until(condition, timeout: float, every: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    """Wait for `condition()` (sync) to hold; False if it did not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True
