"""No token, link or personal datum in anything an operator's terminal shows (issue 26, deliverable 1).

Every way Rapidly runs is started as an operator starts it, in both log formats (`text` at the
default level; `json` at `RAPIDLY_LOG_LEVEL=debug`, so that Rapidly's own debug lines are read too):
`rapidly serve`, `rapidly serve --workers 2`, `rapidly demo` (its second listener, the company page,
included), `rapidly worker` against real SMTP (STARTTLS, AUTH) and SMS gateway servers on loopback, and
every other command. Against each server, `tests/support/tour.py` drives every page and every root
field of the schema with customer data full of markers, forged links and bad input; the server is
stopped with SIGTERM, and everything it printed (standard output and error) is scanned:

- for every marker the tour typed (name, email, phone, address, free text, chat, a photo's file name and
  EXIF comment; above all each customer's unique tag, which is in all of them) and every phone number
  of theirs however spaced;
- for every secret the server handed out (contact, staff and continue-link tokens, CSRF tokens, media
  URL signatures, self-service and phone links) and every secret the operator configured (secret
  key, backup key, metrics token, SMTP password, SMS token, staff password);
- for anything shaped like one: a token (`rp?_…`), a `/my/…` or `/continue/…` path with something
  other than `[token]` in it, a `signature=`, an email address, a phone number in international form;
- for uvicorn's access-log shape (`"GET /… HTTP/1.1" 200`, `127.0.0.1:5555 - "…"`);
- and for Python's own traceback header, and (JSON format) any line that is not one JSON object:
  both mean that something wrote past the one handler of `rapidly.logs`.

What counts for the operator commands: their standard output is their result and may name what the
operator typed or configured (a tenant's slug and name, a staff member's login email, an origin, a
backup's ID, the data directory), never a customer's data or any token. The demo's banner prints the
staff password it made, on purpose: that one password is not a needle for the demo.

Redactions (`[token]`, `[email]`, `[phone]`) in the output mean that something tried to log a secret
and `rapidly.logs.Redact` caught it: allowed for a library's logger (the filter is there for what
libraries write), never for Rapidly's own (`rapidly.*`), whose lines must not hold one in the first place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from graphql import GraphQLError

from rapidly import db, logs, serving
from tests.conftest import (
    METRICS_TOKEN,
    STAFF_PASSWORD,
    TEST_ROOT_KEY,
    TEST_SECRET_KEY,
    free_port,
    run_cli,
    with_database,
)
from tests.messaging.servers import SMTP_PASSWORD, SMTP_USER, Gateway, Mailbox, start_gateway, start_smtp
from tests.support import tour as tour_module
from tests.support.databases import run_sql
from tests.support.served import Served
from tests.support.tour import Person, Tour, root_fields, schema_root_fields

FORMATS = ["text", "json"]
TENANT = "tour"
STAFF_EMAIL = "staff@tour.example"
SECOND_STAFF_EMAIL = "second.staff@tour.example"
BACKUP_KEY = "backup passphrase of the log tour, " + "k" * 16
SMS_TOKEN = "sms-gateway-token-" + uuid.uuid4().hex
#: The root key `rapidly keys rotate` moves the tenant keys to (and back from).
NEXT_ROOT_KEY = "the next root key of the log tour, " + "r" * 16
DEMO_STAFF_EMAIL = "staff@demo.example"
#: Addresses that operators typed or configured; any other address in an output is a leak.
OPERATORS_ADDRESSES = frozenset({STAFF_EMAIL, SECOND_STAFF_EMAIL, DEMO_STAFF_EMAIL, "noreply@rapidly.invalid"})
#: Secrets of the operator's: never printed (the demo's own staff password aside, see above).
OPERATOR_SECRETS = [
    ("RAPIDLY_SECRET_KEY", TEST_SECRET_KEY),
    ("RAPIDLY_ROOT_KEY", TEST_ROOT_KEY),
    ("the next RAPIDLY_ROOT_KEY", NEXT_ROOT_KEY),
    ("RAPIDLY_BACKUP_KEY", BACKUP_KEY),
    ("RAPIDLY_METRICS_TOKEN", METRICS_TOKEN),
    ("SMTP password", SMTP_PASSWORD),
    ("RAPIDLY_SMS_TOKEN", SMS_TOKEN),
    ("staff password", STAFF_PASSWORD),
]
#: Commands run by tests of their own here; the rest by `test_every_operator_command...`.
SERVING = {"serve", "demo", "worker"}
#: Commands with subcommands.
GROUPS = {"tenant", "staff", "retention", "backup", "keys"}

# -- the scan ---------------------------------------------------------------------------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
SHAPES = [
    ("a token", re.compile(r"\brp[a-z]_[A-Za-z0-9_-]{12,}")),
    ("a link holding a token", re.compile(r"/(?:my|continue|invite)/(?!\[token\])[A-Za-z0-9_%-]{12,}")),
    ("a signed link's signature", re.compile(r"signature=(?!\[redacted\])[^\s&\"']+")),
    ("an access-log request", re.compile(r'"(?:GET|POST|HEAD|PUT|DELETE|PATCH|OPTIONS|WebSocket) /')),
    ("an access-log status", re.compile(r'HTTP/\d(?:\.\d)?" \d{3}')),
    ("a client's address and port", re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}:\d+ - ")),
    ("a phone number", re.compile(r"\+[1-9]\d[\d ()-]{6,}\d")),
    ("a traceback printed past the log handler", re.compile(r"Traceback \(most recent call last\)")),
]
REDACTIONS = re.compile(r"\[(?:token|email|phone)\]|=\[redacted\]")


def with_json_decoded(text: str) -> str:
    """`text`, and the strings of each line that is a JSON object (where a quote, a backslash or a
    line break of a marker would be escaped)."""
    decoded = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            decoded += [value for value in entry.values() if isinstance(value, str)]
    return "\n".join([text, *decoded])


@dataclass
class Needles:
    """What must not be in an output."""

    exact: list[tuple[str, str]] = field(default_factory=list)
    patterns: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)

    def add_tour(self, tour: Tour) -> Needles:
        self.exact += tour.markers + tour.secrets
        for person in tour.people:
            self.exact += [
                (f"a line of the free text of customer {person.tag}", line) for line in person.text.splitlines()
            ]
        self.patterns += [("a customer's phone number", pattern) for pattern in tour.phone_patterns]
        return self

    def leaks(self, output: str) -> list[str]:
        """Each needle found, with the line it is on."""
        text = with_json_decoded(output)
        found = []
        for label, value in [*self.exact, *OPERATOR_SECRETS]:
            if value and value in text:
                found.append(f"{label} ({value!r}): {_line_of(text, text.index(value))}")
        for label, pattern in [*SHAPES, *self.patterns]:
            found += [f"{label}: {_line_of(text, m.start())}" for m in pattern.finditer(text)]
        for match in EMAIL.finditer(text):
            if match.group(0) not in OPERATORS_ADDRESSES:
                found.append(f"an email address: {_line_of(text, match.start())}")
        return found


def _line_of(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start : end if end != -1 else len(text)][:400]


def not_json_lines(output: str, allowed: Collection[str] = ()) -> list[str]:
    lines = []
    for line in output.splitlines():
        if not line.strip() or line in allowed:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not (isinstance(entry, dict) and {"time", "level", "logger", "message"} <= set(entry)):
            lines.append(line)
    return lines


def assert_clean(name: str, output: str, needles: Needles, fmt: str, *, allowed_lines: Collection[str] = ()) -> None:
    leaks = needles.leaks(output)
    assert not leaks, f"{name} printed:\n" + "\n".join(leaks)
    if fmt == "json":
        stray = not_json_lines(output, allowed_lines)
        assert not stray, f"{name} printed lines that are not JSON log entries:\n" + "\n".join(stray[:20])
    redacted = [line for line in output.splitlines() if REDACTIONS.search(line)]
    own = [line for line in redacted if _logger_of(line).startswith("rapidly")]
    assert not own, f"{name}: Rapidly's own lines that Redact had to mend:\n" + "\n".join(own[:10])
    if redacted:  # a library's, caught by the second lock: shown with -s
        print(f"\n{name}: {len(redacted)} line(s) redacted by rapidly.logs.Redact:\n" + "\n".join(redacted[:10]))


def _logger_of(line: str) -> str:
    """The logger that wrote a log line, in either format ("" for a line that is none)."""
    if line.startswith("{"):
        return str(json.loads(line).get("logger", ""))
    found = re.match(r"^\S+ \S+ [A-Z]+ ([\w.]+): ", line)
    return found.group(1) if found else ""


# -- the site: a database, an object storage (local), SMTP and SMS servers ---------------------------


@dataclass
class Relay:
    smtp_url: str
    mailbox: Mailbox
    gateway: Gateway
    ca_file: Path

    def mails_to(self, address: str) -> list:
        return [m for m in self.mailbox.messages if m["X-Envelope-To"] == address]

    def texts_to(self, person: Person) -> list[dict]:
        msisdn = int(f"358{person.digits}")
        return [r for r in self.gateway.requests if r["body"]["recipients"] == [{"msisdn": msisdn}]]


@pytest.fixture(scope="module")
def relay(certificate_authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """An SMTP server that requires STARTTLS and AUTH (its CA trusted through SSL_CERT_FILE), and an SMS
    gateway, on loopback."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    controller, mailbox = start_smtp(context)
    server, gateway = start_gateway()
    yield Relay(f"smtp+starttls://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{controller.port}", mailbox, gateway, ca_file)
    controller.stop()
    server.shutdown()


@dataclass
class Site:
    """A database of this module's own (migrated, with tenant `tour` and its staff member), local
    storage, and the relay: what `serve`, `worker` and the operator commands run against."""

    env: dict[str, str]
    url: str
    relay: Relay
    #: Outputs of the commands that set it up, scanned with the operator commands'.
    outputs: list[tuple[str, str, str]] = field(default_factory=list)

    def env_for(self, fmt: str, **extra: str) -> dict[str, str]:
        level = "debug" if fmt == "json" else "info"
        return {**self.env, "RAPIDLY_LOG_FORMAT": fmt, "RAPIDLY_LOG_LEVEL": level, **extra}

    async def _owner(self, sql: str) -> list:
        conn = await db.Credentials.from_url(self.url).connect()
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    async def send_everything_now(self) -> None:
        """Messages that wait (the self-service link waits two minutes for typing to end) are due now."""
        await self._owner("UPDATE outbound_message SET next_attempt_at = now() WHERE status = 'PENDING'")

    async def until_sent(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rows = await self._owner("SELECT status, last_error, count(*) AS n FROM outbound_message GROUP BY 1, 2")
            if not any(row["status"] == "PENDING" for row in rows):
                return
            assert time.monotonic() < deadline, [dict(row) for row in rows]
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def site(env, database_url, relay, tmp_path_factory) -> AsyncIterator[Site]:  # type: ignore[no-untyped-def]
    name = f"rapidly_logs_{uuid.uuid4().hex[:10]}"
    await run_sql(database_url, f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    url = with_database(database_url, name)
    base = {
        **env,
        "RAPIDLY_DATABASE_URL": url,
        "RAPIDLY_DATA_DIR": str(tmp_path_factory.mktemp("site")),
        "RAPIDLY_BACKUP_KEY": BACKUP_KEY,
        "RAPIDLY_METRICS_TOKEN": METRICS_TOKEN,
        "RAPIDLY_SMTP_URL": relay.smtp_url,
        "RAPIDLY_SMTP_COUNTRY": "FI",
        "RAPIDLY_SMS_URL": relay.gateway.url,
        "RAPIDLY_SMS_TOKEN": SMS_TOKEN,
        "RAPIDLY_SMS_COUNTRY": "FI",
        "SSL_CERT_FILE": str(relay.ca_file),
    }
    made = Site(base, url, relay)
    for args, stdin in (
        (("migrate",), None),
        (("tenant", "create", "--slug", TENANT, "--name", "Tour Oy", "--plugin", "roofing_fi"), None),
        (("staff", "create", "--tenant", TENANT, "--email", STAFF_EMAIL, "--locale", "en"), STAFF_PASSWORD + "\n"),
    ):
        done = run_cli(base, *args, stdin=stdin, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        made.outputs.append((" ".join(args), done.stdout, done.stderr))
    yield made
    await run_sql(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP ROLE IF EXISTS "{name}_app"')


def tour_of(served: Served, **kwargs: object) -> Tour:
    return Tour(served.url, TENANT, STAFF_EMAIL, STAFF_PASSWORD, metrics_token=METRICS_TOKEN, **kwargs)  # type: ignore[arg-type]


def assert_toured(tour: Tour) -> None:
    assert tour.called == schema_root_fields(), "the tour ran every root field of the schema"
    found = "\n".join(Needles().add_tour(tour).leaks(tour.answers["export.json"]))
    assert tour.main.email in found and tour.main.digits[-4:] in found, "positive control: the scan sees the data"
    assert "rapidly_" in tour.answers.get("/metrics", ""), "scraped"
    assert not Needles().add_tour(tour).leaks(tour.answers["/metrics"]), "/metrics names no secret"


# -- the tour itself --------------------------------------------------------------------------------


def test_the_tour_has_a_document_for_every_root_field_of_the_schema():
    # given: the operations of the committed schema
    expected = schema_root_fields()

    # when: the tour's documents
    documents = [value for value in vars(tour_module).values() if isinstance(value, str) and value.strip()[:1] in "qms"]
    covered = set()
    for document in documents:
        try:
            covered |= root_fields(document)
        except GraphQLError:
            continue

    # then: a new operation needs a step in the tour
    assert covered == expected, f"missing from tests/support/tour.py: {sorted(expected - covered)}"


# -- uvicorn's access log: off in every process, not only filtered -----------------------------------


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """What `rapidly.logs.configure` changes in this process, put back afterwards."""
    import threading

    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "rapidly")
    saved = [
        (
            logging.getLogger(n),
            list(logging.getLogger(n).handlers),
            logging.getLogger(n).propagate,
            logging.getLogger(n).level,
        )
        for n in names
    ]
    before = (list(root.handlers), root.level, sys.excepthook, threading.excepthook)
    yield
    for logger, handlers, propagate, level in saved:
        logger.handlers[:], logger.propagate, logger.level = handlers, propagate, level
    root.handlers[:], root.level, sys.excepthook, threading.excepthook = before
    logging.captureWarnings(False)


def access_log_on() -> bool:
    """What uvicorn's HTTP protocols ask when a connection is made: whether to write access lines."""
    return logging.getLogger("uvicorn.access").hasHandlers()


def test_uvicorns_access_log_is_off_in_serve_and_demo(logging_restored):
    # given: `rapidly serve` and `rapidly demo`: Rapidly's logging first, then uvicorn's Config
    logs.configure("text")

    # when
    serving.uvicorn_config(object(), host="127.0.0.1", port=free_port())

    # then: uvicorn writes no access line (not merely one that `Redact` throws away)
    assert not access_log_on()


def test_uvicorns_access_log_is_off_in_each_process_of_serve_with_workers(logging_restored):
    # given: a process of `serve --workers N`: uvicorn's supervisor made its Config; in the process,
    # uvicorn configures logging from it, then imports the app factory, which configures Rapidly's
    logs.configure("text")
    config = serving.uvicorn_config("rapidly.cli:worker_app", factory=True, workers=2)
    config.configure_logging()

    # when: `rapidly.cli.worker_app`
    logs.configure("text")

    # then
    assert not access_log_on()


# -- serving ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_serve_prints_no_token_link_or_personal_datum(site, fmt, tmp_path):
    # given: `rapidly serve`, sending its own messages
    served = Served(site.env_for(fmt), tmp_path / "serve.log", "serve", timeout=90)
    tour = tour_of(served)
    try:
        # when: every page and operation, then every message sent
        await tour.run()
        await site.send_everything_now()
        await site.until_sent()
    finally:
        stopped = served.stop()

    # then
    assert stopped == 0, served.log()[-3000:]
    assert_toured(tour)
    assert site.relay.mails_to(tour.main.email) and site.relay.texts_to(tour.main), "messages went out"
    assert_clean(f"rapidly serve ({fmt})", served.log(), Needles().add_tour(tour), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_serve_with_workers_and_a_worker_print_no_token_link_or_personal_datum(site, fmt, tmp_path):
    # given: two server processes that leave the messages to `rapidly worker`
    serve_env = site.env_for(fmt, RAPIDLY_DISPATCHER_IN_SERVE="false")
    served = Served(serve_env, tmp_path / "serve.log", "serve", "--workers", "2", timeout=90)
    tour = tour_of(served)
    try:
        # when: every page and operation through both processes
        await tour.run()
    finally:
        stopped = served.stop()
    # ... and then a worker sends what they queued, to real SMTP and SMS servers
    worker_log = tmp_path / "worker.log"
    with worker_log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "worker"],
            env=site.env_for(fmt),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await site.send_everything_now()
            await site.until_sent()
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)

    # then
    assert stopped == 0, served.log()[-3000:]
    assert_toured(tour)
    assert len(site.relay.mails_to(tour.main.email)) >= 4, "continue link, photo request, chat reply, own page"
    assert len(site.relay.texts_to(tour.main)) == 2, "continue link and photo request"
    needles = Needles().add_tour(tour)
    assert_clean(f"rapidly serve --workers 2 ({fmt})", served.log(), needles, fmt)
    worker_output = worker_log.read_text(errors="replace")
    assert_clean(
        f"rapidly worker ({fmt})",
        worker_output,
        needles,
        fmt,
        allowed_lines={"worker: sending queued messages (Ctrl-C to stop)"},
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's data directory (embedded PostgreSQL, media, texts), shared by its two runs."""
    return tmp_path_factory.mktemp("demo")


_BANNER_START = re.compile(r"^Rapidly \S+ demo$")
_BANNER_END = "Email needs RAPIDLY_SMTP_URL. Stop with Ctrl-C."


def banner_lines(output: str) -> set[str]:
    """The lines of the demo's banner (its standard output, for people, in either format)."""
    lines, inside = set(), False
    for line in output.splitlines():
        inside = inside or bool(_BANNER_START.match(line))
        if inside:
            lines.add(line)
        if line == _BANNER_END:
            break
    return lines


@pytest.mark.parametrize("fmt", FORMATS)
async def test_demo_prints_no_token_link_or_personal_datum(env, relay, demo_dir, fmt, tmp_path):
    # given: `rapidly demo` as `python3 dev.py run` starts it (its own embedded PostgreSQL), with an
    # SMTP relay; texts go to a file, as in the demo
    demo_env = {
        name: value
        for name, value in env.items()
        if name
        not in ("RAPIDLY_DATABASE_URL", "RAPIDLY_SECRET_KEY", "RAPIDLY_DATABASE_COUNTRY", "RAPIDLY_STORAGE_COUNTRY")
    }
    demo_env |= {
        "RAPIDLY_DATA_DIR": str(demo_dir),
        "RAPIDLY_LOG_FORMAT": fmt,
        "RAPIDLY_LOG_LEVEL": "debug" if fmt == "json" else "info",
        "RAPIDLY_METRICS_TOKEN": METRICS_TOKEN,
        "RAPIDLY_SMTP_URL": relay.smtp_url,
        "RAPIDLY_SMTP_COUNTRY": "FI",
        "SSL_CERT_FILE": str(relay.ca_file),
    }
    site_port = free_port()
    served = Served(demo_env, tmp_path / "demo.log", "demo", "--site-port", str(site_port), timeout=180)
    password = re.search(rf"staff login:\s+{re.escape(DEMO_STAFF_EMAIL)} / (\S+)", served.log()).group(1)
    tour = Tour(
        served.url,
        "demo",
        DEMO_STAFF_EMAIL,
        password,
        metrics_token=METRICS_TOKEN,
        site_url=f"http://127.0.0.1:{site_port}",
    )
    try:
        # when: every page and operation, the company page on the second listener included
        await tour.run()
        texts = demo_dir / "sms-outbox"
        deadline = time.monotonic() + 20
        while not (
            relay.mails_to(tour.main.email) and any(tour.main.digits in p.read_text() for p in texts.rglob("*.txt"))
        ):
            assert time.monotonic() < deadline, "the demo sends the continue link by email and by text (to a file)"
            await asyncio.sleep(0.2)
    finally:
        stopped = served.stop()

    # then
    assert stopped == 0, served.log()[-3000:]
    assert_toured(tour)
    output = served.log()
    banner = banner_lines(output)
    assert any(password in line for line in banner), "the banner names the demo's staff password"
    scanned = "\n".join(line for line in output.splitlines() if line not in banner)
    assert password not in scanned, "the demo's staff password is in the banner only"
    assert_clean(f"rapidly demo ({fmt})", output, Needles().add_tour(tour), fmt, allowed_lines=banner)


# -- every other command ----------------------------------------------------------------------------


def commands() -> set[str]:
    """Every command of `rapidly` an operator may run (`makemigrations`, hidden, is the developers')."""
    from rapidly.cli import app

    names = {(c.name or c.callback.__name__).replace("_", "-") for c in app.registered_commands if not c.hidden}
    for group in app.registered_groups:
        names |= {f"{group.name} {c.name or c.callback.__name__}" for c in group.typer_instance.registered_commands}
    return names


async def test_every_operator_command_prints_no_token_link_or_personal_datum(site, tmp_path):
    # given: customers' data in the database, from a tour of `rapidly serve`
    outputs = [(f"rapidly {args}", stdout, stderr) for args, stdout, stderr in site.outputs]
    ran: set[str] = {"migrate", "tenant create", "staff create"}

    def rapidly(*args: str, fmt: str = "text", stdin: str | None = None, **extra: str) -> str:
        done = run_cli(site.env_for(fmt, **extra), *args, stdin=stdin, timeout=120)
        outputs.append((f"rapidly {' '.join(args)} ({fmt})", done.stdout, done.stderr))
        assert done.returncode == 0, done.stdout + done.stderr
        ran.add(" ".join(args[:2]) if args[0] in GROUPS else args[0])
        return done.stdout

    served = Served(site.env_for("text"), tmp_path / "serve.log", "serve", timeout=90)
    tour = tour_of(served)
    try:
        await tour.run()

        # when: backups made while it serves; the main customer then erases themselves
        first = rapidly("backup", "create").splitlines()[-1]
        second = rapidly("backup", "create", fmt="json").splitlines()[-1]
        await tour.erase_main()
    finally:
        served.stop()
    listed = rapidly("backup", "list") + rapidly("backup", "list", fmt="json")
    rapidly("backup", "prune")
    rapidly("backup", "prune", fmt="json")
    # ... a restore brings the erased customer back, and erases them again at once
    restored = rapidly("backup", "restore", first, "--overwrite")
    rapidly("backup", "restore", second, "--overwrite", fmt="json")
    for fmt in FORMATS:
        rapidly("retention", "run", fmt=fmt)
        rapidly("tenant", "list", fmt=fmt)
        rapidly("check", fmt=fmt)
        rapidly("migrate", fmt=fmt)
    rapidly("tenant", "create", "--slug", "tour-two", "--name", "Tour Two Oy", "--plugin", "carrepair_se", fmt="json")
    rapidly("tenant", "retention", TENANT, "--days", "365")
    rapidly("tenant", "retention", TENANT, "--off", fmt="json")
    rapidly("tenant", "messages", TENANT, "CONTINUE_LINK", "--email", "--sms")
    rapidly("tenant", "messages", TENANT, "CHAT_REPLY", "--email", fmt="json")
    rapidly("tenant", "origins", TENANT, "--add", "https://www.tour.example")
    rapidly("tenant", "origins", TENANT, "--remove", "https://www.tour.example", fmt="json")
    rapidly(
        "staff", "create", "--tenant", TENANT, "--email", SECOND_STAFF_EMAIL, stdin=STAFF_PASSWORD + "\n", fmt="json"
    )
    for fmt in FORMATS:
        rapidly("keys", "status", fmt=fmt)
        rapidly("keys", "encrypt-existing", fmt=fmt)
    rapidly("keys", "status", "--json", "--tenants")
    # ... the tenant keys moved to another root key, and back
    for current, previous in ((NEXT_ROOT_KEY, TEST_ROOT_KEY), (TEST_ROOT_KEY, NEXT_ROOT_KEY)):
        roots = {"RAPIDLY_ROOT_KEY": current, "RAPIDLY_PREVIOUS_ROOT_KEY": previous}
        rapidly("keys", "rotate", **roots)
        rapidly("keys", "rotate", fmt="json", **roots)
        rapidly("keys", "status", "--tenants", fmt="json", **roots)
    rapidly("plugins")
    rapidly("version")
    rapidly("schema")

    # then: every command was run (serve, demo and worker by the tests above)
    assert ran | SERVING == commands(), f"not run here: {sorted(commands() - ran - SERVING)}"
    # (two backups made in the same second are listed in the order of their IDs' random part)
    assert {first, second} == {line.split()[0] for line in listed.splitlines()[:2]}
    assert "erased again 1 contacts" in restored, restored
    (tmp_path / "outputs.txt").write_text(  # to read after a run
        "\n".join(f"$ {name}\n{stdout}{stderr}" for name, stdout, stderr in outputs)
    )
    needles = Needles().add_tour(tour)
    assert_clean("rapidly serve (text)", served.log(), needles, "text")
    for name, stdout, stderr in outputs:
        fmt = "json" if name.endswith("(json)") else "text"
        assert_clean(f"{name}: standard output", stdout, needles, "text")
        assert_clean(f"{name}: standard error", stderr, needles, fmt)
