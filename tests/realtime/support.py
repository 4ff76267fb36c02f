"""Waiting for events, and cutting a hub's listener off, in the realtime tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from rapidly.realtime import ContactEvent, EventHub, Subscription


async def take(events: Subscription, count: int, timeout: float = 2.0) -> list[ContactEvent]:
    async with asyncio.timeout(timeout):
        return [await anext(events) for _ in range(count)]


async def nothing_within(events: Subscription, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await anext(events)
    except TimeoutError:
        return True
    return False


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def kill_listener(owner: asyncpg.Connection, hub: EventHub) -> None:
    """Terminate the hub's listening backend from outside, as an operator or a failover would."""
    killed = await owner.fetchval(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rapidly-listener' "
        "AND pid = $1",
        hub.backend_pid,
    )
    assert killed
