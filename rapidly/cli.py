"""The `rapidly` command: serve, demo, migrate, check, tenant, staff, plugins, schema."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from rapidly import __version__, db, logs, realtime, residency
from rapidly.config import ENV_PREFIX, Settings, load_settings
from rapidly.errors import DomainError, InputInvalid, StartupRefused, is_unavailable

if TYPE_CHECKING:
    from rapidly.backup.service import Backup, Backups

T = TypeVar("T")

app = typer.Typer(
    help="Rapidly: privacy-first customer intake. Settings come from RAPIDLY_* environment variables.",
    no_args_is_help=True,
    add_completion=False,
    # An uncaught exception goes to `rapidly.logs` (type and stack), never printed with its locals.
    pretty_exceptions_enable=False,
)
tenant_app = typer.Typer(help="Tenants (companies). Shows metadata and counts only, never contact data.")
staff_app = typer.Typer(help="Staff accounts.")
retention_app = typer.Typer(help="Retention: erase contacts their tenant no longer keeps.")
backup_app = typer.Typer(
    help="Encrypted database backups in the object storage, deleted within RAPIDLY_BACKUP_RETENTION_DAYS (at most 30)."
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(staff_app, name="staff")
app.add_typer(retention_app, name="retention")
app.add_typer(backup_app, name="backup")
keys_app = typer.Typer(help="The keys that contact data is encrypted under: key IDs and counts, never a key.")
app.add_typer(keys_app, name="keys")

DEMO_TENANT = "demo"
DEMO_PLUGIN = "roofing_fi"
DEMO_STAFF_EMAIL = "staff@demo.example"
DEMO_COMPANY = "Demo Kattohuolto Oy"


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Commands that start the service: their refusals say so.
STARTING = frozenset({"serve", "demo", "worker"})
log = logging.getLogger("rapidly.cli")


def main() -> None:
    _configure_logging()
    code: int | str | None = 0
    try:
        app()
    except StartupRefused as exc:
        _say_refused(exc)
        code = 2
    except SystemExit as exc:
        code = exc.code
    # What is left is the exit handlers' (the embedded PostgreSQL is stopped): a Ctrl-C now, typed
    # again to hurry the end, must not cut that short.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


def _configure_logging() -> None:
    """Before the settings are read (they log too); a wrong value is then refused by name."""
    logs.configure(os.environ.get(f"{ENV_PREFIX}LOG_FORMAT"), os.environ.get(f"{ENV_PREFIX}LOG_LEVEL"))


def _say_refused(exc: StartupRefused) -> None:
    """A refusal, as one line: through the log for the commands that start the service (so that it
    has the log's format), plainly for operator commands."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
    if command in STARTING:
        log.error("refusing to start: %s", exc)
    else:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _settings(**overrides: object) -> Settings:
    """The settings; a `ConfigError` is a refusal (one line, status 2)."""
    return load_settings(**overrides)


def _uninterrupted(work: Awaitable[T]) -> T:
    """Run `work` to its end whatever Ctrl-C or SIGTERM say, then honour them (status 130): migrations
    and the erasure journal's replay are never cut off half-way."""
    asked: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, _frame: asked.append(sig)) for sig in _STOP_SIGNALS}
    try:
        result = asyncio.run(work)  # type: ignore[arg-type]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if asked:
        log.warning("stopped after the migrations and checks that were under way")
        raise typer.Exit(130)
    return result


def _domain_message(exc: DomainError) -> str:
    if isinstance(exc, InputInvalid):
        return "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
    return exc.message


def _with_orm(settings: Settings, work: Callable[[], Awaitable[T]], *, migrate: bool = False) -> T:
    """Run `work` with the ORM connected. Operator commands never migrate: `rapidly migrate` does."""

    async def run() -> T:
        async with db.reaching_the_database():
            if migrate:
                await db.migrate(settings)
            elif not await db.is_migrated(settings):
                raise StartupRefused(
                    "not-migrated", "the database has pending migrations or none at all: run `rapidly migrate` first"
                )
            await db.init_orm(settings)
        try:
            return await work()
        finally:
            await realtime.announcer.drain()  # the events of what it did (a retention run's DELETED)
            await db.close_orm()

    try:
        return _uninterrupted(run()) if migrate else asyncio.run(run())
    except DomainError as exc:
        raise _fail(_domain_message(exc)) from None


def _plugins():  # type: ignore[no-untyped-def]
    from rapidly.plugins import PluginError, PluginRegistry

    try:
        return PluginRegistry()
    except PluginError as exc:
        raise StartupRefused("plugins", str(exc)) from None


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


#: Beyond this, processes only contend for the same cores and database connections.
MAX_WORKERS = 64


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        1,
        min=1,
        max=MAX_WORKERS,
        help="Server processes sharing the port, each with its own realtime listener (about one per core).",
    ),
) -> None:
    """Serve the GraphQL API and the self-service pages."""
    from rapidly import serving

    settings = _settings()
    sock = serving.listen(host, port)  # first: a port in use is refused before anything is done
    if workers == 1:
        _serve(settings, host, port, [sock])
    else:
        _serve_workers(settings, host, port, sock, workers)


def _serve(
    settings: Settings,
    host: str,
    port: int,
    sockets: list[socket.socket],
    sites: dict[int, object] | None = None,
    site_url: str | None = None,
) -> None:
    """Serve the app on the first of `sockets` (bound to `port`), and each of `sites` (the demo's
    company page, at `site_url`, which Rapidly's own `/` then links to) on the next ones."""
    from rapidly import serving
    from rapidly.app import create_app
    from rapidly.web.demo_site import ByPort

    application = create_app(settings, _plugins())
    application.state.demo_site_url = site_url
    config = serving.uvicorn_config(ByPort(application, sites) if sites else application, host=host, port=port)
    server = serving.Server(config)
    with contextlib.suppress(SystemExit):  # uvicorn's own, when the start-up failed
        server.run(sockets=sockets)
    if getattr(application.state, "refused", None) is not None:
        raise typer.Exit(2)  # the application has said why
    if not server.started:
        raise typer.Exit(1)


def _serve_workers(settings: Settings, host: str, port: int, sock: socket.socket, workers: int) -> None:
    """`workers` processes on one port, as uvicorn runs them: the start-up checks and migrations
    run here once, so that a refusal is one clear error, and each process then serves on its own,
    with its own pool and realtime listener (every listener hears every process's events)."""
    from rapidly import serving
    from rapidly.app import startup_checks

    async def prepare() -> None:
        await startup_checks(settings, _plugins())
        await db.check_connection_budget(settings, workers)

    _uninterrupted(prepare())
    os.environ[f"{ENV_PREFIX}MIGRATE_ON_START"] = "false"  # done above; the processes inherit this
    if settings.metrics_token:  # any process answers a scrape, with the figures of all of them
        figures = tempfile.mkdtemp(prefix="rapidly-metrics-")
        atexit.register(shutil.rmtree, figures, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = figures
    config = serving.uvicorn_config("rapidly.cli:worker_app", factory=True, workers=workers, host=host, port=port)
    supervisor = serving.Supervisor(config, sockets=[sock])
    supervisor.run()
    if supervisor.refused:
        raise typer.Exit(2)  # the process that could not start has said why


def worker_app():  # type: ignore[no-untyped-def]
    """The app of each process of `serve --workers N`; uvicorn imports it by name in each."""
    from rapidly import serving
    from rapidly.app import create_app

    _configure_logging()
    serving.ignore_terminal_interrupts()
    return create_app(load_settings(), _plugins())


@app.command()
def worker() -> None:
    """Send queued messages (email, SMS) until stopped; run as many as you like beside `serve`."""
    from rapidly.app import resident_with_valid_plugins
    from rapidly.messaging.dispatcher import Dispatcher

    settings = _settings()
    registry = _plugins()
    asyncio.run(resident_with_valid_plugins(settings, registry))

    async def run() -> None:
        from rapidly.keys import service as keys

        await keys.start(settings, registry)  # messages go to addresses that are stored sealed
        await Dispatcher(settings, registry).run()

    from rapidly import telemetry

    # SIGTERM (a service manager's stop) stops it as Ctrl-C does (asyncio's runner cancels the work;
    # a message under way is left to its lease), not wherever the interpreter happens to be.
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    typer.echo("worker: sending queued messages (Ctrl-C to stop)")
    telemetry.start(settings)  # its endpoint has passed the residency guard above
    try:
        with contextlib.suppress(KeyboardInterrupt):
            _with_orm(settings, run)
    finally:
        telemetry.stop()


@app.command()
def migrate() -> None:
    """Apply pending database migrations (as the database owner)."""
    settings = _settings()

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            typer.echo(f"applied {app_label}.{name}")

    async def run() -> None:
        async with db.reaching_the_database():
            await db.migrate(settings, progress=progress)

    _uninterrupted(run())
    typer.echo("database is up to date")


@app.command(hidden=True)
def makemigrations() -> None:
    """(Developers) Write a migration for model changes into rapidly/migrations."""
    writers = asyncio.run(db.pending_migrations())
    for writer in writers:
        typer.echo(f"created {writer.write()}")
    if not writers:
        typer.echo("no model changes")


@app.command()
def check() -> None:
    """Print where each backend is and how backups are kept; exit non-zero if any backend is outside
    the EU/EEA or undeclared, or backups are on without a key."""
    from rapidly.backup.report import describe

    settings = _settings()
    code = residency.run_check(settings)
    lines, ok = asyncio.run(describe(settings))
    typer.echo("")
    for line in lines:
        typer.echo(line)
    raise typer.Exit(code or (0 if ok else 1))


@app.command()
def plugins() -> None:
    """List installed plugins and the hooks each implements."""
    from rapidly.plugins import format_plugins

    typer.echo(format_plugins(_plugins()))


@app.command()
def schema() -> None:
    """Print the GraphQL schema (SDL); `schema.graphql` is this output."""
    from rapidly.schema import schema as graphql_schema

    typer.echo(graphql_schema.as_str())


@tenant_app.command("create")
def tenant_create(
    slug: str = typer.Option(..., help="Short name used in URLs and in `form(tenant: ...)`."),
    name: str = typer.Option(..., help="The company's name as end users see it."),
    plugin: str = typer.Option(..., help="The tenant plugin that defines its fields and wording."),
    locale: str = typer.Option("fi", help="Default language: fi, sv or en."),
    privacy_policy_url: str | None = typer.Option(None, help="https:// link to the company's privacy policy."),
    retention_days: int | None = typer.Option(
        None, help="Erase contacts this many days after their last activity (default: keep until erased)."
    ),
) -> None:
    """Create a tenant."""
    from rapidly.tenants import service

    registry = _plugins()
    tenant = _with_orm(
        _settings(),
        lambda: service.create_tenant(
            registry,
            slug=slug,
            name=name,
            plugin=plugin,
            default_locale=locale,
            privacy_policy_url=privacy_policy_url,
            retention_days=retention_days,
        ),
    )
    typer.echo(f"created tenant {tenant.slug} ({tenant.id})")


@tenant_app.command("retention")
def tenant_retention(
    slug: str = typer.Argument(..., help="The tenant's slug."),
    days: int | None = typer.Option(None, help="Erase contacts this many days (1-3650) after their last activity."),
    off: bool = typer.Option(False, "--off", help="Keep contacts until they are erased."),
) -> None:
    """Set how long a tenant keeps inactive contacts; `rapidly serve` erases the older ones."""
    from rapidly.tenants import service

    if (days is None) == (not off):
        raise _fail("give either --days N or --off", 2)
    tenant = _with_orm(_settings(), lambda: service.set_retention(slug, None if off else days))
    kept = "until erased" if tenant.retention_days is None else f"{tenant.retention_days} days after last activity"
    typer.echo(f"tenant {tenant.slug} keeps contacts {kept}")


@tenant_app.command("messages")
def tenant_messages(
    slug: str = typer.Argument(..., help="The tenant's slug."),
    event: str = typer.Argument(..., help="CONTINUE_LINK, SELF_SERVICE_LINK, PHOTO_REQUEST, NEW_CONTACT, ..."),
    email: bool = typer.Option(False, "--email", help="Send this event by email."),
    sms: bool = typer.Option(False, "--sms", help="Send this event by SMS (end users only)."),
) -> None:
    """Choose the channels of one message event for a tenant; neither flag switches it off."""
    from rapidly.messaging import service

    channels = [name for name, on in (("email", email), ("sms", sms)) if on]
    tenant = _with_orm(_settings(), lambda: service.set_channels(slug, event, channels))
    typer.echo(f"tenant {tenant.slug}: {event.upper()} by {', '.join(channels) or 'no channel (off)'}")


@tenant_app.command("origins")
def tenant_origins(
    slug: str = typer.Argument(..., help="The tenant's slug."),
    add: list[str] = typer.Option([], "--add", help="Allow this website, e.g. https://www.example.fi (repeatable)."),  # noqa: B008
    remove: list[str] = typer.Option([], "--remove", help="No longer allow this website (repeatable)."),  # noqa: B008
) -> None:
    """List the websites (origins) whose pages may use the tenant's form, or change them."""
    from rapidly.tenants import service

    tenant = _with_orm(_settings(), lambda: service.change_origins(slug, add=add, remove=remove))
    if not tenant.allowed_origins:
        typer.echo(f"tenant {tenant.slug} lists no origins: its form works only from Rapidly's own pages")
    for origin in tenant.allowed_origins:
        typer.echo(origin)


@retention_app.command("run")
def retention_run() -> None:
    """Erase now what `serve` erases in the background: contacts past their tenant's retention,
    erased contacts that a restored backup brought back, and unfinished erasures."""
    from rapidly.erasure import retention
    from rapidly.erasure.stores import erasure_service
    from rapidly.storage import storage_for

    settings = _settings()

    async def run() -> tuple[int, int, int]:
        storage = storage_for(settings)
        await storage.start()
        try:
            erasure = erasure_service(storage, settings)
            return await retention.sweep(erasure), await erasure.replay(), await erasure.finish_pending()
        finally:
            await storage.close()

    from rapidly.erasure.service import ReplayIncomplete

    try:
        expired, restored, finished = _with_orm(settings, run)
    except ReplayIncomplete as exc:
        raise _fail(f"{exc}; see the log, and run again") from None
    typer.echo(
        f"erased {expired} contacts past retention, {restored} brought back by a restore; "
        f"finished {finished} pending erasures"
    )


def _with_backups(settings: Settings, work: Callable[[Backups], Awaitable[T]]) -> T:
    """Run `work` with the object storage open; a backup failure is one clear line and exit 1."""
    from rapidly.backup.pgtools import ToolMissing
    from rapidly.backup.seal import BackupUnreadable
    from rapidly.backup.service import BackupError, Backups
    from rapidly.storage import storage_for

    async def run() -> T:
        storage = storage_for(settings)
        await storage.start()
        try:
            return await work(Backups(settings, storage))
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except (BackupError, BackupUnreadable, ToolMissing) as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        if is_unavailable(exc):
            raise _fail(
                f"the object storage or the database cannot be reached ({type(exc).__name__}); try again"
            ) from None
        raise


@backup_app.command("create")
def backup_create() -> None:
    """Back up the database now, and delete those past the retention; prints the new backup's ID last."""

    async def create(backups: Backups) -> Backup:
        made = await backups.create()
        await backups.prune()
        return made

    backup = _with_backups(_settings(), create)
    typer.echo(f"made backup of {backup.size} bytes at {backup.created:%Y-%m-%d %H:%M:%S} UTC")
    typer.echo(backup.id)


@backup_app.command("list")
def backup_list() -> None:
    """List backups, one a line: ID, time (UTC), size in bytes; the newest last."""
    for backup in _with_backups(_settings(), lambda backups: backups.all()):
        typer.echo(f"{backup.id}  {backup.created:%Y-%m-%d %H:%M:%S}  {backup.size}")


@backup_app.command("prune")
def backup_prune() -> None:
    """Delete backups older than RAPIDLY_BACKUP_RETENTION_DAYS, with every stored version."""
    settings = _settings()
    pruned = _with_backups(settings, lambda backups: backups.prune())
    for backup_id in pruned:
        typer.echo(f"deleted {backup_id}")
    typer.echo(f"{len(pruned)} backups older than {settings.backup_retention_days} days deleted")


@backup_app.command("restore")
def backup_restore(
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup's ID, as `rapidly backup list` shows it."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Drop everything in the database first (it must otherwise be empty)."
    ),
) -> None:
    """Restore a backup into the configured database, then erase again every contact erased since."""
    restored = _with_backups(_settings(), lambda backups: backups.restore(backup_id, overwrite=overwrite))
    typer.echo(
        f"restored backup {restored.backup.id} (made {restored.backup.created:%Y-%m-%d %H:%M:%S} UTC) with "
        f"{restored.keys} contact keys; erased again {restored.keyless + restored.replayed} contacts erased since "
        f"it was made ({restored.keyless} whose keys were gone, {restored.replayed} from the journal); "
        f"finished {restored.finished} pending erasures"
    )


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants: slug, name, plugin, locale, created, staff and contact counts."""
    from rapidly.tenants import service

    rows = _with_orm(_settings(), service.list_tenants)
    table = [("slug", "name", "plugin", "locale", "created", "staff", "contacts", "retention")]
    table += [
        (
            r.slug,
            r.name,
            r.plugin,
            r.default_locale,
            r.created_at,
            str(r.staff_count),
            str(r.contact_count),
            "-" if r.retention_days is None else f"{r.retention_days} d",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@staff_app.command("create")
def staff_create(
    tenant: str = typer.Option(..., help="The tenant's slug."),
    email: str = typer.Option(..., help="The staff member's login email."),
    locale: str | None = typer.Option(None, help="Language for notifications (default: the tenant's)."),
    role: str | None = typer.Option(
        None, help="admin or staff (default: admin for the tenant's first staff member, staff after)."
    ),
) -> None:
    """Create a staff account. The password is prompted for, or read from standard input."""
    from rapidly.staff import service
    from rapidly.staff.models import StaffRole

    if role is not None and role.upper() not in StaffRole.__members__:
        raise typer.BadParameter("admin or staff", param_hint="--role")
    chosen = StaffRole(role.upper()) if role is not None else None
    password = _read_password()
    staff = _with_orm(
        _settings(),
        lambda: service.create_staff(tenant_slug=tenant, email=email, password=password, locale=locale, role=chosen),
    )
    typer.echo(f"created {staff.role.value.lower()} {staff.id} in tenant {tenant}")


def _read_password() -> str:
    if sys.stdin.isatty():
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


def _with_keys(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """`work` with the ORM connected; a rotation refused, or a key service that refuses or cannot be
    reached, is one line and exit 1."""
    from rapidly.keys.admin import RotationFailed, RotationUnderWay
    from rapidly.keys.aws_kms import KeyServiceRefused

    try:
        return _with_orm(settings, work)
    except (RotationUnderWay, RotationFailed, KeyServiceRefused) as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        if is_unavailable(exc):
            raise _fail(
                f"the database or the root key's key management service cannot be reached ({type(exc).__name__}): "
                "try again"
            ) from None
        raise


@keys_app.command("status")
def keys_status(
    as_json: bool = typer.Option(False, "--json", help="One JSON document, for machines."),
    tenants: bool = typer.Option(False, "--tenants", help="Also each tenant's: its root key and contact keys."),
) -> None:
    """Which keys exist: the root key's ID, tenant keys by the root key that wrapped them, contact keys;
    exit 1 when a tenant key does not open with the configured root keys."""
    import json

    from rapidly.keys import admin

    settings = _settings()
    keys = admin.configured(settings, _plugins())
    status = _with_keys(settings, lambda: admin.status(settings, keys))
    if as_json:
        typer.echo(json.dumps(status.as_json(tenants=tenants), indent=2))
    else:
        typer.echo("\n".join(status.lines(tenants=tenants)))
    raise typer.Exit(1 if status.not_opening else 0)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every tenant key under the current root key, opening each with the one that wrapped it
    (RAPIDLY_PREVIOUS_ROOT_KEY); no data is encrypted again. Ctrl-C finishes the tenant under way and
    stops: run it again to go on."""
    from rapidly.keys import admin

    settings = _settings()
    keys = admin.configured(settings, _plugins())

    def progress(rotation: admin.Rotation, step: admin.Step | None) -> None:
        if step is None:
            typer.echo(
                f"{rotation.to_rewrap} of {rotation.total} tenant keys to re-wrap under {rotation.key_id}"
                if rotation.to_rewrap
                else f"every tenant key ({rotation.total}) is under {rotation.key_id} already"
            )
            return
        if step.outcome == "unreadable":
            log.warning("tenant %s: %s; left as it is", step.slug, step.why)
        every = max(1, rotation.to_rewrap // 50)  # at most about 50 lines of progress
        if rotation.done % every == 0 or rotation.done == rotation.to_rewrap:
            typer.echo(
                f"{rotation.done} of {rotation.to_rewrap}: {rotation.rewrapped} re-wrapped, "
                f"{len(rotation.unreadable)} left as they are"
            )

    # Ctrl-C (or SIGTERM) lets the tenant under way finish, then stops: each key is either old or new.
    asked: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, _frame: asked.append(sig)) for sig in _STOP_SIGNALS}
    try:
        rotation = _with_keys(
            settings, lambda: admin.rotate(settings, keys, progress=progress, stop=lambda: bool(asked))
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rotation.stopped:
        raise _fail(
            f"stopped after {rotation.done} of {rotation.to_rewrap} tenant keys ({rotation.rewrapped} re-wrapped), "
            "each either as it was or re-wrapped: run `rapidly keys rotate` again to finish",
            130,
        )
    if rotation.to_rewrap:
        typer.echo(f"tenant keys re-wrapped under {rotation.key_id}: {rotation.rewrapped}")
    if rotation.unreadable:
        slugs = ", ".join(step.slug for step in rotation.unreadable)
        raise _fail(
            f"tenant keys that no configured root key opens, left as they are: {len(rotation.unreadable)} ({slugs})"
        )
    if settings.previous_root_key:
        typer.echo(
            "every tenant key is under the root key: RAPIDLY_PREVIOUS_ROOT_KEY may go, but keep its passphrase "
            "while backups made before now exist (they hold the tenant keys as they were): a restore needs it"
        )


@keys_app.command("encrypt-existing")
def keys_encrypt_existing() -> None:
    """Seal now what was stored before encryption (saved answers, chat messages, photos), which `serve`
    seals a part at a time in its maintenance: online, in small batches, resumable at any point."""
    from rapidly.keys import existing
    from rapidly.keys import service as keys
    from rapidly.storage import storage_for

    settings = _settings()
    registry = _plugins()

    async def run() -> dict[str, int]:
        await keys.start(settings, registry)
        storage = storage_for(settings)
        await storage.start()
        try:
            return await existing.seal_existing(storage)
        finally:
            await storage.close()

    sealed = _with_keys(settings, run)
    typer.echo("sealed: " + ", ".join(f"{count} {store.replace('_', ' ')}" for store, count in sealed.items()))


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    site_port: int | None = typer.Option(None, help="Port of the sample company website (default: PORT + 1)."),
) -> None:
    """Start a demo: embedded PostgreSQL, local storage declared in Finland, a demo tenant and staff user,
    and a sample company website (another origin) with the form on it."""
    # The demo always runs on this machine: embedded database, local storage, both declared Finnish.
    overrides: dict[str, object] = {
        "database_url": None,
        "storage": "local",
        "database_country": "FI",
        "storage_country": "FI",
    }
    if not os.environ.get("RAPIDLY_SMS_URL"):
        overrides["sms_url"] = "file:"  # texts go to a file in the data dir instead of a gateway
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # an address a browser can open
    if not os.environ.get("RAPIDLY_BASE_URL"):
        overrides["base_url"] = f"http://{shown_host}:{port}"
    settings = _settings(**overrides)
    password = secrets.token_urlsafe(12)
    site_port = site_port or port + 1
    site_url = f"http://{shown_host}:{site_port}"
    site_origins = [site_url, f"http://localhost:{site_port}"]
    from rapidly import serving

    sockets = [serving.listen(host, port), serving.listen(host, site_port)]  # before anything is set up
    _with_orm(settings, lambda: _ensure_demo_data(password, site_origins), migrate=True)
    typer.echo(_demo_banner(settings, password, site_url))
    from rapidly.cors import own_origin
    from rapidly.web.demo_site import DemoSite

    site = DemoSite(own_origin(settings.base_url), DEMO_TENANT, DEMO_COMPANY)
    _serve(settings, host, port, sockets, sites={site_port: site}, site_url=site_url)


async def _ensure_demo_data(password: str, site_origins: list[str]) -> None:
    """The demo tenant, listing the sample website's origins, and its staff user; the password is new
    on every start."""
    from rapidly.staff import service as staff_service
    from rapidly.tenants import service as tenant_service

    await tenant_service.ensure_tenant(
        _plugins(),
        slug=DEMO_TENANT,
        name=DEMO_COMPANY,
        plugin=DEMO_PLUGIN,
        default_locale="fi",
        privacy_policy_url="https://demo.example/tietosuoja",
    )
    await tenant_service.set_origins(DEMO_TENANT, site_origins)
    await staff_service.create_or_reset(tenant_slug=DEMO_TENANT, email=DEMO_STAFF_EMAIL, password=password)


def _backups_line(settings: Settings) -> str:
    if not settings.backup_every_hours:
        return "off (RAPIDLY_BACKUP_EVERY_HOURS=0)"
    key = "RAPIDLY_BACKUP_KEY" if settings.backup_key else f"the key in {(settings.data_dir / 'backup_key').resolve()}"
    return (
        f"every {settings.backup_every_hours} h into {(settings.data_dir / 'backups').resolve()}, encrypted with "
        f"{key}, deleted after {settings.backup_retention_days} days"
    )


def _email_line(settings: Settings) -> str:
    return "Email goes out through RAPIDLY_SMTP_URL." if settings.smtp_url else "Email needs RAPIDLY_SMTP_URL."


def _demo_banner(settings: Settings, password: str, site_url: str) -> str:
    start = (
        f'mutation {{ startContact(tenant: "{DEMO_TENANT}", locale: "en") '
        "{ __typename ... on ContactSession { token selfServiceUrl } ... on Error { message } } }"
    )
    save = (
        'mutation { saveField(key: "name", value: "Maija Meikäläinen") '
        "{ __typename ... on FieldSaved { value { key value updatedAt } } ... on Error { message } } }"
    )
    return f"""
Rapidly {__version__} demo
  company page: {site_url}   <- start here: the form on a sample company's own website
  console:      {settings.base_url}/console   <- and here, in a second window, as the company's staff
  staff login:  {DEMO_STAFF_EMAIL} / {password}   (tenant "{DEMO_TENANT}", plugin {DEMO_PLUGIN})
  data:         {settings.data_dir.resolve()} (embedded PostgreSQL, local media storage)
  residency:    database and storage run on this machine, declared as Finland (FI) for the demo
  backups:      {_backups_line(settings)}

Type in the company page as a customer: each answer arrives in the console as you type. Chat, ask for
a photo (the request is a text message, written to {settings.data_dir.resolve() / "sms-outbox"}), and
delete the contact; the customer's own page is the link in the form.

The API, as the form and the console use it: GraphQL at {settings.graphql_url} (POST JSON; WebSocket with
graphql-transport-ws). Start a contact, then save answers with its token as the header
"Authorization: Bearer <token>":

  {start}
  {save}

Staff sign in with `login` and watch everything live with `subscription {{ contactEvents {{ kind contactId }} }}`.
{_email_line(settings)} Stop with Ctrl-C.
"""
