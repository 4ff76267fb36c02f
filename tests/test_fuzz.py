"""Property-based fuzzing of the HTTP and WebSocket surface of one `rapidly serve` (issue 18).

Documents and variables come from the committed `schema.graphql` (hypothesis-graphql), so a new
operation is fuzzed without editing this file: valid ones (`Mode.POSITIVE`) and ones with one
violation of the schema (`Mode.NEGATIVE`), sent anonymously, as a contact and as a staff member of
tenant alpha. Beside them, raw byte bodies and malformed WebSocket frames. Every answer must be a
4xx or a 200: never a 5xx, never a masked "Unexpected error" for input that is merely wrong, never
a word of tenant beta's contact; the log holds no traceback, and the server stays healthy.

Bounded for the suite (the `rapidly` profile of tests/conftest.py: 60 examples a test, the same ones
every run); a long campaign, new examples every run:

    .venv/bin/python -m pytest tests/test_fuzz.py --hypothesis-profile=campaign
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import STAFF_PASSWORD, run_cli
from tests.support.served import Served

SCHEMA = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
#: The other tenant's contact's values: none of them may appear in any answer.
MARKER = f"beta-secret-{uuid.uuid4().hex[:10]}"

_COMMON = {"suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}

SCALARS = {
    "DateTime": st.sampled_from(["2026-12-04T10:00:00+00:00", "not a date", ""]).map(nodes.String),
    "JSON": st.one_of(st.text(max_size=20).map(nodes.String), st.integers(-5, 5).map(nodes.Int), st.just(nodes.Null)),
    "Upload": st.just(nodes.Null),
}


@pytest.fixture
def served(env, database_url, tmp_path) -> Iterator[tuple[Served, dict[str, str | None]]]:
    server = Served(env, tmp_path / "serve.log")  # migrates on start
    try:
        for slug in ("alpha", "beta"):
            made = run_cli(env, "tenant", "create", "--slug", slug, "--name", slug, "--plugin", "roofing_fi")
            assert made.returncode == 0, made.stderr
            staffed = run_cli(
                env,
                "staff",
                "create",
                "--tenant",
                slug,
                "--email",
                f"staff@{slug}.example",
                stdin=STAFF_PASSWORD + "\n",
            )
            assert staffed.returncode == 0, staffed.stderr
        start = 'mutation { startContact(tenant: "%s") { ... on ContactSession { token } } }'
        save = "mutation S($k: String!, $v: JSON) { saveField(key: $k, value: $v) { __typename } }"
        tokens: dict[str, str | None] = {"anonymous": None}
        for slug in ("alpha", "beta"):
            token = server.gql(start % slug)["data"]["startContact"]["token"]
            name = f"Maija {MARKER}" if slug == "beta" else "Maija Alpha"
            assert server.gql(save, {"k": "name", "v": name}, token)["data"]["saveField"]["__typename"] == "FieldSaved"
            if slug == "alpha":
                tokens["contact"] = token
        login = 'mutation { login(email: "staff@alpha.example", password: "%s") { ... on LoginSuccess { token } } }'
        tokens["staff"] = server.gql(login % STAFF_PASSWORD)["data"]["login"]["token"]
        yield server, tokens
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert MARKER not in log


def check(server: Served, response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Unexpected error" not in response.text, response.text[:500]
    assert MARKER not in response.text


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "one-violation"])
def test_generated_documents_as_anyone_get_no_5xx_and_nothing_of_another_tenant(served, mode):
    server, tokens = served

    @settings(**_COMMON)  # the profile's number of examples (tests/conftest.py)
    @given(
        document=from_schema(SCHEMA, custom_scalars=SCALARS, mode=mode),
        who=st.sampled_from(sorted(tokens)),
    )
    def run(document: str, who: str) -> None:
        token = tokens[who]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        check(server, server.http.post("/graphql", json={"query": document}, headers=headers))

    run()
    assert server.http.get("/readyz").status_code == 200


def test_raw_bodies_and_content_types_get_no_5xx(served):
    server, _ = served

    @settings(**_COMMON)  # the profile's number of examples (tests/conftest.py)
    @given(
        body=st.one_of(
            st.binary(max_size=300),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                max_leaves=10,
            ).map(lambda v: json.dumps(v).encode()),
        ),
        content_type=st.sampled_from(
            [
                "application/json",
                "application/json; charset=latin-1",
                "application/json-seq",
                "text/plain",
                "application/graphql",
                "",
            ]
        ),
    )
    def run(body: bytes, content_type: str) -> None:
        check(server, server.http.post("/graphql", content=body, headers={"content-type": content_type}))

    run()
    assert server.http.get("/readyz").status_code == 200


#: The close codes of graphql-transport-ws, and a normal close.
PROTOCOL_CODES = {1000, 4400, 4401, 4403, 4408, 4409, 4429}


def test_malformed_websocket_frames_close_with_the_protocols_codes(served):
    server, _ = served
    url = server.url.replace("http://", "ws://") + "/graphql"

    @settings(**_COMMON)  # the profile's number of examples (tests/conftest.py)
    @given(
        frames=st.lists(
            st.one_of(
                st.binary(max_size=50),
                st.text(max_size=50),
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["connection_init", "subscribe", "complete", "ping", "pong", "next"])},
                    optional={
                        "id": st.one_of(st.text(max_size=3), st.integers(), st.none()),
                        "payload": st.one_of(
                            st.none(),
                            st.text(max_size=5),
                            st.fixed_dictionaries(
                                {}, optional={"query": st.text(max_size=30), "variables": st.integers()}
                            ),
                        ),
                    },
                ).map(json.dumps),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def run(frames: list) -> None:
        with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
            try:
                for frame in frames:
                    ws.send(frame)
                while True:
                    ws.recv(timeout=0.2)
            except TimeoutError:
                return  # still open, and answering nothing more: a well-formed conversation
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code in PROTOCOL_CODES, closed

    run()
    assert server.http.get("/readyz").status_code == 200


def test_the_pages_and_the_forms_they_post_get_no_5xx_and_erase_nothing(served):
    server, tokens = served
    token = tokens["contact"]
    paths = [
        f"/my/{token}",
        f"/my/{token}/delete",
        f"/my/{token}/export.json",
        f"/continue/{token}",
        f"/continue/{token}/upload",
    ]

    @settings(**_COMMON)
    @given(
        path=st.one_of(
            st.sampled_from(paths),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-%./", max_size=60).map(lambda p: f"/my/{p}"),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-%./", max_size=60).map(lambda p: f"/continue/{p}"),
        ),
        method=st.sampled_from(["GET", "HEAD", "POST"]),
        body=st.binary(max_size=300),
        content_type=st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "multipart/form-data",
                "text/plain",
                "",
            ]
        ),
        lang=st.one_of(st.none(), st.text(max_size=12)),
    )
    def run(path: str, method: str, body: bytes, content_type: str, lang: str | None) -> None:
        params = {"lang": lang} if lang is not None else None
        content = body if method == "POST" else None
        response = server.http.request(
            method, path, params=params, content=content, headers={"content-type": content_type}
        )
        check(server, response)

    run()
    assert server.http.get(f"/my/{token}").status_code == 200  # still there: nothing posted could erase it


def _operations_with_variables() -> list[str]:
    """Each root field of the committed schema as a document that takes all its arguments as
    variables of their declared types: `mutation($a: T!) { field(a: $a) { __typename } }`."""
    from graphql import build_schema, get_named_type, is_leaf_type

    schema = build_schema(SCHEMA)
    documents = []
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        for name, field in (root.fields if root else {}).items():
            if not field.args:
                continue
            declared = ", ".join(f"${arg}: {field_arg.type}" for arg, field_arg in field.args.items())
            passed = ", ".join(f"{arg}: ${arg}" for arg in field.args)
            selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
            documents.append(f"{kind}({declared}) {{ {name}({passed}){selection} }}")
    return documents


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def test_every_operation_with_variables_of_any_shape_gets_no_5xx(served):
    server, tokens = served
    documents = _operations_with_variables()
    assert len(documents) > 10  # every operation with arguments: a new one is fuzzed without editing this

    @settings(**_COMMON)
    @given(
        document=st.sampled_from(documents),
        variables=st.one_of(JSON_VALUES, st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6)),
        who=st.sampled_from(sorted(tokens)),
        data=st.data(),
    )
    def run(document: str, variables: object, who: str, data: st.DataObject) -> None:
        names = re.findall(r"\$(\w+):", document)
        if isinstance(variables, dict) and data.draw(st.booleans()):  # the right names, any values
            variables = {name: data.draw(JSON_VALUES) for name in names}
        token = tokens[who]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        check(server, server.http.post("/graphql", json={"query": document, "variables": variables}, headers=headers))

    run()
    assert server.http.get("/readyz").status_code == 200
