"""Live updates over graphql-transport-ws: staff see saves as they happen, across server processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from rapidly import db, tenancy
from rapidly.staff.models import StaffSession
from tests.conftest import free_port, subscribe
from tests.contacts.test_contacts_api import save, staff_token, start

CONTACT_EVENTS = """
subscription { contactEvents { __typename kind contactId contact { displayName values { key value } } } }
"""
MY_EVENTS = "subscription { myEvents { __typename kind contactId } }"


@pytest.fixture
async def roofing(world):
    tenant = await world.tenant("kattohuolto")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    return tenant


async def test_staff_see_a_new_contact_and_each_save_as_it_happens(gql, server, roofing):
    # given
    staff = await staff_token(gql)
    token = await start(gql)
    async with subscribe(server.graphql_url, CONTACT_EVENTS, staff, live=server.app.state.fanout) as events:
        # when
        await save(gql, token, "name", "Maija")
        created, saved = await events.next(), await events.next()
        await save(gql, token, "phone", "0401234567")
        saved_again = await events.next()

    # then
    assert created["data"]["contactEvents"]["kind"] == "CREATED"
    assert saved["data"]["contactEvents"]["kind"] == "FIELD_SAVED"
    assert saved["data"]["contactEvents"]["contact"]["displayName"] == "Maija"
    values = {v["key"]: v["value"] for v in saved_again["data"]["contactEvents"]["contact"]["values"]}
    assert values == {"name": "Maija", "phone": "+358401234567"}


async def test_my_events_carry_only_my_own_contact(gql, server, roofing):
    # given
    mine, other = await start(gql), await start(gql)
    async with subscribe(server.graphql_url, MY_EVENTS, mine, live=server.app.state.fanout) as events:
        # when
        await save(gql, other, "name", "Someone else")
        await save(gql, mine, "name", "Me")
        first = await events.next()
        second = await events.next()
        quiet = await events.nothing_within(0.3)

    # then
    assert [first["data"]["myEvents"]["kind"], second["data"]["myEvents"]["kind"]] == ["CREATED", "FIELD_SAVED"]
    assert quiet


async def test_staff_of_another_tenant_see_nothing(gql, server, roofing, world):
    # given
    await world.tenant("bilverkstad", plugin="carrepair_se")
    await world.staff("bilverkstad", "erik@bilverkstad.example")
    erik = await staff_token(gql, "erik@bilverkstad.example")
    token = await start(gql)
    async with subscribe(server.graphql_url, CONTACT_EVENTS, erik, live=server.app.state.fanout) as events:
        # when
        await save(gql, token, "name", "Maija")

        # then
        assert await events.nothing_within(0.5)


@pytest.mark.parametrize("payload", [None, {}, {"authorization": "Bearer rps_forged"}, {"authorization": 42}])
async def test_a_subscription_without_valid_connection_init_is_rejected(server, payload):
    # given
    url = server.graphql_url.replace("http://", "ws://")

    # when
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init"} if payload is None else {"type": "connection_init", "payload": payload}
        await ws.send(json.dumps(init))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    # then
    assert closed.value.rcvd.code == 4403


async def test_a_header_token_does_not_authenticate_a_websocket(gql, server, roofing):
    # given: the contract is connection_init only
    staff = await staff_token(gql)
    url = server.graphql_url.replace("http://", "ws://")

    # when
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers={"Authorization": f"Bearer {staff}"}
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)

    # then
    assert closed.value.rcvd.code == 4403


async def test_a_contact_token_cannot_subscribe_to_staff_events(gql, server, roofing):
    # given
    token = await start(gql)

    # when
    async with subscribe(server.graphql_url, CONTACT_EVENTS, token) as events:
        message = json.loads(await asyncio.wait_for(events.ws.recv(), 5))

    # then
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["message"] == "Staff sign-in required."


@pytest.fixture
async def second_server(env) -> AsyncIterator[str]:
    """Another `rapidly serve` process on the same database."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rapidly", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "second server exited"
            await asyncio.sleep(0.05)
    yield f"{url}/graphql"
    process.terminate()
    process.wait(timeout=10)


async def test_a_save_through_one_process_reaches_a_subscriber_of_another(gql, server, roofing, second_server):
    # given: the subscriber is connected to the second process, the end user to the first
    staff = await staff_token(gql)
    token = await start(gql)
    async with subscribe(second_server, CONTACT_EVENTS, staff) as events:
        # when
        await save(gql, token, "name", "Maija")
        created, saved = await events.next(), await events.next()

    # then
    assert [created["data"]["contactEvents"]["kind"], saved["data"]["contactEvents"]["kind"]] == [
        "CREATED",
        "FIELD_SAVED",
    ]
    assert saved["data"]["contactEvents"]["contact"]["displayName"] == "Maija"


async def test_events_still_arrive_after_the_listener_connection_is_killed(gql, server, roofing, settings):
    hub = server.app.state.hub
    resynced_before = hub.resynced
    # given
    staff = await staff_token(gql)
    token = await start(gql)
    await save(gql, token, "name", "Maija")
    owner = await db.Credentials.from_url(settings.database_url).connect()
    try:
        async with subscribe(server.graphql_url, CONTACT_EVENTS, staff, live=server.app.state.fanout) as events:
            # when: the listener's connection dies, and saves happen while it is down
            killed = await owner.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'rapidly-listener' AND datname = current_database()"
            )
            await save(gql, token, "phone", "0401234567")
            await save(gql, token, "email", "maija@example.fi")
            received = [(await events.next(timeout=15))["data"]["contactEvents"]["kind"] for _ in range(2)]
            await save(gql, token, "street_address", "Katu 1")
            after = await events.next(timeout=5)
    finally:
        await owner.close()

    # then
    assert killed >= 1
    assert received == ["FIELD_SAVED", "FIELD_SAVED"]
    assert hub.reconnects >= 1 and hub.resynced >= resynced_before
    assert after["data"]["contactEvents"]["kind"] == "FIELD_SAVED"


async def test_a_staff_token_cannot_subscribe_to_my_events(gql, server, roofing):
    # given
    staff = await staff_token(gql)

    # when
    async with subscribe(server.graphql_url, MY_EVENTS, staff) as events:
        message = json.loads(await asyncio.wait_for(events.ws.recv(), 5))

    # then
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["message"] == "Contact token required."


async def test_a_subscription_ends_when_the_staff_session_does(gql, server, roofing):
    # given
    staff = await staff_token(gql)
    token = await start(gql)
    async with subscribe(server.graphql_url, CONTACT_EVENTS, staff, live=server.app.state.fanout) as events:
        await save(gql, token, "name", "Maija")
        await events.next()
        await events.next()

        # when: the session is revoked (a password reset signs out every session)
        with tenancy.as_tenant(roofing.id):
            await StaffSession.all().delete()
        await save(gql, token, "phone", "0401234567")
        message = json.loads(await asyncio.wait_for(events.ws.recv(), 5))

    # then: the next event is not delivered; the subscription ends with an error instead
    assert message["type"] in ("error", "next")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["message"] == "The session has ended; sign in again."
    assert "Maija" not in str(message) and "+358" not in str(message)
