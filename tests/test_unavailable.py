"""A backend out of reach: `/graphql` says 503 with `Retry-After` and `UNAVAILABLE`, and nothing is half-saved."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path

import asyncpg
import httpx
import pytest

from rapidly.errors import InputInvalid, is_unavailable
from tests.contacts.test_contacts_api import SAVE, START
from tests.media import images
from tests.media.test_upload_api import UPLOAD
from tests.outage import StoppableRapidly

ME = "query { me { values { key value } } }"
FORM = '{ form(tenant: "kattohuolto") { tenantName } }'


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns


async def test_what_counts_as_a_backend_out_of_reach():
    # given: real failures
    with pytest.raises(OSError) as refused:
        await asyncpg.connect(host="127.0.0.1", port=closed_port(), user="x", database="x", timeout=5)
    with pytest.raises(OSError) as no_socket:
        await asyncpg.connect(host="/nonexistent-dir", user="x", database="x", timeout=5)
    try:
        raise RuntimeError("wrapped") from asyncpg.exceptions.AdminShutdownError("terminating connection")
    except RuntimeError as exc:
        wrapped = exc

    try:
        Path("/nonexistent-dir/media/x.jpg").read_bytes()
    except FileNotFoundError as exc:
        missing_file = exc
    try:
        try:
            Path("/nonexistent-dir/x").read_bytes()
        except FileNotFoundError:
            {}["a bug while handling it"]
    except KeyError as exc:
        bug_meanwhile = exc

    # then
    assert is_unavailable(refused.value) and is_unavailable(no_socket.value)
    assert is_unavailable(wrapped)
    assert is_unavailable(ConnectionResetError()) and is_unavailable(TimeoutError())
    assert not is_unavailable(missing_file)  # a file of ours: a bug, not an outage
    assert not is_unavailable(PermissionError(13, "denied"))
    assert not is_unavailable(bug_meanwhile)  # only what an error was raised *from* counts
    assert not is_unavailable(ssl.SSLCertVerificationError("certificate verify failed"))
    assert not is_unavailable(asyncpg.exceptions.ProtocolViolationError("08P01"))
    assert is_unavailable(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert is_unavailable(asyncpg.exceptions.TooManyConnectionsError("too many"))
    assert not is_unavailable(asyncpg.exceptions.UniqueViolationError("duplicate"))
    assert not is_unavailable(ValueError("a bug"))
    assert not is_unavailable(InputInvalid.one("name", "too_long", "At most 200 characters."))


@pytest.fixture
def rapidly_alone(tmp_path):
    rapidly = StoppableRapidly(tmp_path)
    yield rapidly.start(
        ("tenant", "create", "--slug", "kattohuolto", "--name", "Kattohuolto Oy", "--plugin", "roofing_fi")
    )
    rapidly.close()


def test_while_the_database_is_down_every_path_says_503_and_retry(rapidly_alone):
    # given: an end user typing their name
    api = httpx.Client(timeout=10)
    url = rapidly_alone.graphql_url

    def call(query, variables=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return api.post(url, json={"query": query, "variables": variables or {}}, headers=headers)

    token = call(START, {"tenant": "kattohuolto"}).json()["data"]["startContact"]["token"]
    assert (
        call(SAVE, {"key": "name", "value": "Maija"}, token).json()["data"]["saveField"]["__typename"] == "FieldSaved"
    )

    # when: PostgreSQL stops
    rapidly_alone.stop_database()
    try:
        save = call(SAVE, {"key": "name", "value": "Maija Meikäläinen"}, token)
        start = call(START, {"tenant": "kattohuolto"})
        upload = api.post(  # a multipart request: Strawberry's router, not the direct JSON path
            url,
            data={
                "operations": json.dumps({"query": UPLOAD, "variables": {"fieldKey": "roof_photos", "file": None}}),
                "map": json.dumps({"0": ["variables.file"]}),
            },
            files={"0": ("photo.jpg", images.jpeg(), "application/octet-stream")},
            headers={"Authorization": f"Bearer {token}", "Rapidly-Upload": "1"},
        )
        # a browser on a company's site, before this process could ever read the allowed origins
        from_a_site = api.post(
            url, json={"query": FORM, "variables": {}}, headers={"Origin": "https://www.kattohuolto.fi"}
        )
    finally:
        rapidly_alone.start_database()

    # then: each says so, the same way
    for answer in (save, start, upload, from_a_site):
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "2"
        error = answer.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert error["message"] == "The service is unavailable for a moment; try again shortly."
    # nothing half-saved, and a retry succeeds once the database is back
    assert call(ME, token=token).json()["data"]["me"]["values"] == [{"key": "name", "value": "Maija"}]
    retried = call(SAVE, {"key": "name", "value": "Maija Meikäläinen"}, token).json()["data"]["saveField"]
    assert retried["__typename"] == "FieldSaved"
    assert call(ME, token=token).json()["data"]["me"]["values"] == [{"key": "name", "value": "Maija Meikäläinen"}]
    log = rapidly_alone.log()
    assert "unavailable at ['saveField']" in log and "Maija" not in log
    assert " ERROR rapidly" not in log  # an outage is a warning a request, not an error with a stack


async def test_a_database_that_restarts_under_a_typist_loses_nothing(rapidly_alone):
    # given: a typist retrying each 503 as the form does, while the database goes down and comes back
    async with httpx.AsyncClient(timeout=10) as api:

        async def call(query, variables=None, token=None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await api.post(
                rapidly_alone.graphql_url, json={"query": query, "variables": variables or {}}, headers=headers
            )

        token = (await call(START, {"tenant": "kattohuolto"})).json()["data"]["startContact"]["token"]
        statuses: list[int] = []

        async def type_name() -> None:
            for length in range(1, 41):
                while True:
                    answer = await call(
                        SAVE, {"key": "name", "value": "Maija Meikäläinen-Virtanen "[:length].strip() or "M"}, token
                    )
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        assert answer.json()["data"]["saveField"]["__typename"] == "FieldSaved"
                        break
                    assert answer.status_code == 503
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.05)

        # when
        typist = asyncio.create_task(type_name())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(rapidly_alone.stop_database)
        await asyncio.sleep(2)
        await asyncio.to_thread(rapidly_alone.start_database)
        await typist

        # then
        values = (await call(ME, token=token)).json()["data"]["me"]["values"]
    assert 503 in statuses and statuses[-1] == 200
    assert values == [{"key": "name", "value": "Maija Meikäläinen-Virtanen"}]
