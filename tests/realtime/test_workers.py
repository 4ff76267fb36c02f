"""`rapidly serve --workers N`: processes sharing one port, each with its own realtime listener.

Which process serves a connection is the kernel's choice; the tests find it out from the process
table (the server-side socket whose peer is the client's port), so they can show that a save made
through one process reaches the subscribers connected to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import websockets

from tests.conftest import free_port, run_cli, subscribe
from tests.contacts.test_contacts_api import staff_token, start

CONTACT_EVENTS = "subscription { contactEvents { kind contactId } }"
SAVE = 'mutation { saveField(key: "name", value: "Maija") { __typename } }'


@dataclass
class Workers:
    url: str
    port: int
    process: subprocess.Popen

    def serving(self, client_port: int) -> int:
        """The pid of the worker process holding the connection from this client port."""
        for child in psutil.Process(self.process.pid).children():
            for conn in child.net_connections("tcp"):
                if conn.laddr.port == self.port and conn.raddr and conn.raddr.port == client_port:
                    return child.pid
        raise AssertionError(f"no worker holds the connection from port {client_port}")


@pytest.fixture
async def two_workers(env, tmp_path: Path) -> AsyncIterator[Workers]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with asyncio.timeout(60):
            while log.read_text().count("rapidly 0.1.0 ready") < 2:
                assert process.poll() is None, log.read_text()
                await asyncio.sleep(0.1)
        yield Workers(f"http://127.0.0.1:{port}", port, process)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


async def save_through(workers: Workers, token: str) -> int:
    """Save over graphql-transport-ws on a new connection; returns the pid of the worker that saved."""
    async with websockets.connect(
        f"{workers.url}/graphql".replace("http", "ws"), subprotocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        pid = workers.serving(ws.local_address[1])
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SAVE}}))
        result = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert result["payload"]["data"]["saveField"]["__typename"] == "FieldSaved", result
    return pid


async def test_a_save_through_one_worker_reaches_the_subscribers_of_every_worker(gql, world, two_workers):
    # given: staff subscribed on both workers (new connections until each worker holds some)
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    staff = await staff_token(gql)
    async with contextlib.AsyncExitStack() as stack:
        subscribers: dict[int, list] = {}
        for _ in range(40):
            events = await stack.enter_async_context(subscribe(two_workers.url + "/graphql", CONTACT_EVENTS, staff))
            subscribers.setdefault(two_workers.serving(events.ws.local_address[1]), []).append(events)
            if len(subscribers) == 2 and min(map(len, subscribers.values())) >= 2:
                break
        assert len(subscribers) == 2, "the kernel gave every connection to one worker"

        # when: customers save, until a save has gone through each worker
        saved_by: dict[int, str] = {}
        for _ in range(40):
            token = await start(gql)
            contact = (await gql("query { me { contactId } }", token=token))["me"]["contactId"]
            saved_by.setdefault(await save_through(two_workers, token), contact)
            if len(saved_by) == 2:
                break
        assert len(saved_by) == 2, "every save went through one worker"

        # then: every subscriber, on either worker, hears both saves exactly once
        wanted = {(contact, "FIELD_SAVED") for contact in saved_by.values()}
        for worker, subs in subscribers.items():
            for events in subs:
                heard = set()
                with contextlib.suppress(TimeoutError):
                    while True:
                        event = (await events.next(timeout=1))["data"]["contactEvents"]
                        key = (event["contactId"], event["kind"])
                        assert key not in heard, f"{key} twice on worker {worker}"
                        heard.add(key)
                assert wanted <= heard, f"a subscriber of worker {worker} heard {heard}"


@pytest.mark.parametrize("workers", ["0", "-3", "65", "many"])
def test_an_absurd_number_of_workers_is_refused_with_a_clear_error(env, workers):
    result = run_cli(env, "serve", "--workers", workers, "--port", str(free_port()))
    assert result.returncode == 2
    assert "--workers" in result.stderr


def test_more_workers_than_the_database_has_connections_for_are_refused(env):
    result = run_cli(
        {**env, "RAPIDLY_DATABASE_POOL_SIZE": "200"}, "serve", "--workers", "4", "--port", str(free_port())
    )
    assert result.returncode == 2
    assert "4 processes with a pool of 200 connections each need up to 812 connections" in result.stderr
    assert "max_connections" in result.stderr
