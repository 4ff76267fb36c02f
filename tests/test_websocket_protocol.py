"""graphql-transport-ws on a real WebSocket: every malformed message closes the socket with the
protocol's code, never without one and never with a traceback in the log (issue 18)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets

from rapidly.schema.ws import ws_message_problem
from tests.contacts.test_contacts_api import start

#: Text frames that are not a well-formed message, sent first thing (before `connection_init`).
MALFORMED = {
    "not JSON": "{not json",
    "a list": "[1, 2]",
    "null": "null",
    "a string": '"abc"',
    "a number": "5",
    "no type": "{}",
    "type not a string": '{"type": 5}',
    "unknown type": '{"type": "nope"}',
    "init payload not an object": '{"type": "connection_init", "payload": "x"}',
    "ping payload not an object": '{"type": "ping", "payload": [1]}',
    "subscribe without id": '{"type": "subscribe", "payload": {"query": "{ __typename }"}}',
    "subscribe id a list": '{"type": "subscribe", "id": [1], "payload": {"query": "{ __typename }"}}',
    "subscribe payload a string": '{"type": "subscribe", "id": "1", "payload": "x"}',
    "subscribe query a number": '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
    "subscribe variables a list": '{"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "variables": [1]}}',
    "subscribe operationName an object": (
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "operationName": {}}}'
    ),
    "complete id null": '{"type": "complete", "id": null}',
}


async def closed_with(ws) -> int | None:  # type: ignore[no-untyped-def]
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code if closed.value.rcvd else None


def ws_url(server) -> str:  # type: ignore[no-untyped-def]
    return server.graphql_url.replace("http://", "ws://")


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_message_closes_with_4400_and_logs_no_traceback(server, frame, caplog):
    caplog.set_level(logging.DEBUG)
    async with websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        # when
        await ws.send(frame)

        # then
        assert await closed_with(ws) == 4400
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_binary_frame_closes_with_4400(server):
    async with websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(b"\x00\xff")
        assert await closed_with(ws) == 4400


async def test_the_protocols_other_codes_a_second_init_a_duplicate_id_and_subscribing_before_init(server, gql, world):
    await world.tenant()
    token = await start(gql)
    init = json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    subscribe = json.dumps({"type": "subscribe", "id": "1", "payload": {"query": "subscription { myEvents { kind } }"}})

    # a subscription before connection_init
    async with websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(subscribe)
        assert await closed_with(ws) == 4401
    # a second connection_init
    async with websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(init)
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await ws.send(init)
        assert await closed_with(ws) == 4429
    # a subscription ID already in use
    async with websockets.connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(init)
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await ws.send(subscribe)
        await ws.send(subscribe)
        assert await closed_with(ws) == 4409


def test_well_formed_messages_pass_the_check():
    for message in (
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {"authorization": "Bearer x"}},
        {"type": "ping"},
        {"type": "pong", "payload": None},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ a }"}},
        {"type": "subscribe", "id": "a", "payload": {"query": "{ a }", "variables": {"x": 1}, "operationName": "A"}},
        {"type": "complete", "id": "1"},
    ):
        assert ws_message_problem(message) is None, message
