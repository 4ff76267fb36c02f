"""Browsers on the companies' own websites: CORS for /graphql, and each operation held to its tenant's origins."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from rapidly.tenants import service as tenants
from tests.conftest import STAFF_PASSWORD
from tests.contacts.test_contacts_api import FORM, LOGIN, SAVE, START, staff_token
from tests.media import images
from tests.media.test_upload_api import upload

ROOFING_SITE = "https://www.kattohuolto.fi"
CARS_SITE = "https://www.bilverkstad.se"
NOWHERE = "https://evil.example"
ME = "query { me { __typename values { key } } }"
VIEWER = "query { viewer { email } }"


@pytest.fixture
async def two_companies(world):
    """Two tenants, each listing its own website."""
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    await world.tenant("bilverkstad", plugin="carrepair_se", default_locale="sv")
    await tenants.change_origins("kattohuolto", add=[ROOFING_SITE, "http://localhost:3000"])
    await tenants.change_origins("bilverkstad", add=[CARS_SITE])


async def preflight(http, origin, method="POST", headers="content-type"):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return await http.options("/graphql", headers=asked)


async def post(http, query, variables=None, *, origin=None, token=None):
    headers = {"Origin": origin} if origin else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


async def contact_of(http, origin, tenant="kattohuolto"):
    body = (await post(http, START, {"tenant": tenant}, origin=origin)).json()
    assert body["data"]["startContact"]["__typename"] == "ContactSession", body
    return body["data"]["startContact"]["token"]


# -- the preflight ----------------------------------------------------------------------------------------


async def test_a_listed_origin_gets_its_preflight_granted(http, two_companies):
    # when
    answer = await preflight(http, ROOFING_SITE, headers="content-type, authorization")
    upload_answer = await preflight(http, CARS_SITE, headers="Rapidly-Upload,Authorization")

    # then
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ROOFING_SITE
    assert answer.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "rapidly-upload"} <= allowed
    assert "Origin" in answer.headers["vary"]
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in answer.headers  # bearer tokens: no cookies involved
    assert upload_answer.status_code == 204 and upload_answer.headers["access-control-allow-origin"] == CARS_SITE


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (NOWHERE, "POST", "content-type"),
        ("null", "POST", "content-type"),
        (ROOFING_SITE + ".evil.example", "POST", "content-type"),
        ("http://www.kattohuolto.fi", "POST", "content-type"),  # the listed site is https
        (ROOFING_SITE, "GET", "content-type"),
        (ROOFING_SITE, "PUT", "content-type"),
        (ROOFING_SITE, "DELETE", None),
        (ROOFING_SITE, "POST", "content-type, x-forwarded-for"),
        (ROOFING_SITE, "POST", "cookie"),
    ],
)
async def test_a_preflight_for_another_origin_or_for_more_than_is_needed_is_refused(
    http, two_companies, origin, method, headers
):
    # when
    answer = await preflight(http, origin, method, headers)

    # then
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers


# -- requests ---------------------------------------------------------------------------------------------


async def test_a_listed_origin_is_granted_and_can_read_retry_after(http, two_companies):
    # when
    answer = await post(http, FORM, {"tenant": "kattohuolto"}, origin=ROOFING_SITE)

    # then
    assert answer.status_code == 200 and answer.json()["data"]["form"]["tenantName"]
    assert answer.headers["access-control-allow-origin"] == ROOFING_SITE
    assert "Origin" in answer.headers["vary"]
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()


async def test_an_unlisted_origin_is_refused_before_anything_runs(http, two_companies):
    # when
    answer = await post(http, START, {"tenant": "kattohuolto"}, origin=NOWHERE)
    login = await post(http, LOGIN, {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD}, origin=NOWHERE)

    # then
    for refused in (answer, login):
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        assert refused.json()["errors"][0]["extensions"]["code"] == "OriginNotAllowed"


async def test_requests_without_origin_and_from_rapidlys_own_are_not_affected(http, server, two_companies):
    # when
    plain = await post(http, FORM, {"tenant": "kattohuolto"})
    own = await post(http, FORM, {"tenant": "kattohuolto"}, origin=server.url)

    # then
    for answer in (plain, own):
        assert answer.status_code == 200 and answer.json()["data"]["form"]["tenantName"]
        assert "access-control-allow-origin" not in answer.headers


# -- one company's site cannot drive another company's contacts ------------------------------------------


async def test_the_form_and_a_new_contact_only_from_the_tenants_own_sites(http, two_companies):
    # when
    form_elsewhere = (await post(http, FORM, {"tenant": "kattohuolto"}, origin=CARS_SITE)).json()
    start_elsewhere = (await post(http, START, {"tenant": "kattohuolto"}, origin=CARS_SITE)).json()
    start_at_home = (await post(http, START, {"tenant": "kattohuolto"}, origin=ROOFING_SITE)).json()
    start_at_localhost = (await post(http, START, {"tenant": "kattohuolto"}, origin="http://localhost:3000")).json()

    # then
    for refused in (form_elsewhere, start_elsewhere):  # a refusal of the request, not an answer of it
        assert refused["data"] is None or refused["data"].get("form") is None
        assert refused["errors"][0]["extensions"]["code"] == "OriginNotAllowed"
        assert "origin" in refused["errors"][0]["message"]
    assert start_at_home["data"]["startContact"]["__typename"] == "ContactSession"
    assert start_at_localhost["data"]["startContact"]["__typename"] == "ContactSession"


async def test_a_contact_token_does_nothing_from_another_tenants_site(http, two_companies):
    # given: a roofing customer's token, saved from the roofing site
    token = await contact_of(http, ROOFING_SITE)
    first = (await post(http, SAVE, {"key": "name", "value": "Maija"}, origin=ROOFING_SITE, token=token)).json()

    # when: the car repair shop's page uses it (it passes CORS: that site is listed, by its own tenant)
    save = (await post(http, SAVE, {"key": "name", "value": "Hijacked"}, origin=CARS_SITE, token=token)).json()
    me = (await post(http, ME, origin=CARS_SITE, token=token)).json()
    photo = await upload(http, token, images.jpeg(), origin=CARS_SITE)

    # then: refused alike, and told apart from a dead token
    assert first["data"]["saveField"]["__typename"] == "FieldSaved"
    for refused in (save, me, photo.json()):
        assert refused["errors"][0]["extensions"]["code"] == "OriginNotAllowed", refused
    assert save["data"] is None and me["data"]["me"] is None
    values = (await post(http, "query { me { values { key value } } }", token=token)).json()["data"]["me"]["values"]
    assert values == [{"key": "name", "value": "Maija"}]


async def test_a_staff_token_does_nothing_from_another_tenants_site(http, gql, two_companies):
    # given
    anna = await staff_token(gql)

    # when
    elsewhere = (await post(http, VIEWER, origin=CARS_SITE, token=anna)).json()
    at_home = (await post(http, VIEWER, origin=ROOFING_SITE, token=anna)).json()

    # then
    assert elsewhere["data"]["viewer"] is None
    assert elsewhere["errors"][0]["extensions"]["code"] == "OriginNotAllowed"
    assert at_home["data"]["viewer"]["email"] == "anna@kattohuolto.example"


async def test_staff_sign_in_from_another_tenants_site_fails_like_a_wrong_password(http, two_companies):
    # given
    credentials = {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD}

    # when
    elsewhere = (await post(http, LOGIN, credentials, origin=CARS_SITE)).json()
    wrong_password = (await post(http, LOGIN, {**credentials, "password": "wrong"}, origin=ROOFING_SITE)).json()
    at_home = (await post(http, LOGIN, credentials, origin=ROOFING_SITE)).json()

    # then: no token, and nothing that tells the page whether the password was right
    assert elsewhere == wrong_password
    assert elsewhere["data"]["login"]["__typename"] == "AuthError"
    assert at_home["data"]["login"]["__typename"] == "LoginSuccess"


async def test_removing_an_origin_stops_saves_from_it_at_once(http, two_companies):
    # given: a typist whose token the server remembers between saves
    token = await contact_of(http, ROOFING_SITE)
    for value in ("M", "Ma"):
        saved = (await post(http, SAVE, {"key": "name", "value": value}, origin=ROOFING_SITE, token=token)).json()
        assert saved["data"]["saveField"]["__typename"] == "FieldSaved"

    # when
    await tenants.change_origins("kattohuolto", remove=[ROOFING_SITE])
    after = (await post(http, SAVE, {"key": "name", "value": "Mai"}, origin=ROOFING_SITE, token=token)).json()

    # then: refused (by CORS, or by the tenant's own list)
    assert "FieldSaved" not in json.dumps(after)


async def test_an_origin_added_later_works_for_a_remembered_token(http, two_companies):
    # given: a token remembered by the server with its tenant as it was
    token = await contact_of(http, ROOFING_SITE)
    await post(http, SAVE, {"key": "name", "value": "M"}, origin=ROOFING_SITE, token=token)
    new_site = "https://uusi.kattohuolto.fi"

    # when
    await tenants.change_origins("kattohuolto", add=[new_site])
    saved = (await post(http, SAVE, {"key": "name", "value": "Ma"}, origin=new_site, token=token)).json()

    # then
    assert saved["data"]["saveField"]["__typename"] == "FieldSaved"


async def test_uploads_work_from_a_listed_origin(http, two_companies):
    # given
    token = await contact_of(http, ROOFING_SITE)
    asked = await preflight(http, ROOFING_SITE, headers="authorization,rapidly-upload")

    # when
    answer = await upload(http, token, images.jpeg(), origin=ROOFING_SITE)

    # then
    assert asked.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ROOFING_SITE
    assert answer.json()["data"]["uploadMedia"]["__typename"] == "MediaUploaded"


# -- WebSocket ------------------------------------------------------------------------------------------


async def connect(server, origin, token):
    ws = await websockets.connect(
        server.graphql_url.replace("http://", "ws://"), subprotocols=["graphql-transport-ws"], origin=origin
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    return ws


async def test_the_websocket_handshake_is_held_to_the_same_origins(http, server, two_companies):
    # given
    token = await contact_of(http, ROOFING_SITE)

    # when
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(server, NOWHERE, token)
    at_home = await connect(server, ROOFING_SITE, token)
    ack = json.loads(await asyncio.wait_for(at_home.recv(), 5))
    await at_home.close()
    elsewhere = await connect(server, CARS_SITE, token)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(elsewhere.recv(), 5)

    # then
    assert refused.value.response.status_code == 403
    assert ack["type"] == "connection_ack"
    assert closed.value.rcvd.code == 4403
