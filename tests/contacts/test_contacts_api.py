"""Contacts over GraphQL: the public form, startContact, autosave, the staff's view, notifications."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import connections

from rapidly import tenancy
from rapidly.audit.models import AuditEvent
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact, ContactToken, FieldValue
from rapidly.messaging import service as messaging
from rapidly.messaging.models import OutboundMessage
from rapidly.notifications.models import Notification
from rapidly.realtime.models import ContactEventLog
from rapidly.tenants.models import Tenant
from tests.conftest import STAFF_PASSWORD
from tests.support.sealed import opened_values

FORM = """
query Form($tenant: String!, $locale: String) {
  form(tenant: $tenant, locale: $locale) {
    __typename tenantName privacyPolicyUrl locale
    fields { key kind label purpose help required role choices { value label } limits { maxLength maxFiles } }
  }
}
"""
START = """
mutation Start($tenant: String!, $locale: String) {
  startContact(tenant: $tenant, locale: $locale) {
    __typename
    ... on ContactSession { token selfServiceUrl }
    ... on Error { message }
    ... on RateLimitedError { retryAfterSeconds }
  }
}
"""
SAVE = """
mutation Save($key: String!, $value: JSON) {
  saveField(key: $key, value: $value) {
    __typename
    ... on FieldSaved { value { key value updatedAt } }
    ... on InputInvalidError { message errors { field code message } }
    ... on AuthError { message }
  }
}
"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename ... on LoginSuccess { token } }
}
"""
CONTACTS = """
query Contacts($first: Int, $after: String) {
  contacts(first: $first, after: $after) {
    __typename
    edges { cursor node { id displayName values { key value } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
CONTACT = """
query Contact($id: ID!) {
  contact(id: $id) { __typename id displayName createdAt updatedAt values { key value updatedAt } }
}
"""
FIELDS = "query { fields { __typename key kind label purpose role } }"
NOTIFICATIONS = """
query Notifications($unreadOnly: Boolean) {
  notifications(unreadOnly: $unreadOnly) {
    __typename edges { node { id kind contactId text readAt } } pageInfo { hasNextPage }
  }
}
"""
MARK_READ = "mutation Mark($ids: [ID!]!) { markNotificationsRead(ids: $ids) }"


@pytest.fixture
async def roofing(world):
    tenant = await world.tenant("kattohuolto", privacy_policy_url="https://kattohuolto.example/tietosuoja")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    return tenant


async def staff_token(gql, email="anna@kattohuolto.example") -> str:
    return (await gql(LOGIN, {"email": email, "password": STAFF_PASSWORD}))["login"]["token"]


async def start(gql, tenant="kattohuolto", locale=None) -> str:
    result = (await gql(START, {"tenant": tenant, "locale": locale}))["startContact"]
    assert result["__typename"] == "ContactSession", result
    return result["token"]


async def save(gql, token, key, value) -> dict:
    return (await gql(SAVE, {"key": key, "value": value}, token=token))["saveField"]


# -- the public form --------------------------------------------------------------------------------------


async def test_form_is_public_and_localised_with_a_purpose_for_every_field(gql, roofing):
    # when
    fi = (await gql(FORM, {"tenant": "kattohuolto"}))["form"]
    en = (await gql(FORM, {"tenant": "kattohuolto", "locale": "en"}))["form"]
    unsupported = (await gql(FORM, {"tenant": "kattohuolto", "locale": "de"}))["form"]

    # then
    assert fi["tenantName"] == "Kattohuolto"
    assert fi["privacyPolicyUrl"] == "https://kattohuolto.example/tietosuoja"
    assert (fi["locale"], en["locale"], unsupported["locale"]) == ("fi", "en", "fi")
    assert [f["key"] for f in fi["fields"]][:3] == ["name", "phone", "email"]
    assert all(f["purpose"] for f in fi["fields"] + en["fields"])
    assert fi["fields"][0]["label"] != en["fields"][0]["label"]
    photos = next(f for f in fi["fields"] if f["kind"] == "IMAGE")
    assert photos["limits"]["maxFiles"] >= 1


async def test_form_of_an_unknown_tenant_is_null(gql, roofing):
    # when / then
    assert (await gql(FORM, {"tenant": "nope"}))["form"] is None
    assert (await gql(FORM, {"tenant": "x" * 10_000}))["form"] is None


# -- starting a contact -----------------------------------------------------------------------------------


async def test_start_contact_returns_a_hashed_token_and_the_self_service_url(gql, roofing, settings):
    # when
    result = (await gql(START, {"tenant": "kattohuolto", "locale": "en"}))["startContact"]

    # then
    token = result["token"]
    assert token.startswith("rpc_") and len(token) >= 40
    assert result["selfServiceUrl"] == f"{settings.base_url}/my/{token}"
    with tenancy.as_tenant(roofing.id):
        [row] = await ContactToken.all()
        assert row.token_hash == contacts.security.hash_token(token) != token
        assert (await Contact.get(id=row.contact_id)).locale == "en"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"tenant": "nope"}, "NotFoundError"),
        ({"tenant": "k" * 100_000}, "NotFoundError"),
        ({"tenant": "kattohuolto\x00"}, "NotFoundError"),
    ],
)
async def test_start_contact_with_bad_input_creates_nothing(gql, roofing, variables, expected):
    # when
    result = (await gql(START, variables))["startContact"]

    # then
    assert result["__typename"] == expected
    with tenancy.as_tenant(roofing.id):
        assert await Contact.all().count() == 0


async def test_an_unsupported_locale_falls_back_to_the_tenants_as_the_form_does(gql, roofing):
    # when
    await start(gql, locale="de")
    await start(gql, locale="x" * 10_000)
    await start(gql, locale="sv-FI")

    # then
    with tenancy.as_tenant(roofing.id):
        assert sorted(await Contact.all().values_list("locale", flat=True)) == ["fi", "fi", "sv"]


async def test_start_contact_is_limited_per_client_address(gql, roofing):
    # given: the test settings allow 30 per hour
    for _ in range(30):
        await start(gql)

    # when
    result = (await gql(START, {"tenant": "kattohuolto"}))["startContact"]

    # then
    assert result["__typename"] == "RateLimitedError"
    with tenancy.as_tenant(roofing.id):
        assert await Contact.all().count() == 30


# -- saving answers ---------------------------------------------------------------------------------------


async def test_save_field_stores_at_once_normalised(gql, roofing):
    # given
    token = await start(gql)

    # when
    name = await save(gql, token, "name", "  Maija Meikäläinen ")
    phone = await save(gql, token, "phone", "040 123 4567")
    email = await save(gql, token, "email", "Maija@Example.FI")

    # then
    assert name["value"]["value"] == "Maija Meikäläinen"
    assert phone["value"]["value"] == "+358401234567"
    assert email["value"]["value"].endswith("@example.fi")
    stored = {v.key: v.value for v in await opened_values(roofing.id)}
    assert stored == {"name": "Maija Meikäläinen", "phone": "+358401234567", "email": email["value"]["value"]}


async def test_last_write_wins_and_an_identical_repeat_is_a_no_op(gql, roofing):
    # given
    token = await start(gql)
    await save(gql, token, "street_address", "Katu 1")
    second = await save(gql, token, "street_address", "Katu 2")
    with tenancy.as_tenant(roofing.id):
        events_before = await ContactEventLog.all().count()

    # when
    repeat = await save(gql, token, "street_address", "Katu 2")

    # then
    assert {v.key: v.value for v in await opened_values(roofing.id)} == {"street_address": "Katu 2"}
    assert repeat["value"]["updatedAt"] == second["value"]["updatedAt"]
    with tenancy.as_tenant(roofing.id):
        assert await ContactEventLog.all().count() == events_before


async def test_saving_null_or_empty_clears_the_value(gql, roofing):
    # given
    token = await start(gql)
    await save(gql, token, "street_address", "Katu 1")

    # when
    cleared = await save(gql, token, "street_address", "")

    # then
    assert cleared["__typename"] == "FieldSaved" and cleared["value"]["value"] is None
    with tenancy.as_tenant(roofing.id):
        assert not await FieldValue.exists(key="street_address")


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("no_such_field", "x", "unknown_field"),
        ("email", "not an email", "invalid_email"),
        ("phone", "12", "invalid_phone"),
        ("name", "x" * 1_000_000, "too_long"),
        ("name", {"nested": ["object"]}, "wrong_type"),
        ("name", 42, "wrong_type"),
        ("roof_photos", "photo.jpg", "use_upload"),
        ("name", "Maija\x00", "invalid_characters"),
    ],
)
async def test_an_invalid_save_is_refused_and_leaves_the_stored_value(gql, roofing, key, value, code):
    # given
    token = await start(gql)
    await save(gql, token, "name", "Maija")
    await save(gql, token, "email", "maija@example.fi")
    await save(gql, token, "phone", "+358401234567")
    before = {v.key: (v.value, v.updated_at) for v in await opened_values(roofing.id)}

    # when
    result = await save(gql, token, key, value)

    # then
    assert result["__typename"] == "InputInvalidError"
    assert [e["code"] for e in result["errors"]] == [code]
    assert result["errors"][0]["field"] in (key, "key")
    assert {v.key: (v.value, v.updated_at) for v in await opened_values(roofing.id)} == before


async def test_error_messages_never_echo_the_submitted_value(gql, roofing):
    # given
    token = await start(gql)
    marker = "CANARY-7f3a-not-an-email"

    # when
    result = await save(gql, token, "email", marker)

    # then
    assert result["__typename"] == "InputInvalidError"
    assert marker not in str(result)


@pytest.mark.parametrize("credential", ["none", "forged", "staff", "expired"])
async def test_save_field_needs_a_live_contact_token(gql, roofing, credential):
    # given
    token = await start(gql)
    tokens = {
        "none": None,
        "forged": "rpc_" + "A" * 43,
        "staff": await staff_token(gql),
        "expired": token,
    }
    if credential == "expired":
        with tenancy.as_tenant(roofing.id):
            await ContactToken.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    # when
    result = (await gql(SAVE, {"key": "name", "value": "Maija"}, token=tokens[credential]))["saveField"]

    # then
    assert result == {"__typename": "AuthError", "message": "Authentication failed."}
    with tenancy.as_tenant(roofing.id):
        assert await FieldValue.all().count() == 0


DELETE_MY_DATA = "mutation { deleteMyData { __typename } }"


@pytest.mark.parametrize("change", ["expired", "erased"])
@pytest.mark.parametrize(
    ("key", "value"), [("name", "Matti"), ("email", "not an address"), ("nope", "x"), ("name", None)]
)
async def test_every_save_checks_the_token_again_even_right_after_one_that_worked(gql, roofing, change, key, value):
    # given: the token has just saved (so its contact is remembered for the next save)
    token = await start(gql)
    assert (await save(gql, token, "name", "Maija"))["__typename"] == "FieldSaved"
    if change == "expired":
        with tenancy.as_tenant(roofing.id):
            await ContactToken.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    else:
        assert (await gql(DELETE_MY_DATA, token=token))["deleteMyData"]["__typename"] == "ErasureReceipt"

    # when: a valid value, an invalid one, an unknown field, a clearing
    result = await save(gql, token, key, value)

    # then
    assert result == {"__typename": "AuthError", "message": "Authentication failed."}
    assert [v.value for v in await opened_values(roofing.id)] == (["Maija"] if change == "expired" else [])


async def test_a_tenants_changed_settings_apply_to_the_very_next_save(gql, roofing):
    # given: the token has just saved; then the tenant switches the self-service link off
    token = await start(gql)
    await save(gql, token, "name", "Maija")
    await messaging.set_channels("kattohuolto", "SELF_SERVICE_LINK", [])

    # when
    result = await save(gql, token, "email", "maija@example.com")

    # then
    assert result["__typename"] == "FieldSaved"
    with tenancy.as_tenant(roofing.id):
        assert await OutboundMessage.filter(event="self_service_link").count() == 0


def test_remembered_tokens_are_few_and_short_lived():
    # given
    recent = contacts.RecentTokens(size=3, max_age=60)
    stale = contacts.RecentTokens(size=3, max_age=0)
    savers = [contacts.Saver(f"hash{i}", Contact(), {}, True, b"k" * 32, b"i" * 32) for i in range(5)]

    # when
    for saver in savers:
        recent.remember(saver)
        stale.remember(saver)

    # then
    assert [recent.get(s.token_hash) for s in savers] == [None, None, *savers[2:]]
    assert [stale.get(s.token_hash) for s in savers] == [None] * 5


def test_remembered_tokens_past_their_age_are_dropped_with_their_keys():
    """A Saver holds its contact's data key: past its age it is not kept, used or not."""
    # given
    stale = contacts.RecentTokens(size=10, max_age=0)
    for i in range(3):
        stale._entries[f"hash{i}"] = (0.0, contacts.Saver(f"hash{i}", Contact(), {}, True, b"k" * 32, b"i" * 32))

    # when
    pruned = stale.prune()

    # then
    assert pruned == 3 and not stale._entries


async def test_a_contact_token_cannot_write_another_tenants_fields(gql, roofing, world):
    # given: the car repair shop's form has a registration number; the roofer's has none
    await world.tenant("bilverkstad", plugin="carrepair_se")
    roofer_contact = await start(gql, "kattohuolto")

    # when
    result = await save(gql, roofer_contact, "registration_number", "ABC123")

    # then
    assert result["__typename"] == "InputInvalidError"
    assert result["errors"][0]["code"] == "unknown_field"


# -- the staff's view -------------------------------------------------------------------------------------


async def test_staff_see_their_tenants_fields_and_contacts_with_values(gql, roofing):
    # given
    token = await start(gql)
    await save(gql, token, "name", "Maija")
    await save(gql, token, "damage_description", "Vuotaa\nräystäältä")
    await start(gql)  # never saves anything: invisible to staff
    staff = await staff_token(gql)

    # when
    fields = (await gql(FIELDS, token=staff))["fields"]
    page = (await gql(CONTACTS, token=staff))["contacts"]

    # then
    assert {"key": "name", "kind": "TEXT", "role": "NAME"}.items() <= fields[0].items()
    assert [e["node"]["displayName"] for e in page["edges"]] == ["Maija"]
    assert {v["key"]: v["value"] for v in page["edges"][0]["node"]["values"]} == {
        "damage_description": "Vuotaa\nräystäältä",
        "name": "Maija",
    }


async def test_contacts_page_by_last_activity_and_stay_stable_while_contacts_are_added(gql, roofing):
    # given: five contacts, oldest activity first
    for i in range(5):
        await save(gql, await start(gql), "name", f"Contact {i}")
    staff = await staff_token(gql)
    first_page = (await gql(CONTACTS, {"first": 2}, token=staff))["contacts"]

    # when: two more contacts arrive while the staff member pages on
    for i in range(5, 7):
        await save(gql, await start(gql), "name", f"Contact {i}")
    rest = (await gql(CONTACTS, {"first": 10, "after": first_page["pageInfo"]["endCursor"]}, token=staff))["contacts"]

    # then
    assert [e["node"]["displayName"] for e in first_page["edges"]] == ["Contact 4", "Contact 3"]
    assert first_page["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["displayName"] for e in rest["edges"]] == ["Contact 2", "Contact 1", "Contact 0"]
    assert rest["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("variables", "message"),
    [({"first": 0}, "Ask for 1 to 100"), ({"first": 10_000}, "Ask for 1 to 100"), ({"after": "garbage!"}, "cursor")],
)
async def test_bad_paging_arguments_get_a_clear_error(gql, roofing, variables, message):
    # given
    staff = await staff_token(gql)

    # when
    body = await gql(CONTACTS, variables, token=staff, expect_errors=True)

    # then
    assert message in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "InputInvalid"


async def test_staff_only_queries_refuse_contacts_and_strangers(gql, roofing):
    # given
    contact = await start(gql)

    # when
    as_contact = await gql(CONTACTS, token=contact, expect_errors=True)
    anonymous = await gql(FIELDS, expect_errors=True)

    # then
    assert as_contact["errors"][0]["message"] == "Staff sign-in required."
    assert anonymous["errors"][0]["message"] == "Staff sign-in required."


async def test_another_tenants_contact_is_null_exactly_like_an_absent_one(gql, roofing, world):
    # given
    bilverkstad = await world.tenant("bilverkstad", plugin="carrepair_se")
    await world.staff("bilverkstad", "erik@bilverkstad.example")
    other = await start(gql, "bilverkstad")
    await save(gql, other, "name", "Erik")
    with tenancy.as_tenant(bilverkstad.id):
        other_id = str((await Contact.get()).id)
    roofer = await staff_token(gql)

    # when
    foreign = await gql(CONTACT, {"id": other_id}, token=roofer)
    absent = await gql(CONTACT, {"id": "00000000-0000-0000-0000-000000000000"}, token=roofer)
    malformed = await gql(CONTACT, {"id": "'; DROP TABLE contact; --"}, token=roofer)
    listed = (await gql(CONTACTS, token=roofer))["contacts"]["edges"]

    # then
    assert foreign == absent == malformed == {"contact": None}
    assert listed == []


async def test_a_staff_read_of_a_contact_is_audited_with_ids_only(gql, roofing):
    # given
    token = await start(gql)
    await save(gql, token, "name", "Maija Audit")
    with tenancy.as_tenant(roofing.id):
        contact = await Contact.get()
    staff = await staff_token(gql)

    # when
    data = (await gql(CONTACT, {"id": str(contact.id)}, token=staff))["contact"]

    # then
    assert data["displayName"] == "Maija Audit"
    with tenancy.as_tenant(roofing.id):
        [event] = await AuditEvent.all()
        assert (event.contact_id, event.action) == (contact.id, "contact.read")
        assert "Maija" not in str(await AuditEvent.all().values())


async def test_a_page_of_100_contacts_costs_a_constant_number_of_queries(gql, roofing, caplog):
    # given: 100 contacts with two values each, written in bulk
    tenant = await Tenant.get(slug="kattohuolto")
    now = datetime.now(UTC)
    people = [Contact(tenant=tenant, locale="fi", first_saved_at=now) for _ in range(100)]
    with tenancy.as_tenant(tenant.id):
        await Contact.bulk_create(people)
        await connections.get("default").execute_many(  # the ORM cannot store a bare JSON string
            "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
            "VALUES (gen_random_uuid(), $1, $2, $3, $4::jsonb, now())",
            [
                [tenant.id, c.id, key, json.dumps(value)]
                for c in people
                for key, value in (("name", "N"), ("email", "n@example.fi"))
            ],
        )
    staff = await staff_token(gql)

    async def count_queries(first: int) -> int:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            page = (await gql(CONTACTS, {"first": first}, token=staff))["contacts"]
        assert len(page["edges"]) == first
        assert all(len(e["node"]["values"]) == 2 for e in page["edges"])
        return len([r for r in caplog.records if r.name == "tortoise.db_client"])

    # when
    small, large = await count_queries(2), await count_queries(100)

    # then
    assert small == large <= 6


# -- notifications ----------------------------------------------------------------------------------------


async def test_the_first_saved_value_notifies_every_staff_member_once(gql, roofing, world):
    # given
    await world.staff("kattohuolto", "ben@kattohuolto.example")
    token = await start(gql)

    # when
    await save(gql, token, "name", "Maija")
    await save(gql, token, "email", "maija@example.fi")

    # then
    with tenancy.as_tenant(roofing.id):
        rows = await Notification.all()
    assert sorted(n.kind for n in rows) == ["NEW_CONTACT", "NEW_CONTACT"]
    assert len({n.staff_id for n in rows}) == 2  # type: ignore[attr-defined]


async def test_notification_text_is_worded_when_read_in_the_staffs_language(gql, roofing):
    # given
    token = await start(gql)
    await save(gql, token, "name", "Maija")
    staff = await staff_token(gql)

    # when
    [edge] = (await gql(NOTIFICATIONS, token=staff))["notifications"]["edges"]
    await save(gql, token, "name", "Maija Meikäläinen")
    [renamed] = (await gql(NOTIFICATIONS, token=staff))["notifications"]["edges"]
    with tenancy.as_tenant(roofing.id):
        await Contact.all().delete()
    [deleted] = (await gql(NOTIFICATIONS, token=staff))["notifications"]["edges"]

    # then
    assert edge["node"]["text"] == "Uusi yhteydenotto: Maija"
    assert renamed["node"]["text"] == "Uusi yhteydenotto: Maija Meikäläinen"
    assert deleted["node"]["text"] == "Uusi yhteydenotto: (poistettu)"
    with tenancy.as_tenant(roofing.id):
        assert "Maija" not in str(await Notification.all().values())


async def test_mark_notifications_read_touches_only_the_callers_own(gql, roofing, world):
    # given
    await world.staff("kattohuolto", "ben@kattohuolto.example")
    await save(gql, await start(gql), "name", "Maija")
    anna, ben = await staff_token(gql), await staff_token(gql, "ben@kattohuolto.example")
    annas = [e["node"]["id"] for e in (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]]
    bens = [e["node"]["id"] for e in (await gql(NOTIFICATIONS, token=ben))["notifications"]["edges"]]

    # when
    marked = (await gql(MARK_READ, {"ids": [*annas, *bens, "not-a-uuid", "x" * 5000]}, token=anna))[
        "markNotificationsRead"
    ]
    again = (await gql(MARK_READ, {"ids": annas}, token=anna))["markNotificationsRead"]
    too_many = await gql(MARK_READ, {"ids": annas * 501}, token=anna, expect_errors=True)

    # then
    assert (marked, again) == (1, 0)
    assert (await gql(NOTIFICATIONS, {"unreadOnly": True}, token=anna))["notifications"]["edges"] == []
    assert len((await gql(NOTIFICATIONS, {"unreadOnly": True}, token=ben))["notifications"]["edges"]) == 1
    assert "at most 500" in too_many["errors"][0]["message"]


# -- retention of abandoned contacts ---------------------------------------------------------------------


async def test_contacts_without_any_saved_value_are_purged_after_a_day(gql, roofing):
    # given
    await start(gql)
    kept = await start(gql)
    await save(gql, kept, "name", "Maija")
    with tenancy.as_tenant(roofing.id):
        await Contact.all().update(created_at=datetime.now(UTC) - timedelta(hours=25))

    # when
    removed = await contacts.purge_abandoned(timedelta(hours=24))

    # then
    assert removed == 1
    with tenancy.as_tenant(roofing.id):
        assert await Contact.all().count() == 1
        assert await ContactToken.all().count() == 1


async def test_no_submitted_value_or_token_reaches_the_logs(gql, roofing, caplog):
    # given
    caplog.set_level(logging.INFO)
    marker = "CANARY-9c1e"
    token = await start(gql)

    # when: good and bad saves, staff reads
    await save(gql, token, "name", f"Maija {marker}")
    await save(gql, token, "email", f"{marker.lower()}@example.fi")
    await save(gql, token, "email", f"{marker} is not an email")
    await save(gql, token, "no_such_field", marker)
    staff = await staff_token(gql)
    await gql(CONTACTS, token=staff)

    # then
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert marker not in logged and marker.lower() not in logged
    assert token not in logged and staff not in logged


async def test_reading_only_display_names_is_audited_too(gql, roofing):
    # given
    await save(gql, await start(gql), "name", "Maija")
    staff = await staff_token(gql)

    # when
    await gql("query { contacts { edges { node { displayName } } } }", token=staff)

    # then
    with tenancy.as_tenant(roofing.id):
        assert await AuditEvent.filter(action="contact.read").count() == 1


async def test_a_page_reads_its_names_and_values_at_once_through_fragments_and_aliases_and_audits_each_once(
    gql, roofing
):
    # given: two named contacts, one without a name
    for name in ("Maija", "Matti", None):
        token = await start(gql)
        await save(gql, token, "name" if name else "email", name or "anon@example.fi")
    staff = await staff_token(gql)
    plain = "query { contacts { edges { node { id displayName values { key value } } } } }"
    fragments = """query { contacts { edges { node { id ...Named ... on Contact { all: values { key value } } } } } }
        fragment Named on Contact { who: displayName }"""
    ids_only = "query { contacts { edges { node { id updatedAt } } } }"

    # when
    read = (await gql(plain, token=staff))["contacts"]["edges"]
    with tenancy.as_tenant(roofing.id):
        audited_once = await AuditEvent.filter(action="contact.read").count()
    aliased = (await gql(fragments, token=staff))["contacts"]["edges"]
    await gql(ids_only, token=staff)

    # then: the same names and values either way, in the page's order
    assert [e["node"]["displayName"] for e in read] == [None, "Matti", "Maija"]
    assert [(e["node"]["who"], e["node"]["all"]) for e in aliased] == [
        (e["node"]["displayName"], e["node"]["values"]) for e in read
    ]
    assert read[0]["node"]["values"] == [{"key": "email", "value": "anon@example.fi"}]
    # each contact's read audited once per page that showed its values; a page of IDs shows none
    with tenancy.as_tenant(roofing.id):
        assert audited_once == 3
        assert await AuditEvent.filter(action="contact.read").count() == 6


async def test_a_contact_token_gets_nothing_of_the_staff_api(gql, roofing):
    # given
    await save(gql, await start(gql), "name", "Maija")
    contact_token = await start(gql)
    with tenancy.as_tenant(roofing.id):
        contact_id = str((await Contact.filter(first_saved_at__not_isnull=True).first()).id)

    # when
    single = await gql(CONTACT, {"id": contact_id}, token=contact_token, expect_errors=True)
    notes = await gql(NOTIFICATIONS, token=contact_token, expect_errors=True)
    marked = await gql(MARK_READ, {"ids": [contact_id]}, token=contact_token, expect_errors=True)

    # then
    for body in (single, notes, marked):
        assert body["errors"][0]["message"] == "Staff sign-in required."
        assert "Maija" not in str(body)


async def test_concurrent_first_saves_notify_once_and_create_once(gql, roofing):
    # given
    token = await start(gql)

    # when
    await asyncio.gather(
        *(
            save(gql, token, key, value)
            for key, value in (("name", "Maija"), ("email", "m@example.fi"), ("street_address", "Katu 1"))
        )
    )

    # then
    with tenancy.as_tenant(roofing.id):
        assert await Notification.all().count() == 1
        assert await ContactEventLog.filter(kind="CREATED").count() == 1
        assert await ContactEventLog.filter(kind="FIELD_SAVED").count() == 3


async def test_many_saves_at_once_never_starve_the_connection_pool(gql, roofing, settings):
    # given: more concurrent saves than the pool has connections, first saves and address fields
    # among them (the paths that open a transaction)
    tokens = [await start(gql) for _ in range(25)]
    fields = [("name", "Maija"), ("phone", "040 123 4567"), ("email", "maija@example.com")]

    # when
    results = await asyncio.wait_for(
        asyncio.gather(*[save(gql, token, key, value) for token in tokens for key, value in fields]), 60
    )

    # then
    assert len(results) == 75 > settings.database_pool_size
    assert {r["__typename"] for r in results} == {"FieldSaved"}
