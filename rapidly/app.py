"""`create_app()`: FastAPI with the GraphQL API, health checks and the start-up guards."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from rapidly import __version__, db, logs, metrics, realtime, residency, telemetry
from rapidly.backup.service import Backups, Schedule
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.cors import CrossOrigin, own_origin
from rapidly.db import Credentials
from rapidly.erasure import retention
from rapidly.erasure.service import ErasureService, ReplayIncomplete
from rapidly.erasure.service import pending_count as erasure_pending
from rapidly.erasure.stores import erasure_service
from rapidly.errors import RETRY_AFTER_SECONDS, DomainError, StartupRefused, for_the_log
from rapidly.guards import UPLOAD_OVERHEAD_BYTES, BodySizeLimit, SecurityHeaders, UploadGuard
from rapidly.keys import existing
from rapidly.keys import service as keys
from rapidly.media.pages import router as media_pages
from rapidly.messaging import outbox
from rapidly.messaging.dispatcher import Dispatcher
from rapidly.metrics import Observe
from rapidly.plugins import PluginError, PluginRegistry
from rapidly.ratelimit import service as ratelimit
from rapidly.schema import schema, status_of
from rapidly.schema.context import Context, bearer_token, get_context
from rapidly.schema.fanout import Fanout
from rapidly.schema.http import GraphQLOverHTTP, malformed, upload_operations
from rapidly.schema.ws import StrictGraphQLTransportWS
from rapidly.selfservice.pages import router as selfservice_pages
from rapidly.staff import invitations, passkeys, reach
from rapidly.staff import service as staff
from rapidly.storage import Storage, storage_for
from rapidly.tenants import origins
from rapidly.tenants import service as tenants
from rapidly.web.assets import router as web_assets
from rapidly.web.pages import router as web_pages

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig  # FastAPI 0.165 on; older ones have no telemetry to turn off

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_SECONDS = 600
GC_YOUNG_THRESHOLD = 20_000
#: Unfinished erasures (a store was down) are retried this often, each on its own backoff.
ERASURE_RETRY_SECONDS = 30
#: FastAPI's own OpenTelemetry instrumentation, off whatever FASTAPI_OTEL_* and OTEL_* say (its spans
#: carry `url.path`, `/my/<token>`; its logs, exception messages). Rapidly's spans: `rapidly.telemetry`.
FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


async def preflight(settings: Settings, plugins: PluginRegistry) -> None:
    """Everything that must hold before the first request: backups, residency, plugins, schema.
    Whatever fails is a `StartupRefused`."""
    if settings.backup_every_hours and settings.backup_passphrase is None:
        raise StartupRefused(
            "backup-key",
            "RAPIDLY_BACKUP_KEY is not set, and serve makes a backup every "
            f"{settings.backup_every_hours} hours (RAPIDLY_BACKUP_EVERY_HOURS): set a passphrase of at least 32 "
            "characters, kept where neither the database nor the object storage is; or set "
            "RAPIDLY_BACKUP_EVERY_HOURS=0 when your database provider's backups are used (kept 7 days at most: they "
            "hold the contacts' keys)",
        )
    await resident_with_valid_plugins(settings, plugins)
    if settings.migrate_on_start:
        async with db.reaching_the_database():
            await db.migrate(settings)


async def resident_with_valid_plugins(settings: Settings, plugins: PluginRegistry) -> None:
    """What every process that handles contact data checks first (`serve`'s, `rapidly worker`): each
    backend in the EU/EEA, every plugin's fields within the rules, and a root key to open contact data
    with (before anything is written)."""
    try:
        await residency.assert_resident(settings)
    except residency.ResidencyError as exc:
        raise StartupRefused("residency", str(exc)) from None
    try:
        plugins.validate_all()
        keys.ring_for(settings, plugins)
    except PluginError as exc:
        raise StartupRefused("plugins", str(exc)) from None


async def _open(settings: Settings, plugins: PluginRegistry, storage: Storage, erasure: ErasureService) -> Credentials:
    """A server process's start, in order, every failure a `StartupRefused`: `preflight`, the
    database and the plugins its tenants name, the object storage, the erasure journal's replay."""
    await preflight(settings, plugins)
    telemetry.start(settings)  # its endpoint has passed the residency guard
    async with db.reaching_the_database():
        credentials = await db.init_orm(settings)
        await _check_tenant_plugins(plugins)
        await keys.start(settings, plugins)
    await _start_storage(storage)
    await _replay_erasures(erasure)
    return credentials


async def startup_checks(settings: Settings, plugins: PluginRegistry) -> None:
    """A server process's start (`_open`) made once, and undone, by the supervisor of `serve --workers N`:
    a refusal is then one line, before any process starts (each of which starts again: quickly)."""
    storage = storage_for(settings)
    try:
        await _open(settings, plugins, storage, erasure_service(storage, settings))
    finally:
        await storage.close()
        await db.close_orm()
        telemetry.stop()


async def _check_tenant_plugins(plugins: PluginRegistry) -> None:
    missing = [
        f"tenant {slug!r} uses plugin {plugin!r}"
        for slug, plugin in await tenants.plugins_in_use()
        if not plugins.has(plugin)
    ]
    if missing:
        raise StartupRefused(
            "tenant-plugins", "plugins not installed (install them, then start again): " + "; ".join(missing)
        )


async def _maintenance(settings: Settings, erasure: ErasureService, storage: Storage) -> None:
    """Housekeeping every few minutes. Each job on its own: one failing never stops the others."""
    jobs = {
        # Data stored before encryption, a bounded part each round (after the upgrade that brings it).
        "sealed existing data": lambda: _sealed_count(existing.seal_existing(storage, max_batches=20)),
        "retention": lambda: retention.sweep(erasure),
        "rate limits": ratelimit.purge_expired,
        "staff sessions": staff.purge_expired_sessions,
        "staff invitations": invitations.purge_expired,
        "passkey challenges": passkeys.purge_expired_challenges,
        "mobile numbers waiting for a code": reach.purge_expired,
        "handled invitations and codes": outbox.purge_account_messages,
        "expired links": contacts.purge_expired_tokens,
        "abandoned contacts": lambda: contacts.purge_abandoned(timedelta(hours=settings.abandoned_contact_hours)),
        "event log": realtime.prune,
        "idle keys and trigrams": contacts.forget_idle_keys,
    }
    while True:
        await asyncio.sleep(MAINTENANCE_INTERVAL_SECONDS)
        for name, job in jobs.items():
            try:
                if done := await job():
                    log.info("maintenance: %s: %d", name, done)
            except Exception as exc:
                log.error("maintenance: %s failed: %s", name, for_the_log(exc))


async def _sealed_count(sealing: Awaitable[dict[str, int]]) -> int:
    return sum((await sealing).values())


async def _start_storage(storage: Storage) -> None:
    try:
        await storage.start()
    except OSError as exc:
        raise StartupRefused(
            "storage",
            f"the object storage could not be opened ({type(exc).__name__}): with local storage, "
            "RAPIDLY_DATA_DIR must be a directory this process may write; with S3, check RAPIDLY_S3_ENDPOINT_URL",
        ) from None


async def _replay_erasures(erasure: ErasureService) -> None:
    """Before the first request: after a database backup is restored, erase again what was erased
    since. A journal that cannot be read refuses the start: serving then could show a contact
    that its person erased."""
    try:
        replayed = await erasure.replay()
    except Exception as exc:
        log.debug("replaying the erasure journal failed: %s", for_the_log(exc))
        why = str(exc) if isinstance(exc, ReplayIncomplete) else type(exc).__name__
        raise StartupRefused(
            "journal",
            "the erasure journal could not be replayed, so a restored database might still hold contacts erased "
            f"since its backup ({why}): make the object storage and the database reachable and start again",
        ) from None
    if replayed:
        log.warning("erased %d contacts again that a restored backup brought back", replayed)


async def _refresh_gauges(app: FastAPI) -> None:
    """The figures /metrics reads from the database and this process, as of the scrape."""
    in_use, idle = db.pool_usage()
    metrics.POOL.labels("in_use").set(in_use)
    metrics.POOL.labels("idle").set(idle)
    metrics.SUBSCRIBERS.set(app.state.fanout.subscriber_count())
    metrics.TASKS.set(len(asyncio.all_tasks()))
    try:
        metrics.OUTBOX_DEPTH.set(await outbox.depth())
        metrics.ERASURES_PENDING.set(await erasure_pending())
    except Exception as exc:  # the database is down: the other figures still tell
        log.warning("metrics: database figures unavailable (%s)", type(exc).__name__)


async def _finish_erasures(erasure: ErasureService) -> None:
    while True:
        await asyncio.sleep(ERASURE_RETRY_SECONDS)
        try:
            await erasure.finish_pending()
        except Exception as exc:
            log.error("erasure retry round failed: %s", for_the_log(exc))


class RapidlyGraphQLRouter(GraphQLRouter):
    graphql_transport_ws_handler_class = StrictGraphQLTransportWS

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """Strawberry's own handshake check, for another site's origin: the same rule as `CrossOrigin`,
        which has just read the listed origins before letting the handshake through."""
        return origin == own_origin(request.app.state.settings.base_url) or origins.listed.knows(origin)

    def create_response(self, response_data: object, sub_response: Response) -> Response:
        """503 with `Retry-After` when a backend was unreachable, as on the direct path (`status_of`)."""
        response = super().create_response(response_data, sub_response)  # type: ignore[arg-type]
        errors = response_data.get("errors") if isinstance(response_data, dict) else None
        if status_of(errors) == 503:
            response.status_code = 503
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    def parse_json(self, data: str | bytes) -> Any:
        """A JSON object, or a 400 that says what the body is instead (Strawberry's own took any
        JSON value, and a string or `null` raised further on: a 500). It reads what the direct
        path passes on, and a content type that merely contains "application/json"."""
        if (problem := malformed(data)) is not None:
            raise HTTPException(400, problem)
        return json.loads(data)

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, Any]:
        """Strawberry's, with the form checked whole (`upload_operations`): a 400 for every
        malformed upload."""
        try:
            form = await request.get_form_data()
        except ValueError as exc:
            raise HTTPException(400, "Unable to parse the multipart body") from exc
        operations, files_map = (form.form.get(name, "{}") for name in ("operations", "map"))
        try:
            return upload_operations(json.loads(operations), json.loads(files_map), form.files)
        except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; a file as a field, TypeError
            message = str(exc) if type(exc) is ValueError else "The operations and the map must be JSON."
            raise HTTPException(400, message) from None

    async def on_ws_connect(self, context: Context) -> None:
        """WebSockets authenticate once, in `connection_init`: `{"authorization": "Bearer <token>"}`."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        context.authenticate(bearer_token(params.get("authorization")))
        try:
            signed_in = await context.staff() is not None or await context.contact() is not None
        except DomainError as exc:  # a credential used from a website its tenant does not list
            raise ConnectionRejectionError({"message": exc.message}) from None
        if not signed_in:
            raise ConnectionRejectionError({"message": "Authentication failed."})


class RapidlyApp(FastAPI):
    """FastAPI with `GraphQLOverHTTP` in front of all of its middleware: a JSON query or mutation (a
    save) passes nothing but what it needs, and that layer applies the size limit and the security
    headers itself. Everything else goes on through the whole stack, guards included. In front of
    both, `CrossOrigin` decides which websites' browsers may use the API."""

    def build_middleware_stack(self) -> ASGIApp:
        graphql = GraphQLOverHTTP(
            super().build_middleware_stack(),
            schema=schema,
            context_getter=get_context,
            max_bytes=self.state.settings.max_request_bytes,
        )
        return Observe(CrossOrigin(graphql, self.state.settings.base_url, origins.listed))


def create_app(settings: Settings, plugins: PluginRegistry | None = None) -> RapidlyApp:
    plugins = plugins or PluginRegistry()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            asyncio.get_running_loop().set_exception_handler(logs.unretrieved_exception)
            credentials = await _open(settings, plugins, app.state.storage, app.state.erasure)
            async with db.reaching_the_database():
                await app.state.hub.start(credentials)
        except BaseException as exc:
            if isinstance(exc, StartupRefused):
                app.state.refused = exc  # for the command, which exits with status 2
                log.error("refusing to start: %s", exc)
            elif isinstance(exc, Exception):
                log.error("start-up failed: %s", for_the_log(exc))
            await app.state.storage.close()
            await db.close_orm()
            telemetry.stop()
            raise
        background = [
            asyncio.create_task(_maintenance(settings, app.state.erasure, app.state.storage)),
            asyncio.create_task(_finish_erasures(app.state.erasure)),
        ]
        if app.state.backups is not None:
            background.append(asyncio.create_task(app.state.backups.run()))
        if settings.dispatcher_in_serve:
            background.append(asyncio.create_task(app.state.dispatcher.run()))
        # Start-up objects live for the whole process: keep the cyclic collector from walking them
        # again and again (full collections otherwise pause requests for tens of milliseconds).
        gc.collect()
        gc.freeze()
        # A request allocates hundreds of objects that reference counting frees; the default of a
        # young collection every 700 allocations spent 3% of a save's instructions on finding no
        # cycles (bench/save_instructions.py: 1.52 M -> 1.48 M per save).
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        log.info("rapidly %s ready", __version__)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.wait(background, timeout=5)  # done before the last events are announced
            await realtime.announcer.drain()
            await app.state.hub.stop()
            await app.state.storage.close()
            await db.close_orm()
            await asyncio.to_thread(telemetry.stop)  # the last spans, if the collector takes them at once
            metrics.forget_process()

    app = RapidlyApp(
        title="Rapidly",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.settings = settings
    app.state.plugins = plugins
    app.state.hub = realtime.EventHub()
    app.state.fanout = Fanout(schema, app.state.hub)
    app.state.storage = storage_for(settings)
    app.state.erasure = erasure_service(app.state.storage, settings)
    app.state.dispatcher = Dispatcher(settings, plugins)
    app.state.backups = Schedule(Backups(settings, app.state.storage)) if settings.backup_every_hours else None

    graphql = RapidlyGraphQLRouter(
        schema,
        context_getter=get_context,
        # No GraphiQL: Strawberry's loads React and its own code from a public CDN, and no page of
        # Rapidly loads anything from another host. The console is the browser client.
        graphql_ide=None,
        allow_queries_via_get=False,
        # Uploads (GraphQL multipart request spec); `UploadGuard` requires a header that no
        # cross-site form can send, which is the CSRF protection Strawberry asks for.
        multipart_uploads_enabled=True,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        max_subscriptions_per_connection=10,
    )
    app.include_router(graphql, prefix="/graphql")
    app.include_router(selfservice_pages)
    app.include_router(media_pages)
    app.include_router(web_assets)
    app.include_router(web_pages)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page(request: Request) -> Response:
        """Prometheus' text format, for the bearer of `RAPIDLY_METRICS_TOKEN`; without one set, absent."""
        expected = settings.metrics_token
        if expected is None:
            return Response(status_code=404)
        presented = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        await _refresh_gauges(request.app)
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready = await db.ping()
        return JSONResponse({"status": "ok" if ready else "unavailable"}, status_code=200 if ready else 503)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(UploadGuard)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.media_max_bytes + UPLOAD_OVERHEAD_BYTES,
    )
    return app
