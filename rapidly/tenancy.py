"""Whose rows a statement may see: the tenant set for its transaction, enforced by PostgreSQL.

Every table with `tenant_id` has row-level security enabled and forced (migration 0008): a row is
visible, and may be written, only while the transaction's `rapidly.tenant` setting names its
tenant. Unset, nothing is visible and nothing can be written.

Here the app decides which tenant that is. A request (or WebSocket) gets a scope when it starts,
empty; the first credential or form it resolves binds it to that tenant, and it can never be bound
to another. A job names its tenant with `as_tenant()`. The ORM's client below then runs every
statement of the task inside a transaction that begins by setting the tenant, in the same round
trip as its `BEGIN`, and ends it; the setting is transaction-local, so a pooled connection never
carries it beyond the transaction, whatever happens to the request (an error, a cancellation: the
transaction is rolled back, or the connection closed).

Work that spans tenants goes tenant by tenant (`rapidly.db.tenant_ids`), or through the functions
of migration 0008 that return IDs only (its `CROSS_TENANT`). The hottest statement sets its tenant
itself, in its one round trip (`rapidly.db.Routine`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg
from tortoise import connections
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import NestedTransactionContext, PoolConnectionWrapper, TransactionContextPooled
from tortoise.connection import get_connections
from tortoise.exceptions import ConfigurationError, TransactionManagementError

from rapidly.errors import AnotherTenant

#: The transaction-local setting the policies read (migration 0008's `rapidly_tenant()`).
SETTING = "rapidly.tenant"
#: The scope of rows that belong to no tenant: rate limits counted before a tenant is known.
PLATFORM = uuid.UUID(int=0)


class TenantMismatch(RuntimeError):
    """A job's scope (`as_tenant`), or a transaction begun as one tenant, was asked to work for
    another: a bug, never an input error."""


class _Scope:
    __slots__ = ("request", "tenant_id")

    def __init__(self, tenant_id: uuid.UUID | None = None, *, request: bool = False) -> None:
        self.tenant_id = tenant_id
        self.request = request


_scope: ContextVar[_Scope | None] = ContextVar("rapidly_tenant_scope", default=None)


def begin_request() -> None:
    """An empty scope for the request (or WebSocket) being served; `bind()` fills it."""
    _scope.set(_Scope(request=True))


def _bind(scope: _Scope, tenant_id: uuid.UUID) -> None:
    """Bind a request's scope (shared by every task of the request: a resolver's `gather`) to its
    first tenant; another tenant afterwards raises `AnotherTenant`, in a job's `TenantMismatch`."""
    tenant_id = _checked(tenant_id)
    if scope.tenant_id is None:
        _check_transaction(tenant_id)
        scope.tenant_id = tenant_id
    elif scope.tenant_id != tenant_id:
        raise AnotherTenant() if scope.request else TenantMismatch("this job runs as another tenant")


def claim(tenant_id: uuid.UUID) -> None:
    """For a statement that sets its tenant itself (`db.Routine`): bind this request to it, as
    `scoped` would; inside `as_tenant()`, it must be that tenant; elsewhere, nothing to do."""
    scope = _scope.get()
    if scope is not None:
        _bind(scope, tenant_id)


@contextmanager
def scoped(tenant_id: uuid.UUID) -> Iterator[None]:
    """The block's statements run as `tenant_id`, the tenant of the credential or form a service
    just resolved. Inside a request, the request is bound to it (and stays so after the block);
    inside `as_tenant()`, it must be that block's tenant; anywhere else (a command, a test), only
    the block runs as it. Another tenant than the one already set raises `TenantMismatch`."""
    scope = _scope.get()
    if scope is None:
        with as_tenant(tenant_id):
            yield
    else:
        _bind(scope, tenant_id)
        yield


@contextmanager
def as_tenant(tenant_id: uuid.UUID) -> Iterator[None]:
    """Run the block's statements as `tenant_id` (a job's, an operator command's): explicit, and
    only for as long as the block."""
    tenant_id = _checked(tenant_id)
    _check_transaction(tenant_id)
    token = _scope.set(_Scope(tenant_id))  # not a request's: `scoped()` inside it cannot rebind it
    try:
        yield
    finally:
        _scope.reset(token)


def _checked(tenant_id: uuid.UUID) -> uuid.UUID:
    """A tenant's ID as a plain UUID (its text goes into SQL: `_begin`); anything else (a string
    from outside, None) raises ValueError."""
    if type(tenant_id) is uuid.UUID:
        return tenant_id
    if isinstance(tenant_id, uuid.UUID):
        return uuid.UUID(int=tenant_id.int)
    return uuid.UUID(str(tenant_id))


def _check_transaction(tenant_id: uuid.UUID) -> None:
    """A transaction's tenant was set when it began: work for another one cannot join it."""
    try:
        client = connections.get("default")
    except (RuntimeError, ConfigurationError):  # the ORM is not set up
        return
    if isinstance(client, TransactionWrapper) and getattr(client, "tenant_id", None) != tenant_id:
        raise TenantMismatch("a transaction's tenant was set when it began; this work is for another")


def current() -> uuid.UUID | None:
    """The tenant this task's statements run as; None for none (they see no tenant's rows)."""
    scope = _scope.get()
    return scope.tenant_id if scope is not None else None


def _begin(tenant_id: uuid.UUID) -> str:
    # A UUID's text is hex and dashes only (`_checked`): nothing in it can end the literal.
    # Simple-query protocol, so BEGIN and the setting cost one round trip, as a BEGIN alone would.
    return f"BEGIN; SELECT set_config('{SETTING}', '{tenant_id}', true)"


def _terminate(connection: asyncpg.Connection) -> None:
    # A pooled connection already closed (and released) by asyncpg raises InterfaceError.
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


def _closed(connection: asyncpg.Connection) -> bool:
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:  # closed, and already back in the pool
        return True


async def _end(connection: asyncpg.Connection, commit: bool) -> None:
    """COMMIT or ROLLBACK what `_begin` opened. A connection that may still be inside the
    transaction (a cancelled COMMIT, a broken connection) is closed rather than pooled.

    A failed ROLLBACK runs while another exception is on its way: it does not replace that one,
    unless it is a cancellation."""
    if _closed(connection):
        return
    try:
        await connection.execute("COMMIT" if commit else "ROLLBACK")
    except BaseException as exc:
        if not commit or _closed(connection) or connection.is_in_transaction():
            _terminate(connection)
        if commit or not isinstance(exc, Exception):
            raise


class _ScopedConnection(PoolConnectionWrapper):
    """A pool connection for one statement outside a transaction (the ORM's, or `db.connection()`'s
    few statements), inside a transaction of its own when the task has a tenant."""

    __slots__ = ("_scoped",)

    async def __aenter__(self) -> asyncpg.Connection:
        connection = await super().__aenter__()
        tenant_id = current()
        self._scoped = tenant_id is not None
        if self._scoped:
            try:
                await connection.execute(_begin(tenant_id))  # type: ignore[arg-type]
            except BaseException:
                _terminate(connection)  # closed, it goes back to the pool as such
                await super().__aexit__(None, None, None)
                raise
        return connection

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        try:
            if self._scoped and self.connection is not None:
                await _end(self.connection, commit=exc_type is None)
        finally:
            await super().__aexit__(exc_type, exc_val, exc_tb)


class _ScopedTransaction(TransactionWrapper):
    """The ORM's transaction, begun with the task's tenant set. Savepoints by name: asyncpg's own
    transaction objects refuse to nest inside a transaction they did not begin."""

    def __init__(self, connection: AsyncpgDBClient) -> None:
        super().__init__(connection)
        self._savepoint: str | None = None
        #: The tenant it began as (a savepoint: its transaction's).
        self.tenant_id: uuid.UUID | None = getattr(connection, "tenant_id", None)

    def _in_transaction(self) -> Any:
        return NestedTransactionContext(_ScopedTransaction(self))

    async def begin(self) -> None:
        self.tenant_id = tenant_id = current()
        await self._connection.execute(_begin(tenant_id) if tenant_id is not None else "BEGIN")

    async def savepoint(self) -> None:
        self._savepoint = f"rapidly_{uuid.uuid4().hex}"
        await self._connection.execute(f"SAVEPOINT {self._savepoint}")

    async def commit(self) -> None:
        self._finish()
        await _end(self._connection, commit=True)

    async def rollback(self) -> None:
        self._finish()
        await _end(self._connection, commit=False)

    async def release_savepoint(self) -> None:
        self._finish()
        await self._connection.execute(f"RELEASE SAVEPOINT {self._savepoint}")

    async def savepoint_rollback(self) -> None:
        self._finish()
        await self._connection.execute(f"ROLLBACK TO SAVEPOINT {self._savepoint}")

    def _finish(self) -> None:
        if self._finalized:
            raise TransactionManagementError("Transaction already finalised")
        self._finalized = True


class _ScopedTransactionContext(TransactionContextPooled):
    """Tortoise's, but a BEGIN that fails (a cancellation, a lost connection) does not leave the task
    pointed at a transaction that never began, nor the connection out of the pool."""

    async def __aenter__(self) -> Any:
        try:
            return await super().__aenter__()
        except BaseException:
            if getattr(self, "token", None) is not None:
                get_connections().reset(self.token)
            connection = self.client._connection
            if connection is not None:
                _terminate(connection)  # closed, it goes back to the pool as such
            raise


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A failure nobody awaits is not logged as lost."""
    if not future.cancelled():
        future.exception()


def _terminate_connected(future: asyncio.Future[asyncpg.Connection]) -> None:
    """A connect that ends after its pool closed: the connection is closed at once."""
    if not future.cancelled() and future.exception() is None:
        _terminate(future.result())


class _ConnectToTheEnd:
    """asyncpg's `connect` for the pool, run to its end whatever happens to its caller.

    The pool opens a connection lazily, in the request that first finds no open one. A request
    cancelled meanwhile (a client completing a subscription it had just started, a socket dropped)
    cancelled the connect with it: under such churn the pool never grew, and every request opened
    and abandoned another connection (10,000 subscribe/complete cycles of one customer: 7,000
    connects, each with an SSL context left to the cyclic collector, and the server's memory up by
    megabytes). Here a connect whose caller has left goes on, and the pool's next connect takes it.
    There are never more of those than the pool's holders without a connection, so the pool stays
    within its size."""

    def __init__(self) -> None:
        self._left: list[asyncio.Future[asyncpg.Connection]] = []
        self._closed = False

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        while self._left:
            connecting = self._left.pop()
            try:
                connection = await self._wait(connecting)
            except Exception:  # noqa: S112 -- its error was its first caller's; a fresh attempt reports its own
                continue
            if not connection.is_closed():
                return connection
        return await self._wait(asyncio.ensure_future(asyncpg.connect(*args, **kwargs)))

    async def _wait(self, connecting: asyncio.Future[asyncpg.Connection]) -> asyncpg.Connection:
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            connecting.add_done_callback(_terminate_connected if self._closed else _retrieved)
            if not self._closed:
                self._left.append(connecting)
            raise

    async def close(self) -> None:
        """Close the connections nobody took (the pool closes its own), and any still on their way."""
        self._closed = True
        left, self._left = self._left, []
        for connecting in left:
            connecting.cancel()
        for outcome in await asyncio.gather(*left, return_exceptions=True):
            if isinstance(outcome, asyncpg.Connection):
                _terminate(outcome)


class ScopedClient(AsyncpgDBClient):
    """Tortoise's asyncpg client with every statement in a transaction that sets the tenant."""

    _connector: _ConnectToTheEnd | None = None

    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        self._connector = _ConnectToTheEnd()
        return await asyncpg.create_pool(None, connect=self._connector, **kwargs)

    async def _close(self) -> None:
        try:
            await super()._close()
        finally:
            if self._connector is not None:
                await self._connector.close()

    def acquire_connection(self) -> Any:
        return _ScopedConnection(self, self._pool_init_lock)

    def acquire_unscoped(self) -> Any:
        """A pool connection as it is, for a statement that sets its own tenant (`db.Routine`) or
        reads no tenant's table (the realtime announcer's NOTIFY)."""
        return PoolConnectionWrapper(self, self._pool_init_lock)

    def _in_transaction(self) -> Any:
        return _ScopedTransactionContext(_ScopedTransaction(self), self._pool_init_lock)

    async def execute_many(self, query: str, values: list) -> None:
        async with self._in_transaction() as transaction:
            await transaction.execute_many(query, values)


#: Tortoise loads an engine module's `client_class`.
client_class = ScopedClient
