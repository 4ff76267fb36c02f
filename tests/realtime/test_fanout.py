"""Live events executed once per group of subscribers and written to each (rapidly.schema.fanout)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import websockets

from rapidly import tenancy
from rapidly.schema.fanout import Outbox
from rapidly.schema.permissions import OVERFLOW, SESSION_ENDED
from rapidly.staff.models import StaffSession
from tests.contacts.test_contacts_api import save, staff_token, start

EVENTS = "subscription Events { contactEvents { kind contactId at } }"
MY_EVENTS = "subscription { myEvents { kind contactId } }"
ME = "query { me { contactId } }"


@pytest.fixture
async def tenants(world):
    roofing = await world.tenant("kattohuolto")
    plumbing = await world.tenant("putkimies")
    anna = await world.staff("kattohuolto", "anna@kattohuolto.example")
    await world.staff("kattohuolto", "ville@kattohuolto.example")
    await world.staff("putkimies", "pekka@putkimies.example")
    return roofing, plumbing, anna


class Socket:
    """One graphql-transport-ws connection, signed in; raw frames kept as they came."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    async def subscribe(self, sub_id: str, query: str) -> None:
        await self.ws.send(json.dumps({"id": sub_id, "type": "subscribe", "payload": {"query": query}}))

    async def complete(self, sub_id: str) -> None:
        await self.ws.send(json.dumps({"id": sub_id, "type": "complete"}))

    async def frame(self, timeout: float = 5) -> str:
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            if json.loads(raw)["type"] != "ping":
                return raw

    async def message(self, timeout: float = 5) -> dict:
        return json.loads(await self.frame(timeout))

    async def frames_within(self, seconds: float) -> list[dict]:
        got = []
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(await self.message(seconds))
        return got


@contextlib.asynccontextmanager
async def connected(server, token: str) -> AsyncIterator[Socket]:
    url = server.graphql_url.replace("http://", "ws://")
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        yield Socket(ws)


async def until_members(fanout, count: int) -> None:
    for _ in range(500):
        if fanout.subscriber_count() >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{fanout.subscriber_count()} live subscriptions, not {count}")


async def contact_id(gql, token: str) -> str:
    return (await gql(ME, token=token))["me"]["contactId"]


async def test_every_console_of_a_tenant_gets_the_same_bytes_from_one_execution_per_event(gql, server, tenants):
    # given: five consoles of two staff members on five sockets, one document
    fanout = server.app.state.fanout
    tokens = [await staff_token(gql) for _ in range(3)] + [await staff_token(gql, "ville@kattohuolto.example")] * 2
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connected(server, token)) for token in tokens]
        for n, socket in enumerate(sockets):
            await socket.subscribe(f"console-{n}", EVENTS)
        await until_members(fanout, 5)

        # when: a customer starts and answers
        customer = await start(gql)
        await save(gql, customer, "name", "Maija")
        frames = [[await s.frame(), await s.frame()] for s in sockets]

    # then: one group, one execution per event, and each frame the same but for its ID
    [group] = [g for g in fanout.groups.values()] or [None]
    assert group is None or group.executions == 2  # the group may have ended as the sockets closed
    expected = json.loads(frames[0][1])["payload"]
    assert expected["data"]["contactEvents"]["kind"] == "FIELD_SAVED"
    assert expected["data"]["contactEvents"]["contactId"] == await contact_id(gql, customer)
    for n, (created, saved) in enumerate(frames):
        assert created.replace(f'"console-{n}"', '"X"') == frames[0][0].replace('"console-0"', '"X"')
        assert saved.replace(f'"console-{n}"', '"X"') == frames[0][1].replace('"console-0"', '"X"')
        assert json.loads(saved)["id"] == f"console-{n}"
    assert "Maija" not in str(frames)


async def test_one_group_runs_each_event_once(gql, server, tenants):
    # given
    fanout = server.app.state.fanout
    staff = await staff_token(gql)
    async with connected(server, staff) as a, connected(server, staff) as b:
        await a.subscribe("1", EVENTS)
        await b.subscribe("1", EVENTS)
        await until_members(fanout, 2)
        [group] = fanout.groups.values()

        # when
        customer = await start(gql)
        for n in range(5):
            await save(gql, customer, "damage_description", f"Vuotaa {n}")
        received = [[(await s.message())["payload"] for _ in range(6)] for s in (a, b)]

        # then: six events (the contact shown at its first save, and five saves), six executions for two
        assert group.executions == 6 and len(group.members) == 2
        assert received[0] == received[1]
        assert [p["data"]["contactEvents"]["kind"] for p in received[0]] == ["CREATED"] + ["FIELD_SAVED"] * 5


async def test_no_event_of_one_tenant_or_contact_reaches_another_group_with_an_identical_document(gql, server, tenants):
    # given: staff of two tenants and two customers of one, each subscribed with the same document
    fanout = server.app.state.fanout
    roofing_staff = await staff_token(gql)
    plumbing_staff = await staff_token(gql, "pekka@putkimies.example")
    first, second = await start(gql), await start(gql)
    plumbing_customer = await start(gql, "putkimies")
    ids = {
        name: await contact_id(gql, token)
        for name, token in (("first", first), ("second", second), ("plumbing", plumbing_customer))
    }
    async with (
        connected(server, roofing_staff) as roofing,
        connected(server, plumbing_staff) as plumbing,
        connected(server, first) as first_own,
        connected(server, second) as second_own,
    ):
        await roofing.subscribe("1", EVENTS)
        await plumbing.subscribe("1", EVENTS)
        await first_own.subscribe("1", MY_EVENTS)
        await second_own.subscribe("1", MY_EVENTS)
        await until_members(fanout, 4)
        groups = len(fanout.groups)

        # when: each customer saves
        for token in (first, second, plumbing_customer):
            await save(gql, token, "name", "Someone")
        seen = {
            name: await s.frames_within(1.0)
            for name, s in (("roofing", roofing), ("plumbing", plumbing), ("first", first_own), ("second", second_own))
        }

    # then: four groups, and each saw its own scope's events only
    assert groups == 4

    def contacts(name: str, field: str) -> set[str]:
        events = [m["payload"]["data"][field] for m in seen[name]]
        assert [e["kind"] for e in events] == ["CREATED", "FIELD_SAVED"] * (len(events) // 2), events
        return {e["contactId"] for e in events}

    assert contacts("roofing", "contactEvents") == {ids["first"], ids["second"]}
    assert contacts("plumbing", "contactEvents") == {ids["plumbing"]}
    assert contacts("first", "myEvents") == {ids["first"]}
    assert contacts("second", "myEvents") == {ids["second"]}


async def test_aliases_and_fragments_give_the_same_values_under_their_own_keys(gql, server, tenants):
    # given: the same fields asked three ways
    fanout = server.app.state.fanout
    staff = await staff_token(gql)
    documents = {
        "plain": "subscription { contactEvents { kind contactId } }",
        "aliased": "subscription { e: contactEvents { k: kind c: contactId } }",
        "fragment": "subscription { contactEvents { ...F __typename } } fragment F on ContactEvent { kind contactId }",
    }
    async with connected(server, staff) as socket:
        for name, document in documents.items():
            await socket.subscribe(name, document)
        await until_members(fanout, 3)
        groups = len(fanout.groups)

        # when: a customer's first answer shows the contact
        customer = await start(gql)
        await save(gql, customer, "name", "Maija")
        got: dict[str, dict] = {}
        for message in [await socket.message() for _ in range(6)]:  # CREATED and FIELD_SAVED for each
            got.setdefault(message["id"], message["payload"]["data"])

    # then: a group each (their texts differ), the same event in each one's shape
    assert groups == 3
    contact = await contact_id(gql, customer)
    assert got["plain"] == {"contactEvents": {"kind": "CREATED", "contactId": contact}}
    assert got["aliased"] == {"e": {"k": "CREATED", "c": contact}}
    assert got["fragment"] == {"contactEvents": {"kind": "CREATED", "contactId": contact, "__typename": "ContactEvent"}}


async def test_a_document_that_reads_the_contact_runs_per_subscriber(gql, server, tenants):
    # given: `contact` is read, and audited, for each viewer: not shared
    fanout = server.app.state.fanout
    staff = await staff_token(gql)
    async with connected(server, staff) as socket:
        await socket.subscribe("1", "subscription { contactEvents { kind contact { displayName } } }")
        await until_members(fanout, 1)

        # when
        customer = await start(gql)
        await save(gql, customer, "name", "Maija")
        created, saved = await socket.message(), await socket.message()
        groups = len(fanout.groups)

    # then
    assert groups == 0
    assert created["payload"]["data"]["contactEvents"]["kind"] == "CREATED"
    assert saved["payload"]["data"]["contactEvents"]["contact"]["displayName"] == "Maija"


async def test_a_session_revoked_mid_stream_ends_at_once_without_another_event(gql, server, tenants):
    # given: two staff members watching in one group
    fanout = server.app.state.fanout
    anna, ville = await staff_token(gql), await staff_token(gql, "ville@kattohuolto.example")
    roofing, _, anna_account = tenants
    async with connected(server, anna) as revoked, connected(server, ville) as kept:
        await revoked.subscribe("1", EVENTS)
        await kept.subscribe("1", EVENTS)
        await until_members(fanout, 2)

        # when: Anna's session is deleted (as a sign-out elsewhere or a password reset does)
        began = time.monotonic()
        with tenancy.as_tenant(roofing.id):
            await StaffSession.filter(staff_id=anna_account.id).delete()
        ended = await revoked.message(2)
        took = time.monotonic() - began
        completed = await revoked.message(2)
        customer = await start(gql)
        await save(gql, customer, "name", "Maija")
        after = await kept.message()
        nothing_more = await revoked.frames_within(0.5)

    # then: pushed, not found at the next event: within a second, with no event before it
    assert ended["payload"] == {"data": None, "errors": [{"message": SESSION_ENDED}]}
    assert took < 1.0, took
    assert completed == {"id": "1", "type": "complete"}
    assert after["payload"]["data"]["contactEvents"]["contactId"] == await contact_id(gql, customer)
    assert nothing_more == []


async def test_a_session_that_expires_while_watching_ends_its_stream(gql, server, tenants):
    # given: a session with two seconds left
    fanout = server.app.state.fanout
    roofing, _, _ = tenants
    staff = await staff_token(gql)
    with tenancy.as_tenant(roofing.id):
        assert await StaffSession.all().update(expires_at=datetime.now(UTC) + timedelta(seconds=2)) == 1
    async with connected(server, staff) as socket:
        await socket.subscribe("1", EVENTS)
        await until_members(fanout, 1)

        # when: it runs out, with nothing else happening
        ended = await socket.message(5)

    # then
    assert ended["payload"]["errors"] == [{"message": SESSION_ENDED}]


async def test_a_subscription_id_in_use_closes_the_socket_and_a_completed_one_may_be_reused(gql, server, tenants):
    # given
    fanout = server.app.state.fanout
    staff = await staff_token(gql)
    async with connected(server, staff) as socket:
        await socket.subscribe("1", EVENTS)
        await until_members(fanout, 1)

        # when: completed, then the ID used again: it works
        await socket.complete("1")
        await socket.subscribe("1", EVENTS)
        await until_members(fanout, 1)
        await save(gql, await start(gql), "name", "Maija")
        reused, _saved = await socket.message(), await socket.message()

        # when: used again while it runs
        await socket.subscribe("1", EVENTS)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.message()

    # then
    assert reused["id"] == "1" and reused["payload"]["data"]["contactEvents"]["kind"] == "CREATED"
    assert closed.value.rcvd.code == 4409


async def test_a_socket_that_lets_its_frames_pile_up_is_cut_off_without_holding_up_the_others():
    # given: one outbox whose socket takes nothing, one that takes everything
    stalled_sends, closed = asyncio.Event(), []
    taken: list[str] = []

    async def never(_text: str) -> None:
        await stalled_sends.wait()

    async def take(text: str) -> None:
        taken.append(text)

    async def close(code: int, reason: str) -> None:
        closed.append((code, reason))

    stalled, reading = Outbox(never, close, limit=10), Outbox(take, close, limit=10)
    stalled.start()
    reading.start()

    # when: 50 frames for each, handed over without waiting
    began = time.perf_counter()
    accepted = [stalled.put(f"frame {n}") for n in range(50)]
    for n in range(50):
        assert reading.put(f"frame {n}")
        await asyncio.sleep(0)  # the reading socket's writer runs as frames come
    handed = time.perf_counter() - began
    await reading.flushed()
    await asyncio.sleep(0.01)

    # then: the stalled one took its limit and was cut off with 1013 (a protocol's code: try again later)
    assert accepted == [True] * 10 + [False] * 40
    assert closed == [(1013, OVERFLOW)]
    assert taken == [f"frame {n}" for n in range(50)]
    assert handed < 0.5
    await stalled.stop()
    await reading.stop()


async def test_a_check_that_passes_loses_nothing_and_keeps_the_order(gql, server, tenants):
    # given: Anna watching on one session, signed in on another too, a customer typing
    fanout = server.app.state.fanout
    watching, other = await staff_token(gql), await staff_token(gql)
    customer = await start(gql)
    async with connected(server, watching) as socket:
        await socket.subscribe("1", EVENTS)
        await until_members(fanout, 1)

        # when: her other session signs out mid-stream (her credentials are checked again, and pass)
        for n in range(10):
            await save(gql, customer, "damage_description", f"Vuotaa {n}")
            if n == 4:
                assert (await gql("mutation { logout }", token=other))["logout"] is True
        events = [(await socket.message())["payload"]["data"]["contactEvents"] for _ in range(11)]
        still = fanout.subscriber_count()

    # then: every event, in order, and still subscribed
    assert [e["kind"] for e in events] == ["CREATED"] + ["FIELD_SAVED"] * 10
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert still == 1


async def test_a_contacts_own_erasure_reaches_its_grouped_stream_last_and_completes_it(gql, server, tenants):
    # given: a customer watching its own events on two sockets (one group)
    fanout = server.app.state.fanout
    customer = await start(gql)
    await save(gql, customer, "name", "Maija")
    own = await contact_id(gql, customer)
    async with connected(server, customer) as phone, connected(server, customer) as laptop:
        await phone.subscribe("1", MY_EVENTS)
        await laptop.subscribe("1", MY_EVENTS)
        await until_members(fanout, 2)

        # when: it erases itself (its token goes, announced before the DELETED event is)
        assert (await gql("mutation { deleteMyData { __typename } }", token=customer))["deleteMyData"]
        got = [[await s.message(), await s.message()] for s in (phone, laptop)]
        left = fanout.subscriber_count()

    # then: each socket gets the DELETED event, then the end
    for deleted, completed in got:
        assert deleted["payload"]["data"]["myEvents"] == {"kind": "DELETED", "contactId": own}
        assert completed == {"id": "1", "type": "complete"}
    assert left == 0


async def test_a_group_whose_last_member_is_cut_off_while_it_delivers_stops_at_once(gql, server, tenants):
    # given: one console, whose socket is then gone as far as its outbox knows (as when cut off)
    fanout, hub = server.app.state.fanout, server.app.state.hub
    async with connected(server, await staff_token(gql)) as socket:
        await socket.subscribe("1", EVENTS)
        await until_members(fanout, 1)
        [group] = fanout.groups.values()
        [member] = group.members
        member.outbox.closed = True

        # when: the next event finds no one to deliver to
        await save(gql, await start(gql), "name", "Maija")
        for _ in range(200):
            if group.task.done():
                break
            await asyncio.sleep(0.01)

        # then: the group is gone, with its hub subscription, and executes nothing more
        assert group.task.done() and fanout.groups == {}
        assert hub.subscriber_count() == 0 and fanout.subscriber_count() == 0


async def test_variables_that_do_not_coerce_are_refused_as_strawberry_refuses_them(gql, server, tenants):
    # given: a shared document whose variable is required, sent without it
    fanout = server.app.state.fanout
    document = "subscription S($v: Boolean!) { contactEvents { kind @include(if: $v) } }"
    async with connected(server, await staff_token(gql)) as socket:
        # when
        await socket.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
        refused = await socket.message()
        groups = len(fanout.groups)

    # then: one error for the operation, no group
    assert refused["type"] == "error" and refused["id"] == "1", refused
    assert "$v" in refused["payload"][0]["message"]
    assert groups == 0
