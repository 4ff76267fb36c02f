"""Chat between staff and the end user: both ways in real time, across server processes; limits,
read state, throttled messages, attachments, other tenants, and erasure mid-conversation."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from tortoise import connections

from rapidly import db, tenancy
from rapidly.contacts import service as contacts
from rapidly.messaging.models import OutboundMessage
from rapidly.tenants.models import Tenant
from tests.conftest import subscribe
from tests.contacts.test_contacts_api import NOTIFICATIONS, save, staff_token, start
from tests.contacts.test_live import second_server  # noqa: F401 - a fixture
from tests.media import images

SEND = """
mutation Send($body: String!, $contactId: ID) {
  sendChatMessage(body: $body, contactId: $contactId) {
    __typename
    ... on ChatMessageSent { chatMessage { id body author staffId attachment { contentType url } } }
    ... on InputInvalidError { errors { field code } }
    ... on RateLimitedError { retryAfterSeconds }
    ... on Error { message }
  }
}
"""
THREAD = """
query Thread($id: ID!) {
  chatMessages(contactId: $id) { edges { node { body author readAt } } pageInfo { hasNextPage } }
}
"""
MY_THREAD = "query { me { chatMessages { edges { node { body author readAt } } } } }"
READ = "mutation Read($id: ID) { markChatRead(contactId: $id) }"
CONTACT_EVENTS = "subscription { contactEvents { kind contactId } }"
MY_EVENTS = "subscription { myEvents { kind } }"


@pytest.fixture
async def roofing(world):
    await world.tenant("kattohuolto", name="Kattohuolto Oy")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    await world.tenant("verstas", plugin="carrepair_se")
    await world.staff("verstas", "erik@verstas.example")


async def stored(database_url: str, table: str) -> int:
    """Rows of a table across every tenant: read as the owner (row-level security hides them all from
    a statement without a tenant, and the other tenants' from one with)."""
    conn = await db.Credentials.from_url(database_url).connect()
    try:
        return await conn.fetchval(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - a table name of the test's
    finally:
        await conn.close()


async def a_contact(gql) -> tuple[str, str]:
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    await save(gql, token, "email", "maija@example.com")
    return token, str((await contacts.contact_for_token(token)).id)


async def test_staff_and_the_end_user_talk_in_real_time_through_two_processes(
    gql,
    server,
    roofing,
    second_server,  # noqa: F811
):
    # given: the end user on this process, the staff member on another
    token, contact_id = await a_contact(gql)
    anna = await staff_token(gql)
    other = httpx.AsyncClient(base_url=second_server.removesuffix("/graphql"), timeout=10)

    async def on_other(query: str, variables: dict) -> dict:
        response = await other.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {anna}"}
        )
        return response.json()["data"]

    async with (
        subscribe(second_server, CONTACT_EVENTS, anna) as staff_events,
        subscribe(server.graphql_url, MY_EVENTS, token, live=server.app.state.fanout) as my_events,
    ):
        # when: the end user writes, the staff member reads it there and answers
        asked = (await gql(SEND, {"body": "Vuotaako katto vielä?\nTerveisin Maija"}, token=token))["sendChatMessage"]
        staff_saw = (await staff_events.next())["data"]["contactEvents"]
        thread = (await on_other(THREAD, {"id": contact_id}))["chatMessages"]
        answered = (await on_other(SEND, {"body": "Tulemme huomenna.", "contactId": contact_id}))["sendChatMessage"]
        user_saw = (await my_events.next())["data"]["myEvents"]
    await other.aclose()

    # then
    assert asked["__typename"] == "ChatMessageSent" and asked["chatMessage"]["author"] == "CONTACT"
    assert staff_saw == {"kind": "CHAT_MESSAGE", "contactId": contact_id}
    assert [e["node"]["body"] for e in thread["edges"]] == ["Vuotaako katto vielä?\nTerveisin Maija"]
    assert answered["chatMessage"]["author"] == "STAFF" and answered["chatMessage"]["staffId"]
    assert user_saw == {"kind": "CHAT_MESSAGE"}
    mine = (await gql(MY_THREAD, token=token))["me"]["chatMessages"]["edges"]
    assert [(e["node"]["author"], e["node"]["body"]) for e in mine] == [
        ("CONTACT", "Vuotaako katto vielä?\nTerveisin Maija"),
        ("STAFF", "Tulemme huomenna."),
    ]


async def test_read_state_is_kept_per_side(gql, roofing):
    # given
    token, contact_id = await a_contact(gql)
    anna = await staff_token(gql)
    await gql(SEND, {"body": "Hei"}, token=token)
    await gql(SEND, {"body": "Toinen"}, token=token)
    await gql(SEND, {"body": "Vastaus", "contactId": contact_id}, token=anna)

    # when
    staff_read = (await gql(READ, {"id": contact_id}, token=anna))["markChatRead"]
    again = (await gql(READ, {"id": contact_id}, token=anna))["markChatRead"]
    user_read = (await gql(READ, {}, token=token))["markChatRead"]

    # then
    assert (staff_read, again, user_read) == (2, 0, 1)
    thread = (await gql(THREAD, {"id": contact_id}, token=anna))["chatMessages"]["edges"]
    assert all(e["node"]["readAt"] for e in thread)


async def test_staff_of_another_tenant_can_neither_read_nor_post(gql, roofing, server, database_url):
    # given
    token, contact_id = await a_contact(gql)
    await gql(SEND, {"body": "Salainen"}, token=token)
    erik = await staff_token(gql, "erik@verstas.example")

    # when
    thread = (await gql(THREAD, {"id": contact_id}, token=erik))["chatMessages"]
    posted = (await gql(SEND, {"body": "Hei", "contactId": contact_id}, token=erik))["sendChatMessage"]
    absent = (await gql(SEND, {"body": "Hei", "contactId": "x" * 5000}, token=erik))["sendChatMessage"]
    read = (await gql(READ, {"id": contact_id}, token=erik))["markChatRead"]
    as_other_contact = (await gql(SEND, {"body": "Hei", "contactId": contact_id}, token=(await a_contact(gql))[0]))[
        "sendChatMessage"
    ]

    async with subscribe(server.graphql_url, CONTACT_EVENTS, erik, live=server.app.state.fanout) as events:
        await gql(SEND, {"body": "Toinen viesti"}, token=token)
        heard_nothing = await events.nothing_within(0.5)

    # then
    assert heard_nothing
    assert thread is None and read == 0
    assert posted == absent == as_other_contact == {"__typename": "NotFoundError", "message": "No such contact."}
    assert await stored(database_url, "chat_message") == 2
    assert (await gql(THREAD, {"id": contact_id}, token=token))["chatMessages"] is None  # a contact token


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "empty"),
        ("  \n\t ", "empty"),
        ("x" * 4001, "too_long"),
        ("x" * 1_000_000, "too_long"),
        ("bell\x07", "invalid_characters"),
        ("\u202eevil", "invalid_characters"),
    ],
    ids=["empty", "whitespace", "too-long", "1-MB", "control", "bidi-override"],
)
async def test_bad_bodies_are_refused_and_nothing_is_stored(gql, roofing, body, code, database_url):
    # given
    token, _ = await a_contact(gql)

    # when
    refused = (await gql(SEND, {"body": body}, token=token))["sendChatMessage"]

    # then
    assert refused["errors"] == [{"field": "body", "code": code}]
    assert await stored(database_url, "chat_message") == 0


async def test_a_lively_conversation_sends_one_email_each_way_per_quarter_hour(gql, roofing):
    # given
    token, contact_id = await a_contact(gql)
    anna = await staff_token(gql)
    ours = (await Tenant.get(slug="kattohuolto")).id  # whose rows the test's own statements read
    with tenancy.as_tenant(ours):
        await OutboundMessage.all().delete()

    # when: a lively exchange; then a quarter of an hour passes; then one more each way
    for i in range(3):
        await gql(SEND, {"body": f"Kysymys {i}"}, token=token)
        await gql(SEND, {"body": f"Vastaus {i}", "contactId": contact_id}, token=anna)
    with tenancy.as_tenant(ours):
        first_round = sorted((m.event, m.channel) for m in await OutboundMessage.all())
        await connections.get("default").execute_query(
            "UPDATE outbound_message SET created_at = created_at - interval '16 minutes'"
        )
    await gql(SEND, {"body": "Vielä yksi"}, token=token)
    await gql(SEND, {"body": "Selvä", "contactId": contact_id}, token=anna)

    # then
    assert first_round == [("chat_message", "email"), ("chat_reply", "email")]
    with tenancy.as_tenant(ours):
        assert await OutboundMessage.all().count() == 4
    texts = [n["node"]["text"] for n in (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]]
    assert texts.count("Uusi viesti: Maija") == 4  # in the app: one per message from the contact


async def test_each_side_is_limited(gql, roofing, database_url):
    # given
    token, _ = await a_contact(gql)

    # when
    answers = [(await gql(SEND, {"body": f"{i}"}, token=token))["sendChatMessage"]["__typename"] for i in range(62)]

    # then
    assert answers[:60] == ["ChatMessageSent"] * 60 and answers[60:] == ["RateLimitedError"] * 2
    assert await stored(database_url, "chat_message") == 60


async def test_the_thread_pages_through_in_order(gql, roofing):
    # given
    token, contact_id = await a_contact(gql)
    anna = await staff_token(gql)
    for i in range(5):  # alternating: the end user, then staff
        if i % 2 == 0:
            await gql(SEND, {"body": f"viesti {i}"}, token=token)
        else:
            await gql(SEND, {"body": f"viesti {i}", "contactId": contact_id}, token=anna)
    paged = """
    query P($id: ID!, $after: String) { chatMessages(contactId: $id, first: 2, after: $after) {
      edges { cursor node { body } } pageInfo { hasNextPage endCursor } } }
    """

    # when
    bodies, after, pages = [], None, 0
    while True:
        page = (await gql(paged, {"id": contact_id, "after": after}, token=anna))["chatMessages"]
        bodies += [e["node"]["body"] for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    bad = await gql(paged, {"id": contact_id, "after": "not-a-cursor"}, token=anna, expect_errors=True)
    too_many = await gql(
        "query P($id: ID!) { chatMessages(contactId: $id, first: 500) { edges { cursor } } }",
        {"id": contact_id},
        token=anna,
        expect_errors=True,
    )

    # then
    assert bodies == [f"viesti {i}" for i in range(5)] and pages == 3
    assert bad["errors"][0]["extensions"]["code"] == "InputInvalid"
    assert too_many["errors"][0]["extensions"]["code"] == "InputInvalid"


async def test_the_end_user_does_not_see_which_staff_member_wrote(gql, roofing):
    # given
    token, contact_id = await a_contact(gql)
    await gql(SEND, {"body": "Vastaus", "contactId": contact_id}, token=await staff_token(gql))

    # when
    mine = await gql("query { me { chatMessages { edges { node { author staffId } } } } }", token=token)

    # then
    assert mine["me"]["chatMessages"]["edges"] == [{"node": {"author": "STAFF", "staffId": None}}]


async def test_a_photo_rides_along_and_erasure_mid_conversation_leaves_nothing(
    http, gql, roofing, server, database_url
):
    # given
    token, contact_id = await a_contact(gql)
    anna = await staff_token(gql)
    operations = {
        "query": SEND.replace("$contactId: ID)", "$contactId: ID, $file: Upload)").replace(
            "contactId: $contactId)", "contactId: $contactId, attachment: $file)"
        ),
        "variables": {"body": "Kuva", "file": None},
    }
    response = await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("katto.jpg", images.jpeg(64, 48, comment="exif note", gps=True), "image/jpeg")},
        headers={"Authorization": f"Bearer {token}", "Rapidly-Upload": "1"},
    )
    sent = response.json()["data"]["sendChatMessage"]
    await gql(SEND, {"body": "Kiitos kuvasta", "contactId": contact_id}, token=anna)

    # when
    receipt = (
        await gql("mutation { deleteMyData { ... on ErasureReceipt { removed { store count } } } }", token=token)
    )["deleteMyData"]

    # then
    assert sent["chatMessage"]["attachment"]["contentType"] == "image/jpeg"
    counts = {r["store"]: r["count"] for r in receipt["removed"]}
    assert counts["chat_messages"] == 2 and counts["media"] == 1 and counts["media_objects"] == 1
    assert await stored(database_url, "chat_message") == 0 and await stored(database_url, "media") == 0
    assert (await http.get(sent["chatMessage"]["attachment"]["url"])).status_code == 404
    texts = [n["node"]["text"] for n in (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]]
    assert texts and all(t.endswith("(poistettu)") for t in texts)
    assert (await gql(THREAD, {"id": contact_id}, token=anna))["chatMessages"] is None


async def test_the_page_and_the_export_show_the_conversation(http, gql, roofing):
    # given
    token, contact_id = await a_contact(gql)
    await gql(SEND, {"body": "Onko <b>tämä</b> turvallista?"}, token=token)
    await gql(SEND, {"body": "On.", "contactId": contact_id}, token=await staff_token(gql))

    # when
    page = (await http.get(f"/my/{token}?lang=fi")).text
    export = (await http.get(f"/my/{token}/export.json")).json()

    # then
    assert "Keskustelu" in page and "Onko &lt;b&gt;tämä&lt;/b&gt; turvallista?" in page and "Kattohuolto Oy" in page
    assert [(c["author"], c["body"]) for c in export["chat"]] == [
        ("CONTACT", "Onko <b>tämä</b> turvallista?"),
        ("STAFF", "On."),
    ]
    assert re.search(r'class="staff"', page)
