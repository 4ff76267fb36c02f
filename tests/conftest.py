"""Test fixtures: a real PostgreSQL (embedded, or `RAPIDLY_TEST_DATABASE_URL`), a real HTTP server.

Every test gets an empty database (all tables truncated after each test) and talks to the app
over loopback HTTP, exactly as a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from hypothesis import settings as hypothesis_settings

# The suite decides its own configuration: nothing from the developer's shell leaks in.
for _name in [n for n in os.environ if n.startswith("RAPIDLY_") and n != "RAPIDLY_TEST_DATABASE_URL"]:
    del os.environ[_name]

from rapidly import db, serving  # noqa: E402
from rapidly.app import create_app  # noqa: E402
from rapidly.config import Settings  # noqa: E402
from rapidly.plugins import PluginRegistry  # noqa: E402

TEST_SECRET_KEY = "test-secret-key-" + "x" * 32
#: The root key of the suite's tenant keys (rapidly/keys); tests that need another make their own.
TEST_ROOT_KEY = "test-root-key-of-the-suite-0123456789abcdef"
METRICS_TOKEN = "test-metrics-token-" + "m" * 32
STAFF_PASSWORD = "correct horse battery staple"

pytest_plugins = ["tests.messaging.fixtures"]

# Property-based tests (tests/test_fuzz.py): a bounded, repeatable run by default; `--hypothesis-profile
# campaign` for a long one with new examples each time.
hypothesis_settings.register_profile("rapidly", max_examples=60, deadline=None, derandomize=True)
hypothesis_settings.register_profile("campaign", max_examples=5000, deadline=None)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None) is None:
        hypothesis_settings.load_profile("rapidly")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for this test session."""
    server_url = os.environ.get("RAPIDLY_TEST_DATABASE_URL")
    if not server_url:
        server = db.EmbeddedServer.start(tmp_path_factory.mktemp("embedded"))
        creds = server.credentials
        yield f"postgresql://{creds.user}@/{creds.database}?host={creds.host}"
        return
    name = f"rapidly_test_{uuid.uuid4().hex[:12]}"
    admin = db.Credentials.from_url(server_url)

    async def run(*statements: str) -> None:
        conn = await admin.connect()
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield with_database(server_url, name)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP ROLE IF EXISTS "{name}_app"'))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def server_port() -> int:
    """Chosen before the settings, so that `base_url` (links, media URLs) points at the test server."""
    return free_port()


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path, server_port: int) -> Settings:
    return Settings(
        base_url=f"http://127.0.0.1:{server_port}",
        database_url=database_url,
        data_dir=data_dir,
        secret_key=TEST_SECRET_KEY,
        root_key=TEST_ROOT_KEY,
        database_country="FI",
        storage_country="FI",
        storage="local",
        login_attempts_per_account=5,
        login_attempts_per_ip=20,
        contacts_per_ip_per_hour=30,
        # Tests run their own dispatcher against their own SMTP and SMS servers (tests/messaging).
        dispatcher_in_serve=False,
        # No dump of the test database in the middle of other tests: tests/backup runs the schedule.
        backup_every_hours=0,
        metrics_token=METRICS_TOKEN,
    )


@pytest.fixture(scope="session")
def env(settings: Settings) -> dict[str, str]:
    """Environment for `rapidly` subprocesses pointed at the test database."""
    return {
        **os.environ,
        "RAPIDLY_DATABASE_URL": settings.database_url or "",
        "RAPIDLY_DATA_DIR": str(settings.data_dir),
        "RAPIDLY_SECRET_KEY": TEST_SECRET_KEY,
        "RAPIDLY_ROOT_KEY": TEST_ROOT_KEY,
        "RAPIDLY_DATABASE_COUNTRY": "FI",
        "RAPIDLY_STORAGE_COUNTRY": "FI",
        "RAPIDLY_BACKUP_EVERY_HOURS": "0",
    }


@pytest.fixture(scope="session")
def plugins() -> PluginRegistry:
    """The installed plugins, and "every_kind" (tests/every_kind.py): one field of every kind."""
    from tests.every_kind import EveryKind

    registry = PluginRegistry()
    registry.register(EveryKind(), "every_kind")
    return registry


#: Buckets on the session's S3 server (moto over HTTP), by the region each is created in.
S3_BUCKETS = {
    "rapidly-london": "eu-west-2",
    "rapidly-zurich": "eu-central-2",
    "rapidly-stockholm": "eu-north-1",
    "rapidly-versioned": "eu-north-1",
    "rapidly-default": "us-east-1",  # reported as an empty location, like MinIO's default region
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on loopback (moto's server), with the buckets of `S3_BUCKETS`."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for bucket, region in S3_BUCKETS.items():
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        client.create_bucket(Bucket=bucket, **extra)
        if bucket == "rapidly-versioned":
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield endpoint
    server.stop()


@dataclass
class LiveServer:
    url: str
    app: object

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
async def server(settings: Settings, plugins: PluginRegistry, server_port: int) -> AsyncIterator[LiveServer]:
    """The app on a loopback port, served by uvicorn in the test's event loop."""
    app = create_app(settings, plugins)
    port = server_port
    config = serving.uvicorn_config(app, host="127.0.0.1", port=port, lifespan="on")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}", app=app)
    uv.should_exit = True
    await task


@pytest.fixture(autouse=True)
async def _empty_database(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Truncate every table (as the owner), and empty the local media storage, after each test that
    used the database."""
    yield
    if "database_url" not in request.fixturenames:
        return
    if "settings" in request.fixturenames or "server" in request.fixturenames:
        media = request.getfixturevalue("settings").data_dir / "media"
        for child in media.iterdir() if media.exists() else ():
            shutil.rmtree(child)
    conn = await db.Credentials.from_url(request.getfixturevalue("database_url")).connect()
    try:
        tables = await conn.fetchval(
            "SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'tortoise_migrations'"
        )
        if tables:
            await conn.execute(f"TRUNCATE {tables} CASCADE")
    finally:
        await conn.close()
    from rapidly.tenants.origins import listed

    listed.forget()  # the origins of this test's tenants are gone


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches PostgreSQL, so CI can run them against a second server, and
    every test that drives Chromium."""
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


def chromium_path() -> str | None:
    """Debian's chromium (`python3 dev.py test` installs it where it can); never a downloaded browser."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """Headless Chromium through Playwright, using the system's browser binary."""
    from playwright.async_api import async_playwright

    path = chromium_path()
    if path is None:
        pytest.fail(
            "Chromium is not installed: `apt install chromium` (Debian/Ubuntu), or set CHROMIUM to its path; "
            "or leave the browser tests out with -m 'not browser'."
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def __call__(
        self, query: str, variables: dict | None = None, *, token: str | None = None, expect_errors: bool = False
    ) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(self.url, json={"query": query, "variables": variables or {}}, headers=headers)
        body = response.json()
        if not expect_errors:
            assert response.status_code == 200, body
            assert "errors" not in body, body["errors"]
            return body["data"]
        return body


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient, server: LiveServer) -> GraphQLClient:
    return GraphQLClient(http, server.graphql_url)


@dataclass
class World:
    """Factories for tenants and staff, created through the services."""

    plugins: PluginRegistry

    async def tenant(self, slug: str = "kattohuolto", plugin: str = "roofing_fi", **kwargs: object):  # type: ignore[no-untyped-def]
        from rapidly.tenants import service

        return await service.create_tenant(
            self.plugins, slug=slug, name=kwargs.pop("name", slug.title()), plugin=plugin, **kwargs
        )  # type: ignore[arg-type]

    async def staff(
        self,
        tenant_slug: str = "kattohuolto",
        email: str = "anna@kattohuolto.example",
        password: str = STAFF_PASSWORD,
        locale: str | None = None,
    ):  # type: ignore[no-untyped-def]
        from rapidly.staff import service

        return await service.create_staff(tenant_slug=tenant_slug, email=email, password=password, locale=locale)


@pytest.fixture
def world(server: LiveServer, plugins: PluginRegistry) -> World:
    return World(plugins)


class Subscription:
    """A graphql-transport-ws client on a real WebSocket."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws = ws

    async def next(self, timeout: float = 5) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            return message["payload"]

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def subscribe(url: str, query: str, token: str | None, *, live=None) -> AsyncIterator[Subscription]:  # type: ignore[no-untyped-def]
    """Connect, authenticate in connection_init, subscribe; yields once the subscriber is registered.

    Pass the in-process server's live subscriptions (`app.state.fanout`) to wait for exactly that;
    for another process, or when the subscription is meant to be refused, a short pause stands in.
    """
    import websockets

    ws_url = url.replace("http://", "ws://")
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        before = live.subscriber_count() if live is not None else 0
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        if live is None:
            await asyncio.sleep(0.3)
        else:
            for _ in range(500):
                if live.subscriber_count() > before:
                    break
                await asyncio.sleep(0.01)
        yield Subscription(ws)


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run `rapidly ...` as a user would, in a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "rapidly", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
