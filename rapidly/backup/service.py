"""Backups that forget within 30 days: make, list, prune, restore, and the schedule `serve` keeps.

A backup is `pg_dump`'s custom format (compressed), sealed with `RAPIDLY_BACKUP_KEY` (`seal.py`) on
its way to a file, so nothing readable touches the disk, and stored under `backups/`. Its ID
is its creation time (UTC) and six random hex digits, so IDs sort by time and expire by it. Beside
the backups, `manifest.json` lists each one's ID, time and size, and each key snapshot's, and
nothing else.

Contacts' data keys (table `contact_key`) are not in the dump: erasing a contact deletes its key,
and a 30-day dump holding it would let the root key open everything of the contact for 30 days.
Beside each dump, made right after it, a *key snapshot* (`<ID>.keys`, sealed the same way) holds
every contact's wrapped key as of that moment; snapshots are deleted after 7 days
(`KEY_SNAPSHOT_DAYS`). So no copy of an erased contact's key outlives the erasure by more than 7 days,
and the dumps, kept 30, hold ciphertext that nothing can open once the key is gone.

A restore checks the whole file (key, every chunk, the end) before it touches the database, loads
it in one transaction, migrates, loads the keys of the contacts it brought back from the *newest*
key snapshot (a contact erased since that backup has no key there), erases again every contact
that holds sealed data and has no key (its key was shredded), and replays the erasure journal, so
a contact erased since the backup was taken is erased again before anything is served.
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
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar

import asyncpg

from rapidly import db, metrics, telemetry
from rapidly.backup import pgtools
from rapidly.backup.seal import seal, unseal
from rapidly.backup.store import BackupStore, Entry, NoSuchObject, backup_store
from rapidly.config import Settings
from rapidly.erasure.service import ReplayIncomplete
from rapidly.errors import for_the_log
from rapidly.storage import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")

_ID = re.compile(r"([0-9]{8}T[0-9]{6}Z)-[0-9a-f]{6}")
_TIME = "%Y%m%dT%H%M%SZ"
SUFFIX = ".backup"
#: A key snapshot is stored as its backup's ID and this (`backup list` and `all()` see `.backup` only).
KEYS_SUFFIX = ".keys"
#: Key snapshots are deleted, with every stored version, this many days after their backup's ID time
#: whatever the backups' own retention: the longest that a copy of an erased contact's key may outlive
#: the erasure (issue 27). Not a setting: a longer one would break that promise, and a shorter one
#: leaves a restore without keys when backups stop for a while (it uses the newest snapshot, so one
#: within the last 7 days restores every backup, of any age). `serve` prunes every CHECK_SECONDS.
KEY_SNAPSHOT_DAYS = 7
#: The table of contacts' data keys: its data is left out of every dump and kept in key snapshots.
KEYS_TABLE = "public.contact_key"
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
class KeySnapshot:
    """The contacts' wrapped data keys as they were just after backup `id` was dumped."""

    id: str
    created: datetime
    size: int

    @property
    def object_name(self) -> str:
        return self.id + KEYS_SUFFIX


@dataclass(frozen=True, slots=True)
class Restored:
    backup: Backup
    #: Contacts erased again by the journal replay (erased since the backup was made).
    replayed: int
    finished: int
    #: Contact keys loaded from the newest key snapshot.
    keys: int = 0
    #: Contacts erased again because their key was shredded (erased after the backup was made).
    keyless: int = 0


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
    """The time to the second, then its millisecond in three hex digits and three random ones: IDs
    made within one second still sort as they were made (`backup list` shows the newest last)."""
    return f"{now.strftime(_TIME)}-{now.microsecond // 1000:03x}{secrets.token_hex(2)[:3]}"


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
    @telemetry.traced("create backup")
    async def create(self) -> Backup:
        passphrase = self.passphrase()
        owner = db.owner_credentials(self.settings)
        tools = pgtools.find(await _server_major(owner))
        now = datetime.now(UTC)
        backup_id, created = _new_id(now), now.replace(microsecond=0)
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
            # Inside the dump's block: the dump is stored only once its key snapshot is, so no backup
            # is ever without a snapshot at least as new as itself.
            keys_size = await self._snapshot_keys(owner, backup_id, passphrase)
        backup = Backup(backup_id, created, size)
        telemetry.current().set_attribute("rapidly.backup.bytes", size)
        await self.write_manifest()
        log.info(
            "backup %s made: %d bytes in %.1f s (key snapshot: %d bytes)",
            backup_id,
            size,
            time.monotonic() - started,
            keys_size,
        )
        return backup

    async def _snapshot_keys(self, owner: db.Credentials, backup_id: str, passphrase: str) -> int:
        """Every contact's wrapped key as of now (after the dump), sealed into `<ID>.keys`; its size.
        Read as the database's owner, who sees every tenant's rows (its `database_owner` policy)."""
        name = backup_id + KEYS_SUFFIX
        made = datetime.now(UTC).replace(microsecond=0)
        async with self.store.staging(name) as path:
            conn = await owner.connect()
            try:
                # A database not yet migrated to the keys (0010) has none: its snapshot is empty.
                rows = _KEY_ROWS if await conn.fetchval("SELECT to_regclass($1)", KEYS_TABLE) else _NO_KEY_ROWS
                return await _copy_out_sealed(conn, rows, path, passphrase, name, made)
            finally:
                await conn.close()

    # -- look -------------------------------------------------------------------------------------
    async def all(self) -> list[Backup]:
        """The backups in the store, oldest first."""
        found = [(Backup(i, created, e.size), e) for i, created, e in _named(await self.store.entries(), SUFFIX)]
        return [backup for backup, _ in sorted(found, key=lambda f: (f[0].created, f[0].id))]

    async def key_snapshots(self) -> list[KeySnapshot]:
        """The key snapshots in the store, oldest first: two of one second by when they were written."""
        found = [(KeySnapshot(i, c, e.size), e) for i, c, e in _named(await self.store.entries(), KEYS_SUFFIX)]
        return [snapshot for snapshot, _ in sorted(found, key=lambda f: (f[0].created, f[1].modified, f[0].id))]

    async def latest(self) -> Backup | None:
        backups = await self.all()
        return backups[-1] if backups else None

    async def write_manifest(self) -> None:
        def listed(items: list[Backup] | list[KeySnapshot]) -> list[dict[str, object]]:
            return [
                {"id": b.id, "created": b.created.isoformat().replace("+00:00", "Z"), "bytes": b.size} for b in items
            ]

        # The snapshots are listed too: whoever reads the manifest to learn what the store holds, and
        # for how long, is told of every object in it.
        manifest = {
            "backups": listed(await self.all()),
            "retentionDays": self.settings.backup_retention_days,
            "keySnapshots": listed(await self.key_snapshots()),
            "keySnapshotDays": KEY_SNAPSHOT_DAYS,
        }
        await self.store.write(MANIFEST, json.dumps(manifest, indent=1).encode())

    # -- forget -----------------------------------------------------------------------------------
    @telemetry.traced("prune backups")
    async def prune(self, now: datetime | None = None) -> list[str]:
        """Delete every backup older than the retention, and every key snapshot older than
        KEY_SNAPSHOT_DAYS, with every stored version; the backups' IDs. Its age is by its ID's time
        or its oldest version's, whichever is older (a clock that was wrong when the ID was made
        cannot keep a backup forever)."""
        now = now or datetime.now(UTC)
        cutoffs = {
            SUFFIX: now - timedelta(days=self.settings.backup_retention_days),
            KEYS_SUFFIX: now - timedelta(days=KEY_SNAPSHOT_DAYS),
        }
        pruned: dict[str, list[str]] = {SUFFIX: [], KEYS_SUFFIX: []}
        for name, written in sorted((await self.store.stored()).items()):
            for suffix, cutoff in cutoffs.items():
                if not name.endswith(suffix):
                    continue
                created = created_of(name.removesuffix(suffix))
                if created is not None and min(created, written) < cutoff:
                    await self.store.remove(name)
                    pruned[suffix].append(name.removesuffix(suffix))
        await self.store.abort_unfinished(now - timedelta(days=1))
        telemetry.current().set_attribute("rapidly.backup.pruned", len(pruned[SUFFIX]))
        telemetry.current().set_attribute("rapidly.backup.key_snapshots_pruned", len(pruned[KEYS_SUFFIX]))
        if pruned[SUFFIX] or pruned[KEYS_SUFFIX]:  # else the manifest is as it was: no rewrite (and no new version)
            await self.write_manifest()
        if pruned[SUFFIX]:
            log.info("backups pruned: %d older than %d days", len(pruned[SUFFIX]), self.settings.backup_retention_days)
        if pruned[KEYS_SUFFIX]:
            log.info("key snapshots pruned: %d older than %d days", len(pruned[KEYS_SUFFIX]), KEY_SNAPSHOT_DAYS)
        return pruned[SUFFIX]

    # -- restore ----------------------------------------------------------------------------------
    @telemetry.traced("restore backup")
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
            # The newest snapshot, not the backup's own: a contact erased since this backup was made
            # must find no key (and one made since is not in the dump: its key is skipped).
            snapshots = await self.key_snapshots()
            snapshot = snapshots[-1] if snapshots else None
            keys_path = Path(work) / ("keys" + KEYS_SUFFIX)
            if snapshot is not None:
                await asyncio.to_thread(_check_sealed, path, passphrase, backup_id)
                await self._fetch_key_snapshot(snapshot, keys_path, passphrase)
                if snapshot.created < created:
                    log.warning(
                        "the newest key snapshot (%s) is older than backup %s: contacts made between them have no key",
                        snapshot.id,
                        backup_id,
                    )
            elif await asyncio.to_thread(
                _check_sealed_for_contacts, tools, pgtools.environment(owner, tools.major), path, passphrase, backup_id
            ):
                raise BackupError(
                    f"there is no key snapshot (*{KEYS_SUFFIX}, kept {KEY_SNAPSHOT_DAYS} days) in "
                    f"{self.store.location}, and without the contacts' keys every contact of backup {backup_id} "
                    "would be lost: if the database still exists, make a backup of it first (`rapidly backup create`)"
                )
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
                loaded = await _load_keys(owner, keys_path, passphrase, snapshot.object_name) if snapshot else 0
            except asyncpg.PostgresError as exc:
                raise BackupError(
                    f"backup {backup_id} restored, but the contacts' keys could not be loaded ({exc.sqlstate}): "
                    "restore it again with --overwrite before serving"
                ) from None
        keyless = await _keyless_contacts(owner)
        try:
            erased, replayed, finished = await _erase_again(self.settings, self.storage, keyless)
        except ReplayIncomplete as exc:
            raise BackupError(
                f"backup {backup_id} restored, but {exc}: serve refuses to start until `rapidly retention run` succeeds"
            ) from None
        if erased < len(keyless):
            raise BackupError(
                f"backup {backup_id} restored, but {len(keyless) - erased} of {len(keyless)} contacts whose keys are "
                "gone could not be erased again (see the log): restore it again with --overwrite before serving"
            )
        log.info(
            "backup %s restored with %d contact keys; %d contacts erased again as their keys are gone, %d from the "
            "journal",
            backup_id,
            loaded,
            erased,
            replayed,
        )
        return Restored(Backup(backup_id, created, size), replayed, finished, loaded, erased)

    async def _fetch_key_snapshot(self, snapshot: KeySnapshot, path: Path, passphrase: str) -> None:
        """The snapshot downloaded to `path` and checked whole, as a backup is."""
        try:
            await self.store.download(snapshot.object_name, path)
        except NoSuchObject:
            raise BackupError(f"key snapshot {snapshot.id} was deleted meanwhile: restore again") from None
        await asyncio.to_thread(_check_sealed, path, passphrase, snapshot.object_name)


def _named(entries: list[Entry], suffix: str) -> list[tuple[str, datetime, Entry]]:
    """(ID, its time, the entry) of the store's objects named as an ID and `suffix`."""
    found = []
    for entry in entries:
        found_id = entry.name.removesuffix(suffix)
        if entry.name.endswith(suffix) and (created := created_of(found_id)) is not None:
            found.append((found_id, created, entry))
    return found


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
    # --exclude-table-data: the contacts' keys go into the key snapshot, kept 7 days, not into a dump
    # kept 30 (the table's definition stays).
    command = [
        tools["pg_dump"],
        "--format=custom",
        f"--compress={COMPRESSION}",
        "--no-password",
        "--enable-row-security",
        f"--exclude-table-data={KEYS_TABLE}",
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


def _check_sealed_for_contacts(
    tools: pgtools.Tools, env: dict[str, str], path: Path, passphrase: str, backup_id: str
) -> bool:
    """Check the whole file as `_check_sealed` does, and tell whether its dump holds any contact:
    `pg_restore` prints the contact table's data (and nothing else) as SQL, which is read to its end."""
    command = [tools["pg_restore"], "--data-only", "--schema=public", "--table=contact", "--file=-"]
    holds: list[bool] = []
    with tempfile.TemporaryFile() as errors, path.open("rb") as source:
        # No connection: pg_restore only turns the archive into SQL.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env)
        assert process.stdin is not None and process.stdout is not None
        reader = threading.Thread(target=_scan_for_rows, args=(process.stdout, holds))
        reader.start()
        try:
            try:
                unseal(source, process.stdin, passphrase, backup_id)
            except BrokenPipeError:
                pass  # pg_restore stopped reading: its exit code says why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
                reader.join()
            code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        if code != 0:
            errors.seek(0)
            raise BackupError(
                f"pg_restore failed (exit {code}) reading backup {backup_id}: {pgtools.last_error(errors.read())}"
            )
    return bool(holds)


def _scan_for_rows(script: BinaryIO, holds: list[bool]) -> None:
    """Read a data-only script to its end; `holds` gets True if a COPY block has a row in it."""
    try:
        in_copy = False
        for line in script:
            if in_copy and line != b"\\.\n":
                holds.append(True)
            in_copy = line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;")
    finally:
        script.close()


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


# -- contacts' keys ---------------------------------------------------------------------------------
#: A key snapshot's rows, in COPY's binary format (it ends with a trailer: a cut-off copy does not load).
_KEY_ROWS = "SELECT tenant_id, contact_id, wrapped FROM contact_key"
_NO_KEY_ROWS = "SELECT NULL::uuid AS tenant_id, NULL::uuid AS contact_id, NULL::bytea AS wrapped WHERE false"
_SNAPSHOT_TABLE = "snapshot_key"
_CREATE_SNAPSHOT_TABLE = (
    f"CREATE TEMPORARY TABLE {_SNAPSHOT_TABLE} (tenant_id uuid NOT NULL, contact_id uuid NOT NULL, "
    "wrapped bytea NOT NULL) ON COMMIT DROP"
)
#: The snapshot's keys of the contacts the restored database holds. Only where the tenant's key came
#: back too: a tenant that had none when the dump was made had no contact with a key then, so nothing
#: of it in the dump is sealed, and a contact key wrapped by a tenant key that is not there would never open.
_LOAD_KEYS = f"""
INSERT INTO contact_key (id, tenant_id, contact_id, wrapped)
SELECT gen_random_uuid(), s.tenant_id, s.contact_id, s.wrapped FROM {_SNAPSHOT_TABLE} s
WHERE EXISTS (SELECT 1 FROM contact c WHERE c.id = s.contact_id AND c.tenant_id = s.tenant_id)
  AND EXISTS (SELECT 1 FROM tenant_key t WHERE t.tenant_id = s.tenant_id)
ON CONFLICT (contact_id) DO NOTHING
"""  # noqa: S608
#: The contacts of a restored database whose key was shredded: they hold something sealed under a
#: key that is in no snapshot, because an erasure deleted it after the backup was made. They are
#: erased again. Only sealed data counts as a sign: a contact from before encryption has plain
#: values and no key until `rapidly keys encrypt-existing` gives it one, and must come back. Media
#: rows are no sign: a photo stored before encryption is a plain object with a row like any other.
#: (Once every store is sealed and every contact has a key, this becomes "every contact without a key".)
KEYLESS_CONTACTS_ARE_SHREDDED = """
SELECT c.tenant_id, c.id FROM contact c
WHERE NOT EXISTS (SELECT 1 FROM contact_key k WHERE k.contact_id = c.id)
  AND (EXISTS (SELECT 1 FROM chat_message m
               WHERE m.tenant_id = c.tenant_id AND m.contact_id = c.id AND m.sealed_body IS NOT NULL)
       OR EXISTS (SELECT 1 FROM field_value v
                  WHERE v.tenant_id = c.tenant_id AND v.contact_id = c.id AND v.sealed IS NOT NULL)
       OR EXISTS (SELECT 1 FROM media p WHERE p.tenant_id = c.tenant_id AND p.contact_id = c.id AND p.sealed))
"""


async def _copy_out_sealed(
    conn: asyncpg.Connection, query: str, path: Path, passphrase: str, name: str, made: datetime
) -> int:
    """`query`'s rows (COPY's binary format) sealed straight into a new file at `path`; its size. The
    rows pass through a pipe, so nothing of them is written unsealed."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as rows_out, os.fdopen(write_end, "wb") as rows_in:
        sealing = asyncio.ensure_future(_in_background_thread(_seal_into, rows_out, path, passphrase, name, made))
        try:
            await conn.copy_from_query(query, output=rows_in, format="binary")
        finally:
            with contextlib.suppress(BrokenPipeError):
                rows_in.close()  # the end of the rows: the sealing ends too (a failed copy's file is discarded)
            size = await sealing
    return size


def _seal_into(source: BinaryIO, path: Path, passphrase: str, name: str, made: datetime) -> int:
    try:
        with path.open("xb") as file:
            return seal(source, _Flushing(file), passphrase, name, made.isoformat())
    finally:
        source.close()  # a writer still writing gets a broken pipe rather than waiting forever


async def _load_keys(owner: db.Credentials, path: Path, passphrase: str, name: str) -> int:
    """The key snapshot's keys of the contacts the restored database holds; how many were added."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as rows_out, os.fdopen(write_end, "wb") as rows_in:
        unsealing = asyncio.ensure_future(asyncio.to_thread(_unseal_into, path, rows_in, passphrase, name))
        try:
            conn = await owner.connect()
            try:
                async with conn.transaction():
                    await conn.execute(_CREATE_SNAPSHOT_TABLE)
                    await conn.copy_to_table(_SNAPSHOT_TABLE, source=rows_out, format="binary")
                    added = await conn.execute(_LOAD_KEYS)
            finally:
                await conn.close()
        finally:
            rows_out.close()  # the unsealing stops, if the copy stopped first
            await unsealing
    return int(added.split()[-1])  # "INSERT 0 n"


def _unseal_into(path: Path, sink: BinaryIO, passphrase: str, name: str) -> None:
    try:
        with path.open("rb") as source:
            unseal(source, sink, passphrase, name)
    except BrokenPipeError:
        pass  # the copy stopped reading: it says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


async def _keyless_contacts(owner: db.Credentials) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, contact) of every contact whose key was shredded (`KEYLESS_CONTACTS_ARE_SHREDDED`)."""
    conn = await owner.connect()
    try:
        return [(row["tenant_id"], row["id"]) for row in await conn.fetch(KEYLESS_CONTACTS_ARE_SHREDDED)]
    finally:
        await conn.close()


async def _erase_again(
    settings: Settings, storage: Storage, keyless: list[tuple[uuid.UUID, uuid.UUID]]
) -> tuple[int, int, int]:
    """Erase again every contact whose key is gone, then every journaled contact the restored
    database holds, and finish pending erasures: (keyless erased, replayed, finished)."""
    from rapidly import realtime
    from rapidly.erasure.models import Requester
    from rapidly.erasure.stores import erasure_service

    await db.init_orm(settings)
    try:
        erasure = erasure_service(storage, settings)
        erased = 0
        for tenant_id, contact_id in keyless:
            try:
                # Who asked is not known here (the journal may say, and its replay finds them gone):
                # recorded as the journal's replay records an entry it cannot read.
                await erasure.erase(tenant_id, contact_id, Requester.RETENTION)
                erased += 1
            except Exception as exc:
                log.error("erasing a contact whose key is gone failed: %s", for_the_log(exc))
        return erased, await erasure.replay(), await erasure.finish_pending()
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
