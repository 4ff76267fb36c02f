"""Announcing after the commit, and the sweep that delivers what was logged but never announced.

A writer logs its event in its own transaction and its process's `Announcer` sends the NOTIFY once
that has committed (`rapidly.realtime.announce` says why). "A writer that died between its commit
and its announcement" is staged here exactly as the database sees it: a committed `contact_event`
row that no NOTIFY ever followed. The hubs here sweep when told (`hub.sweep()`), not by the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from rapidly import db, tenancy
from rapidly.realtime import CHANNEL, Announcer, ContactEvent, EventKind, announcer, publish
from tests.contacts.test_contacts_api import save, start
from tests.realtime.support import nothing_within, take

#: Heartbeats (and so sweeps) that never come during a test.
NO_HEARTBEAT = 600.0

_LOG = """
INSERT INTO contact_event (tenant_id, contact_id, kind, created_at)
SELECT $1, gen_random_uuid(), 'FIELD_SAVED', clock_timestamp() FROM generate_series(1, $2)
RETURNING id, tenant_id, contact_id, kind, created_at
"""


async def count_notifications(owner: asyncpg.Connection, tenant: uuid.UUID) -> Callable[[], int]:
    """LISTEN on the owner's connection; returns how many notifications of `tenant` have arrived."""
    seen: list[str] = []

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        if json.loads(payload)["t"] == str(tenant):
            seen.append(payload)

    await owner.add_listener(CHANNEL, on_notify)
    return lambda: len(seen)


async def log_without_announcing(owner: asyncpg.Connection, tenant: uuid.UUID, count: int = 1) -> list[ContactEvent]:
    """What a writer that died after its commit leaves behind: logged events nobody announced."""
    return [ContactEvent.from_row(row) for row in await owner.fetch(_LOG, tenant, count)]


async def test_an_event_is_announced_by_the_process_announcer_once_its_transaction_has_committed(start_hub, owner):
    # given: our own LISTEN, to count what travels
    hub = await start_hub()
    tenant = uuid.uuid4()
    notifications = await count_notifications(owner, tenant)
    await announcer.drain()
    before = announcer.announced
    async with hub.subscribe(tenant) as events:
        # when
        with tenancy.as_tenant(tenant):
            async with db.transaction() as transaction:
                event = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED, connection=transaction)
                handed_over_before_commit = announcer.pending
                before_commit = await nothing_within(events, 0.3)
        received = await take(events, 1)
        await announcer.drain()
        await asyncio.sleep(0.2)

    # then: one NOTIFY, sent by the announcer in a statement of its own after the commit
    assert before_commit and handed_over_before_commit == 0
    assert received == [event]
    assert announcer.announced - before == 1
    assert notifications() == 1


async def test_publish_in_an_orm_transaction_that_cannot_wait_for_its_commit_is_refused(start_hub, owner):
    # given
    tenant = uuid.uuid4()

    # when
    with pytest.raises(RuntimeError, match=r"db\.transaction"), tenancy.as_tenant(tenant):
        async with in_transaction() as transaction:
            await publish(tenant, uuid.uuid4(), EventKind.CREATED, connection=transaction)

    # then: the refusal rolled the event back
    assert await owner.fetchval("SELECT count(*) FROM contact_event WHERE tenant_id = $1", tenant) == 0


async def test_events_whose_writer_died_before_announcing_them_are_delivered_by_the_sweep(start_hub, owner):
    # given
    hub = await start_hub(heartbeat_seconds=NO_HEARTBEAT, sweep_grace_seconds=1.5)
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        # when: a writer dies before announcing one event, another announces its own, and a third
        # dies before announcing the newest (nothing newer will show that it is missing)
        [lost_between] = await log_without_announcing(owner, tenant)
        announced = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED)
        [lost_last] = await log_without_announcing(owner, tenant)
        assert await take(events, 1) == [announced]
        within_grace = await hub.sweep()  # announcements may still be on their way: left alone
        await asyncio.sleep(1.5)
        after_grace = await hub.sweep()
        received = await take(events, 2)
        again = await hub.sweep()

        # then: each once
        assert (within_grace, after_grace, again) == (0, 2, 0)
        assert received == [lost_between, lost_last]
        assert await nothing_within(events, 0.2)
    assert hub.swept == 2


async def test_a_rolled_back_sequence_number_is_looked_for_until_it_is_old_then_given_up(start_hub):
    # given
    hub = await start_hub(heartbeat_seconds=NO_HEARTBEAT, sweep_grace_seconds=0.0, give_up_seconds=2.0)
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        with pytest.raises(RuntimeError, match="the caller's write failed"), tenancy.as_tenant(tenant):
            async with db.transaction() as transaction:
                rolled_back = await publish(tenant, uuid.uuid4(), EventKind.CREATED, connection=transaction)
                raise RuntimeError("the caller's write failed")

        # when: a later number arrives, so the rolled-back one looks skipped
        committed = await publish(tenant, uuid.uuid4(), EventKind.CREATED)
        assert await take(events, 1) == [committed]
        skipped_at_first = hub.skipped
        await hub.sweep()
        skipped_while_young = hub.skipped
        await asyncio.sleep(2.0)
        await hub.sweep()

        # then
        assert rolled_back.seq in skipped_at_first
        assert rolled_back.seq in skipped_while_young
        assert rolled_back.seq not in hub.skipped
        assert await nothing_within(events, 0.2)
    assert hub.swept == 0 and hub.given_up >= 1


async def test_a_burst_is_announced_as_one_statement_in_the_order_handed_over(start_hub, owner):
    # given: 500 committed events, not announced yet
    hub = await start_hub()
    tenant = uuid.uuid4()
    logged = await log_without_announcing(owner, tenant, 500)
    sender = Announcer()
    async with hub.subscribe(tenant) as events:
        # when
        sender.announce(event.payload() for event in logged)
        sent = await sender.drain()
        received = await take(events, len(logged))

    # then
    assert sent and sender.pending == 0
    assert (sender.announced, sender.batches, sender.failures) == (500, 1, 0)
    assert received == logged


async def test_what_is_handed_over_while_a_batch_is_on_its_way_goes_out_as_the_next_batch(start_hub, owner):
    # given: a first batch held up on its way to the database
    hub = await start_hub()
    tenant = uuid.uuid4()
    first, *rest = await log_without_announcing(owner, tenant, 21)
    opened, go_on = asyncio.Event(), asyncio.Event()
    calls = 0

    @contextlib.asynccontextmanager
    async def held_first() -> AsyncIterator[asyncpg.Connection]:
        nonlocal calls
        calls += 1
        if calls == 1:
            opened.set()
            await go_on.wait()
        async with db.connection() as conn:
            yield conn

    sender = Announcer(held_first)
    async with hub.subscribe(tenant) as events:
        sender.announce([first.payload()])
        await asyncio.wait_for(opened.wait(), 2.0)

        # when: 20 events commit one by one meanwhile
        for event in rest:
            sender.announce([event.payload()])
        go_on.set()
        assert await sender.drain()
        received = await take(events, 21)

    # then
    assert (sender.batches, sender.announced) == (2, 21)
    assert received == [first, *rest]


async def test_an_announcer_that_cannot_reach_the_database_tries_again_and_the_sweep_delivers_what_it_dropped(
    start_hub, owner
):
    # given: the first two attempts find the database unreachable, and at most 3 events may wait
    hub = await start_hub(heartbeat_seconds=NO_HEARTBEAT, sweep_grace_seconds=0.0)
    tenant = uuid.uuid4()
    unreachable = 2

    def connection() -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        nonlocal unreachable
        if unreachable:
            unreachable -= 1
            raise ConnectionRefusedError("the database is down")
        return db.connection()

    sender = Announcer(connection, max_pending=3, retry_min_seconds=0.05)
    logged = await log_without_announcing(owner, tenant, 5)
    async with hub.subscribe(tenant) as events:
        # when
        sender.announce(event.payload() for event in logged)
        dropped_at_once = sender.dropped
        assert await sender.drain()
        announced = await take(events, 3)
        swept = await hub.sweep()
        received = announced + await take(events, 2)

        # then: every event, each once
        assert announced == logged[2:]
        assert sorted(received, key=lambda event: event.seq) == logged
        assert await nothing_within(events, 0.2)
    assert dropped_at_once == 2 and swept == 2
    assert (sender.failures, sender.announced) == (2, 3)


async def test_a_batch_the_database_refuses_is_dropped_without_holding_up_the_next(start_hub, owner):
    # given: a payload over PostgreSQL's 8000-byte NOTIFY limit (the real ones are under 200)
    hub = await start_hub()
    tenant = uuid.uuid4()
    [event] = await log_without_announcing(owner, tenant)
    sender = Announcer()
    async with hub.subscribe(tenant) as events:
        # when
        sender.announce(['{"seq":0,"padding":"' + "x" * 9000 + '"}'])
        await sender.drain()
        sender.announce([event.payload()])
        await sender.drain()

        # then
        assert await take(events, 1) == [event]
    assert (sender.dropped, sender.failures, sender.announced) == (1, 0, 1)


async def test_announcing_from_inside_a_transaction_is_refused(server):
    # given: an idle announcer, whose sending task would copy the caller's context
    sender = Announcer()

    # when / then
    with pytest.raises(RuntimeError, match="on_commit"):
        async with db.transaction():
            sender.announce(['{"seq":1}'])


async def test_drain_gives_up_after_its_timeout_and_leaves_no_task():
    # given: a database that never answers
    @contextlib.asynccontextmanager
    async def hanging() -> AsyncIterator[asyncpg.Connection]:
        await asyncio.Event().wait()
        yield  # type: ignore[misc]

    sender = Announcer(hanging)
    tasks_before = asyncio.all_tasks()
    sender.announce(['{"seq":1}'])

    # when
    sent = await sender.drain(timeout=0.2)

    # then
    assert sent is False
    assert {task for task in asyncio.all_tasks() if not task.done()} - tasks_before == set()


async def test_saves_are_announced_once_each_by_the_process_announcer(gql, server, world, owner):
    # given
    tenant = await world.tenant("kattohuolto")
    tokens = [await start(gql) for _ in range(10)]
    notifications = await count_notifications(owner, tenant.id)
    await announcer.drain()
    before = announcer.announced
    async with server.app.state.hub.subscribe(tenant.id) as events:
        # when: 10 contacts save 5 answers each, all at once
        results = await asyncio.gather(
            *(save(gql, token, "name", f"Asiakas {n}-{i}") for n, token in enumerate(tokens) for i in range(5))
        )
        received = await take(events, 10 + 50, timeout=5.0)
        quiet = await nothing_within(events, 0.3)

    # then: a CREATED for each contact and a FIELD_SAVED for each save, each once
    assert all(result["__typename"] == "FieldSaved" for result in results)
    assert [event.kind for event in received].count(EventKind.CREATED) == 10
    assert len({event.seq for event in received}) == 60 and quiet
    assert announcer.announced - before == 60
    assert notifications() == 60
