"""Contact data sealed under each contact's own key (rapidly/keys): what the database and the object
storage hold, ciphertext moved or altered, blind-index search, the key ring's caching, and sealing
what was stored before encryption."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from tortoise import connections

from rapidly import tenancy
from rapidly.chat import service as chat
from rapidly.contacts import service as contacts
from rapidly.keys import Unreadable, existing
from rapidly.keys import service as keys
from rapidly.keys.root import KeyServiceUnavailable, PassphraseProvider
from rapidly.keys.sealing import VERSION, is_sealed, new_key, open_sealed, place, seal
from rapidly.media import service as media
from rapidly.storage import object_key
from tests.conftest import TEST_ROOT_KEY
from tests.contacts.test_contacts_api import CONTACT, save, staff_token, start
from tests.contacts.test_search import SEARCH
from tests.media import images
from tests.media.test_upload_api import upload
from tests.support.sealed import opened_values, sealed_in_the_first_format

CHAT = "mutation S($body: String!) { sendChatMessage(body: $body) { __typename } }"
MY_CHAT = "query { me { chatMessages { edges { node { body } } } } }"


@pytest.fixture
async def two_contacts(gql, world):
    """Two customers of one company, each with a name, an email and a chat message, and the staff."""
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    tokens = []
    for name in ("Maija Meikäläinen", "Matti Virtanen"):
        token = await start(gql)
        await save(gql, token, "name", name)
        await save(gql, token, "email", f"{name.split()[0].lower()}@example.fi")
        assert (await gql(CHAT, {"body": f"hello from {name}"}, token=token))["sendChatMessage"]["__typename"] == (
            "ChatMessageSent"
        )
        tokens.append(token)
    return tokens, await staff_token(gql)


async def sql(tenant_id: uuid.UUID, statement: str, *args: object) -> list[dict]:
    with tenancy.as_tenant(tenant_id):
        return await connections.get("default").execute_query_dict(statement, list(args))


async def shown_values(gql, staff: str, token: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    contact = await contacts.contact_for_token(token)
    found = (await gql(CONTACT, {"id": str(contact.id)}, token=staff))["contact"]
    return {v["key"]: v["value"] for v in found["values"]}


async def test_the_database_holds_ciphertext_bound_to_its_contact_and_field(gql, two_contacts):
    # given
    (maija, _), staff = two_contacts
    contact = await contacts.contact_for_token(maija)

    # when
    rows = await sql(
        contact.tenant_id, "SELECT key, sealed, value, terms FROM field_value WHERE contact_id = $1", contact.id
    )
    messages = await sql(
        contact.tenant_id, "SELECT body, sealed_body FROM chat_message WHERE contact_id = $1", contact.id
    )

    # then
    assert {r["key"] for r in rows} == {"name", "email"}
    assert all(r["value"] is None and is_sealed(r["sealed"]) and b"Maija" not in r["sealed"] for r in rows)
    assert all(r["terms"] for r in rows)
    assert [(m["body"], is_sealed(m["sealed_body"])) for m in messages] == [(None, True)]
    assert await shown_values(gql, staff, maija) == {"name": "Maija Meikäläinen", "email": "maija@example.fi"}


@pytest.mark.parametrize("move", ["another contact", "another field", "truncated"])
async def test_a_value_moved_or_altered_does_not_open_and_nothing_else_is_affected(gql, two_contacts, caplog, move):
    # given
    (maija, matti), staff = two_contacts
    one, other = await contacts.contact_for_token(maija), await contacts.contact_for_token(matti)
    tenant_id = one.tenant_id
    if move == "another contact":  # Matti's name put in Maija's row
        statement = (
            "UPDATE field_value SET sealed = (SELECT sealed FROM field_value WHERE contact_id = $2 AND key = 'name') "
            "WHERE contact_id = $1 AND key = 'name'"
        )
        await sql(tenant_id, statement, one.id, other.id)
    elif move == "another field":  # Maija's email put in her name's row
        statement = (
            "UPDATE field_value SET sealed = (SELECT sealed FROM field_value WHERE contact_id = $1 AND key = 'email') "
            "WHERE contact_id = $1 AND key = 'name' AND $2::uuid IS NOT NULL"
        )
        await sql(tenant_id, statement, one.id, other.id)
    else:
        await sql(
            tenant_id,
            "UPDATE field_value SET sealed = substring(sealed for 30) WHERE contact_id = $1 AND key = 'name'",
            one.id,
        )
    caplog.set_level(logging.ERROR, logger="rapidly")

    # when
    shown = await shown_values(gql, staff, maija)

    # then: the moved value is left out, never shown as another's; the rest is as it was
    assert shown == {"email": "maija@example.fi"}
    assert await shown_values(gql, staff, matti) == {"name": "Matti Virtanen", "email": "matti@example.fi"}
    logged = [r.getMessage() for r in caplog.records if "does not open" in r.getMessage()]
    assert logged and all(str(one.id) in line and "Matti" not in line and "maija@" not in line for line in logged)


async def test_values_and_messages_sealed_in_the_first_format_still_open_and_a_save_seals_in_the_current_one(
    gql, two_contacts
):
    # given: Maija's name and chat message as version 1 (XChaCha20-Poly1305) sealed them
    (maija, _), staff = two_contacts
    contact = await contacts.contact_for_token(maija)
    tenant_id = contact.tenant_id
    key = await keys.ring().contact_key(tenant_id, contact.id)
    old_name = sealed_in_the_first_format(
        key, json.dumps("Maija Vanha").encode(), contacts.value_place(tenant_id, contact.id, "name")
    )
    await sql(
        tenant_id, "UPDATE field_value SET sealed = $2 WHERE contact_id = $1 AND key = 'name'", contact.id, old_name
    )
    [message] = await sql(tenant_id, "SELECT id FROM chat_message WHERE contact_id = $1", contact.id)
    old_body = sealed_in_the_first_format(
        key, b"hello from before", chat.body_place(tenant_id, contact.id, message["id"])
    )
    await sql(tenant_id, "UPDATE chat_message SET sealed_body = $2 WHERE id = $1", message["id"], old_body)

    # when
    shown = await shown_values(gql, staff, maija)
    thread = (await gql(MY_CHAT, token=maija))["me"]["chatMessages"]["edges"]
    await save(gql, maija, "name", "Maija Uusi")

    # then: both open; the save wrote the current format (AES-256-GCM), which opens too
    assert shown["name"] == "Maija Vanha"
    assert [edge["node"]["body"] for edge in thread] == ["hello from before"]
    [row] = await sql(tenant_id, "SELECT sealed FROM field_value WHERE contact_id = $1 AND key = 'name'", contact.id)
    assert row["sealed"][:1] == VERSION != old_name[:1]
    assert (await shown_values(gql, staff, maija))["name"] == "Maija Uusi"


def test_a_sealed_value_opens_only_with_its_key_at_its_place_and_unaltered():
    key, where = new_key(), place("value", uuid.uuid4(), uuid.uuid4(), "name")
    for sealed in (seal(key, b"Maija", where), sealed_in_the_first_format(key, b"Maija", where)):
        assert is_sealed(sealed) and open_sealed(key, sealed, where) == b"Maija"
        altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        for wrong_key, wrong_sealed, wrong_place in (
            (new_key(), sealed, where),
            (key, sealed, place("value", uuid.uuid4(), uuid.uuid4(), "name")),
            (key, altered, where),
            (key, sealed[:20], where),
            (key[:16], sealed, where),
            (key, b"\x03" + sealed[1:], where),
            (key, b"", where),
        ):
            with pytest.raises(Unreadable):
                open_sealed(wrong_key, wrong_sealed, wrong_place)
    assert seal(key, b"Maija", where) != seal(key, b"Maija", where)  # a fresh nonce each time
    with pytest.raises(ValueError):  # AES-128 is not what anything here is sealed with
        seal(key[:16], b"Maija", where)


async def test_a_value_copied_to_another_tenant_does_not_open_there(gql, world, two_contacts):
    # given: a contact of another company, and Maija's sealed name copied into its row
    (maija, _), _staff = two_contacts
    await world.tenant("bilverkstad", plugin="carrepair_se", default_locale="sv")
    theirs = await start(gql, "bilverkstad")
    await save(gql, theirs, "name", "Sven")
    mine, other = await contacts.contact_for_token(maija), await contacts.contact_for_token(theirs)
    [row] = await sql(mine.tenant_id, "SELECT sealed FROM field_value WHERE contact_id = $1 AND key = 'name'", mine.id)
    await sql(
        other.tenant_id,
        "UPDATE field_value SET sealed = $2 WHERE contact_id = $1 AND key = 'name'",
        other.id,
        row["sealed"],
    )

    # when
    values = await contacts.values_of(other)

    # then
    assert values == []


async def test_a_chat_message_moved_to_another_contact_is_left_out_of_its_thread(gql, two_contacts):
    # given: Matti's message body put in Maija's message
    (maija, matti), _staff = two_contacts
    one, other = await contacts.contact_for_token(maija), await contacts.contact_for_token(matti)
    await sql(
        one.tenant_id,
        "UPDATE chat_message SET sealed_body = (SELECT sealed_body FROM chat_message WHERE contact_id = $2) "
        "WHERE contact_id = $1",
        one.id,
        other.id,
    )

    # when
    mine = (await gql(MY_CHAT, token=maija))["me"]["chatMessages"]["edges"]
    theirs = (await gql(MY_CHAT, token=matti))["me"]["chatMessages"]["edges"]

    # then
    assert mine == []
    assert [e["node"]["body"] for e in theirs] == ["hello from Matti Virtanen"]


async def test_a_photo_object_moved_to_another_contact_is_not_served(http, gql, two_contacts, server):
    # given: Maija's photo's object copied over Matti's
    (maija, matti), _staff = two_contacts
    urls = []
    for token in (maija, matti):
        uploaded = (await upload(http, token, images.jpeg())).json()["data"]["uploadMedia"]
        urls.append(uploaded["media"]["url"])
    storage = server.app.state.storage
    one, other = await contacts.contact_for_token(maija), await contacts.contact_for_token(matti)
    [mine] = await sql(one.tenant_id, "SELECT id FROM media WHERE contact_id = $1", one.id)
    [theirs] = await sql(other.tenant_id, "SELECT id FROM media WHERE contact_id = $1", other.id)
    sealed = await storage.get(object_key(one.tenant_id, one.id, mine["id"]))
    await storage.put(object_key(other.tenant_id, other.id, theirs["id"]), sealed, media.SEALED_TYPE)

    # when
    served = [await http.get(url) for url in urls]

    # then
    assert [r.status_code for r in served] == [200, 404]
    assert images.is_image(served[0].content)


async def test_search_finds_sealed_values_and_shows_no_candidate_that_does_not_hold_the_text(gql, world):
    # given: one value holds every trigram of "abcd" but not "abcd" itself
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    for name in ("Abcxbcd Decoy", "Zabcdz Match"):
        token = await start(gql)
        await save(gql, token, "name", name)
    staff = await staff_token(gql)

    # when
    found = await gql(SEARCH, {"search": "abcd"}, token=staff)

    # then
    assert [e["node"]["displayName"] for e in found["contacts"]["edges"]] == ["Zabcdz Match"]


async def test_the_same_text_in_two_tenants_has_different_blind_index_terms(gql, world):
    # given
    await world.tenant("kattohuolto")
    await world.tenant("bilverkstad", plugin="carrepair_se", default_locale="sv")
    terms = []
    for slug in ("kattohuolto", "bilverkstad"):
        token = await start(gql, slug)
        await save(gql, token, "name", "Maija Meikäläinen")
        contact = await contacts.contact_for_token(token)
        [row] = await sql(contact.tenant_id, "SELECT terms FROM field_value WHERE contact_id = $1", contact.id)
        terms.append(set(row["terms"]))

    # then
    assert terms[0] and terms[1] and not terms[0] & terms[1]


async def test_a_tenant_key_is_opened_once_per_process_however_many_requests(gql, two_contacts, server):
    # given: a ring whose root key counts how often it is asked
    (maija, _), _staff = two_contacts
    contact = await contacts.contact_for_token(maija)

    class Counting(PassphraseProvider):
        unwrapped = 0

        def unwrap(self, wrapped: bytes, where: bytes) -> bytes:
            Counting.unwrapped += 1
            return super().unwrap(wrapped, where)

    ring = keys.KeyRing([Counting(TEST_ROOT_KEY)])

    # when
    for _ in range(50):
        assert await ring.contact_key(contact.tenant_id, contact.id) is not None

    # then
    assert Counting.unwrapped == 1


async def test_another_root_key_opens_no_tenant_key(gql, two_contacts):
    # given
    (maija, _), _staff = two_contacts
    contact = await contacts.contact_for_token(maija)
    ring = keys.KeyRing([PassphraseProvider("another root key, not the one the tenant keys were made with")])

    # when / then
    with pytest.raises(Unreadable):
        await ring.tenant_key(contact.tenant_id)
    assert await ring.open_every_tenant_key() == (0, 1)


async def test_data_stored_before_encryption_is_sealed_in_place_and_stays_readable(http, gql, two_contacts, server):
    # given: a value, a message and a photo as an earlier release stored them, in clear, and no key
    (maija, _), staff = two_contacts
    contact = await contacts.contact_for_token(maija)
    tenant_id, storage = contact.tenant_id, server.app.state.storage
    await sql(tenant_id, "DELETE FROM contact_key WHERE contact_id = $1", contact.id)
    await sql(
        tenant_id,
        "UPDATE field_value SET value = to_jsonb($2::text), sealed = NULL, digest = NULL, terms = NULL "
        "WHERE contact_id = $1 AND key = 'name'",
        contact.id,
        "Maija Legacy",
    )
    await sql(tenant_id, "DELETE FROM field_value WHERE contact_id = $1 AND key = 'email'", contact.id)
    await sql(
        tenant_id, "UPDATE chat_message SET body = 'old hello', sealed_body = NULL WHERE contact_id = $1", contact.id
    )
    [photo] = await sql(
        tenant_id,
        "INSERT INTO media (id, tenant_id, contact_id, field_key, content_type, width, height, size_bytes, "
        "created_at, sealed) VALUES (gen_random_uuid(), $1, $2, 'roof_photos', 'image/jpeg', 64, 48, 100, now(), "
        "NULL) RETURNING id",
        tenant_id,
        contact.id,
    )
    await storage.put(object_key(tenant_id, contact.id, photo["id"]), images.jpeg(64, 48), "image/jpeg")

    # when
    first = await existing.seal_existing(storage, batch=1)
    again = await existing.seal_existing(storage)

    # then: sealed, in batches, once; shown and searched as before
    assert first == {"field_values": 1, "chat_messages": 1, "photos": 1} and again == dict.fromkeys(first, 0)
    rows = await sql(tenant_id, "SELECT value, sealed FROM field_value WHERE contact_id = $1", contact.id)
    assert [(r["value"], is_sealed(r["sealed"])) for r in rows] == [(None, True)]
    stored = await storage.get(object_key(tenant_id, contact.id, photo["id"]))
    assert not images.is_image(stored)
    assert images.is_image(await media.photo_bytes(storage, tenant_id, contact.id, photo["id"]))
    assert await shown_values(gql, staff, maija) == {"name": "Maija Legacy"}
    assert [e["node"]["body"] for e in (await gql(MY_CHAT, token=maija))["me"]["chatMessages"]["edges"]] == [
        "old hello"
    ]
    found = await gql(SEARCH, {"search": "legacy"}, token=staff)
    assert [e["node"]["displayName"] for e in found["contacts"]["edges"]] == ["Maija Legacy"]
    assert [v.value for v in await opened_values(tenant_id) if v.key == "name"] == ["Maija Legacy", "Matti Virtanen"]
    assert json.dumps(rows, default=str).find("Legacy") == -1


async def test_an_altered_contact_key_shows_nothing_of_its_contact_and_nothing_else_changes(gql, two_contacts, caplog):
    # given: one byte of Maija's wrapped key flipped
    (maija, matti), staff = two_contacts
    one = await contacts.contact_for_token(maija)
    await sql(
        one.tenant_id,
        "UPDATE contact_key SET wrapped = set_byte(wrapped, 30, get_byte(wrapped, 30) # 1) WHERE contact_id = $1",
        one.id,
    )
    caplog.set_level(logging.ERROR, logger="rapidly")

    # when
    shown = await shown_values(gql, staff, maija)
    chat_page = await gql(MY_CHAT, token=maija, expect_errors=True)

    # then: nothing of hers, all of his; logged by her ID only
    assert shown == {}
    assert chat_page["data"]["me"] is None and chat_page["errors"][0]["extensions"]["code"] == "NotFound"
    assert await shown_values(gql, staff, matti) == {"name": "Matti Virtanen", "email": "matti@example.fi"}
    logged = [r.getMessage() for r in caplog.records if "does not open" in r.getMessage()]
    assert logged and all(str(one.id) in line and "Maija" not in line for line in logged)


async def test_a_key_service_out_of_reach_answers_503_and_saves_nothing(http, world, monkeypatch):
    """A company whose key this process has not opened yet, while the KMS cannot be reached: the
    request is to be retried (503 UNAVAILABLE), and no contact is left half-made."""

    # given: a root key whose service is down (the provider raises as the AWS KMS one does)
    class Unreachable(PassphraseProvider):
        def wrap(self, key: bytes, where: bytes) -> bytes:
            raise KeyServiceUnavailable("the KMS cannot be reached (ConnectTimeoutError)")

        unwrap = wrap  # type: ignore[assignment]

    tenant = await world.tenant("kattohuolto")
    monkeypatch.setattr(keys, "_ring", keys.KeyRing([Unreachable(TEST_ROOT_KEY)]))

    # when
    answer = await http.post(
        "/graphql", json={"query": 'mutation { startContact(tenant: "kattohuolto") { __typename } }'}
    )

    # then
    assert answer.status_code == 503, answer.text
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    assert answer.headers["retry-after"]
    assert await sql(tenant.id, "SELECT id FROM contact") == []
    assert await sql(tenant.id, "SELECT id FROM tenant_key") == []
