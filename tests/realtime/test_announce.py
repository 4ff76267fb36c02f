"""Announcing after the commit, and the sweep that delivers what was logged but never announced.

A writer logs its event in its own transaction and its process's `Announcer` sends the NOTIFY once
that has committed (`rapidly.realtime.announce` says why). "A writer that died between its commit
and its announcement" is staged here exactly as the database sees it: a committed `contact_event`
row that no NOTIFY ever followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from rapidly import db
from rapidly.realtime import Announcer, ContactEvent, EventKind, announcer, publish
from tests.contacts.test_contacts_api import save, start
from tests.realtime.support import nothing_within, take, until

_LOG = """
INSERT INTO contact_event (tenant_id, contact_id, kind, created_at)
SELECT $1, gen_random_uuid(), 'FIELD_SAVED', clock_timestamp() FROM generate_series(1, $2)
RETURNING id, tenant_id, contact_id, kind, created_at
"""


async def log_without_announcing(owner: asyncpg.Connection, tenant: uuid.UUID, count: int = 1) -> list[ContactEvent]:
    """What a writer that died after its commit leaves behind: logged events nobody announced."""
    return [ContactEvent.from_row(row) for row in await owner.fetch(_LOG, tenant, count)]


async def test_an_event_published_in_a_transaction_reaches_subscribers_only_after_the_commit(start_hub):
    # given
    hub = await start_hub()
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        # when
        async with db.transaction() as transaction:
            event = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED, connection=transaction)
            before_commit = await nothing_within(events, 0.3)

        # then
        assert before_commit
        assert await take(events, 1) == [event]


async def test_publish_in_a_transaction_that_cannot_announce_after_its_commit_is_refused(start_hub, owner):
    # given
    tenant = uuid.uuid4()

    # when
    with pytest.raises(RuntimeError, match=r"db\.transaction"):
        async with in_transaction() as transaction:
            await publish(tenant, uuid.uuid4(), EventKind.CREATED, connection=transaction)

    # then
    assert await owner.fetchval("SELECT count(*) FROM contact_event WHERE tenant_id = $1", tenant) == 0


async def test_events_whose_writer_died_before_announcing_them_are_delivered_by_the_sweep(start_hub, owner):
    # given: a hub that sweeps every 0.2 s
    hub = await start_hub(heartbeat_seconds=0.2)
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        # when: a writer dies before announcing one event, another announces its own, and a third
        # dies before announcing the newest (nothing newer will show that it is missing)
        [lost_between] = await log_without_announcing(owner, tenant)
        announced = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED)
        [lost_last] = await log_without_announcing(owner, tenant)
        received = await take(events, 3, timeout=3.0)

        # then: each once
        assert sorted(received, key=lambda event: event.seq) == [lost_between, announced, lost_last]
        assert await nothing_within(events, 0.5)
    assert hub.swept >= 2


async def test_a_rolled_back_sequence_number_is_looked_for_at_two_sweeps_then_given_up(start_hub):
    # given
    hub = await start_hub(heartbeat_seconds=0.3)
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        with pytest.raises(RuntimeError):
            async with db.transaction() as transaction:
                rolled_back = await publish(tenant, uuid.uuid4(), EventKind.CREATED, connection=transaction)
                raise RuntimeError("the caller's write failed")

        # when: a later number arrives, so the rolled-back one looks skipped
        committed = await publish(tenant, uuid.uuid4(), EventKind.CREATED)
        assert await take(events, 1) == [committed]
        looked_for = hub.skipped

        # then
        await until(lambda: rolled_back.seq not in hub.skipped, timeout=3.0)
        assert await nothing_within(events, 0.3)
    assert rolled_back.seq in looked_for
    assert hub.swept == 0


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


async def test_an_announcer_that_cannot_reach_the_database_tries_again_and_the_sweep_delivers_what_it_dropped(
    start_hub, owner
):
    # given: the first two attempts find the database unreachable, and at most 3 events may wait
    hub = await start_hub(heartbeat_seconds=0.2)
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
        received = await take(events, len(logged), timeout=3.0)

        # then: every event, each once
        assert sorted(received, key=lambda event: event.seq) == logged
        assert await nothing_within(events, 0.5)
    assert dropped_at_once == 2
    assert (sender.failures, sender.announced) == (2, 3)
    assert hub.swept >= 2


async def test_drain_gives_up_after_its_timeout_and_leaves_no_task(owner):
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
    await asyncio.sleep(0)

    # then
    assert sent is False
    assert {task for task in asyncio.all_tasks() if not task.done()} - tasks_before == set()


async def test_saves_are_announced_after_their_commit_in_fewer_statements_than_events(gql, server, world):
    # given
    tenant = await world.tenant("kattohuolto")
    tokens = [await start(gql) for _ in range(10)]
    before = (announcer.announced, announcer.batches)
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
    assert announcer.announced - before[0] == 60
    assert announcer.batches - before[1] < 60
