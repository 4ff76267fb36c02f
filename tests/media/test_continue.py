"""Continue on the phone: the link goes to the contact's own address only, opens the same contact,
and photos taken there appear on the staff's screen and on the computer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import connections

from rapidly import tenancy
from rapidly.contacts import service as contacts
from rapidly.media.models import Media
from rapidly.messaging.models import OutboundMessage
from tests.conftest import subscribe
from tests.contacts.test_contacts_api import save, start
from tests.media import images

SEND = """
mutation Send($channel: Channel!) {
  sendContinueLink(channel: $channel) {
    __typename
    ... on LinkSent { channel maskedRecipient }
    ... on InputInvalidError { errors { field code message } }
    ... on RateLimitedError { retryAfterSeconds }
    ... on AuthError { message }
  }
}
"""


@pytest.fixture
async def roofing(world):
    return await world.tenant("kattohuolto", name="Kattohuolto Oy")


async def contact_with_addresses(gql, phone="040 123 4567", email="maija@example.com") -> str:
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    if phone:
        await save(gql, token, "phone", phone)
    if email:
        await save(gql, token, "email", email)
    return token


async def test_the_link_goes_to_the_contacts_own_address_and_opens_the_phone_page(
    gql, http, roofing, dispatcher, smtp, gateway
):
    # given
    _, mailbox, _ = smtp
    token = await contact_with_addresses(gql)
    with tenancy.as_tenant(roofing.id):
        await OutboundMessage.all().delete()  # the self-service link and staff mails queued by the saves

    # when
    by_sms = (await gql(SEND, {"channel": "SMS"}, token=token))["sendContinueLink"]
    by_email = (await gql(SEND, {"channel": "EMAIL"}, token=token))["sendContinueLink"]
    await dispatcher.run_once()

    # then
    assert by_sms == {"__typename": "LinkSent", "channel": "SMS", "maskedRecipient": "+358•••••67"}
    assert by_email == {"__typename": "LinkSent", "channel": "EMAIL", "maskedRecipient": "m•••@example.com"}
    [mail] = mailbox.messages
    [sms] = gateway.requests
    assert mail["X-Envelope-To"] == "maija@example.com" and sms["body"]["recipients"] == [{"msisdn": 358401234567}]
    link = re.search(r"http://127\.0\.0\.1:\d+(/continue/rpc_[A-Za-z0-9_-]{43})", sms["body"]["message"]).group(1)
    page = await http.get(link)
    assert page.status_code == 200 and "Lisää kuvia – Kattohuolto Oy" in page.text
    with tenancy.as_tenant(roofing.id):
        assert [m.status for m in await OutboundMessage.all()] == ["SENT", "SENT"]


@pytest.mark.parametrize(
    ("phone", "email", "channel", "code"),
    [
        (None, None, "SMS", "no_address"),
        (None, None, "EMAIL", "no_address"),
        ("09 123 4567", None, "SMS", "not_a_mobile_number"),  # a Helsinki landline
        ("+1 212 555 0100", None, "SMS", "not_a_mobile_number"),  # outside the EEA
    ],
)
async def test_no_link_without_an_own_address_a_mobile_number_in_the_eea(gql, roofing, phone, email, channel, code):
    # given
    token = await contact_with_addresses(gql, phone=phone, email=email)

    # when
    refused = (await gql(SEND, {"channel": channel}, token=token))["sendContinueLink"]

    # then
    assert [e["code"] for e in refused["errors"]] == [code]
    with tenancy.as_tenant(roofing.id):
        assert await OutboundMessage.filter(event="continue_link").count() == 0


async def test_links_are_limited_per_contact(gql, roofing):
    # given
    token = await contact_with_addresses(gql)
    with tenancy.as_tenant(roofing.id):
        await OutboundMessage.all().delete()
    for _ in range(5):
        assert (await gql(SEND, {"channel": "EMAIL"}, token=token))["sendContinueLink"]["__typename"] == "LinkSent"

    # when
    sixth = (await gql(SEND, {"channel": "EMAIL"}, token=token))["sendContinueLink"]

    # then
    assert sixth["__typename"] == "RateLimitedError" and sixth["retryAfterSeconds"] > 0
    with tenancy.as_tenant(roofing.id):
        assert await OutboundMessage.all().count() == 5


async def test_staff_and_anonymous_callers_cannot_send(gql, roofing, world):
    # when
    anonymous = (await gql(SEND, {"channel": "EMAIL"}))["sendContinueLink"]
    bad_channel = await gql(SEND, {"channel": "CARRIER_PIGEON"}, expect_errors=True)

    # then
    assert anonymous["__typename"] == "AuthError"
    assert "CARRIER_PIGEON" not in str(bad_channel) or bad_channel["errors"]


async def test_the_continue_link_expires(gql, http, roofing, dispatcher, gateway):
    # given
    token = await contact_with_addresses(gql)
    path = await continue_path(gql, token, dispatcher, gateway)
    with tenancy.as_tenant(roofing.id):
        await connections.get("default").execute_query(
            "UPDATE contact_token SET expires_at = now() - interval '1s' WHERE expires_at < now() + interval '1 hour'"
        )

    # when
    page = await http.get(path)

    # then
    assert page.status_code == 404


async def continue_path(gql, token: str, dispatcher, gateway) -> str:  # type: ignore[no-untyped-def]
    """Ask for the link by SMS, send it, and read it from what the gateway received."""
    await gql(SEND, {"channel": "SMS"}, token=token)
    await dispatcher.run_once()
    text = gateway.requests[-1]["body"]["message"]
    return re.search(r"(/continue/rpc_[A-Za-z0-9_-]{43})", text).group(1)


async def test_the_phone_page_refuses_uploads_without_its_csrf_token(gql, http, roofing, dispatcher, gateway):
    # given
    token = await contact_with_addresses(gql)
    path = await continue_path(gql, token, dispatcher, gateway)
    page = (await http.get(path)).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)

    # when
    forged = await http.post(
        f"{path}/upload",
        data={"csrf": "0" * 64, "field": "roof_photos"},
        files={"file": ("a.jpg", images.jpeg(), "image/jpeg")},
    )
    cross_site = await http.post(
        f"{path}/upload",
        data={"csrf": csrf, "field": "roof_photos"},
        files={"file": ("a.jpg", images.jpeg(), "image/jpeg")},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    not_multipart = await http.post(f"{path}/upload", data={"csrf": csrf, "field": "roof_photos"})
    hostile = await http.post(
        f"{path}/upload",
        data={"csrf": csrf, "field": "roof_photos"},
        files={"file": ("a.jpg", images.png_bomb(), "image/jpeg")},
    )
    accepted = await http.post(
        f"{path}/upload",
        data={"csrf": csrf, "field": "roof_photos"},
        files={"file": ("a.jpg", images.jpeg(), "image/jpeg")},
    )

    # then
    assert [forged.status_code, cross_site.status_code] == [403, 403]
    assert not_multipart.status_code == 400 and hostile.status_code == 400
    assert "liikaa pikseleitä" in hostile.text
    assert accepted.status_code == 303 and accepted.headers["location"].endswith("added=1")
    with tenancy.as_tenant(roofing.id):
        assert await Media.all().count() == 1


async def test_photos_from_the_phone_in_chromium_reach_the_computer_and_keep_the_answers(
    browser, server, gql, roofing, tmp_path, dispatcher, gateway
):
    # given: the computer has typed answers and listens to its own contact
    token = await contact_with_addresses(gql)
    await save(gql, token, "damage_description", "Pelti irti")
    path = await continue_path(gql, token, dispatcher, gateway)
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(images.jpeg(1200, 900, comment="taken on the roof", gps=True))
    phone = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="fi-FI"
    )
    page = await phone.new_page()

    async with subscribe(
        server.graphql_url, "subscription { myEvents { kind } }", token, live=server.app.state.fanout
    ) as computer:
        # when: the phone opens the link, takes a photo and sends it
        await page.goto(f"{server.url}{path}")
        file_input = page.locator('input[type="file"]')
        assert await file_input.get_attribute("accept") == "image/*"
        assert await file_input.get_attribute("capture") == "environment"
        await file_input.set_input_files(str(photo))
        await page.get_by_role("button", name="Lähetä kuva").click()

        # then: the phone shows it, the computer hears of it, the answers are intact
        await page.get_by_role("status").wait_for()
        assert "Lisätty: 1 kuvaa" in await page.get_by_role("status").inner_text()
        assert await page.locator("ul.photos img").count() == 1
        loaded = await page.locator("ul.photos img").evaluate("img => img.complete && img.naturalWidth > 0")
        assert loaded
        assert (await computer.next())["data"]["myEvents"] == {"kind": "MEDIA_ADDED"}
    contact = await contacts.contact_for_token(token)
    values = {v.key: v.value for v in (await contacts.values_by_contact(contact.tenant_id, [contact.id]))[0]}
    assert values["damage_description"] == "Pelti irti" and values["name"] == "Maija"
    with tenancy.as_tenant(roofing.id):
        assert [(m.width, m.height) for m in await Media.all()] == [(1200, 900)]
    await phone.close()


# -- the QR code on the computer's screen ---------------------------------------------------------------

SHOW = """
mutation Show {
  createContinueLink {
    __typename
    ... on ContinueLink { url qrSvg expiresAt }
    ... on RateLimitedError { retryAfterSeconds }
    ... on AuthError { message }
  }
}
"""


async def test_the_qr_link_opens_the_same_contact_on_the_phone_and_sends_nothing(gql, http, roofing, settings):
    # given
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    with tenancy.as_tenant(roofing.id):
        await OutboundMessage.all().delete()

    # when
    shown = (await gql(SHOW, token=token))["createContinueLink"]
    page = await http.get(shown["url"])
    upload = await http.post(
        shown["url"] + "/upload",
        data={"csrf": re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1), "field": "roof_photos"},
        files={"file": ("photo.jpg", images.jpeg(), "image/jpeg")},
        headers={"Origin": settings.base_url},
    )

    # then
    assert shown["__typename"] == "ContinueLink"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/continue/rpc_[A-Za-z0-9_-]{43}", shown["url"])
    assert shown["url"].split("/continue/")[1] != token  # a link of its own, not the form's token
    lifetime = datetime.fromisoformat(shown["expiresAt"]) - datetime.now(UTC)
    assert (
        timedelta(minutes=settings.continue_link_minutes - 1)
        < lifetime
        <= timedelta(minutes=settings.continue_link_minutes)
    )
    assert page.status_code == 200 and "Lisää kuvia – Kattohuolto Oy" in page.text
    assert upload.status_code == 303
    with tenancy.as_tenant(roofing.id):
        assert await Media.filter(field_key="roof_photos").count() == 1
        assert await OutboundMessage.all().count() == 0  # nothing sent: it was only shown


def test_the_qr_code_is_a_plain_svg_of_the_link():
    # given
    from xml.etree import ElementTree

    from rapidly.contacts.continuation import qr_svg

    # when
    svg = qr_svg("http://127.0.0.1:8000/continue/rpc_" + "A" * 43, title="QR <script>alert(1)</script>")
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own output

    # then
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox")
    tags = {element.tag.split("}")[1] for element in root.iter()}
    assert tags == {"svg", "title", "path"}
    assert "<script" not in svg and all(not name.startswith("on") for e in root.iter() for name in e.attrib)


async def test_qr_links_need_a_live_contact_token_and_are_limited(gql, roofing):
    # given
    token = await start(gql, "kattohuolto")

    # when
    anonymous = (await gql(SHOW))["createContinueLink"]
    forged = (await gql(SHOW, token="rpc_" + "A" * 43))["createContinueLink"]
    shown = [(await gql(SHOW, token=token))["createContinueLink"]["__typename"] for _ in range(20)]
    over = (await gql(SHOW, token=token))["createContinueLink"]

    # then
    assert anonymous["__typename"] == forged["__typename"] == "AuthError"
    assert set(shown) == {"ContinueLink"}
    assert over["__typename"] == "RateLimitedError" and over["retryAfterSeconds"] > 0


async def test_the_qr_links_token_is_erased_with_the_contact(gql, http, roofing):
    # given
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija")
    url = (await gql(SHOW, token=token))["createContinueLink"]["url"]

    # when
    await gql("mutation { deleteMyData { __typename } }", token=token)

    # then
    assert (await http.get(url)).status_code == 404
