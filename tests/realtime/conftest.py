"""Fixtures for the event hub and the announcer on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from rapidly import db
from rapidly.config import Settings
from rapidly.realtime import EventHub

StartHub = Callable[..., Awaitable[EventHub]]


@pytest.fixture
def app_credentials(settings: Settings, server) -> db.Credentials:
    """The app role's credentials, as `db.init_orm` returns them (the server has migrated)."""
    return db.app_credentials(settings, db.owner_credentials(settings))


@pytest.fixture
async def owner(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await db.Credentials.from_url(settings.database_url).connect()
    yield conn
    await conn.close()


@pytest.fixture
async def start_hub(app_credentials: db.Credentials) -> AsyncIterator[StartHub]:
    """Start hubs (one per simulated process); all are stopped after the test."""
    hubs: list[EventHub] = []

    async def start(credentials: db.Credentials | None = None, **options: object) -> EventHub:
        hub = EventHub(**options)  # type: ignore[arg-type]
        hubs.append(hub)
        await hub.start(credentials or app_credentials)
        return hub

    yield start
    for hub in hubs:
        await hub.stop()
