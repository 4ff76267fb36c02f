"""Backups that forget within 30 days: make, list, prune, restore, and the schedule `serve` keeps.

A backup is `pg_dump`'s custom format (compressed), sealed with `RAPIDLY_BACKUP_KEY` (`seal.py`) on
its way to a file, so nothing readable touches the disk, and stored under `backups/`. Its ID
is its creation time (UTC) and six random hex digits, so IDs sort by time and expire by it. Beside
the backups, `manifest.json` lists each one's ID, time and size, and nothing else.

A restore checks the whole file (key, every chunk, the end) before it touches the database, loads
it in one transaction, migrates, and replays the erasure journal, so a contact erased since the
backup was taken is erased again before anything is served.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar

from rapidly import db, metrics
from rapidly.backup import pgtools
from rapidly.backup.seal import seal, unseal
from rapidly.backup.store import BackupStore, NoSuchObject, backup_store
from rapidly.config import Settings
from rapidly.erasure.service import ReplayIncomplete
from rapidly.errors import for_the_log
from rapidly.storage import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")

_ID = re.compile(r"([0-9]{8}T[0-9]{6}Z)-[0-9a-f]{6}")
_TIME = "%Y%m%dT%H%M%SZ"
SUFFIX = ".backup"
MANIFEST = "manifest.json"
#: gzip's fastest level: at 100,000 contacts 2.6 times less CPU than pg_dump's default (6) for a
#: file 9 % larger (1.5 s against 3.9 s, 51.6 against 47.5 MiB), and the CPU is what saves compete for.
COMPRESSION = 1
#: How long a dump may wait for a table lock (a migration holding one) before it gives up.
LOCK_WAIT = "60s"
#: One process at a time makes the scheduled backup, however many `serve --workers` there are.
_SCHEDULE_LOCK_ID = 0x52424B50  # "RBKP"
#: The schedule looks whether a backup is due this often; a failed one is tried again then.
CHECK_SECONDS = 600
#: ... and first this long after start, so that a start is not slowed by a dump.
FIRST_CHECK_SECONDS = 60


class BackupError(Exception):
    """A backup operation failed; the message says why and what to do, and holds no data."""


class NoSuchBackup(BackupError):
    pass


@dataclass(frozen=True, slots=True)
class Backup:
    id: str
    created: datetime
    size: int

    @property
    def object_name(self) -> str:
        return self.id + SUFFIX


@dataclass(frozen=True, slots=True)
class Restored:
    backup: Backup
    replayed: int
    finished: int


def created_of(backup_id: str) -> datetime | None:
    """The creation time an ID carries, or None if it is not a backup ID."""
    match = _ID.fullmatch(backup_id)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _TIME).replace(tzinfo=UTC)
    except ValueError:  # digits, but no date (month 13)
        return None


def _new_id(now: datetime) -> str:
    return f"{now.strftime(_TIME)}-{secrets.token_hex(3)}"


class Backups:
    """The backups of one installation. `storage` must be started."""

    def __init__(self, settings: Settings, storage: Storage, store: BackupStore | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.store = store or backup_store(storage, settings.data_dir)

    def passphrase(self) -> str:
        if (key := self.settings.backup_passphrase) is None:
            raise BackupError(
                "RAPIDLY_BACKUP_KEY is not set: set a passphrase of at least 32 characters and keep a copy where "
                "neither the database nor the object storage is (without it no backup can be restored)"
            )
        return key

    # -- make -------------------------------------------------------------------------------------
    async def create(self) -> Backup:
        passphrase = self.passphrase()
        owner = db.owner_credentials(self.settings)
        tools = pgtools.find(await _server_major(owner))
        created = datetime.now(UTC).replace(microsecond=0)
        backup_id = _new_id(created)
        started = time.monotonic()
        async with self.store.staging(backup_id + SUFFIX) as path:
            dumping: list[subprocess.Popen] = []
            try:
                size = await _in_background_thread(
                    _dump_sealed,
                    tools,
                    pgtools.environment(owner, tools.major),
                    path,
                    passphrase,
                    backup_id,
                    created,
                    dumping,
                )
            except asyncio.CancelledError:  # serve is stopping: so does the dump
                for process in dumping:
                    process.kill()
                raise
        backup = Backup(backup_id, created, size)
        await self.write_manifest()
        log.info("backup %s made: %d bytes in %.1f s", backup_id, size, time.monotonic() - started)
        return backup

    # -- look -------------------------------------------------------------------------------------
    async def all(self) -> list[Backup]:
        """The backups in the store, oldest first."""
        found = []
        for entry in await self.store.entries():
            backup_id = entry.name.removesuffix(SUFFIX)
            if entry.name.endswith(SUFFIX) and (created := created_of(backup_id)) is not None:
                found.append(Backup(backup_id, created, entry.size))
        return sorted(found, key=lambda b: (b.created, b.id))

    async def latest(self) -> Backup | None:
        backups = await self.all()
        return backups[-1] if backups else None

    async def write_manifest(self) -> None:
        manifest = {
            "backups": [
                {"id": b.id, "created": b.created.isoformat().replace("+00:00", "Z"), "bytes": b.size}
                for b in await self.all()
            ],
            "retentionDays": self.settings.backup_retention_days,
        }
        await self.store.write(MANIFEST, json.dumps(manifest, indent=1).encode())

    # -- forget -----------------------------------------------------------------------------------
    async def prune(self, now: datetime | None = None) -> list[str]:
        """Delete every backup older than the retention, with every stored version; their IDs. Its
        age is by its ID's time or its oldest version's, whichever is older (a clock that was wrong
        when the ID was made cannot keep a backup forever)."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(days=self.settings.backup_retention_days)
        pruned = []
        for name, written in sorted((await self.store.stored()).items()):
            backup_id = name.removesuffix(SUFFIX)
            created = created_of(backup_id)
            if name.endswith(SUFFIX) and created is not None and min(created, written) < cutoff:
                await self.store.remove(name)
                pruned.append(backup_id)
        await self.store.abort_unfinished(now - timedelta(days=1))
        if pruned:  # else the manifest is as it was: no rewrite (and no new version) every check
            await self.write_manifest()
            log.info("backups pruned: %d older than %d days", len(pruned), self.settings.backup_retention_days)
        return pruned

    # -- restore ----------------------------------------------------------------------------------
    async def restore(self, backup_id: str, *, overwrite: bool = False) -> Restored:
        """Into the configured database: empty, or emptied first with `overwrite`."""
        passphrase = self.passphrase()
        created = created_of(backup_id)
        if created is None:
            raise NoSuchBackup(f"{backup_id[:80]!r} is not a backup ID (`rapidly backup list` shows them)")
        owner = db.owner_credentials(self.settings)
        server_major = await _server_major(owner)
        tools = pgtools.find(server_major)
        with tempfile.TemporaryDirectory(prefix="rapidly-restore-") as work:
            path = Path(work) / (backup_id + SUFFIX)
            try:
                await self.store.download(backup_id + SUFFIX, path)
            except NoSuchObject:
                raise NoSuchBackup(f"there is no backup {backup_id} (`rapidly backup list` shows them)") from None
            await asyncio.to_thread(_check_sealed, path, passphrase, backup_id)
            preamble = await _prepare_target(owner, overwrite)
            await asyncio.to_thread(
                _restore_sealed,
                tools,
                server_major,
                pgtools.environment(owner, tools.major),
                path,
                passphrase,
                backup_id,
                preamble,
            )
            size = path.stat().st_size
        await db.migrate(self.settings)  # a backup of an older release, and the app role's grants
        try:
            replayed, finished = await _replay_journal(self.settings, self.storage)
        except ReplayIncomplete as exc:
            raise BackupError(
                f"backup {backup_id} restored, but {exc}: serve refuses to start until `rapidly retention run` succeeds"
            ) from None
        log.info("backup %s restored; %d contacts erased again from the journal", backup_id, replayed)
        return Restored(Backup(backup_id, created, size), replayed, finished)


async def _server_major(owner: db.Credentials) -> int:
    conn = await owner.connect()
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def _dump_sealed(
    tools: pgtools.Tools,
    env: dict[str, str],
    path: Path,
    passphrase: str,
    backup_id: str,
    created: datetime,
    started: list[subprocess.Popen],
) -> int:
    """`pg_dump` (one consistent snapshot, compressed) straight into a sealed file; its size. The
    process goes into `started`, for the caller to stop."""
    # --enable-row-security: an owner that is not a superuser reads every row through its policy
    # (`database_owner`, migration 0008); pg_dump's default (row_security off) would refuse it.
    command = [
        tools["pg_dump"],
        "--format=custom",
        f"--compress={COMPRESSION}",
        "--no-password",
        "--enable-row-security",
    ]
    command.append(f"--lock-wait-timeout={LOCK_WAIT}")
    with tempfile.TemporaryFile() as errors, path.open("xb") as file:
        sink = _Flushing(file)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        started.append(process)
        _yield_cpu(process.pid)
        assert process.stdout is not None
        try:
            size = seal(_Paced(process.stdout), sink, passphrase, backup_id, created.isoformat())
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            raise BackupError(f"pg_dump failed (exit {code}): {pgtools.last_error(errors.read())}")
    return size


class _Paced:
    """A pipe read at most `RATE` bytes a second. The dump then waits for it, and so does the database
    process that feeds the dump: a backup takes longer, and saves keep the CPU they need."""

    RATE = 5 * 1024 * 1024

    def __init__(self, pipe: BinaryIO) -> None:
        self.pipe, self.read_bytes, self.started = pipe, 0, time.monotonic()

    def read(self, size: int) -> bytes:
        ahead = self.read_bytes / self.RATE - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)
        data = self.pipe.read(size)
        self.read_bytes += len(data)
        return data


class _Flushing:
    """A file that is flushed to the disk every few megabytes as it is written: one flush of the
    whole backup at the end would hold up the database's own (its WAL) on the same disk."""

    EVERY = 8 * 1024 * 1024

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.unflushed = file, 0

    def write(self, data: bytes) -> int:
        written = self.file.write(data)
        self.unflushed += written
        if self.unflushed >= self.EVERY:
            self.file.flush()
            os.fdatasync(self.file.fileno())
            self.unflushed = 0
        return written


#: Niceness of the dump and its sealing: requests come first on a machine that has few cores.
BACKGROUND_NICENESS = 10


def _yield_cpu(pid: int = 0) -> None:
    """Lower a process's (or, with 0, the calling thread's) CPU priority; where not allowed, nothing."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, pid or threading.get_native_id(), BACKGROUND_NICENESS)


async def _in_background_thread(work: Callable[..., T], *args: object) -> T:
    """`work` in a thread of its own at a lower CPU priority (a pooled thread would keep the priority)."""

    def run() -> T:
        _yield_cpu()
        return work(*args)

    thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rapidly-backup")
    try:
        return await asyncio.get_running_loop().run_in_executor(thread, run)
    finally:
        thread.shutdown(wait=False)  # cancelled: the loop must not wait for the thread


def _check_sealed(path: Path, passphrase: str, backup_id: str) -> None:
    with path.open("rb") as source:
        unseal(source, None, passphrase, backup_id)


def _restore_sealed(
    tools: pgtools.Tools,
    server_major: int,
    env: dict[str, str],
    path: Path,
    passphrase: str,
    backup_id: str,
    preamble: bytes,
) -> None:
    """All or nothing: `pg_restore` turns the archive into SQL, and `psql` runs `BEGIN`, the
    `preamble` (what `--overwrite` drops), the script, the cross-tenant functions' EXECUTE taken
    from PUBLIC, and `COMMIT` only once pg_restore has
    finished well; an input that ends without it is rolled back. (psql's `--single-transaction`
    does not apply to standard input, and pg_restore's own fails on servers before 17.)"""
    restore_command = [tools["pg_restore"], "--no-owner", "--no-acl", "--file=-"]
    # Errors by their SQLSTATE and without context: psql would otherwise quote the row's values.
    quiet = ["--set=ON_ERROR_STOP=1", "--set=VERBOSITY=sqlstate", "--set=SHOW_CONTEXT=never"]
    load_command = [tools["psql"], "--no-psqlrc", "--quiet", *quiet]
    with (
        tempfile.TemporaryFile() as restore_errors,
        tempfile.TemporaryFile() as load_errors,
        path.open("rb") as source,
    ):
        load = subprocess.Popen(
            load_command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=load_errors, env=env
        )
        restore = subprocess.Popen(
            restore_command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=restore_errors, env=env
        )
        assert restore.stdin is not None and restore.stdout is not None and load.stdin is not None
        copier = threading.Thread(target=_pass_sql, args=(restore.stdout, load.stdin, server_major < 17))
        try:
            with contextlib.suppress(BrokenPipeError):  # psql stopped: its exit code says why
                load.stdin.write(b"BEGIN;\n" + preamble)
            copier.start()
            try:
                unseal(source, restore.stdin, passphrase, backup_id)
            except BrokenPipeError:
                pass  # pg_restore stopped reading: its exit code says why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    restore.stdin.close()
                copier.join()
            restored = restore.wait()
            with contextlib.suppress(BrokenPipeError):
                if restored == 0:
                    load.stdin.write(_REVOKE_CROSS_TENANT + b"COMMIT;\n")
                load.stdin.close()
            loaded = load.wait()
        except BaseException:
            load.kill()  # mid-input: the transaction is rolled back
            restore.kill()
            raise
        if loaded != 0:
            load_errors.seek(0)
            errors = load_errors.read()
            if b"55P03" in errors:  # lock_not_available
                raise BackupError("the database is in use: stop every `rapidly` process that uses it first")
            raise BackupError(f"psql failed (exit {loaded}), nothing was restored: {pgtools.last_error(errors)}")
        if restored != 0:
            restore_errors.seek(0)
            raise BackupError(
                f"pg_restore failed (exit {restored}), nothing was restored: "
                f"{pgtools.last_error(restore_errors.read())}"
            )


#: Lines of a script's preamble that a server older than PostgreSQL 17 refuses.
_NEWER_SETTINGS = (b"SET transaction_timeout = 0;\n",)
#: What a script's preamble is made of: settings, comments, psql's `\restrict`. The first other line
#: ends it (data never comes before it).
_PREAMBLE = (b"SET ", b"SELECT pg_catalog.set_config(", b"--", b"\\restrict ", b"\n")


def _pass_sql(script: BinaryIO, sink: BinaryIO, for_older_server: bool) -> None:
    """Copy pg_restore's script to psql, without the preamble lines an older server would refuse.
    The sink stays open: the caller ends it only once pg_restore has succeeded."""
    try:
        while line := script.readline():
            if not line.startswith(_PREAMBLE):
                sink.write(line)
                break
            if not (for_older_server and line in _NEWER_SETTINGS):
                sink.write(line)
        while chunk := script.read(1024 * 1024):
            sink.write(chunk)
        sink.flush()
    except BrokenPipeError:
        pass  # psql stopped: its exit code says why
    finally:
        script.close()


#: `--no-acl` brings functions back with PostgreSQL's default EXECUTE for PUBLIC: the cross-tenant
#: ones (SECURITY DEFINER, migration 0008) lose it in the same transaction, before anyone can call
#: them (`migrate`, after the restore, grants them to the app role again).
_REVOKE_CROSS_TENANT = b"""DO $$ DECLARE f regprocedure; BEGIN
FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosecdef LOOP
EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f); END LOOP; END $$;
"""

#: Relations a database holds in `public`; Rapidly creates nothing anywhere else.
_RELATIONS = """
SELECT c.relname, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
"""
#: Functions of `public` that are not an extension's: the policies' and cross-tenant ones (0008).
_FUNCTIONS = """
SELECT format('public.%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)) AS signature FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
"""
_DROP = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}


async def _prepare_target(owner: db.Credentials, overwrite: bool) -> bytes:
    """Refuse a database that holds anything, unless told to empty it: then the statements that drop
    every relation of `public`, run in the restore's own transaction (a failed restore keeps them)."""
    conn = await owner.connect()
    try:
        relations = await conn.fetch(_RELATIONS)
        functions = await conn.fetch(_FUNCTIONS)
    finally:
        await conn.close()
    if not relations:
        return b""
    if not overwrite:
        raise BackupError(
            f"the database {owner.database!r} is not empty ({len(relations)} tables and such): restore into a "
            "new, empty database, or pass --overwrite to drop everything in it first"
        )
    # Running processes hold locks: fail rather than wait for them (or hold them up).
    drops = ["SET LOCAL lock_timeout = '10s';"]
    drops += [f"DROP {_DROP[r['relkind']]} IF EXISTS public.{db.quote_ident(r['relname'])} CASCADE;" for r in relations]
    drops += [f"DROP FUNCTION IF EXISTS {f['signature']} CASCADE;" for f in functions]
    return "\n".join([*drops, ""]).encode()


async def _replay_journal(settings: Settings, storage: Storage) -> tuple[int, int]:
    """Erase again every journaled contact the restored database holds; finish pending erasures."""
    from rapidly import realtime
    from rapidly.erasure.stores import erasure_service

    await db.init_orm(settings)
    try:
        erasure = erasure_service(storage, settings)
        return await erasure.replay(), await erasure.finish_pending()
    finally:
        await realtime.announcer.drain()
        await db.close_orm()


# -- the schedule in `serve` ------------------------------------------------------------------------
@dataclass
class ScheduleState:
    """What the schedule last saw, for /metrics and the log (IDs, times and counts only)."""

    latest_created: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None


class Schedule:
    """`serve`'s backups: one when the newest is `backup_every_hours` old, then a prune."""

    def __init__(self, backups: Backups) -> None:
        self.backups = backups
        self.settings = backups.settings
        self.state = ScheduleState()

    async def run(self) -> None:
        await asyncio.sleep(FIRST_CHECK_SECONDS)
        while True:
            await self.run_once()
            await asyncio.sleep(CHECK_SECONDS)

    async def run_once(self) -> Backup | None:
        """Make a backup if one is due and no other process is making it, and prune. Never raises."""
        try:
            async with _schedule_lock(self.settings) as held:
                latest = await self.backups.latest()  # in every process, for /metrics
                self._saw(latest)
                if not held:
                    return None
                made = None
                if self._due(latest):  # read under the lock: another process may have just made one
                    made = await self.backups.create()
                    metrics.BACKUPS.labels(outcome="ok").inc()
                    self._saw(made)
                await self.backups.prune()
                self.state.last_error = None
                return made
        except Exception as exc:
            self.state.last_failure = datetime.now(UTC)
            self.state.last_error = exc.__class__.__name__
            metrics.BACKUPS.labels(outcome="failed").inc()
            metrics.BACKUP_FAILED.set(self.state.last_failure.timestamp())
            message = str(exc) if isinstance(exc, BackupError | pgtools.ToolMissing) else for_the_log(exc)
            log.error("backup failed (tried again in %d minutes): %s", CHECK_SECONDS // 60, message)
            return None

    def _saw(self, latest: Backup | None) -> None:
        if latest is not None:
            self.state.latest_created = latest.created
            metrics.BACKUP_LAST.set(latest.created.timestamp())

    def _due(self, latest: Backup | None) -> bool:
        if latest is None:
            return True
        return datetime.now(UTC) - latest.created >= timedelta(hours=self.settings.backup_every_hours)


@contextlib.asynccontextmanager
async def _schedule_lock(settings: Settings) -> AsyncIterator[bool]:
    """A session advisory lock on a connection of its own (held for minutes: not a pool's)."""
    conn = await db.app_credentials(settings, db.owner_credentials(settings)).connect()
    try:
        yield await conn.fetchval("SELECT pg_try_advisory_lock($1)", _SCHEDULE_LOCK_ID)
    finally:
        await conn.close()  # releases the lock with the session
