"""Backups given wrong settings, hostile IDs, altered files, a full database or an absent storage:
each is refused with one clear line, and the database is left as it was."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psutil
import pytest

from rapidly import db, metrics
from rapidly.backup import service
from rapidly.backup.report import describe
from rapidly.backup.service import BackupError, Backups, Schedule
from tests.backup.conftest import (
    BACKUP_KEY,
    opened_storage,
    s3_client,
    s3_env,
    scratch_env,
    scratch_settings,
)
from tests.conftest import run_cli
from tests.media.test_s3 import Proxy, s3_settings


def migrated(cli_env: dict[str, str]) -> None:
    done = run_cli(cli_env, "migrate")
    assert done.returncode == 0, done.stderr


def backed_up_then_a_tenant(cli_env: dict[str, str], slug: str) -> str:
    """A backup of a migrated database without tenants, and a tenant created after it; the backup's ID."""
    migrated(cli_env)
    backup_id = run_cli(cli_env, "backup", "create").stdout.splitlines()[-1]
    made = run_cli(cli_env, "tenant", "create", "--slug", slug, "--name", f"{slug} Oy", "--plugin", "roofing_fi")
    assert made.returncode == 0, made.stderr
    return backup_id


async def tables(scratch) -> int:  # type: ignore[no-untyped-def]
    return await scratch.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("RAPIDLY_BACKUP_KEY", "too short", "RAPIDLY_BACKUP_KEY: String should have at least 32 characters"),
        ("RAPIDLY_BACKUP_RETENTION_DAYS", "31", "RAPIDLY_BACKUP_RETENTION_DAYS: must be 1 to 30"),
        ("RAPIDLY_BACKUP_RETENTION_DAYS", "0", "RAPIDLY_BACKUP_RETENTION_DAYS: must be 1 to 30"),
        ("RAPIDLY_BACKUP_RETENTION_DAYS", "thirty", "RAPIDLY_BACKUP_RETENTION_DAYS: Input should be a valid integer"),
        ("RAPIDLY_BACKUP_EVERY_HOURS", "-1", "RAPIDLY_BACKUP_EVERY_HOURS: Input should be greater than or equal to 0"),
        ("RAPIDLY_BACKUP_EVERY_HOURS", "721", "RAPIDLY_BACKUP_EVERY_HOURS: Input should be less than or equal to 720"),
        ("RAPIDLY_LOG_FORMAT", "xml", "RAPIDLY_LOG_FORMAT: Input should be 'text' or 'json'"),
        ("RAPIDLY_METRICS_TOKEN", "short", "RAPIDLY_METRICS_TOKEN: String should have at least 32 characters"),
    ],
)
def test_a_wrong_setting_stops_every_command_naming_it(env, name, value, says):
    for command in (("serve", "--port", "1"), ("backup", "list"), ("check",)):
        done = run_cli({**env, name: value}, *command)
        assert done.returncode == 2 and says in done.stderr, (command, done.stderr)


async def test_without_a_key_backups_are_refused_and_serve_does_not_start(env, scratch, tmp_path):
    # given: an external database, backups on (the default), no key
    cli_env = scratch_env(env, scratch, tmp_path / "data")
    del cli_env["RAPIDLY_BACKUP_KEY"]
    cli_env["RAPIDLY_BACKUP_EVERY_HOURS"] = "24"
    migrated(cli_env)

    # when
    made = run_cli(cli_env, "backup", "create")
    served = run_cli(cli_env, "serve", "--port", "1")
    checked = run_cli(cli_env, "check")
    off = run_cli({**cli_env, "RAPIDLY_BACKUP_EVERY_HOURS": "0"}, "check")

    # then
    assert made.returncode == 1 and "RAPIDLY_BACKUP_KEY is not set" in made.stderr
    assert served.returncode != 0 and "RAPIDLY_BACKUP_KEY is not set" in served.stderr
    assert checked.returncode == 1 and "FAIL: RAPIDLY_BACKUP_KEY is not set" in checked.stdout
    assert off.returncode == 0 and "backups: off (RAPIDLY_BACKUP_EVERY_HOURS=0)" in off.stdout
    assert "30 days at most" in off.stdout
    assert not (tmp_path / "data" / "backups").exists()


async def test_check_says_where_backups_go_and_how_old_the_newest_is(env, scratch, tmp_path):
    # given
    cli_env = scratch_env(env, scratch, tmp_path / "data", RAPIDLY_BACKUP_EVERY_HOURS="12")
    migrated(cli_env)
    before = run_cli(cli_env, "check")
    made = run_cli(cli_env, "backup", "create").stdout.splitlines()[-1]

    # when
    after = run_cli(cli_env, "check")

    # then
    assert before.returncode == 0 and "newest: none yet" in before.stdout
    assert "every 12 h, each deleted after 30 days" in after.stdout
    assert f"where: {(tmp_path / 'data' / 'backups').resolve()}" in after.stdout
    assert f"newest: {made}, 0.0 h old" in after.stdout


# -- restore -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backup_id",
    [
        "../../../etc/passwd",
        "",
        "x" * 10_000,
        "２０２６１２０４T１０１８２５Z-abcdef",
        "20261204T101825Z-abcdef\n",
        "20261399T101825Z-abcdef",
    ],
    ids=["path", "empty", "huge", "fullwidth digits", "newline", "no such date"],
)
async def test_restore_of_an_id_that_is_no_backup_id_is_refused(env, scratch, tmp_path, backup_id):
    # given
    cli_env = scratch_env(env, scratch, tmp_path / "data")

    # when
    done = run_cli(cli_env, "backup", "restore", backup_id)

    # then
    assert done.returncode == 1 and "is not a backup ID (`rapidly backup list` shows them)" in done.stderr
    assert len(done.stderr) < 300
    assert await tables(scratch) == 0


async def test_restore_of_a_backup_that_does_not_exist_is_refused(env, scratch, bucket, s3_endpoint, tmp_path):
    # given
    cli_env = scratch_env(env, scratch, tmp_path / "data", **s3_env(s3_endpoint, bucket))

    # when
    done = run_cli(cli_env, "backup", "restore", "20261204T101825Z-abcdef")

    # then
    assert done.returncode == 1
    assert "error: there is no backup 20261204T101825Z-abcdef (`rapidly backup list` shows them)" in done.stderr
    assert await tables(scratch) == 0


async def test_restore_into_a_database_that_holds_anything_is_refused_unless_told(env, scratch, tmp_path):
    # given: a backup of an empty tenant list, then a tenant created after it
    cli_env = scratch_env(env, scratch, tmp_path / "data")
    backup_id = backed_up_then_a_tenant(cli_env, "later")

    # when
    refused = run_cli(cli_env, "backup", "restore", backup_id)
    kept = await scratch.fetchval("SELECT count(*) FROM tenant")
    overwritten = run_cli(cli_env, "backup", "restore", backup_id, "--overwrite")

    # then
    assert refused.returncode == 1 and "is not empty" in refused.stderr and "--overwrite" in refused.stderr
    assert kept == 1
    assert overwritten.returncode == 0, overwritten.stderr
    assert await scratch.fetchval("SELECT count(*) FROM tenant") == 0
    assert run_cli(cli_env, "tenant", "list").returncode == 0  # migrated and granted again


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("one byte", "the backup was altered"),
        ("header byte", "the backup was altered: a part fails its authentication"),
        ("truncated", "the backup is truncated"),
        ("wrong key", "RAPIDLY_BACKUP_KEY does not open this backup: it was made with another key"),
    ],
)
async def test_an_altered_truncated_or_foreign_backup_is_refused_before_the_database_is_touched(
    env, scratch, bucket, s3_endpoint, tmp_path, damage, says
):
    # given: a backup in the bucket, then altered in place (a new version of the same object)
    cli_env = scratch_env(env, scratch, tmp_path / "data", **s3_env(s3_endpoint, bucket))
    migrated(cli_env)
    assert (
        run_cli(cli_env, "tenant", "create", "--slug", "tee", "--name", "T Oy", "--plugin", "roofing_fi").returncode
        == 0
    )
    backup_id = run_cli(cli_env, "backup", "create").stdout.splitlines()[-1]
    s3 = s3_client(s3_endpoint)
    key = f"backups/{backup_id}.backup"
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if damage == "one byte":
        data[len(data) // 2] ^= 0x20
    elif damage == "header byte":
        data[data.index(b'"created":"') + 12] ^= 0x01  # a digit of the year, still valid JSON
    elif damage == "truncated":
        data = data[: len(data) - 100]
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    await scratch.recreate()
    if damage == "wrong key":
        cli_env["RAPIDLY_BACKUP_KEY"] = "another passphrase, also 32 characters long"

    # when
    done = run_cli(cli_env, "backup", "restore", backup_id)

    # then
    assert done.returncode == 1 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert await tables(scratch) == 0


# -- making them ---------------------------------------------------------------------------------


async def test_a_dump_that_fails_leaves_no_backup(settings, env, scratch, tmp_path, monkeypatch):
    # given: a table locked by another session, and a dump that waits one second for it
    cli_env = scratch_env(env, scratch, tmp_path / "data")
    migrated(cli_env)
    monkeypatch.setattr(service, "LOCK_WAIT", "1s")
    backups_settings = scratch_settings(settings, scratch, tmp_path / "data")
    async with opened_storage(backups_settings) as storage, contact_table_locked(scratch):
        # when
        with pytest.raises(BackupError, match=r"pg_dump failed \(exit 1\)") as failed:
            await Backups(backups_settings, storage).create()

    # then
    assert "timeout" in str(failed.value)  # pg_dump gave up waiting for the lock
    assert run_cli(cli_env, "backup", "list").stdout == ""


def _owner(scratch):  # type: ignore[no-untyped-def]
    return db.Credentials.from_url(scratch.url)


@contextlib.asynccontextmanager
async def contact_table_locked(scratch):  # type: ignore[no-untyped-def]
    """Another session holds the contact table, as a migration would: a dump waits for it."""
    holder = await _owner(scratch).connect()
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE contact IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await holder.close()


async def test_an_unreachable_storage_fails_the_scheduled_backup_clearly_and_the_schedule_tries_again(
    settings, env, scratch, bucket, s3_endpoint, tmp_path, caplog, monkeypatch
):
    # given: the bucket behind a proxy that refuses every connection
    migrated(scratch_env(env, scratch, tmp_path / "data"))
    proxy = Proxy(s3_endpoint)
    through = await proxy.start()
    proxy.refuse = True
    backups_settings = s3_settings(scratch_settings(settings, scratch, tmp_path / "data"), through, bucket)
    backups_settings = backups_settings.model_copy(update={"backup_every_hours": 24})
    failed_before = metrics.BACKUPS.labels(outcome="failed")._value.get()
    monkeypatch.setattr(service, "FIRST_CHECK_SECONDS", 0)
    monkeypatch.setattr(service, "CHECK_SECONDS", 0.2)
    caplog.set_level(logging.INFO)
    try:
        async with opened_storage(backups_settings) as storage:
            schedule = Schedule(Backups(backups_settings, storage))

            # when: the schedule runs while the storage is out of reach
            running = asyncio.create_task(schedule.run())
            async with asyncio.timeout(60):
                while schedule.state.last_failure is None:
                    await asyncio.sleep(0.05)
            failed_state = (schedule.state.last_error, schedule.state.latest_created)
            report, ok = await describe(backups_settings)

            # ... and then it is back
            proxy.refuse = False
            async with asyncio.timeout(60):
                while schedule.state.latest_created is None:
                    await asyncio.sleep(0.05)
            running.cancel()
            listed = await Backups(backups_settings, storage).all()
    finally:
        await proxy.close()

    # then
    assert failed_state[0] is not None and failed_state[1] is None
    assert metrics.BACKUPS.labels(outcome="failed")._value.get() > failed_before
    assert ok and any("WARNING: the object storage cannot be read" in line for line in report)
    errors = [r for r in caplog.records if r.name == "rapidly.backup.service" and r.levelno == logging.ERROR]
    assert errors and all(r.getMessage().startswith("backup failed (tried again in") for r in errors)
    assert [b.created for b in listed] == [schedule.state.latest_created]


async def test_two_processes_on_one_schedule_make_one_backup(settings, env, scratch, tmp_path):
    # given
    migrated(scratch_env(env, scratch, tmp_path / "data"))
    backups_settings = scratch_settings(settings, scratch, tmp_path / "data", backup_every_hours=24)
    async with opened_storage(backups_settings) as storage:
        schedules = [Schedule(Backups(backups_settings, storage)) for _ in range(2)]

        # when
        made = await asyncio.gather(*(s.run_once() for s in schedules))
        again = await schedules[0].run_once()
        listed = await Backups(backups_settings, storage).all()

    # then
    assert len([m for m in made if m is not None]) == 1
    assert again is None, "not due again for 24 hours"
    assert len(listed) == 1


def test_the_backup_key_is_the_tests_own():
    assert len(BACKUP_KEY) >= 32


# -- all or nothing ----------------------------------------------------------------------------------


async def test_a_restore_that_fails_halfway_leaves_nothing_behind(env, scratch, tmp_path):
    # given: a backup, and a database whose only object is a type named like a table of the backup,
    # so the restore fails after it has created the tables before that one
    cli_env = scratch_env(env, scratch, tmp_path / "data")
    migrated(cli_env)
    backup_id = run_cli(cli_env, "backup", "create").stdout.splitlines()[-1]
    await scratch.recreate()
    conn = await _owner(scratch).connect()
    try:
        await conn.execute("CREATE TYPE public.staff_user AS ENUM ('in', 'the', 'way')")
    finally:
        await conn.close()

    # when
    done = run_cli(cli_env, "backup", "restore", backup_id)

    # then
    assert done.returncode == 1 and "nothing was restored" in done.stderr and "42710" in done.stderr, done.stderr
    assert await tables(scratch) == 0


async def test_an_overwrite_that_fails_keeps_the_database_it_was_to_replace(env, scratch, tmp_path):
    # given: a backup, then a tenant, and a type in the restore's way
    cli_env = scratch_env(env, scratch, tmp_path / "data")
    backup_id = backed_up_then_a_tenant(cli_env, "kept")
    conn = await _owner(scratch).connect()
    try:  # a type where the backup has a table: the drops leave it, and the restore fails on it
        await conn.execute("DROP TABLE public.audit_event CASCADE")
        await conn.execute("CREATE TYPE public.audit_event AS ENUM ('in', 'the', 'way')")
    finally:
        await conn.close()
    before = await tables(scratch)

    # when: the tables are dropped first, in the restore's transaction, which then fails
    done = run_cli(cli_env, "backup", "restore", backup_id, "--overwrite")

    # then
    assert done.returncode == 1 and "nothing was restored" in done.stderr, done.stderr
    assert await tables(scratch) == before
    assert await scratch.fetchval("SELECT slug FROM tenant") == "kept"


#: pg_dump's session, seen from another (a transaction sees pg_stat_activity as it was at its start).
DUMPING = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rapidly-backup'"


async def test_a_backup_cancelled_mid_dump_stops_the_dump_at_once(settings, env, scratch, tmp_path):
    # given: a dump waiting for a table that another session holds
    migrated(scratch_env(env, scratch, tmp_path / "data"))
    backups_settings = scratch_settings(settings, scratch, tmp_path / "data")
    async with opened_storage(backups_settings) as storage, contact_table_locked(scratch):
        making = asyncio.create_task(Backups(backups_settings, storage).create())
        async with asyncio.timeout(30):
            while not await scratch.fetchval(DUMPING):
                await asyncio.sleep(0.05)

        # when
        started = time.monotonic()
        making.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await making
        stopped = time.monotonic() - started
        async with asyncio.timeout(5):  # its session waits for the lock on the server until it gets it
            while [p for p in psutil.Process().children() if p.name() == "pg_dump"]:
                await asyncio.sleep(0.05)
        left = await Backups(backups_settings, storage).store.entries()

    # then
    assert stopped < 1.0
    assert left == []
