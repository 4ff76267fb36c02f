"""The database layer: roles, tenant_id everywhere, migrations in step with models, embedded server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys

import psutil
import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from rapidly import db
from tests.conftest import run_cli


async def query(sql: str) -> list[dict]:
    _, rows = await connections.get("default").execute_query(sql)
    return [dict(row) for row in rows]


async def test_the_app_connects_as_a_non_owner_role_without_bypassrls(server):
    # when
    [role] = await query(
        "SELECT current_user AS name, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb "
        "FROM pg_roles r WHERE r.rolname = current_user"
    )
    owners = await query("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")

    # then
    assert role["name"].endswith("_app")
    assert not (role["rolsuper"] or role["rolbypassrls"] or role["rolcreaterole"] or role["rolcreatedb"])
    assert role["name"] not in {row["tableowner"] for row in owners}


async def test_the_app_role_can_write_rows_but_not_change_the_schema(server):
    # when / then
    for statement in (
        "CREATE TABLE sneaky (id int)",
        "ALTER TABLE tenant ADD COLUMN x int",
        "DROP TABLE staff_user",
        "SELECT * FROM tortoise_migrations",
    ):
        try:
            await query(statement)
        except Exception as exc:
            assert "permission denied" in str(exc) or "must be owner" in str(exc), statement
        else:
            raise AssertionError(f"app role could run: {statement}")


async def test_every_table_but_tenant_carries_tenant_id(server):
    # when
    tables = await query(
        "SELECT t.tablename, EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = 'public' "
        "AND c.table_name = t.tablename AND c.column_name = 'tenant_id') AS has_tenant "
        "FROM pg_tables t WHERE t.schemaname = 'public' AND t.tablename <> 'tortoise_migrations'"
    )

    # then
    assert {row["tablename"] for row in tables} >= {"tenant", "staff_user", "staff_session", "rate_limit"}
    assert [row["tablename"] for row in tables if not row["has_tenant"]] == ["tenant"]


async def test_rate_limit_counters_live_in_an_unlogged_table(server):
    # when
    [row] = await query("SELECT relpersistence FROM pg_class WHERE relname = 'rate_limit'")

    # then
    assert row["relpersistence"] == b"u"


async def test_the_pool_is_larger_than_tortoise_default(server, settings):
    # when
    client = connections.get("default")

    # then
    assert settings.database_pool_size >= 20
    assert client.pool_maxsize == settings.database_pool_size


async def test_committed_migrations_match_the_models():
    # when: the models are compared with the migration files, no database needed
    writers = await db.pending_migrations()

    # then
    assert writers == [], "models changed without a migration: run `rapidly makemigrations`"


def test_embedded_server_is_reused_across_runs_and_stopped_cleanly(tmp_path):
    # given
    env = {"PATH": "/usr/bin:/bin", "RAPIDLY_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}

    # when: between the runs a process that used the server is killed before it could sign off
    first = run_cli(env, "migrate")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    users = tmp_path / "pg" / ".handle_pids.json"
    users.write_text(json.dumps([*json.loads(users.read_text() or "[]"), gone.pid]))
    second = run_cli(env, "migrate")

    # then
    assert first.returncode == 0, first.stderr
    assert "applied rapidly.0001_initial" in first.stdout
    assert second.returncode == 0 and "applied" not in second.stdout
    assert "database is up to date" in second.stdout
    assert (tmp_path / "pg" / "PG_VERSION").exists()
    running = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert running == []


async def test_on_commit_runs_after_the_outermost_commit_and_never_after_a_rollback(server):
    # given
    ran: list[str] = []

    # when
    async with db.transaction():
        db.on_commit(lambda: ran.append("outer" if not db.transaction_open() else "outer, before the commit"))
        async with db.transaction():
            db.on_commit(lambda: ran.append("nested"))
        with contextlib.suppress(RuntimeError):
            async with db.transaction():
                db.on_commit(lambda: ran.append("nested, rolled back"))
                raise RuntimeError("the nested write failed")
        before_commit = list(ran)
    with contextlib.suppress(RuntimeError):
        async with db.transaction():
            db.on_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("the write failed")
    db.on_commit(lambda: ran.append("no transaction: at once"))

    # then
    assert before_commit == []
    assert ran == ["outer", "nested", "no transaction: at once"]


async def test_a_failing_after_commit_callback_is_logged_and_the_others_still_run(server, caplog):
    # given
    ran: list[str] = []

    def fails() -> None:
        raise ValueError("@".join(["maija", "example.com"]))  # the address is not in this source line

    # when
    async with db.transaction():
        db.on_commit(fails)
        db.on_commit(lambda: ran.append("next"))

    # then: the write committed, so the caller gets no error
    assert ran == ["next"]
    assert "after-commit callback failed: ValueError" in caplog.text
    assert "maija@example.com" not in caplog.text


async def test_on_commit_is_refused_where_no_commit_can_be_waited_for(server):
    # when / then: inside an ORM transaction that db.transaction() did not open
    with pytest.raises(RuntimeError, match=r"db\.transaction"):
        async with in_transaction():
            db.on_commit(lambda: None)
    with pytest.raises(RuntimeError, match=r"ORM transaction it did not open"):
        async with in_transaction(), db.transaction():
            pass

    # when / then: from a task that outlived the transaction it was started in
    release = asyncio.Event()

    async def late() -> None:
        await release.wait()
        db.on_commit(lambda: None)

    async with db.transaction():
        leftover = asyncio.create_task(late())
    release.set()
    with pytest.raises(RuntimeError, match="after its transaction ended"):
        await leftover

    async def late_transaction() -> None:
        await release.wait()
        async with db.transaction():
            pass

    release.clear()
    async with db.transaction():
        leftover = asyncio.create_task(late_transaction())
    release.set()
    with pytest.raises(RuntimeError, match="outer transaction ended"):
        await leftover
