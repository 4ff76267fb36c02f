"""Retention sweeps of many contacts, as an operator runs them: two at once, and one killed midway.

Each runs `rapidly retention run` in its own process against contacts bulk-loaded with SQL. The
ledger and the journal must come out exact: one ledger row, one journal entry and one DELETED event
per contact, none erased twice, none forgotten.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import timedelta
from pathlib import Path

from rapidly import db, tenancy
from rapidly.contacts import service as contacts
from rapidly.erasure import retention
from rapidly.storage import JOURNAL
from tests.contacts.test_contacts_api import save, start

EXPIRED = 600

_LOAD = [
    "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
    "SELECT gen_random_uuid(), $1, 'fi', t, t, t FROM generate_series(0, $2), "
    "LATERAL (SELECT now() - interval '40 days' - random() * interval '1 day' AS t) at",
    "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
    "SELECT gen_random_uuid(), tenant_id, id, 'name', '\"Vanha Asiakas\"', updated_at FROM contact",
    "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
    "SELECT gen_random_uuid(), tenant_id, id, md5(id::text) || md5(id::text || 'x'), now(), now() + interval '1 day' "
    "FROM contact",
    "ANALYZE contact, field_value, contact_token",
]


async def expired_contacts(world, count: int = EXPIRED):  # type: ignore[no-untyped-def]
    """`count` contacts of a tenant that keeps them 30 days, last active 40 days ago; one kept."""
    tenant = await world.tenant("kattohuolto", retention_days=30)
    with tenancy.as_tenant(tenant.id):
        async with db.connection() as conn:
            await conn.execute(_LOAD[0], tenant.id, count)
            for statement in _LOAD[1:]:
                await conn.execute(statement)
            await conn.execute(
                "UPDATE contact SET updated_at = now() WHERE id = (SELECT min(id::text)::uuid FROM contact)"
            )
    return tenant


async def retention_run(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rapidly",
        "retention",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def erased_by(process: asyncio.subprocess.Process) -> int:
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "Vanha" not in (out + err).decode()
    return int(re.search(r"erased (\d+) contacts past retention", out.decode())[1])  # type: ignore[index]


async def ledger_is_exact(settings, expected: int) -> None:  # type: ignore[no-untyped-def]
    conn = await db.Credentials.from_url(settings.database_url).connect()  # every tenant's rows
    try:
        assert await conn.fetchval("SELECT count(*) FROM contact") == 1  # the one still active
        assert await conn.fetchval("SELECT count(*) FROM field_value WHERE value = '\"Vanha Asiakas\"'") == 1
        rows = await conn.fetch("SELECT contact_id, requested_by, completed_at, pending FROM erasure")
        deleted = await conn.fetchval("SELECT count(*) FROM contact_event WHERE kind = 'DELETED'")
        kept = await conn.fetchval("SELECT id FROM contact")
    finally:
        await conn.close()
    assert len(rows) == len({r["contact_id"] for r in rows}) == expected
    assert kept not in {r["contact_id"] for r in rows}
    assert {r["requested_by"] for r in rows} == {"RETENTION"}
    unfinished = [(r["completed_at"], r["pending"]) for r in rows if r["completed_at"] is None or r["pending"] != "[]"]
    assert unfinished == []
    assert deleted == expected  # erased once each: one DELETED event per contact
    journal = Path(settings.data_dir, "media", JOURNAL)
    # (a write cut off by the kill may leave its draft, a dot file that is never listed)
    assert len([p for p in journal.glob("*/*") if p.is_file() and not p.name.startswith(".")]) == expected


async def test_two_sweepers_at_once_erase_each_contact_once(env, world, settings):
    # given
    await expired_contacts(world)

    # when
    first, second = await asyncio.gather(retention_run(env), retention_run(env))
    counts = await asyncio.gather(erased_by(first), erased_by(second))

    # then: they shared the work (how, the processes' timing decides), and the ledger and the journal are exact
    assert sum(counts) == EXPIRED, counts
    await ledger_is_exact(settings, EXPIRED)


async def test_two_sweeps_in_one_process_interleave_and_erase_each_contact_once(world, settings, server):
    # given
    await expired_contacts(world)
    erasure = server.app.state.erasure

    # when: two sweeps taking turns at every statement
    counts = await asyncio.gather(retention.sweep(erasure, batch=50), retention.sweep(erasure, batch=50))

    # then
    assert sum(counts) == EXPIRED and min(counts) > 0, counts
    await ledger_is_exact(settings, EXPIRED)


async def test_a_sweep_passes_over_a_contact_a_save_holds_and_erases_it_next_time(world, settings, server):
    # given: a save in progress holds one expired contact
    tenant = await expired_contacts(world, 20)
    erasure = server.app.state.erasure
    owner = await db.Credentials.from_url(settings.database_url).connect()
    try:
        held = await owner.fetchval(
            "SELECT id FROM contact WHERE tenant_id = $1 AND updated_at < now() - interval '30 days' LIMIT 1", tenant.id
        )
        async with owner.transaction():
            await owner.execute("SELECT 1 FROM contact WHERE id = $1 FOR NO KEY UPDATE", held)

            # when: the sweep runs meanwhile
            erased = await asyncio.wait_for(retention.sweep(erasure), 30)

        # then: it did not wait for the save, and left that contact for the next sweep
        assert erased == 19
        assert await owner.fetchval("SELECT count(*) FROM contact WHERE id = $1", held) == 1
        assert await retention.sweep(erasure) == 1
        assert await owner.fetchval("SELECT count(*) FROM contact WHERE id = $1", held) == 0
    finally:
        await owner.close()


async def test_a_sweep_killed_midway_loses_no_erasure_and_the_next_one_finishes(env, world, settings):
    # given: a sweep that has erased some of the contacts
    tenant = await expired_contacts(world)
    sweep = await retention_run(env)
    with tenancy.as_tenant(tenant.id):
        async with db.connection() as conn, asyncio.timeout(60):
            while await conn.fetchval("SELECT count(*) FROM erasure") < 50:
                await asyncio.sleep(0.02)

    # when: it is killed outright
    os.kill(sweep.pid, signal.SIGKILL)
    await sweep.wait()

    # then: every contact is either whole or erased with its ledger row (at most the last few still
    # writing their journal entry, which the retries finish)
    with tenancy.as_tenant(tenant.id):
        async with db.connection() as conn:
            remaining = await conn.fetchval("SELECT count(*) FROM contact")
            ledger = await conn.fetchval("SELECT count(*) FROM erasure")
            orphans = await conn.fetchval(
                "SELECT count(*) FROM field_value v "
                "WHERE NOT EXISTS (SELECT 1 FROM contact c WHERE c.id = v.contact_id)"
            )
            pending = await conn.fetchval("SELECT count(*) FROM erasure WHERE completed_at IS NULL")
    assert remaining + ledger == EXPIRED + 1 and 0 < ledger < EXPIRED and orphans == 0
    assert pending <= 1

    # when: the retry is due and the next sweep runs
    with tenancy.as_tenant(tenant.id):
        async with db.connection() as conn:
            await conn.execute("UPDATE erasure SET next_attempt_at = now() WHERE completed_at IS NULL")
    erased = await erased_by(await retention_run(env))

    # then
    assert erased == EXPIRED - ledger
    await ledger_is_exact(settings, EXPIRED)


async def test_abandoned_contacts_and_dead_links_are_purged_in_batches_leaving_the_rest(world, gql):
    # given: 2,500 contacts never saved a day ago, with dead links; a saved one and a fresh visit
    tenant = await world.tenant("kattohuolto")
    saved = await start(gql, "kattohuolto")
    await save(gql, saved, "name", "Maija")
    fresh = await start(gql, "kattohuolto")
    with tenancy.as_tenant(tenant.id):
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at) "
                "SELECT gen_random_uuid(), $1, 'fi', now() - interval '2 days', now() - interval '2 days' "
                "FROM generate_series(1, 2500)",
                tenant.id,
            )
            await conn.execute(
                "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
                "SELECT gen_random_uuid(), tenant_id, id, md5(id::text) || md5(id::text || 'x'), now(), "
                "CASE WHEN n <= 1200 THEN now() - interval '1 day' ELSE now() + interval '1 day' END "
                "FROM (SELECT *, row_number() OVER () AS n FROM contact WHERE first_saved_at IS NULL "
                "AND created_at < now() - interval '1 day') c"
            )

    # when
    links = await contacts.purge_expired_tokens()
    abandoned = await contacts.purge_abandoned(timedelta(hours=24))

    # then: more than one batch each, and nothing else went
    assert (links, abandoned) == (1200, 2500)
    assert await contacts.contact_for_token(saved) is not None
    assert await contacts.contact_for_token(fresh) is not None
