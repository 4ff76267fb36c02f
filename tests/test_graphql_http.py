"""GraphQL over HTTP: valid JSON queries and mutations run on graphql-core directly
(`rapidly.schema.http`), everything else goes to Strawberry's router; either way the answer is the same."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator

import httpx
import pytest
import strawberry
from fastapi import FastAPI
from starlette.requests import HTTPConnection
from strawberry.fastapi import GraphQLRouter

from rapidly.errors import InputInvalid
from rapidly.schema import EXTENSIONS, RapidlySchema
from rapidly.schema.errors import InputInvalidError, returns_errors
from rapidly.schema.http import Documents, GraphQLOverHTTP

MARKER = "secret.person" + "@example.com"
MAX_BYTES = 64 * 1024
JSON = {"content-type": "application/json"}


@strawberry.type
class Echoed:
    text: str


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, info: strawberry.Info, name: str) -> str:
        return f"hello {name} from {info.context['client']}"

    @strawberry.field
    def boom(self) -> str:
        raise ValueError(f"duplicate key value (email)=({MARKER})")

    @strawberry.field
    def numbers(self) -> list[int]:
        return [1, 2, 3]


@strawberry.type
class Mutation:
    @strawberry.mutation
    @returns_errors
    async def echo(self, text: str) -> Echoed | InputInvalidError:
        if not text:
            raise InputInvalid.one("text", "required", "Say something.")
        return Echoed(text=text)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[int, None]:
        yield 1


SCHEMA = RapidlySchema(query=Query, mutation=Mutation, subscription=Subscription, extensions=EXTENSIONS)


async def context(connection: HTTPConnection) -> dict:
    return {"client": connection.client.host if connection.client else None}


class Apps:
    """Strawberry's router alone, and the same router behind `GraphQLOverHTTP` (recording what reaches it)."""

    def __init__(self) -> None:
        self.router = FastAPI()
        self.router.include_router(GraphQLRouter(SCHEMA, context_getter=context), prefix="/graphql")
        self.reached: list[str] = []

        async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
            self.reached.append(scope["path"])
            await self.router(scope, receive, send)

        self.fast = GraphQLOverHTTP(recording, schema=SCHEMA, context_getter=context, max_bytes=MAX_BYTES)

    async def post(
        self,
        app: object,
        content: bytes,
        content_type: str = "application/json",
        accept: str | list[str] | None = None,
    ) -> httpx.Response:
        """A POST; `accept`: its Accept line(s), or none at all (httpx's own `*/*` removed)."""
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 1234))  # type: ignore[arg-type]
        lines = [accept] if isinstance(accept, str) else accept or []
        headers = [("content-type", content_type), *(("accept", line) for line in lines)]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            del client.headers["accept"]
            return await client.post("/graphql", content=content, headers=headers)


def body(query: str, **extra: object) -> bytes:
    return json.dumps({"query": query, **extra}).encode()


def same_answer(a: httpx.Response, b: httpx.Response) -> bool:
    references = re.compile(r"[0-9a-f]{16}")
    return a.status_code == b.status_code and references.sub("R", a.text) == references.sub("R", b.text)


RUN_DIRECTLY = {
    "query": body('{ hello(name: "Maija") numbers }'),
    "variables": body("query Q($n: String!) { hello(name: $n) }", variables={"n": "Maija"}),
    "chosen operation": body('query A { numbers } query B { hello(name: "x") }', operationName="B"),
    "mutation": body('mutation { echo(text: "hi") { __typename ... on Echoed { text } } }'),
    "expected error": body('mutation { echo(text: "") { __typename ... on InputInvalidError { errors { code } } } }'),
    "unexpected error": body("{ boom numbers }"),
    "variable of the wrong type": body("query Q($n: String!) { hello(name: $n) }", variables={"n": 5}),
    "missing variable": body("query Q($n: String!) { hello(name: $n) }"),
    "with extensions": body("{ numbers }", extensions={"persistedQuery": None}),
}

LEFT_TO_STRAWBERRY = {
    "no query": json.dumps({"variables": {}}).encode(),
    "query not a string": json.dumps({"query": 5}).encode(),
    "variables not an object": body("{ numbers }", variables=[1]),
    "operationName not a string": body("{ numbers }", operationName=5),
    "extensions not an object": body("{ numbers }", extensions=5),
    "syntax error": body("{ numbers "),
    "unknown field": body("{ nope }"),
    "too many tokens": body("{ " + " ".join("numbers" for _ in range(2100)) + " }"),
    "too many aliases": body("{ " + " ".join(f"n{i}: numbers" for i in range(40)) + " }"),
    "two operations, none chosen": body("query A { numbers } query B { numbers }"),
    "unknown operation": body("query A { numbers }", operationName="Z"),
    "subscription": body("subscription { ticks }"),
}


#: Bodies that are no JSON object in UTF-8, each with what the 400 says. Strawberry's view answered
#: some of them with a 500 and a traceback (a string, null, bytes that are not UTF-8: issue 18).
NOT_A_JSON_OBJECT = {
    "malformed JSON": (b"{not json", "The request body is not JSON."),
    "truncated": (body("{ numbers }")[:-3], "The request body is not JSON."),
    "empty": (b"", "The request body is not JSON."),
    "not UTF-8": (b'{"query": "{ numbers }", "x": "\xff\xfe"}', "The request body is not UTF-8."),
    "Latin-1": ('{"query": "{ hello(name: \\"Jönssön\\") }"}'.encode("latin-1"), "The request body is not UTF-8."),
    "a list": (b"[1, 2]", "The request body must be a JSON object."),
    "a string": (b'"abc"', "The request body must be a JSON object."),
    "null": (b"null", "The request body must be a JSON object."),
    "a number": (b"5", "The request body must be a JSON object."),
    "true": (b"true", "The request body must be a JSON object."),
}


@pytest.mark.parametrize(("content", "says"), NOT_A_JSON_OBJECT.values(), ids=NOT_A_JSON_OBJECT.keys())
async def test_a_body_that_is_no_json_object_gets_a_400_in_the_specs_shape_and_nothing_logged(content, says, caplog):
    # given
    apps = Apps()
    caplog.set_level(logging.DEBUG)

    # when
    answered = await apps.post(apps.fast, content)

    # then
    assert answered.status_code == 400, answered.text
    assert answered.json() == {"errors": [{"message": says}]}
    assert answered.headers["content-type"] == "application/json"
    assert answered.headers["x-content-type-options"] == "nosniff"
    assert apps.reached == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize("content", RUN_DIRECTLY.values(), ids=RUN_DIRECTLY.keys())
async def test_valid_queries_and_mutations_run_directly_with_strawberrys_answer(content):
    # given
    apps = Apps()

    # when
    direct = await apps.post(apps.fast, content)
    reference = await apps.post(apps.router, content)

    # then
    assert apps.reached == []
    assert same_answer(direct, reference), (direct.text, reference.text)
    assert direct.headers["content-type"] == "application/json"


@pytest.mark.parametrize("content", LEFT_TO_STRAWBERRY.values(), ids=LEFT_TO_STRAWBERRY.keys())
async def test_everything_else_is_left_to_strawberry_with_the_body_intact(content):
    # given
    apps = Apps()

    # when
    passed_on = await apps.post(apps.fast, content)
    reference = await apps.post(apps.router, content)

    # then
    assert apps.reached == ["/graphql"]
    assert same_answer(passed_on, reference), (passed_on.text, reference.text)


async def test_other_content_types_are_left_to_strawberry():
    # given
    apps = Apps()

    # when
    response = await apps.post(apps.fast, b"query=%7B+numbers+%7D", "application/x-www-form-urlencoded")

    # then
    assert apps.reached == ["/graphql"] and "numbers" not in response.text


async def test_unexpected_errors_run_directly_are_masked_and_logged_with_a_reference_but_no_message(caplog):
    # given
    apps = Apps()
    caplog.set_level(logging.INFO)

    # when
    answer = (await apps.post(apps.fast, body("{ boom numbers }"))).json()

    # then
    assert apps.reached == []
    assert answer["data"] is None or answer["data"].get("numbers") is None
    error = answer["errors"][0]
    reference = error["extensions"]["reference"]
    assert error["message"] == f"Unexpected error. Reference: {reference}"
    assert error["extensions"]["code"] == "INTERNAL" and error["path"] == ["boom"]
    assert reference in caplog.text and "ValueError" in caplog.text
    assert "secret.person" not in answer.__repr__() and "secret.person" not in caplog.text


def test_the_document_cache_keeps_valid_documents_only_and_is_bounded():
    # given
    documents = Documents(SCHEMA, size=10)

    # when
    for i in range(30):
        assert documents.get(f"query Q{i} {{ numbers }}") is not None
    invalid = [documents.get("{ nope }"), documents.get("{ numbers ")]

    long = "query Long { numbers }" + " " * 20_000
    assert documents.get(long) is not None

    # then
    assert invalid == [None, None]
    assert len(documents._valid) == 10 and long not in documents._valid
    assert documents.get("query Q29 { numbers }") is documents.get("query Q29 { numbers }")


def test_a_schema_extension_it_does_not_stand_in_for_is_refused_loudly():
    # given
    from strawberry.extensions import SchemaExtension

    class Audit(SchemaExtension):
        pass

    audited = RapidlySchema(query=Query, extensions=[*EXTENSIONS, Audit])

    # then
    with pytest.raises(ValueError, match="Audit"):
        GraphQLOverHTTP(Apps().router, schema=audited, context_getter=context, max_bytes=MAX_BYTES)


def test_the_app_runs_json_graphql_requests_before_any_other_middleware_but_the_origin_check(settings, plugins):
    from rapidly.app import create_app
    from rapidly.cors import CrossOrigin
    from rapidly.metrics import Observe

    # when
    stack = create_app(settings, plugins).build_middleware_stack()

    # then: only the request's reference and its count come first
    assert isinstance(stack, Observe) and isinstance(stack.app, CrossOrigin)
    graphql = stack.app.app
    assert isinstance(graphql, GraphQLOverHTTP) and graphql.max_bytes == settings.max_request_bytes


async def test_bodies_over_the_cap_are_refused_before_they_are_read_whole():
    # given
    apps = Apps()

    async def chunks():
        for _ in range(10):
            yield b" " * 10_000

    # when
    transport = httpx.ASGITransport(app=apps.fast)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        declared = await client.post("/graphql", content=b" " * (MAX_BYTES + 1), headers=JSON)
        streamed = await client.post("/graphql", content=chunks(), headers=JSON)

    # then
    assert declared.status_code == streamed.status_code == 413
    assert apps.reached == []


async def test_answers_carry_the_security_headers():
    # given
    apps = Apps()

    # when
    response = await apps.post(apps.fast, body("{ numbers }"))

    # then
    assert apps.reached == []
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store" and response.headers["x-frame-options"] == "DENY"


async def test_the_served_app_answers_bodies_that_are_no_json_object_with_400_and_keeps_the_connection(http, caplog):
    """Against `rapidly serve`'s app on a real port: the 500 of such a body closed the keep-alive
    connection, so the client's next request failed too."""
    caplog.set_level(logging.INFO)
    for content, says in NOT_A_JSON_OBJECT.values():
        # when
        refused = await http.post("/graphql", content=content, headers=JSON)
        after = await http.post("/graphql", json={"query": "{ __typename }"})

        # then
        assert refused.status_code == 400 and refused.json() == {"errors": [{"message": says}]}
        assert after.status_code == 200 and after.json() == {"data": {"__typename": "Query"}}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


UPLOAD = 'mutation($f: Upload) { uploadMedia(fieldKey: "photos", file: $f) { __typename } }'
#: Multipart uploads that are malformed: (form fields, file field names, what the 400 says).
MALFORMED_UPLOADS = {
    "operations not JSON": ({"operations": "{not", "map": "{}"}, [], "The operations and the map must be JSON."),
    "map not JSON": ({"operations": "{}", "map": "{not"}, [], "The operations and the map must be JSON."),
    "operations a list": ({"operations": "[1]", "map": "{}"}, [], "The operations must be a JSON object."),
    "operations null": ({"operations": "null", "map": "{}"}, [], "The operations must be a JSON object."),
    "map a list": (
        {"operations": json.dumps({"query": UPLOAD}), "map": "[1]"},
        [],
        "The map must be a JSON object of lists of paths.",
    ),
    "a map path not a list": (
        {"operations": json.dumps({"query": UPLOAD}), "map": json.dumps({"0": "variables.f"})},
        ["0"],
        "The map must be a JSON object of lists of paths.",
    ),
    "a map pointing nowhere": (
        {"operations": json.dumps({"query": UPLOAD, "variables": {"f": None}}), "map": '{"0": ["variables.a.b"]}'},
        ["0"],
        "The map names a place that the operations do not have.",
    ),
    "a map entry without its file": (
        {"operations": json.dumps({"query": UPLOAD, "variables": {"f": None}}), "map": '{"0": ["variables.f"]}'},
        [],
        "Every file needs an entry in the map, and every entry of the map a file.",
    ),
    "a file without a map": (
        {"operations": json.dumps({"query": UPLOAD, "variables": {"f": None}})},
        ["0"],
        "Every file needs an entry in the map, and every entry of the map a file.",
    ),
    "a file the map does not name": (
        {"operations": json.dumps({"query": UPLOAD, "variables": {"f": None}}), "map": '{"0": ["variables.f"]}'},
        ["0", "1"],
        "Every file needs an entry in the map, and every entry of the map a file.",
    ),
}


@pytest.mark.parametrize(("fields", "files", "says"), MALFORMED_UPLOADS.values(), ids=MALFORMED_UPLOADS.keys())
async def test_a_malformed_upload_gets_a_400_that_says_what_is_wrong(http, fields, files, says, caplog):
    caplog.set_level(logging.INFO)
    parts = {name: (None, value) for name, value in fields.items()}  # text fields, multipart even without a file
    parts |= {name: (f"{name}.jpg", b"\xff\xd8 not really", "image/jpeg") for name in files}

    answered = await http.post("/graphql", files=parts, headers={"Rapidly-Upload": "1"})

    assert answered.status_code == 400, answered.text
    assert says in answered.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize("content_type", ["application/json-seq", "text/x-application/json", "application/jsonl"])
@pytest.mark.parametrize(("content", "says"), list(NOT_A_JSON_OBJECT.values())[:6], ids=list(NOT_A_JSON_OBJECT)[:6])
async def test_strawberrys_router_answers_the_same_400_for_a_type_that_merely_contains_json(
    http, content_type, content, says
):
    """Strawberry's view takes any content type containing "application/json"; the direct path takes
    "application/json" alone, and passes the others on."""
    answered = await http.post("/graphql", content=content, headers={"content-type": content_type})

    assert answered.status_code == 400, answered.text
    assert says in answered.text


# -- the media type the client accepts (issue 31) ------------------------------------------------------

GRAPHQL_RESPONSE = "application/graphql-response+json"
#: Requests that fail before they are executed: with the specification's media type, a 400 without data.
REQUEST_ERRORS = {
    "variable of the wrong type": RUN_DIRECTLY["variable of the wrong type"],
    "missing variable": RUN_DIRECTLY["missing variable"],
    "syntax error": LEFT_TO_STRAWBERRY["syntax error"],
    "unknown field": LEFT_TO_STRAWBERRY["unknown field"],
    "too many tokens": LEFT_TO_STRAWBERRY["too many tokens"],
    "too many aliases": LEFT_TO_STRAWBERRY["too many aliases"],
}
#: Requests Strawberry refuses in plain text (a 400 as ever): in the specification's media type, a GraphQL error.
REFUSED_IN_WORDS = {
    k: LEFT_TO_STRAWBERRY[k]
    for k in (
        "no query",
        "query not a string",
        "variables not an object",
        "operationName not a string",
        "unknown operation",
    )
}


@pytest.mark.parametrize("content", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
async def test_a_request_that_fails_before_execution_is_a_400_without_data_in_the_specs_media_type(content):
    # given
    apps = Apps()

    # when
    new = await apps.post(apps.fast, content, accept=GRAPHQL_RESPONSE)
    old = await apps.post(apps.fast, content, accept="application/json")

    # then: the same errors; the old media type keeps its 200 and its "data": null
    assert (new.status_code, new.headers["content-type"]) == (400, GRAPHQL_RESPONSE), new.text
    assert "data" not in new.json() and new.json()["errors"] == old.json()["errors"]
    assert (old.status_code, old.headers["content-type"], old.json()["data"]) == (200, "application/json", None)


@pytest.mark.parametrize("content", REFUSED_IN_WORDS.values(), ids=REFUSED_IN_WORDS.keys())
async def test_a_request_strawberry_refuses_in_words_is_a_graphql_error_in_the_specs_media_type(content):
    # given
    apps = Apps()

    # when
    new = await apps.post(apps.fast, content, accept=GRAPHQL_RESPONSE)
    old = await apps.post(apps.fast, content)

    # then: the same words; the old media type as ever
    assert (new.status_code, new.headers["content-type"]) == (400, GRAPHQL_RESPONSE)
    assert new.json() == {"errors": [{"message": old.text}]}
    assert old.status_code == 400 and old.headers["content-type"].startswith("text/plain")


EXECUTED = {k: v for k, v in RUN_DIRECTLY.items() if k not in REQUEST_ERRORS}


@pytest.mark.parametrize("content", EXECUTED.values(), ids=EXECUTED.keys())
async def test_an_executed_request_is_a_200_in_the_specs_media_type_whatever_its_errors(content):
    # given
    apps = Apps()

    # when
    new = await apps.post(apps.fast, content, accept=GRAPHQL_RESPONSE)
    old = await apps.post(apps.fast, content)

    # then: the same answer, in the media type asked for (a typed union member and a field's error too)
    assert (new.status_code, new.headers["content-type"]) == (200, GRAPHQL_RESPONSE)
    assert same_answer(new, old) and new.headers["content-length"] == str(len(new.content))


ACCEPTS = {
    "none": (None, "application/json"),
    "empty": ("", "application/json"),
    "json": ("application/json", "application/json"),
    "json, utf-8": ("application/json; charset=utf-8", "application/json"),
    "the spec's": (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    "the spec's, upper case": ("Application/GraphQL-Response+JSON; Charset=UTF-8", GRAPHQL_RESPONSE),
    "as clients send it": (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
    "json preferred": (f"{GRAPHQL_RESPONSE};q=0.5, application/json", "application/json"),
    "both alike": (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
    "anything": ("*/*", "application/json"),
    "anything of application": ("application/*", "application/json"),
    "a browser's default": ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"),
    "exact before wildcard": (f"*/*, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
    "a garbage q": (f"application/json;q=lots, {GRAPHQL_RESPONSE};q=0.1", GRAPHQL_RESPONSE),
    "json refused, anything else welcome": ("application/json;q=0, */*", GRAPHQL_RESPONSE),
    "json less than anything": ("application/json;q=0.5, */*", GRAPHQL_RESPONSE),
    "the spec's refused, anything else welcome": (f"{GRAPHQL_RESPONSE};q=0, */*", "application/json"),
    "another parameter": ("application/json; version=1", "application/json"),
    "two lines": (["text/html", GRAPHQL_RESPONSE], GRAPHQL_RESPONSE),
    "spaces and quotes": (f'  {GRAPHQL_RESPONSE} ;  charset="utf-8"  ', GRAPHQL_RESPONSE),
}


@pytest.mark.parametrize(("accept", "answered_in"), ACCEPTS.values(), ids=ACCEPTS.keys())
async def test_accept_headers_are_negotiated_on_both_paths(accept, answered_in):
    # given
    apps = Apps()

    # when: a query run directly, and one Strawberry answers (its document does not validate)
    direct = await apps.post(apps.fast, body("{ numbers }"), accept=accept)
    passed_on = await apps.post(apps.fast, body("{ nope }"), accept=accept)

    # then
    assert direct.status_code == 200 and direct.headers["content-type"] == answered_in
    assert passed_on.headers["content-type"] == answered_in
    assert passed_on.status_code == (400 if answered_in == GRAPHQL_RESPONSE else 200)


NOT_ACCEPTABLE = {
    "html": "text/html",
    "another charset": "application/json; charset=iso-8859-1",
    "both in another charset": f"{GRAPHQL_RESPONSE};charset=utf-16, application/json;charset=latin1",
    "refused by q=0": f"{GRAPHQL_RESPONSE};q=0, application/json;q=0.000",
    "q out of range": "application/json;q=2",
    "garbage": "@@@,,,;;;===",
    "a huge header": "x/" + "y" * 8000,
    "only a wildcard of text": "text/*",
    "application refused, anything else welcome": "application/*;q=0, */*",
    "a qvalue of more than three decimals": "application/json;q=0.5000",
    "a refusal on its own line": ["application/json;q=0", "text/html"],
    "ranges past the limit": ",".join(["text/plain"] * 64 + ["application/json"]),
}


@pytest.mark.parametrize("accept", NOT_ACCEPTABLE.values(), ids=NOT_ACCEPTABLE.keys())
async def test_an_accept_that_allows_neither_media_type_is_a_406_that_says_which(accept):
    # given
    apps = Apps()

    # when: a JSON request, and one of another content type
    refused = await apps.post(apps.fast, body("{ numbers }"), accept=accept)
    form = await apps.post(apps.fast, b"query=x", "application/x-www-form-urlencoded", accept=accept)

    # then: nothing ran
    for answer in (refused, form):
        assert answer.status_code == 406 and answer.headers["content-type"] == "application/json"
        assert "application/graphql-response+json or application/json" in answer.json()["errors"][0]["message"]
    assert apps.reached == []


async def test_the_transports_own_refusals_keep_their_shape_in_the_specs_media_type():
    # given
    apps = Apps()

    # when: a body that is no JSON object, and one over the cap
    malformed = await apps.post(apps.fast, b"{not json", accept=GRAPHQL_RESPONSE)
    too_large = await apps.post(apps.fast, b" " * (MAX_BYTES + 1), accept=GRAPHQL_RESPONSE)

    # then: the transport's refusals, in application/json (they are no GraphQL response)
    assert malformed.status_code == 400 and malformed.json() == {
        "errors": [{"message": "The request body is not JSON."}]
    }
    assert too_large.status_code == 413
    assert malformed.headers["content-type"] == too_large.headers["content-type"] == "application/json"


async def test_the_answer_for_an_accept_header_is_remembered_only_for_short_ones():
    from rapidly.schema import http

    # given
    apps = Apps()
    http._ACCEPTED.clear()
    short, long = f"{GRAPHQL_RESPONSE}, application/json;q=0.9", "application/json;q=0.9, " + "x/y;q=0.1, " * 40

    # when
    answers = [await apps.post(apps.fast, body("{ numbers }"), accept=a) for a in (short, long, short)]

    # then
    assert [a.headers["content-type"] for a in answers] == [GRAPHQL_RESPONSE, "application/json", GRAPHQL_RESPONSE]
    assert list(http._ACCEPTED) == [short.encode()]


async def test_the_served_app_answers_uploads_in_the_specs_media_type_and_websockets_ignore_it(http, server):
    # given: a multipart request whose document does not validate, with the specification's media type
    operations = json.dumps({"query": "mutation($f: Upload) { nope(file: $f) }", "variables": {"f": None}})
    parts = {
        "operations": (None, operations),
        "map": (None, '{"0": ["variables.f"]}'),
        "0": ("a.jpg", b"x", "image/jpeg"),
    }

    # when
    answered = await http.post("/graphql", files=parts, headers={"Rapidly-Upload": "1", "Accept": GRAPHQL_RESPONSE})

    # then
    assert (answered.status_code, answered.headers["content-type"]) == (400, GRAPHQL_RESPONSE), answered.text
    [error] = answered.json()["errors"]
    assert "data" not in answered.json() and "Cannot query field 'nope'" in error["message"]

    # when: WebSocket handshakes with and without an Accept of the specification's media type only
    import websockets

    async def refused_close(headers: dict[str, str]) -> tuple[str | None, int | None]:
        url = server.url.replace("http", "ws") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.subprotocol, ws.close_code

    # then: the protocol as ever (without credentials, the same refusal)
    assert (
        await refused_close({"Accept": GRAPHQL_RESPONSE}) == await refused_close({}) == ("graphql-transport-ws", 4403)
    )
