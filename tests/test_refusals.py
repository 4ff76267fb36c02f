"""Every refusal to start is one line that names what to fix: no traceback, exit status 2, for every
command that starts the service (`serve`, `serve --workers 2`, `demo`, `worker`), in both log formats.

The refusals are catalogued by their reason: every `StartupRefused(reason, ...)` in the code (and its
subclasses' reasons) must have a case here, so a new refusal is covered the day it is written.
"""

from __future__ import annotations

import ast
import asyncio
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rapidly import db
from rapidly.config import Settings
from rapidly.erasure.stores import erasure_service
from rapidly.errors import StartupRefused
from rapidly.storage import storage_for
from tests.conftest import free_port, run_cli, with_database
from tests.support.databases import run_sql
from tests.support.plugins import PURPOSELESS, install_plugin

ROOT = Path(__file__).resolve().parent.parent
#: Reasons of the subclasses of StartupRefused, which pass them to it themselves.
SUBCLASS_REASONS = {"ConfigError": "config", "ConnectionBudgetExceeded": "connection-budget"}


def reasons_in_the_code() -> set[str]:
    """The first argument of every `StartupRefused(...)` in rapidly/, and the subclasses' reasons."""
    found = set()
    for path in (ROOT / "rapidly").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "StartupRefused" and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
            elif name in SUBCLASS_REASONS:
                found.add(SUBCLASS_REASONS[name])
    return found


@dataclass
class Scene:
    """What a case may set up: the suite's environment, a temporary directory, scratch databases."""

    env: dict[str, str]
    tmp: Path
    database_url: str
    scratch: list[str] = field(default_factory=list)

    def database(self, *statements: str) -> str:
        """A new database on the test server, owned by the suite's role, with `statements` run in it."""
        name = f"rapidly_refusal_{uuid.uuid4().hex[:10]}"
        url = with_database(self.database_url, name)
        asyncio.run(run_sql(self.database_url, f'CREATE DATABASE "{name}"'))
        self.scratch.append(name)
        if statements:
            asyncio.run(run_sql(url, *statements))
        return url

    def sql(self, statement: str) -> None:
        """A statement in the suite's database, as its owner."""
        asyncio.run(run_sql(self.database_url, statement))

    def drop_scratch(self) -> None:
        drops = [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self.scratch]
        drops += [f'DROP ROLE IF EXISTS "{n}_app"' for n in self.scratch]
        asyncio.run(run_sql(self.database_url, *drops, "DROP ROLE IF EXISTS rapidly_not_the_owner"))


@dataclass(frozen=True)
class Case:
    reason: str
    #: The environment's changes (a function of the scene), the commands it applies to, and what the
    #: one line must name.
    setup: Callable[[Scene], dict[str, str]]
    commands: tuple[str, ...]
    names: str


def _without(name: str) -> Callable[[Scene], dict[str, str]]:
    return lambda scene: {name: ""}


def _listening(scene: Scene) -> dict[str, str]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    scene.tmp.joinpath("taken").write_text(str(taken.getsockname()[1]))
    scene.scratch_socket = taken  # type: ignore[attr-defined] -- held until the scene ends
    return {"PORT": str(taken.getsockname()[1])}


def _not_the_owner(scene: Scene) -> dict[str, str]:
    url = scene.database()
    scene.sql("DROP ROLE IF EXISTS rapidly_not_the_owner")
    scene.sql("CREATE ROLE rapidly_not_the_owner LOGIN")
    user = db.Credentials.from_url(url).user
    return {"RAPIDLY_DATABASE_URL": url.replace(f"{user}@", "rapidly_not_the_owner@", 1) if user else url}


def _tenant_with_a_missing_plugin(scene: Scene) -> dict[str, str]:
    assert run_cli(scene.env, "migrate").returncode == 0
    made = run_cli(scene.env, "tenant", "create", "--slug", "gone", "--name", "Gone Oy", "--plugin", "roofing_fi")
    assert made.returncode == 0, made.stderr
    scene.sql("UPDATE tenant SET plugin = 'uninstalled_plugin' WHERE slug = 'gone'")
    return {}


def _media_is_a_file(scene: Scene) -> dict[str, str]:
    data = scene.tmp / "data"
    data.mkdir(exist_ok=True)
    (data / "media").write_text("not a directory")
    return {"RAPIDLY_DATA_DIR": str(data)}


def _pg_is_a_file(scene: Scene) -> dict[str, str]:
    data = scene.tmp / "data"
    data.mkdir(exist_ok=True)
    (data / "pg").write_text("not a directory")
    return {"RAPIDLY_DATA_DIR": str(data), "RAPIDLY_DATABASE_URL": ""}


_KEY_ROW = (
    "INSERT INTO tenant_key (id, tenant_id, wrapped, wrapped_by, created_at) SELECT gen_random_uuid(), id, "
    "decode(repeat('01', 73), 'hex'), 'WRAPPED_BY', now() FROM tenant WHERE slug = 'keyed'"
)


def _a_tenant_key_wrapped_by(wrapped_by: str) -> Callable[[Scene], dict[str, str]]:
    """A database of its own with one tenant whose key was wrapped by `wrapped_by` (and does not
    open: the start must say so once, or reach the KMS that wrapped it)."""

    def setup(scene: Scene) -> dict[str, str]:
        url = scene.database()
        env = {**scene.env, "RAPIDLY_DATABASE_URL": url}
        assert run_cli(env, "migrate").returncode == 0
        made = run_cli(env, "tenant", "create", "--slug", "keyed", "--name", "Keyed Oy", "--plugin", "roofing_fi")
        assert made.returncode == 0, made.stderr
        asyncio.run(
            run_sql(
                url,
                _KEY_ROW.replace("WRAPPED_BY", wrapped_by),
            )
        )
        return {"RAPIDLY_DATABASE_URL": url}

    return setup


def _an_unreachable_kms(scene: Scene) -> dict[str, str]:
    kms = {
        "RAPIDLY_KMS_KEY_ID": "alias/rapidly-root",
        "RAPIDLY_KMS_REGION": "eu-north-1",
        "RAPIDLY_KMS_ENDPOINT_URL": "http://127.0.0.1:1",
        "RAPIDLY_KMS_COUNTRY": "FI",
        "RAPIDLY_KMS_ACCESS_KEY_ID": "testing",
        "RAPIDLY_KMS_SECRET_ACCESS_KEY": "testing",
    }
    return {**_a_tenant_key_wrapped_by("aws-kms:alias/rapidly-root")(scene), **kms}


CASES = [
    Case("config", lambda s: {"RAPIDLY_MEDIA_MAX_BYTES": "1"}, ("serve", "workers", "demo", "worker"),
         "RAPIDLY_MEDIA_MAX_BYTES"),
    Case("config", lambda s: {"RAPIDLY_LOG_LEVEL": "loud"}, ("serve", "demo"), "RAPIDLY_LOG_LEVEL"),
    Case("config", lambda s: {"RAPIDLY_LOG_FORMAT": "xml"}, ("serve", "worker"), "RAPIDLY_LOG_FORMAT"),
    Case("config", lambda s: {"RAPIDLY_DATABSE_URL": "postgresql://x@h/d"}, ("serve", "worker"),
         "RAPIDLY_DATABSE_URL"),
    Case("config", lambda s: {"RAPIDLY_ROOT_KEY": "too short a key"}, ("serve", "worker"), "RAPIDLY_ROOT_KEY"),
    Case("backup-key", lambda s: {"RAPIDLY_BACKUP_EVERY_HOURS": "24"}, ("serve", "workers"), "RAPIDLY_BACKUP_KEY"),
    Case("residency", _without("RAPIDLY_DATABASE_COUNTRY"), ("serve", "workers", "worker"),
         "RAPIDLY_DATABASE_COUNTRY"),
    Case("database", lambda s: {"RAPIDLY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
         ("serve", "workers", "worker"), "RAPIDLY_DATABASE_URL"),
    Case("embedded-database", _pg_is_a_file, ("serve", "demo"), "RAPIDLY_DATA_DIR"),
    Case("root-key", _without("RAPIDLY_ROOT_KEY"), ("serve", "workers", "worker"), "RAPIDLY_ROOT_KEY"),
    Case("root-key", _a_tenant_key_wrapped_by("passphrase:0123456789abcdef"), ("serve", "workers"),
         "does not open the keys of 1 of 1 tenants"),
    Case("key-service", _an_unreachable_kms, ("serve", "worker"), "RAPIDLY_KMS_ENDPOINT_URL"),
    Case("migrations", lambda s: {"RAPIDLY_DATABASE_URL": s.database("CREATE TABLE tenant (x int)")},
         ("serve", "workers"), "migration 0001_initial failed"),
    Case("not-migrated", lambda s: {"RAPIDLY_DATABASE_URL": s.database()}, ("worker",), "rapidly migrate"),
    Case("database-owner", _not_the_owner, ("serve", "workers"), "RAPIDLY_DATABASE_URL"),
    Case("app-role", lambda s: {"RAPIDLY_DATABASE_APP_ROLE": db.Credentials.from_url(s.database_url).user},
         ("serve", "workers"), "RAPIDLY_DATABASE_APP_ROLE"),
    Case("plugins", lambda s: install_plugin(s.tmp, "purposeless", PURPOSELESS), ("serve", "workers", "demo", "worker"),
         "shoe_size"),
    Case("tenant-plugins", _tenant_with_a_missing_plugin, ("serve", "workers"), "uninstalled_plugin"),
    Case("storage", _media_is_a_file, ("serve", "workers", "demo"), "RAPIDLY_DATA_DIR"),
    Case("listen", _listening, ("serve", "workers", "demo"), "--port"),
    Case("connection-budget", lambda s: {"RAPIDLY_DATABASE_POOL_SIZE": "200"}, ("workers",),
         "RAPIDLY_DATABASE_POOL_SIZE"),
]  # fmt: skip
#: Tested in-process below (the journal's store must fail after the residency check has passed).
IN_PROCESS = {"journal"}


def command_line(command: str, port: str) -> list[str]:
    return {
        "serve": ["serve", "--port", port],
        "workers": ["serve", "--workers", "2", "--port", port],
        "demo": ["demo", "--port", port, "--site-port", str(free_port())],
        "worker": ["worker"],
    }[command]


@pytest.fixture
def scene(env, tmp_path, database_url) -> Iterator[Scene]:
    made = Scene({**env, "RAPIDLY_DATA_DIR": str(tmp_path / "data")}, tmp_path, database_url)
    yield made
    made.drop_scratch()


def test_every_refusal_in_the_code_has_a_case():
    assert reasons_in_the_code() == {case.reason for case in CASES} | IN_PROCESS


@pytest.mark.parametrize(
    ("case", "command", "log_format"),
    [
        pytest.param(case, command, log_format, id=f"{case.reason}-{command}-{log_format}")
        for n, case in enumerate(CASES)
        for command in case.commands
        for log_format in (("text", "json") if n < 2 and command in ("serve", "workers") else ("text",))
    ],
)
def test_a_refusal_is_one_line_naming_what_to_fix_with_status_2(scene, case, command, log_format):
    # given
    changes = case.setup(scene)
    port = changes.pop("PORT", None) or str(free_port())
    env = {**scene.env, "RAPIDLY_LOG_FORMAT": log_format, **changes}
    env = {name: value for name, value in env.items() if value != "" or name not in changes}

    # when
    done = run_cli(env, *command_line(command, port), timeout=120)

    # then
    printed = (done.stdout + done.stderr).splitlines()
    errors = [line for line in printed if _is_error(line)]
    assert done.returncode == 2, printed[-20:]
    assert len(errors) == 1, errors
    (line,) = errors
    message = json.loads(line)["message"] if log_format == "json" and line.startswith("{") else line
    assert "refusing to start: " in message and case.names in message, message
    assert not any("Traceback" in line or "Exception" in line for line in printed), printed[-20:]


def _is_error(line: str) -> bool:
    if line.startswith("{"):
        return json.loads(line)["level"] in ("ERROR", "CRITICAL")
    return " ERROR " in line or " CRITICAL " in line or line.startswith("error:")


async def test_a_journal_that_cannot_be_read_at_start_is_a_refusal_naming_the_storage(s3_endpoint, data_dir):
    """The replay at start reads the erasure journal from the object storage: a bucket that is gone
    (here, one that never was) refuses the start, in one line."""
    from rapidly.app import _replay_erasures

    # given
    settings = Settings(
        storage="s3",
        s3_endpoint_url=s3_endpoint,
        s3_bucket=f"gone-{uuid.uuid4().hex[:8]}",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        storage_country="FI",
        data_dir=data_dir,
        backup_every_hours=0,
    )
    storage = storage_for(settings)
    await storage.start()

    # when
    try:
        with pytest.raises(StartupRefused) as refused:
            await _replay_erasures(erasure_service(storage, settings))
    finally:
        await storage.close()

    # then
    assert refused.value.reason == "journal"
    assert "\n" not in str(refused.value) and "object storage" in str(refused.value)
