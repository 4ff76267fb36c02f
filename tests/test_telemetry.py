"""Traces an operator may export (issue 26): Rapidly's own spans over OTLP/HTTP to a real receiver on
loopback, and none holds a token, a marker, an email, a phone number or a path with a token; FastAPI's
own instrumentation and the `OTEL_*` variables send nothing anywhere; a collector that is down or slow
costs requests nothing, and what it loses is counted in /metrics."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry, Counter
from websockets.sync.client import ClientConnection, connect

from rapidly import __version__, telemetry
from rapidly.config import Settings
from tests.conftest import METRICS_TOKEN, STAFF_PASSWORD, free_port, run_cli
from tests.media.images import jpeg
from tests.support.databases import commits_not_waiting_for_the_disk
from tests.support.otlp import Receiver
from tests.support.served import Served, without_pauses_of_this_process

MARKER = f"Trace Marker {uuid.uuid4().hex[:10]}"
EMAIL = f"maija.{uuid.uuid4().hex[:8]}@example.fi"
_DIGITS = f"{secrets.randbelow(10**7):07d}"
PHONE_TYPED = f"040 {_DIGITS[:3]} {_DIGITS[3:]}"
PHONE = f"+35840{_DIGITS}"
STAFF_EMAIL = "staff@traced.example"

START = 'mutation { startContact(tenant: "traced") { __typename ... on ContactSession { token selfServiceUrl } } }'
FORM = 'query { form(tenant: "traced", locale: "en") { __typename tenantName fields { key } } }'
SAVE = "mutation Save($key: String!, $value: JSON) { saveField(key: $key, value: $value) { __typename } }"
ME = """
query Mine {
  me { contactId selfServiceUrl values { key value } media { url } chatMessages { edges { node { body } } } }
}
"""
CREATE_LINK = "mutation { createContinueLink { __typename ... on ContinueLink { url } } }"
SEND_LINK = "mutation { sendContinueLink(channel: SMS) { __typename } }"
CHAT = """
mutation Say($body: String!, $contactId: ID) { sendChatMessage(body: $body, contactId: $contactId) { __typename } }
"""
CHAT_READ = "mutation Read($contactId: ID) { markChatRead(contactId: $contactId) }"
UPLOAD = 'mutation Up($file: Upload!) { uploadMedia(fieldKey: "roof_photos", file: $file) { __typename } }'
LOGIN = """
mutation In($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename ... on LoginSuccess { token } }
}
"""
VIEWER = "query { viewer { __typename email } fields { key } }"
CONTACTS = "query Find($search: String) { contacts(search: $search) { edges { node { id displayName } } } }"
CONTACT = "query One($id: ID!) { contact(id: $id) { id displayName values { key value } } }"
CHAT_MESSAGES = "query Talk($id: ID!) { chatMessages(contactId: $id) { edges { node { body } } } }"
NOTIFICATIONS = "query { notifications { edges { node { id text } } } }"
MARK_READ = "mutation Mark($ids: [ID!]!) { markNotificationsRead(ids: $ids) }"
REQUEST_PHOTO = "mutation Ask($id: ID!) { requestPhoto(contactId: $id, channel: SMS) { __typename } }"
DELETE_MINE = "mutation { deleteMyData { __typename ... on ErasureReceipt { complete } } }"
DELETE_CONTACT = "mutation Drop($id: ID!) { deleteContact(id: $id) { __typename } }"
LOGOUT = "mutation { logout }"
CONTACT_EVENTS = "subscription { contactEvents { kind contactId } }"
MY_EVENTS = "subscription { myEvents { kind } }"

#: What any span may carry, by kind: names of the code and the schema, never a path, query, header or address.
HTTP_ATTRIBUTES = {"http.request.method", "http.route", "http.response.status_code", "error.type"}
GRAPHQL_ATTRIBUTES = {"graphql.operation.type", "error.type"}
DATABASE_ATTRIBUTES = {"db.system.name", "db.operation.name", "db.query.summary", "error.type"}
SERVER, CLIENT = 2, 3  # OTLP's span kinds


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def decoy() -> Iterator[Receiver]:
    """Where the `OTEL_*` variables point: it must receive nothing."""
    decoy = Receiver()
    yield decoy
    decoy.close()


@pytest.fixture
def traced_tenant(env, database_url) -> dict[str, str]:
    """Tenant "traced" with a staff member, made by the CLI (the server's database is `env`'s)."""
    made = run_cli(env, "migrate")
    assert made.returncode == 0, made.stderr
    made = run_cli(env, "tenant", "create", "--slug", "traced", "--name", "Traced", "--plugin", "roofing_fi")
    assert made.returncode == 0, made.stderr
    staffed = run_cli(env, "staff", "create", "--tenant", "traced", "--email", STAFF_EMAIL, stdin=STAFF_PASSWORD + "\n")
    assert staffed.returncode == 0, staffed.stderr
    return env


def serve(env: dict[str, str], log: Path, **variables: str) -> Served:
    return Served({**env, "RAPIDLY_METRICS_TOKEN": METRICS_TOKEN, **variables}, log)


def gql(server: Served, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    answer = server.gql(query, variables, token)
    assert "errors" not in answer, answer
    return answer["data"]


def start(server: Served) -> str:
    return gql(server, START)["startContact"]["token"]


@contextlib.contextmanager
def watch(server: Served, query: str, token: str) -> Iterator[ClientConnection]:
    """A graphql-transport-ws subscription, acknowledged and sent."""
    url = server.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        yield ws


def next_event(ws: ClientConnection) -> dict:
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] == "ping":
            ws.send(json.dumps({"type": "pong"}))
            continue
        assert message["type"] == "next", message
        return message["payload"]


def every_operation(server: Served, receiver: Receiver) -> list[str]:
    """Every page and operation, as a customer and as staff would use them; the secrets they involved."""
    http = server.http
    gql(server, FORM)
    token, other, third = start(server), start(server), start(server)
    for key, value in (("name", MARKER), ("email", EMAIL), ("phone", PHONE_TYPED), ("damage_description", MARKER)):
        assert gql(server, SAVE, {"key": key, "value": value}, token)["saveField"]["__typename"] == "FieldSaved"
    assert gql(server, SAVE, {"key": "email", "value": MARKER}, token)["saveField"]["__typename"] == "InputInvalidError"
    assert gql(server, SAVE, {"key": MARKER, "value": EMAIL}, token)["saveField"]["__typename"] == "InputInvalidError"
    for contact in (other, third):
        assert gql(server, SAVE, {"key": "name", "value": MARKER}, contact)["saveField"]["__typename"] == "FieldSaved"
    uploaded = http.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
            "map": '{"0": ["variables.file"]}',
        },
        files={"0": (f"{MARKER}.jpg", jpeg(comment=MARKER, gps=True), "image/jpeg")},
        headers={"Authorization": f"Bearer {token}", "Rapidly-Upload": "1"},
    )
    assert uploaded.json()["data"]["uploadMedia"]["__typename"] == "MediaUploaded", uploaded.text
    mine = gql(server, ME, token=token)["me"]
    link = gql(server, CREATE_LINK, token=token)["createContinueLink"]["url"]
    assert gql(server, SEND_LINK, token=token)["sendContinueLink"]["__typename"] == "LinkSent"
    # sent before the erasures below take the queued text with them (the outbox is read every second)
    receiver.wait_for(lambda spans: "send sms" in {s.name for s in spans})
    assert gql(server, CHAT, {"body": f"{MARKER} {EMAIL}"}, token)["sendChatMessage"]["__typename"] == "ChatMessageSent"

    staff = gql(server, LOGIN, {"email": STAFF_EMAIL, "password": STAFF_PASSWORD})["login"]["token"]
    contact_id = mine["contactId"]
    with watch(server, CONTACT_EVENTS, staff) as watching, watch(server, MY_EVENTS, token) as mine_watched:
        time.sleep(0.5)  # both subscribers registered
        gql(server, SAVE, {"key": "damage_description", "value": f"{MARKER} again"}, token)
        assert next_event(watching)["data"]["contactEvents"]["kind"] == "FIELD_SAVED"
        assert next_event(mine_watched)["data"]["myEvents"]["kind"] == "FIELD_SAVED"
    gql(server, VIEWER, token=staff)
    assert gql(server, CONTACTS, {"search": MARKER[-8:]}, staff)["contacts"]["edges"]
    gql(server, CONTACT, {"id": contact_id}, staff)
    assert gql(server, CHAT, {"body": f"Hei {MARKER}", "contactId": contact_id}, staff)
    gql(server, CHAT_MESSAGES, {"id": contact_id}, staff)
    gql(server, CHAT_READ, {"contactId": contact_id}, staff)
    gql(server, CHAT_READ, token=token)
    notes = gql(server, NOTIFICATIONS, token=staff)["notifications"]["edges"]
    gql(server, MARK_READ, {"ids": [n["node"]["id"] for n in notes]}, staff)
    gql(server, REQUEST_PHOTO, {"id": contact_id}, staff)

    assert http.get(f"/my/{token}").status_code == 200
    assert http.head(f"/my/{token}").status_code == 200
    assert http.get(f"/my/{token}/export.json").status_code == 200
    assert http.get(f"/my/{token}?lang=sv").status_code == 200
    assert http.get(f"/my/rpc_{secrets.token_urlsafe(24)}").status_code == 404
    assert http.get(f"/my/{token}/{MARKER}").status_code == 404
    assert http.get(mine["media"][0]["url"].removeprefix(server.url)).status_code == 200
    continue_path = link.removeprefix(server.url)
    assert http.get(continue_path).status_code == 200
    assert http.get("/console").status_code == 200
    assert http.get("/embed/form.js").status_code == 200

    other_id = gql(server, ME, token=other)["me"]["contactId"]
    assert gql(server, DELETE_MINE, token=other)["deleteMyData"]["__typename"] == "ErasureReceipt"
    third_id = gql(server, ME, token=third)["me"]["contactId"]
    assert gql(server, DELETE_CONTACT, {"id": third_id}, staff)["deleteContact"]["__typename"] == "ErasureReceipt"
    page = http.get(f"/my/{token}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert http.post(f"/my/{token}/delete", data={"csrf": csrf}).status_code == 200  # the button
    assert gql(server, LOGOUT, token=staff)["logout"] is True
    return [token, other, third, staff, continue_path, contact_id, other_id, third_id, csrf]


def secrets_of(involved: list[str]) -> list[str]:
    """Every form of what a trace must never hold."""
    values = [*involved, MARKER, EMAIL, PHONE, PHONE_TYPED, PHONE.removeprefix("+"), f"0{PHONE[4:]}", "/my/rp"]
    values += [STAFF_EMAIL, STAFF_PASSWORD]
    return [form for value in values for form in {value, quote(value), quote(value, safe="")}]


def assert_none_holds(received: Receiver, forbidden: list[str]) -> None:
    for request in received.received:
        for secret in forbidden:
            assert secret.encode() not in request.body, (secret, request.path)


def test_every_operation_and_page_is_traced_and_no_span_holds_personal_data(traced_tenant, receiver, tmp_path):
    # given
    server = serve(
        traced_tenant, tmp_path / "serve.log", RAPIDLY_OTEL_ENDPOINT=receiver.url, RAPIDLY_OTEL_COUNTRY="FI",
        RAPIDLY_SMS_URL="file:",  # the outbox's texts are written to files: a "send sms" span
    )  # fmt: skip
    try:
        # when
        involved = every_operation(server, receiver)
        spans = receiver.wait_for(
            lambda spans: (
                {"erase contact", "send sms", "GET /my/{token}", "subscription myEvents"} <= {s.name for s in spans}
            )
        )
    finally:
        server.stop()
    spans = receiver.spans()

    # then: HTTP by route template, GraphQL by operation type and root field, statements by verb and table
    names = {s.name for s in spans}
    assert {
        "POST /graphql",
        "GET /my/{token}",
        "HEAD /my/{token}",
        "GET /my/{token}/export.json",
        "POST /my/{token}/delete",
        "GET /continue/{token}",
        "GET /my/{anything:path}",
        "GET /media/{tenant}/{contact}/{media}",
        "GET /console",
        "query form",
        "mutation startContact",
        "mutation saveField",
        "mutation uploadMedia",
        "query me",
        "mutation createContinueLink",
        "mutation sendContinueLink",
        "mutation sendChatMessage",
        "mutation login",
        "query viewer",
        "query contacts",
        "query contact",
        "query chatMessages",
        "mutation markChatRead",
        "query notifications",
        "mutation markNotificationsRead",
        "mutation requestPhoto",
        "mutation deleteMyData",
        "mutation deleteContact",
        "mutation logout",
        "subscription contactEvents",
        "subscription myEvents",
        "erase contact",
        "send sms",
        "SELECT rapidly_save",
        "INSERT contact",
        "SELECT contact",
        "BEGIN",
        "COMMIT",
    } <= names, sorted(names)
    by_id = {s.span_id: s for s in spans}
    for span in spans:
        if span.kind == SERVER:
            assert set(span.attributes) <= HTTP_ATTRIBUTES, span
            assert span.name == f"{span.attributes['http.request.method']} {span.attributes['http.route']}"
        elif span.name.split()[0] in ("query", "mutation", "subscription"):
            assert set(span.attributes) <= GRAPHQL_ATTRIBUTES, span
            assert span.attributes["graphql.operation.type"] == span.name.split()[0]
        elif span.kind == CLIENT:
            assert set(span.attributes) <= DATABASE_ATTRIBUTES, span
            assert span.attributes["db.query.summary"] == span.name
            assert span.parent, span  # statements only inside traced work
    saves = [s for s in spans if s.name == "mutation saveField"]
    assert all(by_id[s.parent].name == "POST /graphql" for s in saves)
    assert any(by_id.get(s.parent) in saves for s in spans if s.name == "SELECT rapidly_save")
    erasures = [s for s in spans if s.name == "erase contact"]
    assert {e.attributes["rapidly.erasure.requested_by"] for e in erasures} == {"END_USER", "STAFF"}
    assert all(e.attributes["rapidly.erasure.removed.contact"] == 1 for e in erasures)
    assert any(by_id.get(e.parent, e).name == "POST /my/{token}/delete" for e in erasures)
    assert "sent" in {s.attributes["rapidly.message.outcome"] for s in spans if s.name == "send sms"}
    assert {s.scope for s in spans} == {"rapidly"}
    assert all(r == {"service.name": "rapidly", "service.version": __version__} for r in receiver.resources())
    # and nothing anywhere in what was sent holds a token, a marker, an email, a phone number or a link
    assert_none_holds(receiver, secrets_of(involved))
    assert all(s.status_message == "" for s in spans)


def test_fastapi_own_instrumentation_sends_nothing_whatever_the_environment_says(traced_tenant, decoy, tmp_path):
    # given: FastAPI's automatic OTLP export asked for, to a receiver on loopback
    server = serve(
        traced_tenant,
        tmp_path / "serve.log",
        FASTAPI_OTEL_AUTO_CONFIGURE="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=decoy.url,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BLRP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORT_INTERVAL="100",
    )
    try:
        # when: pages with tokens, an unknown link, an operation
        token = start(server)
        gql(server, SAVE, {"key": "name", "value": MARKER}, token)
        assert server.http.get(f"/my/{token}").status_code == 200
        assert server.http.get(f"/my/{token}/nothing").status_code == 404
        time.sleep(1)
    finally:
        assert server.stop() == 0  # a graceful stop flushes whatever FastAPI would have queued

    # then
    assert decoy.received == []
    assert "telemetry" not in server.log().lower()


def test_otel_variables_cannot_redirect_enrich_sample_or_proxy_the_export(traced_tenant, receiver, decoy, tmp_path):
    # given: every OTEL_* variable that could send spans elsewhere or add to them, pointing at the decoy
    hostile = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": decoy.url,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{decoy.url}/v1/traces",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_RESOURCE_ATTRIBUTES": f"leak={quote(MARKER)},service.name=elsewhere",
        "OTEL_SERVICE_NAME": "elsewhere",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process,host,os",
        "OTEL_BSP_MAX_QUEUE_SIZE": "1",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "deflate",
        "HTTP_PROXY": decoy.url,
        "HTTPS_PROXY": decoy.url,
        "ALL_PROXY": decoy.url,
        "NO_PROXY": "",
        "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
        # How to authenticate to the checked collector is the one thing taken from the environment.
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer collector-key",
    }
    server = serve(
        traced_tenant, tmp_path / "serve.log", RAPIDLY_OTEL_ENDPOINT=receiver.url, RAPIDLY_OTEL_COUNTRY="FI", **hostile
    )
    try:
        # when
        token = start(server)
        gql(server, SAVE, {"key": "name", "value": MARKER}, token)
        assert server.http.get(f"/my/{token}").status_code == 200
        receiver.wait_for(lambda spans: {"mutation saveField", "GET /my/{token}"} <= {s.name for s in spans})
    finally:
        server.stop()

    # then: everything went to RAPIDLY_OTEL_ENDPOINT, as Rapidly's alone, with the collector's key
    assert decoy.received == []
    assert {s.scope for s in receiver.spans()} == {"rapidly"}
    assert all(r == {"service.name": "rapidly", "service.version": __version__} for r in receiver.resources())
    assert {r.headers["authorization"] for r in receiver.received} == {"Bearer collector-key"}
    assert {r.headers.get("content-encoding") for r in receiver.received} == {"gzip"}
    assert_none_holds(receiver, secrets_of([token]))


@pytest.mark.parametrize("collector", ["down", "slow"])
def test_a_collector_down_or_slow_leaves_requests_unaffected_and_lost_spans_are_counted(
    traced_tenant, tmp_path, collector
):
    # given: a closed port, or a collector that takes longer to answer than an export may wait
    slow = Receiver(delay=30) if collector == "slow" else None
    endpoint = slow.url if slow else f"http://127.0.0.1:{free_port()}"
    # (the saves' commits do not wait for the disk: the test times the collector's effect, not the disk's)
    no_fsync_waits = commits_not_waiting_for_the_disk(traced_tenant["RAPIDLY_DATABASE_URL"])
    with no_fsync_waits:
        server = serve(traced_tenant, tmp_path / "serve.log", RAPIDLY_OTEL_ENDPOINT=endpoint, RAPIDLY_OTEL_COUNTRY="FI")
        try:
            token = start(server)

            # when: a customer types for a while
            latencies = []
            deadline = time.monotonic() + 6  # several export attempts, each given up after its timeout
            with without_pauses_of_this_process():
                while time.monotonic() < deadline:
                    began = time.perf_counter()
                    saved = gql(server, SAVE, {"key": "name", "value": f"Maija {len(latencies)}"}, token)
                    latencies.append(time.perf_counter() - began)
                    assert saved["saveField"]["__typename"] == "FieldSaved"
            dropped = wait_for_metric(server, "rapidly_spans_dropped_total", lambda value: value > 0)
        finally:
            stopped_at = time.monotonic()
            assert server.stop() == 0
            stopping = time.monotonic() - stopped_at
            if slow:
                slow.close()

    # then: saves as fast as ever (an export waits up to 2 s, off the request path), and the loss counted
    median, worst = statistics.median(latencies), max(latencies)
    print(f"collector {collector}: {len(latencies)} saves, median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert median < 0.05 and worst < 0.5, (median, worst)
    assert dropped > 0
    assert stopping < 10  # a collector that fails is not waited for at shutdown
    assert "Traceback" not in server.log()


def wait_for_metric(server: Served, name: str, condition, timeout: float = 15) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = server.metric(name, METRICS_TOKEN)
        if condition(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("variables", "setting", "verdict"),
    [
        ({"RAPIDLY_OTEL_ENDPOINT": "https://otlp.example.com:4318"}, "RAPIDLY_OTEL_COUNTRY", "UNDECLARED"),
        (
            {"RAPIDLY_OTEL_ENDPOINT": "http://127.0.0.1:4318", "RAPIDLY_OTEL_COUNTRY": "US"},
            "RAPIDLY_OTEL_COUNTRY",
            "OUTSIDE EEA",
        ),
        ({"RAPIDLY_OTEL_ENDPOINT": "https://otlp.us-east-1.amazonaws.com"}, "RAPIDLY_OTEL_ENDPOINT", "OUTSIDE EEA"),
        ({"RAPIDLY_OTEL_ENDPOINT": "otlp.example.eu:4318"}, "RAPIDLY_OTEL_ENDPOINT", None),  # a config error
    ],
    ids=["undeclared", "declared outside", "known region outside", "malformed"],
)
def test_serve_refuses_and_check_reports_a_collector_outside_the_eea_or_undeclared(
    env, database_url, variables, setting, verdict
):
    # given
    variables = {**env, **variables}

    # when
    served = run_cli(variables, "serve", "--port", str(free_port()), timeout=60)
    checked = run_cli(variables, "check")

    # then
    assert served.returncode != 0 and setting in served.stdout + served.stderr, served.stderr[-2000:]
    assert checked.returncode != 0 and setting in checked.stdout + checked.stderr, checked.stdout[-2000:]
    if verdict is not None:
        assert re.search(rf"^traces .*{verdict}$", checked.stdout, re.MULTILINE), checked.stdout


# -- in this process: what the pipeline does with what it is given -------------------------------------------


def test_an_exception_leaves_its_type_on_the_span_and_never_its_message(receiver, tmp_path):
    # given
    telemetry.start(Settings(otel_endpoint=receiver.url, data_dir=tmp_path))
    try:
        # when
        with pytest.raises(ValueError), telemetry.span("erase contact"):
            raise ValueError(f"{EMAIL} is not {MARKER}")
    finally:
        telemetry.stop()

    # then
    [span] = receiver.wait_for(lambda spans: spans)
    assert span.attributes == {"error.type": "ValueError"}
    assert span.events == [("exception", {"exception.type": "ValueError"})]
    assert (span.status_code, span.status_message) == (2, "")  # ERROR, without a description
    assert_none_holds(receiver, secrets_of([]))


def test_a_full_queue_drops_the_oldest_spans_and_counts_them(tmp_path):
    # given: a collector that never answers in time, and a queue of four
    slow = Receiver(delay=30)
    registry = CollectorRegistry()
    dropped = Counter("spans_dropped", "test", ["reason"], registry=registry)
    pipeline = telemetry.Pipeline(slow.url, dropped, queue_size=4)
    try:
        # when
        began = time.perf_counter()
        for _ in range(100):
            pipeline.tracer.start_span("work").end()
        spent = time.perf_counter() - began
    finally:
        pipeline.close()
        slow.close()

    # then: the spans went on at once, and the ones that found no room are counted
    assert spent < 0.5
    assert (registry.get_sample_value("spans_dropped_total", {"reason": "queue_full"}) or 0) >= 80


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ('SELECT "id","name" FROM "contact" WHERE "tenant_id"=$1 LIMIT $2', "SELECT contact"),
        ("BEGIN; SELECT set_config('rapidly.tenant', '0b3c2a4e-0000-4000-8000-000000000000', true)", "BEGIN"),
        ("SELECT * FROM rapidly_save($1, $2, $3, $4)", "SELECT rapidly_save"),
        ('INSERT INTO "field_value" ("id","value") VALUES ($1,$2)', "INSERT field_value"),
        ("WITH due AS MATERIALIZED (SELECT id FROM outbound_message) UPDATE outbound_message", "WITH outbound_message"),
        (f"UPDATE secrets SET note = 'from {MARKER.split()[-1]}' WHERE x = 1", "UPDATE"),  # noqa: S608
        (f"SELECT '{EMAIL}' FROM unnest($1::text[])", "SELECT"),  # noqa: S608
        ("EXPLAIN ANALYZE SELECT 1", "SQL"),
        ("  commit", "COMMIT"),
    ],
)
def test_a_statement_is_named_by_its_verb_and_a_relation_of_the_schema_only(sql, expected):
    from rapidly.db import relations

    assert telemetry.summary(sql, relations()) == expected


def test_the_worker_exports_the_spans_of_what_it_sends(traced_tenant, receiver, tmp_path):
    # given: a text queued by a serve that sends nothing itself
    server = serve(traced_tenant, tmp_path / "serve.log", RAPIDLY_DISPATCHER_IN_SERVE="false", RAPIDLY_SMS_URL="file:")
    try:
        token = start(server)
        for key, value in (("name", MARKER), ("phone", PHONE_TYPED)):
            assert gql(server, SAVE, {"key": key, "value": value}, token)["saveField"]["__typename"] == "FieldSaved"
        assert gql(server, SEND_LINK, token=token)["sendContinueLink"]["__typename"] == "LinkSent"
    finally:
        server.stop()

    # when: a worker sends it, exporting its traces
    worker_env = {
        **traced_tenant,
        "RAPIDLY_SMS_URL": "file:",
        "RAPIDLY_OTEL_ENDPOINT": receiver.url,
        "RAPIDLY_OTEL_COUNTRY": "FI",
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "rapidly", "worker"], env=worker_env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        spans = receiver.wait_for(lambda spans: "send sms" in {s.name for s in spans})
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    # then
    assert "sent" in {s.attributes["rapidly.message.outcome"] for s in spans if s.name == "send sms"}
    assert_none_holds(receiver, secrets_of([token]))
    assert "Traceback" not in log.read_text()
