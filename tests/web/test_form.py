"""The embeddable form in headless Chromium, on a company page of another origin under a strict CSP."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import expect

from rapidly.contacts.continuation import qr_svg
from rapidly.tenants import service as tenants
from tests.chat.test_chat import SEND as SEND_CHAT
from tests.chat.test_chat import THREAD
from tests.conftest import subscribe
from tests.contacts.test_contacts_api import CONTACT, CONTACTS, staff_token
from tests.media import images
from tests.web.conftest import CompanySite

CONTACT_EVENTS = "subscription { contactEvents { kind contactId } }"
CONTACT_MEDIA = "query C($id: ID!) { contact(id: $id) { media { fieldKey } } }"
FOCUSED_TEXT = "() => document.querySelector('rapidly-form').shadowRoot.activeElement.textContent"
AXE = (Path(__file__).parents[1] / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
#: Markup that would run or escape if any of it were ever parsed as HTML.
HOSTILE = [
    '<img src=x onerror="window.__pwned = 1">',
    "</rapidly-form><script>window.__pwned = 2</script>",
    '"><svg onload="window.__pwned = 3">',
    "<style>:host { display: none }</style>",
]


@pytest.fixture
async def every_kind_site(world, company_site: CompanySite) -> CompanySite:
    """A company whose form has a field of every kind, listing the company site's origin."""
    await world.tenant("everykind", plugin="every_kind", name="Every Kind Oy")
    await world.staff("everykind")
    await tenants.change_origins("everykind", add=[company_site.url])
    return company_site


@pytest.fixture
async def roofing_site(world, company_site: CompanySite) -> CompanySite:
    await world.tenant(
        "kattohuolto", name="Kattohuolto Oy", privacy_policy_url="https://kattohuolto.example/tietosuoja"
    )
    await world.staff("kattohuolto")
    await tenants.change_origins("kattohuolto", add=[company_site.url])
    return company_site


def status(page, key: str):
    return page.locator(f"#rf-{key}-status")


async def saved(page, *keys: str) -> None:
    for key in keys:
        await expect(status(page, key)).to_have_text("Saved", timeout=10_000)


async def form_with_a_contact(visitor, server, site: CompanySite):
    """A new page with the every-kind form, whose name has been saved: its contact has started."""
    page = await visitor.new_page()
    await page.goto(site.embedding(server.url, "everykind"))
    await page.get_by_label("name (en)").fill("Maija")
    await saved(page, "name")
    return page


async def contact_token(page) -> str | None:
    return await page.evaluate("() => Object.entries(sessionStorage).find(([k]) => k.startsWith('rapidly-form:'))?.[1]")


async def only_contact(gql, staff: str) -> dict:
    [edge] = (await gql(CONTACTS, token=staff))["contacts"]["edges"]
    return (await gql(CONTACT, {"id": edge["node"]["id"]}, token=staff))["contact"]


# -- filling the form -------------------------------------------------------------------------------------


async def test_every_field_kind_is_filled_by_its_label_saved_and_seen_live_by_staff(
    server, gql, every_kind_site, visitor
):
    # given: staff watching, and a customer on the company's site
    anna = await staff_token(gql, "anna@kattohuolto.example")
    async with subscribe(server.graphql_url, CONTACT_EVENTS, anna, live=server.app.state.fanout) as events:
        page = await visitor.new_page()
        requested: set[str] = set()
        page.on("request", lambda request: requested.add(re.match(r"^\w+://[^/]+", request.url).group(0)))
        await page.goto(every_kind_site.embedding(server.url, "everykind"))
        await expect(page.get_by_role("heading", name="Every Kind Oy", exact=True)).to_be_visible()

        # when: every field, found by its label
        await page.get_by_label("name (en)").fill("Maija Meikäläinen")
        await page.get_by_label("story (en)").fill("Pelti irti.\nVuotaa.")
        await page.get_by_label("email (en)").fill("maija@example.com")
        await page.get_by_label("phone (en)").fill("040 123 4567")
        await page.get_by_label("count (en)").fill("3.5")
        await page.get_by_label("day (en)").fill("2026-12-24")
        await page.get_by_label("Blue").check()
        await page.get_by_label("A", exact=True).check()
        await page.get_by_label("B", exact=True).check()
        await page.get_by_label("agree (en)").check()
        await page.get_by_label("photos (en)").set_input_files(
            files=[{"name": "roof.jpg", "mimeType": "image/jpeg", "buffer": images.jpeg(320, 240)}]
        )

        # then: each says "Saved", and staff saw each save arrive
        await saved(page, "name", "story", "email", "phone", "count", "day", "colour", "extras", "agree")
        await expect(page.locator("#rf-photos-status")).to_have_text("Photo added.", timeout=10_000)
        kinds = []
        while len(kinds) < 11 or "MEDIA_ADDED" not in kinds:
            kinds.append((await events.next())["data"]["contactEvents"]["kind"])
    assert kinds[0] == "CREATED" and kinds.count("FIELD_SAVED") >= 9
    contact = await only_contact(gql, anna)
    assert {v["key"]: v["value"] for v in contact["values"]} == {
        "name": "Maija Meikäläinen",
        "story": "Pelti irti.\nVuotaa.",
        "email": "maija@example.com",
        "phone": "+358401234567",
        "count": 3.5,
        "day": "2026-12-24",
        "colour": "blue",
        "extras": ["cq_multi_a", "b"],
        "agree": True,
    }
    assert (await gql(CONTACT_MEDIA, {"id": contact["id"]}, token=anna))["contact"]["media"] == [{"fieldKey": "photos"}]
    # every field says why it is asked, next to it
    assert await page.locator("#rf-name-why").inner_text() == "Why we ask: Why we ask for name."
    assert await page.locator("rapidly-form .photos img").count() == 1
    assert visitor.problems == []  # nothing blocked by the page's CSP, nothing failed
    ws = server.url.replace("http://", "ws://")
    assert requested <= {every_kind_site.url, server.url, ws}  # nothing from any other host


async def test_the_contact_starts_with_the_first_answer_not_on_page_load(server, gql, every_kind_site, visitor):
    # given
    page = await visitor.new_page()
    await page.goto(every_kind_site.embedding(server.url, "everykind"))
    await expect(page.get_by_label("name (en)")).to_be_visible()
    await page.wait_for_timeout(500)

    # then: nothing stored, nothing started
    assert await contact_token(page) is None
    assert await page.locator(".my-data").inner_text() == "Nothing about you is stored until you answer."

    # when
    await page.get_by_label("name (en)").fill("Maija")
    await saved(page, "name")

    # then
    assert await contact_token(page)
    link = page.get_by_role("link", name="See or erase everything stored about you")
    assert re.fullmatch(rf"{server.url}/my/rpc_[\w-]{{43}}", await link.get_attribute("href"))


async def test_an_invalid_value_is_said_at_the_field_when_leaving_it_and_announced(server, every_kind_site, visitor):
    # given
    page = await visitor.new_page()
    await page.goto(every_kind_site.embedding(server.url, "everykind"))
    email = page.get_by_label("email (en)")

    # when: typed, still in the field
    await email.fill("maija@")
    await expect(status(page, "email")).to_have_text("Not saved yet", timeout=10_000)
    quiet = await page.locator("#rf-email-error").inner_text()
    # when: leaving it
    await page.get_by_label("name (en)").focus()

    # then: the reason, at the field, in an alert, and the field marked invalid
    error = page.locator("#rf-email-error")
    await expect(error).to_have_text("This is not a valid email address.")
    assert quiet == ""
    assert await error.get_attribute("role") == "alert"
    assert await email.get_attribute("aria-invalid") == "true"
    assert "rf-email-error" in await email.get_attribute("aria-describedby")

    # when: corrected
    await email.fill("maija@example.com")

    # then
    await saved(page, "email")
    await expect(error).to_have_text("")
    assert await email.get_attribute("aria-invalid") == "false"


async def test_the_form_speaks_the_pages_language_unless_told(server, every_kind_site, visitor):
    # given
    finnish = every_kind_site.embedding(server.url, "everykind", path="/fi", lang="fi")
    swedish = every_kind_site.embedding(server.url, "everykind", path="/sv", lang="fi", attributes='locale="sv"')
    page = await visitor.new_page()

    # when / then
    await page.goto(finnish)
    await expect(page.get_by_label("name (fi)")).to_be_visible()
    assert (await page.locator("#rf-name-why").inner_text()).startswith("Miksi kysymme:")
    await page.goto(swedish)
    await expect(page.get_by_label("name (sv)")).to_be_visible()
    assert (await page.locator("#rf-name-why").inner_text()).startswith("Varför vi frågar:")
    assert await page.get_by_role("button", name="Klar").count() == 1


async def test_a_reload_continues_the_same_contact_with_its_answers(server, gql, every_kind_site, visitor):
    # given
    anna = await staff_token(gql, "anna@kattohuolto.example")
    page = await visitor.new_page()
    url = every_kind_site.embedding(server.url, "everykind")
    await page.goto(url)
    await page.get_by_label("name (en)").fill("Maija")
    await page.get_by_label("Red").check()
    await saved(page, "name", "colour")

    # when
    await page.reload()

    # then: the answers are back, and a further answer goes to the same contact
    await expect(page.get_by_label("name (en)")).to_have_value("Maija")
    await expect(page.get_by_label("Red")).to_be_checked()
    await page.get_by_label("email (en)").fill("maija@example.com")
    await saved(page, "email")
    contact = await only_contact(gql, anna)
    assert {v["key"] for v in contact["values"]} == {"name", "colour", "email"}
    # and nothing but the token is in the browser's storage
    stored = await page.evaluate("() => JSON.stringify({...sessionStorage, ...localStorage})")
    assert "Maija" not in stored and "maija@" not in stored


async def test_leaving_with_unsaved_edits_asks_first(server, every_kind_site, visitor):
    # given: a value typed that has not reached the server
    page = await form_with_a_contact(visitor, server, every_kind_site)

    async def hold(route) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(30)  # the save never arrives while the test looks: the edit stays unsent

    await page.route(server.graphql_url, hold)
    await page.get_by_label("story (en)").fill("Vuotaa")
    asked: list[str] = []

    async def answer(dialog) -> None:  # type: ignore[no-untyped-def]
        asked.append(dialog.type)
        await dialog.dismiss()

    page.on("dialog", lambda dialog: asyncio.ensure_future(answer(dialog)))

    # when
    await page.close(run_before_unload=True)
    for _ in range(50):
        if asked:
            break
        await asyncio.sleep(0.05)

    # then
    assert asked == ["beforeunload"]


# -- one company's page, another company's form ------------------------------------------------------------


async def test_a_page_the_tenant_does_not_list_gets_no_form_and_no_contact(server, gql, world, company_site, visitor):
    # given: the roofing company lists another site; the car repair shop lists this one
    await world.tenant("kattohuolto", name="Kattohuolto Oy")
    await world.tenant("bilverkstad", plugin="carrepair_se", default_locale="sv")
    await tenants.change_origins("kattohuolto", add=["https://www.kattohuolto.fi"])
    await tenants.change_origins("bilverkstad", add=[company_site.url])
    page = await visitor.new_page()

    # when: this site embeds the roofing company's form
    await page.goto(company_site.embedding(server.url, "kattohuolto"))

    # then: refused by the tenant, said so, and nothing started
    await expect(page.locator("rapidly-form [role=status]")).to_have_text("This form cannot be used on this website.")
    assert await page.locator("rapidly-form input").count() == 0
    attempt = await page.evaluate(
        """async (url) => {
            const response = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({query: 'mutation { startContact(tenant: "kattohuolto") { __typename } }'})})
            return (await response.json()).errors[0].extensions.code
        }""",
        server.graphql_url,
    )
    assert attempt == "OriginNotAllowed"


async def test_an_origin_no_tenant_lists_gets_no_cors_grant_at_all(server, world, company_site, visitor):
    # given
    await world.tenant("kattohuolto", name="Kattohuolto Oy")
    page = await visitor.new_page()
    await page.goto(company_site.embedding(server.url, "kattohuolto"))

    # when: the page tries the API itself
    outcome = await page.evaluate(
        """async (url) => {
            try {
              await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({query: '{ form(tenant: "kattohuolto") { tenantName } }'})})
              return 'read'
            } catch (error) { return error.name }
        }""",
        server.graphql_url,
    )

    # then: the browser refused to let it read anything
    assert outcome == "TypeError"
    assert await page.locator("rapidly-form input").count() == 0
    await expect(page.locator("rapidly-form [role=status]")).to_have_text("The form could not be loaded. Trying again…")


# -- hostile input ----------------------------------------------------------------------------------------


async def test_markup_typed_or_chatted_stays_text(server, gql, every_kind_site, visitor):
    # given: hostile values saved from the form, and a hostile chat from both sides
    anna = await staff_token(gql, "anna@kattohuolto.example")
    page = await visitor.new_page()
    await page.goto(every_kind_site.embedding(server.url, "everykind"))
    await page.get_by_label("name (en)").fill(HOSTILE[0])
    await page.get_by_label("story (en)").fill("\n".join(HOSTILE))
    await saved(page, "name", "story")
    contact_id = (await only_contact(gql, anna))["id"]
    await page.get_by_label("Your message").fill(HOSTILE[1])
    await page.get_by_role("button", name="Send", exact=True).click()
    sent = await gql(SEND_CHAT, {"body": HOSTILE[2] + HOSTILE[3], "contactId": contact_id}, token=anna)
    assert sent["sendChatMessage"]["__typename"] == "ChatMessageSent"
    await expect(page.locator(".chat li")).to_have_count(2, timeout=10_000)

    # when: the page is loaded again, everything rendered from the server
    await page.reload()
    await expect(page.get_by_label("name (en)")).to_have_value(HOSTILE[0])
    await expect(page.locator(".chat li")).to_have_count(2, timeout=10_000)

    # then: all of it is text, nothing ran, nothing escaped the shadow root or the bubble
    assert await page.get_by_label("story (en)").input_value() == "\n".join(HOSTILE)
    bodies = await page.locator(".chat li .body").all_inner_texts()
    assert bodies == [HOSTILE[1], HOSTILE[2] + HOSTILE[3]]
    assert await page.evaluate("() => window.__pwned") is None
    inside = await page.locator("rapidly-form").evaluate(
        "form => [...form.shadowRoot.querySelectorAll('*')].map(e => e.localName)"
    )
    assert not {"img", "script", "svg", "style"} & set(inside)
    assert await page.locator("body > script, body > svg, body > img").count() == 0
    assert await page.locator("rapidly-form").is_visible()
    assert (await gql(THREAD, {"id": contact_id}, token=anna))["chatMessages"]["edges"][0]["node"]["body"] == HOSTILE[1]


# -- chat -------------------------------------------------------------------------------------------------


async def test_chat_with_the_company_both_ways_live(server, gql, every_kind_site, visitor):
    # given
    anna = await staff_token(gql, "anna@kattohuolto.example")
    page = await form_with_a_contact(visitor, server, every_kind_site)
    contact_id = (await only_contact(gql, anna))["id"]

    # when: the customer writes, and staff answer
    await page.get_by_label("Your message").fill("Vuotaako katto vielä?")
    await page.get_by_label("Your message").press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator(".chat li.mine .body")).to_have_text("Vuotaako katto vielä?")
    thread = (await gql(THREAD, {"id": contact_id}, token=anna))["chatMessages"]["edges"]
    await gql(SEND_CHAT, {"body": "Tulemme huomenna.", "contactId": contact_id}, token=anna)

    # then: the answer appears by itself, is announced, and is marked read
    await expect(page.locator(".chat li.theirs .body")).to_have_text("Tulemme huomenna.", timeout=10_000)
    await expect(page.locator(".sr[role=status]")).to_have_text("New message: Every Kind Oy")
    assert [edge["node"]["body"] for edge in thread] == ["Vuotaako katto vielä?"]
    for _ in range(50):
        staff_side = (await gql(THREAD, {"id": contact_id}, token=anna))["chatMessages"]["edges"]
        if staff_side[-1]["node"]["readAt"]:
            break
        await asyncio.sleep(0.1)
    assert staff_side[-1]["node"]["readAt"] is not None


# -- photos: from the form, and from the phone by QR code ----------------------------------------------------


async def test_photos_from_the_form_and_from_the_phone_by_qr_code_both_appear(
    server, gql, every_kind_site, visitor, browser
):
    # given: a photo sent from the form
    page = await form_with_a_contact(visitor, server, every_kind_site)
    await page.get_by_label("photos (en)").set_input_files(
        files=[{"name": "a.png", "mimeType": "image/png", "buffer": images.png(200, 150)}]
    )
    await expect(page.locator(".photos img")).to_have_count(1, timeout=10_000)

    # when: the QR code is shown, and the phone opens its link and takes a photo
    async with page.expect_response(
        lambda r: r.url == server.graphql_url and "createContinueLink" in (r.request.post_data or "")
    ) as shown:
        await page.get_by_role("button", name="Show QR code").click()
    link = (await (await shown.value).json())["data"]["createContinueLink"]
    qr = page.get_by_role("img", name="QR code that opens this form on your phone")
    await expect(qr).to_be_visible()
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone_page = await phone.new_page()
    await phone_page.goto(link["url"])
    await phone_page.get_by_label("Take or choose a photo").first.set_input_files(
        files=[{"name": "b.jpg", "mimeType": "image/jpeg", "buffer": images.jpeg(640, 480)}]
    )
    await phone_page.get_by_role("button", name="Send the photo").first.click()
    await phone_page.wait_for_url(re.compile(r".*added=1.*"))
    await phone.close()

    # then: the computer shows both, live; and the code on screen is the link's QR code
    await expect(page.locator(".photos img")).to_have_count(2, timeout=10_000)
    expected = re.search(r' d="([^"]+)"', qr_svg(link["url"], title="x").split("<path", 2)[2]).group(1)
    assert await qr.locator("path").nth(1).get_attribute("d") == expected
    assert await qr.locator("script, foreignObject").count() == 0


async def test_the_continue_link_goes_to_the_contacts_own_address(server, gql, every_kind_site, visitor):
    # given
    page = await form_with_a_contact(visitor, server, every_kind_site)

    # when: no address saved yet, then one saved
    await page.get_by_role("button", name="Email me the link").click()
    missing = page.locator(".continue .note")
    await expect(missing).to_have_text("Save your address or number in the form first.")
    await page.get_by_label("email (en)").fill("maija@example.com")
    await saved(page, "email")
    await page.get_by_role("button", name="Email me the link").click()

    # then
    await expect(missing).to_have_text("Link sent: m•••@example.com")


# -- erasure ----------------------------------------------------------------------------------------------


async def test_erasing_from_the_own_page_empties_the_open_form(server, every_kind_site, visitor):
    # given
    page = await form_with_a_contact(visitor, server, every_kind_site)
    link = await page.get_by_role("link", name="See or erase everything stored about you").get_attribute("href")

    # when: the customer erases everything from their own page, in another tab
    own = await visitor.new_page()
    await own.goto(link)
    await own.get_by_role("button", name="Delete all my data").click()
    await expect(own.get_by_role("heading", name="All your data has been erased")).to_be_visible()

    # then: the form forgets it all
    await expect(page.get_by_label("name (en)")).to_have_value("", timeout=10_000)
    assert await contact_token(page) is None
    await expect(page.locator(".my-data")).to_have_text("Nothing about you is stored until you answer.")


# -- keyboard and accessibility ----------------------------------------------------------------------------


async def test_the_form_is_usable_with_the_keyboard_alone(server, gql, roofing_site, visitor):
    # given
    anna = await staff_token(gql)
    page = await visitor.new_page()
    await page.goto(roofing_site.embedding(server.url, "kattohuolto"))
    await expect(page.locator("#rf-name")).to_be_visible()

    # when: Tab from the top of the page, typing into each field in turn
    order = []
    for text in ("Maija Meikäläinen", "040 123 4567", "maija@example.com", "Kattokatu 1, Helsinki", "Pelti irti"):
        await page.keyboard.press("Tab")
        order.append(await page.evaluate("() => document.querySelector('rapidly-form').shadowRoot.activeElement.id"))
        await page.keyboard.type(text)
    for _ in range(12):  # on to "Done"
        await page.keyboard.press("Tab")
        if (
            await page.evaluate("() => document.querySelector('rapidly-form').shadowRoot.activeElement.textContent")
            == "Done"
        ):
            break
    await page.keyboard.press("Enter")

    # then: the fields in reading order, all saved, and the summary
    assert order == ["rf-name", "rf-phone", "rf-email", "rf-street_address", "rf-damage_description"]
    await expect(page.locator(".done .note")).to_have_text(
        "All your answers are saved, and Kattohuolto Oy can see them.", timeout=10_000
    )
    values = {v["key"] for v in (await only_contact(gql, anna))["values"]}
    assert values == {"name", "phone", "email", "street_address", "damage_description"}


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_no_serious_accessibility_violations_in_any_language(server, roofing_site, browser, lang):
    # given: the form with an answer saved, an error shown, a photo, the QR code and a chat message
    context = await browser.new_context(locale=lang)
    page = await context.new_page()
    await page.goto(roofing_site.embedding(server.url, "kattohuolto", lang=lang))
    await expect(page.locator("rapidly-form h2")).to_have_text("Kattohuolto Oy")
    await page.locator("#rf-name").fill("Maija")
    await expect(status(page, "name")).to_have_attribute("data-state", "saved", timeout=10_000)
    await page.locator("#rf-email").fill("not an address")
    await page.locator("#rf-name").focus()
    await expect(page.locator("#rf-email-error")).not_to_have_text("", timeout=10_000)
    await page.locator("#rf-roof_photos").set_input_files(
        files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": images.jpeg(200, 150)}]
    )
    await expect(page.locator(".photos img")).to_have_count(1, timeout=10_000)
    await page.locator(".continue button").first.click()
    await expect(page.locator(".qr svg")).to_be_visible()
    await page.locator("#rapidly-chat-input").fill("Hei")
    await page.locator(".chat-panel button").click()
    await expect(page.locator(".chat li")).to_have_count(1)

    # when: axe-core (loaded by the test, not by the product) scans the page, shadow root included
    await page.evaluate(AXE)
    result = await page.evaluate(
        """() => axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"""
    )

    # then
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], json.dumps(serious, indent=1)
    assert result["passes"], "axe ran no checks"
    # targets are at least 44 px
    small = await page.locator("rapidly-form").evaluate(
        """form => [...form.shadowRoot.querySelectorAll(
              'button, input:not([type=radio]):not([type=checkbox]), textarea')]
            .filter(e => { const r = e.getBoundingClientRect(); return r.height < 44 || r.width < 44 })
            .map(e => e.id || e.textContent)"""
    )
    assert small == []
    await context.close()


# -- the contact's life, in harder cases -------------------------------------------------------------------


async def test_typing_while_a_reload_restores_goes_to_the_same_contact(server, gql, every_kind_site, visitor):
    # given: a contact, and a reload whose `me` query is slow to answer
    anna = await staff_token(gql, "anna@kattohuolto.example")
    page = await form_with_a_contact(visitor, server, every_kind_site)

    async def slow_me(route) -> None:  # type: ignore[no-untyped-def]
        if "query Me(" in (route.request.post_data or ""):
            await asyncio.sleep(1.5)
        await route.continue_()

    await page.route(server.graphql_url, slow_me)

    # when: the visitor types before the restore has answered
    await page.reload()
    await page.get_by_label("email (en)").fill("maija@example.com")
    await saved(page, "email")

    # then: one contact, with both answers
    contact = await only_contact(gql, anna)
    assert {v["key"] for v in contact["values"]} == {"name", "email"}
    await expect(page.get_by_label("name (en)")).to_have_value("Maija")


async def test_a_token_that_stopped_working_starts_the_form_anew_without_resending_old_answers(
    server, gql, every_kind_site, visitor
):
    # given: answers saved, then the contact's token expires (as it would after 30 days)
    from rapidly import tenancy
    from rapidly.contacts.models import ContactToken

    anna = await staff_token(gql, "anna@kattohuolto.example")
    page = await visitor.new_page()
    await page.goto(every_kind_site.embedding(server.url, "everykind"))
    await page.get_by_label("name (en)").fill("Maija")
    await page.get_by_label("story (en)").fill("Vuotaa")
    await saved(page, "name", "story")
    before = await only_contact(gql, anna)
    with tenancy.as_tenant((await tenants.get_by_slug("everykind")).id):
        await ContactToken.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    # when: the visitor goes on typing
    await page.get_by_label("story (en)").press_sequentially(" yhä")

    # then: the form says so where they are, starts anew, and sends nothing of the old answers anywhere
    notice = page.locator(".note[role=status]").first
    await expect(notice).to_have_text(
        "Your earlier answers are no longer stored; what you type now is saved anew.", timeout=10_000
    )
    await expect(page.get_by_label("name (en)")).to_have_value("")
    await page.wait_for_timeout(1000)
    assert await only_contact(gql, anna) == before
    assert await contact_token(page) is None


async def test_the_form_keeps_working_when_the_page_moves_it(server, gql, every_kind_site, visitor):
    # given
    anna = await staff_token(gql, "anna@kattohuolto.example")
    page = await form_with_a_contact(visitor, server, every_kind_site)
    contact_id = (await only_contact(gql, anna))["id"]

    # when: a single-page app moves the element elsewhere in the page
    await page.evaluate("() => document.body.append(Object.assign(document.createElement('aside'), { id: 'moved' }))")
    await page.evaluate("() => document.querySelector('#moved').append(document.querySelector('rapidly-form'))")
    await gql(SEND_CHAT, {"body": "Tulemme huomenna.", "contactId": contact_id}, token=anna)
    await page.get_by_label("story (en)").fill("Vuotaa")

    # then: live events still arrive, saves still go, and leaving with unsaved edits still asks
    await expect(page.locator("#moved .chat li.theirs .body")).to_have_text("Tulemme huomenna.", timeout=10_000)
    await saved(page, "story")
    assert await page.locator("#moved rapidly-form").count() == 1


async def test_the_form_declares_its_language_inside_the_page(server, every_kind_site, visitor):
    # given: an English form on a Finnish page
    page = await visitor.new_page()
    await page.goto(every_kind_site.embedding(server.url, "everykind", lang="fi", attributes='locale="en"'))
    await expect(page.get_by_label("name (en)")).to_be_visible()

    # then: screen readers read it as English
    assert await page.locator("rapidly-form .rapidly").get_attribute("lang") == "en"
