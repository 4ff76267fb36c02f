"""Databases of a test's own on the session's PostgreSQL server, and statements run as its owner."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from rapidly import db
from tests.conftest import with_database


async def run_sql(url: str, *statements: str) -> None:
    """Statements on a connection of their own, as the role of `url`."""
    conn = await db.Credentials.from_url(url).connect()
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def commits_not_waiting_for_the_disk(url: str) -> Iterator[None]:
    """New connections to the database of `url` commit without waiting for the WAL to reach the disk.

    For tests that time what a server does: under another process's disk writes, each commit's WAL
    flush stalled saves for 100-230 ms here (`dd ... conv=fsync` beside the telemetry test) and once
    for 588 ms in CI, and with `synchronous_commit = off` those stalls went. Durability is not what
    such a test measures; set it back afterwards.
    """

    async def current(statement: str) -> None:
        conn = await db.Credentials.from_url(url).connect()
        try:
            name = db.quote_ident(await conn.fetchval("SELECT current_database()"))
            await conn.execute(statement.format(name))
        finally:
            await conn.close()

    asyncio.run(current("ALTER DATABASE {} SET synchronous_commit = off"))
    try:
        yield
    finally:
        asyncio.run(current("ALTER DATABASE {} RESET synchronous_commit"))


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str = "rapidly_scratch") -> AsyncIterator[str]:
    """A new, empty database on the server of `server_url` (its URL), dropped afterwards with the app
    role that Rapidly makes for it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await run_sql(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        await run_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP ROLE IF EXISTS "{name}_app"')


async def plain_dump(url: str, archive: Path | None = None) -> bytes:
    """The whole database of `url` as plain SQL, as its owner would dump it (`pg_dump`, every row of
    every table: the owner's policy reads them all); or, with `archive`, that custom-format dump
    (a backup's) turned into plain SQL by `pg_restore`."""
    import subprocess

    from rapidly.backup import pgtools

    owner = db.Credentials.from_url(url)
    conn = await owner.connect()
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    tools = pgtools.find(major)
    env = pgtools.environment(owner, tools.major)
    if archive is None:
        command = [tools["pg_dump"], "--format=plain", "--no-owner", owner.database]
    else:
        command = [tools["pg_restore"], "--file=-", str(archive)]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout
