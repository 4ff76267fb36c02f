"""The HTTP surface: health checks, no GraphiQL, limits, masking, headers, WebSocket protocol."""

from __future__ import annotations

import logging

import httpx
import pytest
import strawberry
from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter

from rapidly.schema import EXTENSIONS, RapidlySchema


@strawberry.type
class Node:
    name: str = "n"

    @strawberry.field
    def child(self) -> Node:
        return Node()


@strawberry.type
class RecursiveQuery:
    @strawberry.field
    def root(self) -> Node:
        return Node()


async def test_health_and_readiness(http):
    # when
    health = await http.get("/healthz")
    ready = await http.get("/readyz")

    # then
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


async def test_no_graphiql_it_would_load_from_a_cdn(http):
    # when
    page = await http.get("/graphql", headers={"Accept": "text/html"})

    # then
    assert page.status_code == 404 and b"unpkg" not in page.content


async def test_responses_carry_security_headers(http):
    # when
    response = await http.post("/graphql", json={"query": "{ __typename }"})

    # then
    assert response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_queries_via_get_are_refused(http):
    # when
    response = await http.get("/graphql", params={"query": "{ __typename }"})

    # then
    assert response.status_code in (400, 404, 405)
    assert "__typename" not in response.text


async def test_deep_queries_are_refused():
    # given: a recursive type, as the contact/notification graph will have
    test_schema = RapidlySchema(query=RecursiveQuery, extensions=EXTENSIONS)

    def nested(depth: int) -> str:
        return "{ root { " + "child { " * depth + "name" + " }" * (depth + 2)

    # when
    allowed = await test_schema.execute(nested(8))
    too_deep = await test_schema.execute(nested(12))

    # then
    assert allowed.errors is None
    assert "exceeds maximum operation depth" in too_deep.errors[0].message


async def test_alias_floods_are_refused(gql):
    # given
    query = "query { " + " ".join(f"v{i}: viewer {{ id }}" for i in range(40)) + " }"

    # when
    body = await gql(query, expect_errors=True)

    # then
    assert "aliases found" in body["errors"][0]["message"]


async def test_token_floods_are_refused(gql):
    # given
    query = "query { " + " ".join("__typename" for _ in range(3000)) + " }"

    # when
    body = await gql(query, expect_errors=True)

    # then
    assert "more than 2000 tokens" in body["errors"][0]["message"]


async def test_oversized_bodies_get_413(http):
    # when
    declared = await http.post(
        "/graphql", content=b"{" + b" " * 3_000_000 + b"}", headers={"content-type": "application/json"}
    )

    async def chunks():
        for _ in range(60):
            yield b" " * 50_000

    streamed = await http.post("/graphql", content=chunks(), headers={"content-type": "application/json"})

    # then
    assert declared.status_code == 413
    assert streamed.status_code == 413


async def test_malformed_json_gets_a_clear_400(http):
    # when
    response = await http.post("/graphql", content=b"{not json", headers={"content-type": "application/json"})

    # then
    assert response.status_code == 400


async def test_only_graphql_transport_ws_is_spoken(server):
    # given
    import websockets

    url = server.graphql_url.replace("http://", "ws://")

    # when: the legacy protocol (CVE-2026-35523's way in) is offered alone, it is closed at once
    with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
        async with websockets.connect(url, subprotocols=["graphql-ws"]) as ws:
            await ws.send('{"type": "start", "id": "1", "payload": {"query": "{ __typename }"}}')
            await ws.recv()
    assert closed.value.rcvd.code == 4406

    # then: the modern one is spoken, and it wants credentials in connection_init
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send('{"type": "connection_init"}')
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as refused:
            await ws.recv()
    assert refused.value.rcvd.code == 4403


async def test_unexpected_errors_are_masked_and_logged_with_a_reference_but_no_message(caplog):
    # given: a resolver that fails the way a database error can, quoting a submitted value
    marker = "secret.person" + "@example.com"

    @strawberry.type
    class Query:
        @strawberry.field
        def boom(self) -> str:
            raise ValueError(f"duplicate key value (email)=({marker})")

    app = FastAPI()
    app.include_router(GraphQLRouter(RapidlySchema(query=Query, extensions=EXTENSIONS)), prefix="/graphql")
    caplog.set_level(logging.INFO)

    # when
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        body = (await client.post("/graphql", json={"query": "{ boom }"})).json()

    # then
    error = body["errors"][0]
    reference = error["extensions"]["reference"]
    assert error["message"] == f"Unexpected error. Reference: {reference}"
    assert "secret.person" not in str(body)
    assert reference in caplog.text and "ValueError" in caplog.text
    assert "secret.person" not in caplog.text


def test_an_unexpected_exception_is_logged_by_type_and_stack_never_by_its_message():
    # given: a database error quoting the row it refused
    from rapidly.errors import for_the_log

    quoted = "duplicate key: (email)=(" + "maija" + "@example.com)"  # not in the source line the stack shows
    try:
        raise ValueError(quoted)
    except ValueError as exc:
        error = exc

    # when
    logged = for_the_log(error)

    # then
    assert logged.startswith("ValueError") and "test_app.py" in logged
    assert "maija" not in logged and "duplicate" not in logged
