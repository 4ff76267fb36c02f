"""Memory under live load (issue 25): one `rapidly serve`, customers typing, staff and customers
watching over real WebSockets, PostgreSQL underneath.

The server once kept about 1.2 KiB for every event it delivered (graphql-core's per-event executor:
docs/upstream.md): at a busy office's rate, gigabytes a day. Here the resident memory of the serving
process is sampled while it delivers events, and its growth per delivery must be close to none; when
the watchers leave, memory, tasks and file descriptors come back to where they were. The hostile
cases (subscribe/complete churn, sockets dropped mid-stream, clients that never read, sessions
ended under load) must each give back what they took. `bench/soak.py` runs the same for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import METRICS_TOKEN, STAFF_PASSWORD, run_cli
from tests.support.live import (
    CONTACT_EVENTS,
    DELETE_MY_DATA,
    LOGOUT,
    MY_EVENTS,
    Typists,
    Watcher,
    sign_in,
    start_contacts,
    until,
)
from tests.support.served import Served

pytestmark = pytest.mark.slow

TENANT = "soak"
STAFF_EMAIL = "staff@soak.example"
TYPISTS = 30
#: Each customer saves this often, as the form does while someone types.
EVERY_SECONDS = 0.3
STAFF_WATCHERS = 10
CONTACT_WATCHERS = 5
WARM_UP_SECONDS = 15
MEASURE_SECONDS = 30
#: Growth of resident memory allowed per 100,000 deliveries once warm (before the fix: ~115 MiB).
MIB_PER_100K_DELIVERIES = 8
#: How far above its warm level memory may stay once the watchers have left.
LEFT_BEHIND_MIB = 4


@pytest.fixture
def served(env, tmp_path) -> Iterator[Served]:
    server = Served({**env, "RAPIDLY_METRICS_TOKEN": METRICS_TOKEN}, tmp_path / "serve.log")
    try:
        made = run_cli(env, "tenant", "create", "--slug", TENANT, "--name", "Soak Oy", "--plugin", "roofing_fi")
        assert made.returncode == 0, made.stderr
        staffed = run_cli(
            env, "staff", "create", "--tenant", TENANT, "--email", STAFF_EMAIL, stdin=STAFF_PASSWORD + "\n"
        )
        assert staffed.returncode == 0, staffed.stderr
        yield server
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def gauge(server: Served, name: str) -> float:
    return server.metric(name, METRICS_TOKEN)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


@contextlib.asynccontextmanager
async def customers(server: Served, count: int) -> Iterator[tuple[list[str], str]]:  # type: ignore[misc]
    """`count` new contacts' tokens and a staff token."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield await start_contacts(http, TENANT, count), await sign_in(http, STAFF_EMAIL, STAFF_PASSWORD)


async def quiet(server: Served, tasks: float) -> bool:
    """Every subscription gone and the tasks back to `tasks` (give or take the scrape's own)."""
    return await until(
        lambda: gauge(server, "rapidly_subscribers") == 0 and gauge(server, "rapidly_tasks") <= tasks + 2, 20
    )


async def test_memory_stays_flat_while_watchers_receive_events_and_their_share_returns_when_they_leave(served):
    # given: customers and their staff, nobody watching yet
    async with customers(served, TYPISTS) as (tokens, staff):
        idle_tasks = gauge(served, "rapidly_tasks")
        watchers = [await Watcher(served.url, staff).open() for _ in range(STAFF_WATCHERS)]
        watchers += [await Watcher(served.url, token, MY_EVENTS).open() for token in tokens[:CONTACT_WATCHERS]]

        def delivered() -> int:
            return sum(w.events for w in watchers)

        # when: they type, and the watchers see every save
        async with Typists(served.url, tokens, EVERY_SECONDS) as typists:
            await asyncio.sleep(WARM_UP_SECONDS)
            warm_rss, warm_delivered = served.rss(), delivered()
            samples = []
            ends = time.monotonic() + MEASURE_SECONDS
            while time.monotonic() < ends:
                samples.append((delivered(), served.rss()))
                await asyncio.sleep(0.5)
            samples.append((delivered(), served.rss()))
        deliveries = delivered() - warm_delivered
        for watcher in watchers:
            await watcher.close()
        assert await quiet(served, idle_tasks)
        left_rss = served.rss()

    # then: a steady state, not a leak
    assert not typists.failures, typists.failures[:3]
    assert not any(w.errors for w in watchers), [w.errors for w in watchers if w.errors][:1]
    assert deliveries > 15_000, f"only {deliveries} deliveries: the load did not run"
    per_delivery = slope(samples)
    assert per_delivery * 100_000 < MIB_PER_100K_DELIVERIES * 2**20, (
        f"{per_delivery:.0f} bytes kept per delivery over {deliveries} deliveries "
        f"(RSS {warm_rss / 2**20:.1f} -> {samples[-1][1] / 2**20:.1f} MiB)"
    )
    # and what the watchers took comes back
    assert left_rss < warm_rss + LEFT_BEHIND_MIB * 2**20, (warm_rss, left_rss)
    # every connection closed (the server's side of a socket the client just closed closes a moment later)
    assert await until(lambda: served.client_connections() == 0, 10), served.client_connections()


async def test_watchers_that_never_read_are_cut_off_and_what_they_held_is_given_back(served):
    # given: customers typing fast, a staff member and a customer who watch but never read, and a
    # staff member who does
    async with customers(served, TYPISTS) as (tokens, staff):
        idle_tasks, idle_rss = gauge(served, "rapidly_tasks"), served.rss()
        for stalled in (
            Watcher(served.url, staff, reads=False),
            Watcher(served.url, tokens[0], MY_EVENTS, reads=False),
        ):
            await stalled.open()
        reader = await Watcher(served.url, staff).open()
        async with Typists(served.url, tokens, 0.1) as typists:
            # when: the staff one's buffers fill (cut off at the send deadline); the customer's,
            # with few events of its own, fills nothing (cut off when it answers no ping)
            cut = await until(lambda: gauge(served, "rapidly_subscribers") == 1, 60, every=0.5)
            saved = typists.saves
        await until(lambda: reader.events >= saved, 5)
        await reader.close()

    # then: both cut off, the reader served all along, and what they held given back
    assert cut, gauge(served, "rapidly_subscribers")
    assert served.log().count("WebSocket client cut off: it read nothing") == 1
    assert reader.events >= saved and not reader.errors
    assert await quiet(served, idle_tasks)
    assert await until(lambda: served.client_connections() == 0, 10), served.client_connections()
    assert served.rss() < idle_rss + 2 * LEFT_BEHIND_MIB * 2**20, (idle_rss, served.rss())


@pytest.mark.parametrize("kind", ["staff", "contact"])
async def test_ten_thousand_subscribe_and_complete_cycles_on_one_socket_leave_nothing_behind(served, kind):
    # given: one connection of a staff member's, or of a customer's
    async with customers(served, 1) as ([token], staff):
        idle_tasks = gauge(served, "rapidly_tasks")
        watcher = await Watcher(
            served.url, staff if kind == "staff" else token, CONTACT_EVENTS if kind == "staff" else MY_EVENTS
        ).open("warm")
        await watcher.complete("warm")

        async def cycles(first: int) -> None:
            """10,000 subscriptions, ten at a time (the most a connection may hold), each started
            before it is completed: while the client waits for a ping's answer, the server runs them."""
            for batch in range(first, first + 10_000, 10):
                for n in range(batch, batch + 10):
                    await watcher.subscribe(str(n))
                await watcher.ping()
                for n in range(batch, batch + 10):
                    await watcher.complete(str(n))
            last = f"last-{first}"
            await watcher.subscribe(last)  # handled after every cycle: its event means all were
            async with Typists(served.url, [token], 0.2):
                assert await until(lambda: watcher.received.get(last), 30)
            await watcher.complete(last)

        # when: one round for the allocator's pools to grow to their working size, then another
        await cycles(0)
        warm_rss = served.rss()
        await cycles(10_000)

        # then: the socket still works, and the cycles kept nothing
        assert not watcher.errors, watcher.errors[:3]
        assert served.rss() < warm_rss + LEFT_BEHIND_MIB * 2**20, (warm_rss, served.rss())
        await watcher.close()
        assert await quiet(served, idle_tasks)


async def test_a_thousand_sockets_dropped_mid_stream_leave_nothing_behind(served):
    # given: customers typing, so that every socket has events on their way when it drops
    async with customers(served, 10) as (tokens, staff), Typists(served.url, tokens, 0.5):
        idle_tasks = gauge(served, "rapidly_tasks")

        async def drop_a_thousand() -> None:
            """Ten times 100 connections (staff and customers), each dropped once it has had an event."""
            for _ in range(10):
                watchers = [await Watcher(served.url, staff).open() for _ in range(20)]
                watchers += [await Watcher(served.url, tokens[i % 10], MY_EVENTS).open() for i in range(80)]
                assert await until(lambda: all(w.events for w in watchers), 15)  # noqa: B023 -- awaited here
                for watcher in watchers:
                    watcher.drop()

        # when: a thousand for the allocator's pools to grow to their working size, then a thousand more
        await drop_a_thousand()
        assert await quiet(served, idle_tasks)
        warm_rss = served.rss()
        await drop_a_thousand()

        # then: every subscription, task and connection of theirs is gone, and the memory too
        assert await quiet(served, idle_tasks)
        assert await until(lambda: served.client_connections() <= 10, 10)
        assert served.rss() < warm_rss + LEFT_BEHIND_MIB * 2**20, (warm_rss, served.rss())


async def test_a_session_ended_or_a_contact_erased_under_load_stops_its_streams_at_once(served):
    # given: three consoles of one staff session and three screens of one customer, all receiving
    async with customers(served, TYPISTS) as (tokens, staff), Typists(served.url, tokens[1:], EVERY_SECONDS):
        idle_tasks = gauge(served, "rapidly_tasks")
        consoles = [await Watcher(served.url, staff).open() for _ in range(3)]
        screens = [await Watcher(served.url, tokens[0], MY_EVENTS).open() for _ in range(3)]
        async with Typists(served.url, tokens[:1], 0.1):
            assert await until(lambda: all(w.events for w in consoles + screens), 10)
        async with httpx.AsyncClient(base_url=served.url) as http:
            # when: the staff member signs out, and the customer erases everything
            for query, token in ((LOGOUT, staff), (DELETE_MY_DATA, tokens[0])):
                response = await http.post(
                    "/graphql", json={"query": query}, headers={"authorization": f"Bearer {token}"}
                )
                assert "errors" not in response.json(), response.text
            ended = time.monotonic()

            # then: within a second, the consoles are told the session ended, and the screens
            # have their last event, DELETED, and are complete
            assert await until(lambda: all(w.errors for w in consoles) and all(w.completed for w in screens), 1.0, 0.05)
        assert time.monotonic() - ended < 1.0
        assert all("sign in again" in str(w.errors) for w in consoles)
        for watcher in consoles + screens:
            await watcher.close()
        assert await quiet(served, idle_tasks)
