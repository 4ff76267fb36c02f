"""`/metrics`: Prometheus' format for the bearer of `RAPIDLY_METRICS_TOKEN`, with the expected series
and nothing that a user typed, no token and no ID in any label."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from rapidly.app import create_app
from rapidly.schema import schema
from tests.conftest import METRICS_TOKEN, free_port, subscribe
from tests.contacts.test_contacts_api import roofing, save, staff_token, start  # noqa: F401 - fixture

SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
OUTCOMES = {"ok", "rejected", "invalid", "unavailable", "error"}
MESSAGE_OUTCOMES = {"sent", "retry", "failed", "suppressed"}
SERIES = {
    "rapidly_requests",
    "rapidly_request_duration_seconds",
    "rapidly_saves",
    "rapidly_events_delivered",
    "rapidly_subscribers",
    "rapidly_outbox_depth",
    "rapidly_message_attempts",
    "rapidly_erasures_pending",
    "rapidly_erasure_retries",
    "rapidly_backups",
    "rapidly_backup_last_timestamp_seconds",
    "rapidly_backup_age_seconds",
    "rapidly_backup_last_failure_timestamp_seconds",
    "rapidly_db_pool_connections",
    "rapidly_spans_dropped",
}
CONTACT_EVENTS = "subscription { contactEvents { kind contactId } }"


def families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def operations(app) -> set[str]:  # type: ignore[no-untyped-def]
    """Every name an `operation` label may take: a root field of the schema, or a route's template."""
    graphql = schema._schema
    roots = {
        name for kind in (graphql.query_type, graphql.mutation_type, graphql.subscription_type) for name in kind.fields
    }
    routes = set()
    pending = list(app.routes)
    while pending:  # FastAPI keeps an included router whole: walk into it
        route = pending.pop()
        routes.add(getattr(route, "path", ""))
        pending += getattr(getattr(route, "original_router", None), "routes", [])
    return {*roots, *(r for r in routes if r), "other", "/graphql", "__typename", "__schema", "__type"}


async def test_a_scrape_holds_every_series_and_no_personal_data(http, gql, roofing, server):  # noqa: F811
    # given: a contact typing markers, a staff member watching, wrong and hostile requests
    marker = f"Metric Marker {uuid.uuid4().hex[:10]}"
    token = await start(gql)
    anna = await staff_token(gql)
    async with subscribe(server.graphql_url, CONTACT_EVENTS, anna, live=server.app.state.fanout) as watching:
        assert (await save(gql, token, "name", marker))["__typename"] == "FieldSaved"
        await watching.next()
        assert (await save(gql, token, "email", marker))["__typename"] == "InputInvalidError"
        assert (await save(gql, token, marker, "x"))["__typename"] == "InputInvalidError"
        await http.post("/graphql", json={"query": "{ " + marker.replace(" ", "_") + " }"})
        await http.post("/graphql", json={"query": "query Secret_" + uuid.uuid4().hex + " { __typename }"})
        assert (await http.get(f"/my/{token}")).status_code == 200
        assert (await http.get(f"/my/{marker}")).status_code == 404

        # when
        scraped = await http.get("/metrics", headers=SCRAPE)

    # then
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    found = families(scraped.text)
    assert set(found) >= SERIES, SERIES - set(found)
    requests = {(s.labels["operation"], s.labels["outcome"]): s.value for s in found["rapidly_requests"].samples}
    assert requests[("saveField", "ok")] >= 1 and requests[("saveField", "rejected")] >= 2
    assert requests[("/graphql", "invalid")] >= 1
    assert requests[("/my/{token}", "ok")] >= 1 and requests[("/my/{token}", "rejected")] >= 1
    assert requests[("login", "ok")] >= 1
    allowed = operations(server.app)
    labels = [s.labels for f in found.values() for s in f.samples]
    assert {label["operation"] for label in labels if "operation" in label} <= allowed
    vocabulary = {
        "rapidly_requests": OUTCOMES,
        "rapidly_message_attempts": MESSAGE_OUTCOMES,
        "rapidly_backups": {"ok", "failed"},
    }
    for name, outcomes in vocabulary.items():
        assert {s.labels["outcome"] for s in found[name].samples if "outcome" in s.labels} <= outcomes
    assert {s.labels["channel"] for s in found["rapidly_message_attempts"].samples} <= {"email", "sms"}
    assert next(s.value for s in found["rapidly_saves"].samples if s.name == "rapidly_saves_total") >= 1
    assert next(s.value for s in found["rapidly_events_delivered"].samples if s.name.endswith("_total")) >= 1
    pool = {s.labels["state"]: s.value for s in found["rapidly_db_pool_connections"].samples}
    assert pool["in_use"] + pool["idle"] >= 1
    for secret in (marker, marker.replace(" ", "_"), token, anna, METRICS_TOKEN, "Secret_"):
        assert secret not in scraped.text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer {METRICS_TOKEN}x",
        f"Basic {METRICS_TOKEN}",
        f"bearer  {METRICS_TOKEN[:-1]}",
        "ä" * 40,
    ],
    ids=["none", "empty", "no token", "longer", "basic", "shorter", "not ascii"],
)
async def test_a_scrape_without_the_token_is_refused(http, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    refused = await http.get("/metrics", headers={k: v.encode() for k, v in headers.items()})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert "rapidly_" not in refused.text


async def test_without_a_metrics_token_there_is_no_metrics_page(settings, plugins):
    app = create_app(settings.model_copy(update={"metrics_token": None}), plugins)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rapidly") as client:
        assert (await client.get("/metrics", headers=SCRAPE)).status_code == 404


async def test_every_worker_answers_a_scrape_with_the_figures_of_all(env, roofing, gql, tmp_path: Path):  # noqa: F811
    # given: two server processes on one port
    port = free_port()
    log = tmp_path / "serve.log"
    token = await start(gql)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rapidly", "serve", "--workers", "2", "--port", str(port)],
            env={**env, "RAPIDLY_METRICS_TOKEN": METRICS_TOKEN},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60):
            while log.read_text().count("ready") < 2:
                assert process.poll() is None, log.read_text()
                await asyncio.sleep(0.1)

        # when: 20 saves, each on a new connection (so over both processes), then scrapes
        for n in range(20):
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"]
            ) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                query = 'mutation { saveField(key: "name", value: "%s") { __typename } }' % f"n{n}"  # noqa: UP031
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
                assert json.loads(await ws.recv())["payload"]["data"]["saveField"]["__typename"] == "FieldSaved"
        totals = set()
        for _ in range(6):  # new connections: each may land on either process
            async with httpx.AsyncClient() as fresh:
                scraped = await fresh.get(f"{url}/metrics", headers=SCRAPE)
            totals.add(next(s.value for s in families(scraped.text)["rapidly_saves"].samples))
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log.read_text()

    # then
    assert totals == {20.0}
