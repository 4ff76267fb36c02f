"""What the staff console asks of the API besides the rest: sign-out, counts, settings, languages."""

from __future__ import annotations

from tests.contacts.test_contacts_api import save, staff_token, start

LOGOUT = "mutation { logout }"
VIEWER = """
query { viewer { unreadNotifications tenant { retentionDays allowedOrigins messageChannels { event channels } } } }
"""
FIELDS = "query F($locale: String) { fields(locale: $locale) { key label } }"
NOTIFICATIONS = "query N($locale: String) { notifications { edges { node { text(locale: $locale) } } } }"
ERASE = """
mutation E($id: ID!, $locale: String) {
  deleteContact(id: $id) { ... on ErasureReceipt { removed { store count name(locale: $locale) } } }
}
"""
ME = "query { me { contactId } }"


async def test_sign_out_ends_the_session_and_only_it(gql, world):
    # given: two sessions of one staff member
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    first, second = await staff_token(gql), await staff_token(gql)

    # when
    ended = await gql(LOGOUT, token=first)
    again = await gql(LOGOUT, token=first)
    anonymous = await gql(LOGOUT)

    # then
    assert ended == {"logout": True} and again == anonymous == {"logout": False}
    assert (await gql("{ viewer { email } }", token=first))["viewer"] is None
    assert (await gql("{ viewer { email } }", token=second))["viewer"]["email"] == "anna@kattohuolto.example"


async def test_unread_count_settings_and_languages(gql, world):
    # given: a new contact (a notification each for staff), and a tenant with settings
    await world.tenant("kattohuolto", retention_days=90)
    await world.staff("kattohuolto")
    token = await start(gql)
    await save(gql, token, "name", "Maija")
    anna = await staff_token(gql)
    contact_id = (await gql(ME, token=token))["me"]["contactId"]

    # when
    viewer = (await gql(VIEWER, token=anna))["viewer"]
    labels = {lang: (await gql(FIELDS, {"locale": lang}, token=anna))["fields"][0]["label"] for lang in ("fi", "en")}
    texts = [(await gql(NOTIFICATIONS, {"locale": lang}, token=anna)) for lang in ("en", "de")]
    receipt = (await gql(ERASE, {"id": contact_id, "locale": "sv"}, token=anna))["deleteContact"]
    after = (await gql(NOTIFICATIONS, {"locale": "en"}, token=anna))["notifications"]["edges"]

    # then
    assert viewer["unreadNotifications"] == 1
    assert viewer["tenant"]["retentionDays"] == 90 and viewer["tenant"]["allowedOrigins"] == []
    channels = {c["event"]: c["channels"] for c in viewer["tenant"]["messageChannels"]}
    assert channels["PHOTO_REQUEST"] == ["EMAIL", "SMS"] and channels["MEDIA_ADDED"] == []
    assert channels["NEW_CONTACT"] == ["EMAIL"]  # the default: staff by email (SMS to those who choose it)
    assert labels == {"fi": "Nimi", "en": "Name"}
    assert texts[0]["notifications"]["edges"][0]["node"]["text"] == "New contact: Maija"
    assert texts[1]["notifications"]["edges"][0]["node"]["text"].startswith("Uusi yhteydenotto")  # the reader's own
    assert {"store": "field_values", "count": 1, "name": "Sparade svar"} in receipt["removed"]
    assert after[0]["node"]["text"] == "New contact: (deleted)"
