"""The event hub on a real PostgreSQL: fan-out across processes, isolation, recovery, privacy.

Each `EventHub` here stands for one server process's listener; `publish()` goes through the ORM
connection the `server` fixture opened, as a request in some process would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from rapidly import db, tenancy
from rapidly.realtime import (
    CHANNEL,
    ContactEvent,
    EventHub,
    EventKind,
    SubscriptionOverflow,
    prune,
    publish,
)
from tests.realtime.support import kill_listener, nothing_within, take, until
from tests.support.proxy import FreezableProxy


async def test_an_event_published_in_one_process_reaches_subscribers_of_every_process(start_hub):
    # given: two processes' listeners
    here, there = await start_hub(), await start_hub()
    tenant, contact = uuid.uuid4(), uuid.uuid4()
    async with here.subscribe(tenant) as local, there.subscribe(tenant) as remote:
        # when
        published = await publish(tenant, contact, EventKind.FIELD_SAVED)
        [received_there] = await take(remote, 1, timeout=1.0)
        [received_here] = await take(local, 1, timeout=1.0)

    # then
    assert received_there == received_here == published
    assert published.kind is EventKind.FIELD_SAVED
    assert (published.tenant_id, published.contact_id) == (tenant, contact)
    assert abs(published.at - datetime.now(UTC)) < timedelta(seconds=5)


async def test_subscribers_see_their_own_tenant_only_and_end_users_their_own_contact_only(start_hub):
    # given
    hub = await start_hub()
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    me, someone_else, in_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with hub.subscribe(tenant_a) as staff_a, hub.subscribe(tenant_a, me) as mine, hub.subscribe(tenant_b) as b:
        # when
        first = await publish(tenant_a, someone_else, EventKind.CREATED)
        second = await publish(tenant_a, me, EventKind.CREATED)
        third = await publish(tenant_b, in_b, EventKind.CREATED)
        fourth = await publish(tenant_a, me, EventKind.FIELD_SAVED)

        # then
        assert await take(staff_a, 3) == [first, second, fourth]
        assert await take(mine, 2) == [second, fourth]
        assert await take(b, 1) == [third]
        for events in (staff_a, mine, b):
            assert await nothing_within(events, 0.1)


async def test_events_published_while_the_listener_is_down_arrive_after_recovery_in_order_once(start_hub, owner):
    # given: a listener that waits long enough before reconnecting for us to publish in between
    hub = await start_hub(reconnect_min_seconds=2.0)
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        before = await publish(tenant, uuid.uuid4(), EventKind.CREATED)
        assert await take(events, 1) == [before]
        old_pid = hub.backend_pid

        # when
        await kill_listener(owner, hub)
        await until(lambda: not hub.connected)
        missed = [await publish(tenant, uuid.uuid4(), kind) for kind in EventKind]
        assert not hub.connected, "the listener came back before the events were published"
        received = await take(events, len(missed), timeout=5.0)

        # then
        assert received == missed
        assert [event.seq for event in received] == sorted(event.seq for event in missed)
        assert await nothing_within(events, 0.2)
    assert hub.connected and hub.backend_pid != old_pid
    assert (hub.reconnects, hub.resynced) == (1, len(missed))


async def test_a_lower_sequence_number_committed_while_the_listener_was_down_is_not_lost(start_hub, owner):
    # given: an event inserted first but committed last, as concurrent requests' transactions do
    hub = await start_hub(reconnect_min_seconds=1.0)
    tenant = uuid.uuid4()
    inserted, commit = asyncio.Event(), asyncio.Event()

    async def slow_request() -> ContactEvent:
        with tenancy.as_tenant(tenant):
            async with db.transaction() as transaction:
                event = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED, connection=transaction)
                inserted.set()
                await commit.wait()
        return event

    async with hub.subscribe(tenant) as events:
        slow = asyncio.create_task(slow_request())
        await asyncio.wait_for(inserted.wait(), 2.0)
        early = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED)
        assert await take(events, 1) == [early]  # the higher seq is already delivered

        # when: the lower seq commits while nobody listens
        await kill_listener(owner, hub)
        await until(lambda: not hub.connected)
        commit.set()
        late = await asyncio.wait_for(slow, 2.0)
        assert not hub.connected, "the listener came back before the late event committed"
        received = await take(events, 1, timeout=5.0)

    # then
    assert late.seq < early.seq
    assert received == [late]


async def test_a_rolled_back_event_is_neither_logged_nor_delivered(start_hub, owner):
    # given
    hub = await start_hub()
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as events:
        # when
        with pytest.raises(RuntimeError, match="the caller's write failed"), tenancy.as_tenant(tenant):
            async with db.transaction() as transaction:
                await publish(tenant, uuid.uuid4(), EventKind.CREATED, connection=transaction)
                raise RuntimeError("the caller's write failed")
        committed = await publish(tenant, uuid.uuid4(), EventKind.CREATED)

        # then
        assert await take(events, 1) == [committed]
        assert await nothing_within(events, 0.2)
    assert await owner.fetchval("SELECT count(*) FROM contact_event WHERE tenant_id = $1", tenant) == 1


async def test_a_hung_connection_is_noticed_by_the_heartbeat_and_replaced_once_the_database_answers(
    start_hub, app_credentials
):
    # given: the listener reaches the database through a path that can go silent
    proxy = FreezableProxy(app_credentials)
    try:
        hub = await start_hub(
            await proxy.start(),
            heartbeat_seconds=0.2,
            reconnect_min_seconds=0.05,
            reconnect_max_seconds=0.2,
            connect_timeout=1.0,
        )
        tenant = uuid.uuid4()
        async with hub.subscribe(tenant) as events:
            # when: the path hangs (no close, no error) and new connections fail for a while
            proxy.refuse = True
            proxy.freeze()
            missed = [await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED) for _ in range(3)]
            await until(lambda: not hub.connected)
            await until(lambda: hub.reconnect_failures >= 2)
            proxy.refuse = False
            received = await take(events, len(missed), timeout=5.0)

            # then
            assert received == missed
            assert hub.connected and hub.reconnects == 1
    finally:
        await proxy.close()


async def test_notifications_and_log_rows_carry_only_ids_kind_sequence_and_time(start_hub, owner):
    # given: our own LISTEN, to see exactly what travels
    payloads: asyncio.Queue[str] = asyncio.Queue()
    await owner.add_listener(CHANNEL, lambda _c, _pid, _channel, payload: payloads.put_nowait(payload))
    tenant, contact = uuid.uuid4(), uuid.uuid4()

    # when
    event = await publish(tenant, contact, EventKind.DELETED)
    payload = await asyncio.wait_for(payloads.get(), 1.0)
    columns = await owner.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'contact_event' ORDER BY column_name"
    )
    foreign_keys = await owner.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'contact_event'::regclass AND contype = 'f'"
    )

    # then
    assert json.loads(payload) == {
        "seq": event.seq,
        "t": str(tenant),
        "c": str(contact),
        "k": "DELETED",
        "at": event.at.isoformat().replace("+00:00", "Z"),
    }
    assert " " not in payload and len(payload) < 200
    assert ContactEvent.from_payload(payload) == event
    assert [row["column_name"] for row in columns] == ["contact_id", "created_at", "id", "kind", "tenant_id"]
    assert foreign_keys == 0, "events outlive the contact: a DELETED event must still be deliverable"


async def test_a_slow_subscriber_is_cut_off_without_holding_up_another(start_hub):
    # given
    hub = await start_hub(queue_size=3)
    tenant = uuid.uuid4()
    async with hub.subscribe(tenant) as slow, hub.subscribe(tenant) as fast:
        # when: `slow` never reads
        published, received = [], []
        for _ in range(5):
            published.append(await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED))
            received += await take(fast, 1)

        # then
        assert received == published
        with pytest.raises(SubscriptionOverflow):
            await anext(slow)
        assert slow.closed and not fast.closed
        assert hub.subscriber_count(tenant) == 1 and hub.dropped_subscribers == 1
        after = await publish(tenant, uuid.uuid4(), EventKind.FIELD_SAVED)
        assert await take(fast, 1) == [after]
    assert hub.subscriber_count() == 0


async def test_stop_closes_the_connection_ends_subscriptions_and_leaves_no_task(app_credentials, owner):
    # given: a hub that has been through a reconnect
    tasks_before = asyncio.all_tasks()
    hub = EventHub(heartbeat_seconds=0.05, reconnect_min_seconds=0.01)
    await hub.start(app_credentials)
    first_pid = hub.backend_pid
    await kill_listener(owner, hub)
    await until(lambda: hub.reconnects == 1 and hub.connected)
    second_pid = hub.backend_pid
    async with hub.subscribe(uuid.uuid4()) as events:
        waiting = asyncio.create_task(anext(events))
        await asyncio.sleep(0)

        # when
        await hub.stop()
        await hub.stop()  # again: nothing happens

        # then
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, 1.0)
    assert not hub.connected and hub.backend_pid is None
    await asyncio.sleep(0)
    assert {task for task in asyncio.all_tasks() if not task.done()} - tasks_before == set()
    listeners = await owner.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rapidly-listener' AND pid = ANY($1)",
        [first_pid, second_pid],
    )
    assert listeners == 0
    with pytest.raises(RuntimeError):
        async with hub.subscribe(uuid.uuid4()):
            pass


async def test_the_listener_is_named_for_operators_and_never_logs_credentials(
    start_hub, app_credentials, owner, caplog
):
    # given
    caplog.set_level(logging.DEBUG, logger="rapidly.realtime")
    hub = await start_hub(reconnect_min_seconds=0.01)

    # when
    name = await owner.fetchval("SELECT application_name FROM pg_stat_activity WHERE pid = $1", hub.backend_pid)
    await kill_listener(owner, hub)
    await until(lambda: hub.reconnects == 1 and hub.connected)
    await hub.stop()

    # then
    assert name == "rapidly-listener"
    assert "reconnected" in caplog.text
    assert app_credentials.password and app_credentials.password not in caplog.text
    assert app_credentials.user not in caplog.text


async def test_prune_removes_log_rows_older_than_the_retention(owner, world):
    # given: a tenant's log (prune goes tenant by tenant)
    tenant = (await world.tenant()).id
    old = await publish(tenant, uuid.uuid4(), EventKind.CREATED)
    recent = await publish(tenant, uuid.uuid4(), EventKind.CREATED)
    await owner.execute("UPDATE contact_event SET created_at = now() - interval '2 hours' WHERE id = $1", old.seq)

    # when
    removed = await prune(timedelta(hours=1))

    # then
    assert removed == 1
    assert await owner.fetchval("SELECT array_agg(id) FROM contact_event WHERE tenant_id = $1", tenant) == [recent.seq]


async def test_prune_removes_a_long_log_in_batches(owner, world):
    # given: more old rows than one batch (1,000) holds, and one recent, of a tenant
    tenant = (await world.tenant()).id
    await owner.execute(
        "INSERT INTO contact_event (tenant_id, contact_id, kind, created_at) "
        "SELECT $1, gen_random_uuid(), 'CREATED', now() - interval '2 hours' FROM generate_series(1, 2500)",
        tenant,
    )
    recent = await publish(tenant, uuid.uuid4(), EventKind.CREATED)

    # when / then
    assert await prune(timedelta(hours=1)) == 2500
    assert await owner.fetchval("SELECT array_agg(id) FROM contact_event WHERE tenant_id = $1", tenant) == [recent.seq]


def test_backoff_grows_with_jitter_and_stays_capped_however_long_the_outage():
    # given
    hub = EventHub(reconnect_min_seconds=0.1, reconnect_max_seconds=5.0)

    # when
    first, fourth, much_later = hub._backoff(0), hub._backoff(3), hub._backoff(100_000)

    # then
    assert 0.05 <= first <= 0.1
    assert 0.4 <= fourth <= 0.8
    assert 2.5 <= much_later <= 5.0
