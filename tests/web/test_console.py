"""The staff console in headless Chromium: staff in one browser, a customer in the form in another."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import expect

from rapidly import tenancy
from rapidly.staff.models import StaffSession
from rapidly.tenants import service as tenants
from tests.chat.test_chat import SEND as SEND_CHAT
from tests.conftest import STAFF_PASSWORD
from tests.contacts.test_contacts_api import save, staff_token, start
from tests.media import images
from tests.web.test_form import AXE, HOSTILE

CONTACT_ID = "query { me { contactId } }"
#: Notes (on the page's clock, Date.now()) when a contact with this name first shows in the list.
APPEARS = """(name) => new MutationObserver((changes, observer) => {
  if ([...document.querySelectorAll('.contacts .name')].some((n) => n.textContent === name)) {
    window.__appeared = Date.now()
    observer.disconnect()
  }
}).observe(document, { childList: true, subtree: true, characterData: true })"""


async def sign_in(page, server, email: str = "anna@kattohuolto.example", password: str = STAFF_PASSWORD) -> None:
    await page.goto(f"{server.url}/console")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("heading", level=1, name="Contacts")).to_be_visible()


async def a_customer(gql, tenant: str = "kattohuolto", **values: object) -> str:
    token = await start(gql, tenant)
    for key, value in values.items():
        assert (await save(gql, token, key, value))["__typename"] == "FieldSaved"
    return token


async def test_staff_watch_a_customer_type_chat_ask_for_a_photo_and_erase(
    server, gql, roofing_site, visitor, staff_browser, browser, dispatcher, gateway
):
    # given: staff signed in to the console, and a customer on the company's site
    console = await staff_browser.new_page()
    await sign_in(console, server)
    customer = await visitor.new_page()
    await customer.goto(roofing_site.embedding(server.url, "kattohuolto"))

    # when: the customer types; then staff see the new contact arrive, active (the two pages note the
    # moments on the same clock: the customer's last keystroke, and the contact appearing in the list)
    await console.evaluate(APPEARS, "Maija Meikäläinen")
    typed = await customer.evaluate("() => Date.now()")
    await customer.locator("#rf-name").fill("Maija Meikäläinen")
    arrived = console.get_by_role("link", name=re.compile("Maija Meikäläinen"))
    await expect(arrived).to_be_visible(timeout=5_000)
    within = (await console.evaluate("() => window.__appeared") - typed) / 1000
    assert "answering now" in await arrived.inner_text()

    # when: staff open it while the customer goes on typing
    await arrived.click()
    await expect(console.get_by_role("heading", level=1, name="Maija Meikäläinen")).to_be_visible()
    await customer.locator("#rf-phone").fill("040 123 4567")

    # then: each value appears there live, with its label
    await expect(console.locator(".answers")).to_contain_text("Phone number", timeout=5_000)
    await expect(console.locator(".answers")).to_contain_text("+358401234567")

    # when: chat, both ways
    await console.get_by_label("Your message").fill("Hei! Milloin katto vuoti?")
    await console.get_by_role("button", name="Send", exact=True).click()
    await expect(customer.locator(".chat li.theirs .body")).to_have_text("Hei! Milloin katto vuoti?", timeout=5_000)
    await customer.get_by_label("Your message").fill("Eilen illalla.")
    await customer.get_by_role("button", name="Send", exact=True).click()
    await expect(console.locator(".chat li.theirs .body")).to_have_text("Eilen illalla.", timeout=5_000)

    # when: the customer sends a photo from the form
    await customer.locator("#rf-roof_photos").set_input_files(
        files=[{"name": "roof.jpg", "mimeType": "image/jpeg", "buffer": images.jpeg(640, 480)}]
    )

    # then: it appears on the contact's page, and opens larger
    thumbnail = console.get_by_role("button", name=re.compile("Open photo 1"))
    await expect(thumbnail).to_be_visible(timeout=5_000)
    await thumbnail.click()
    large = console.get_by_role("dialog").get_by_role("img")
    await expect(large).to_be_visible()
    assert await large.evaluate("img => img.naturalWidth") == 640
    await console.get_by_role("dialog").get_by_role("button", name="Close").click()
    await expect(console.get_by_role("dialog")).to_have_count(0)

    # when: staff ask for a photo, by text message
    await console.get_by_label("Send the request by").select_option("SMS")
    await console.get_by_role("button", name="Ask for a photo").click()
    await expect(console.locator("section[aria-labelledby=ask-heading] .note")).to_have_text(
        "The request was sent by text message."
    )
    await dispatcher.run_once()

    # then: it reaches the customer's own phone number, with the link to the phone page
    [sms] = [r for r in gateway.requests if "/continue/" in r["body"]["message"]]
    assert sms["body"]["recipients"] == [{"msisdn": 358401234567}]

    # when: a second staff session watches the list, and the first deletes the contact
    second = await (await browser.new_context(locale="en-GB")).new_page()
    await sign_in(second, server)
    await expect(second.get_by_role("link", name=re.compile("Maija Meikäläinen"))).to_be_visible()
    await console.get_by_role("button", name="Delete contact").click()
    dialog = console.get_by_role("alertdialog")
    await expect(dialog).to_contain_text("cannot be undone")
    await dialog.get_by_role("button", name="Delete everything").click()

    # then: the receipt, store by store; gone from the other session's list and from the form
    await expect(console.get_by_role("heading", level=1, name="Erased")).to_be_visible()
    rows = await console.locator("tbody tr").all_inner_texts()
    assert "Saved answers\t2" in rows and "Chat messages\t2" in rows and "Contact record\t1" in rows
    assert "Photo files\t1" in rows
    await expect(second.get_by_role("link", name=re.compile("Maija Meikäläinen"))).to_have_count(0, timeout=3_000)
    await expect(customer.locator("#rf-name")).to_have_value("", timeout=5_000)
    await second.context.close()
    assert within < 1, f"the new contact took {within:.2f} s to arrive"


async def test_markup_and_script_in_every_value_and_message_stay_text(server, gql, world, staff_browser):
    # given: a customer of a form with every kind of field, whose every answer is hostile
    await world.tenant("everykind", plugin="every_kind", name="Every Kind Oy")
    await world.staff("everykind", locale="en")
    token = await a_customer(gql, "everykind", name=HOSTILE[0], story="\n".join(HOSTILE), email="x@example.com")
    contact_id = (await gql(CONTACT_ID, token=token))["me"]["contactId"]
    anna = await staff_token(gql)
    for body in HOSTILE:
        await gql(SEND_CHAT, {"body": body}, token=token)
        await gql(SEND_CHAT, {"body": body, "contactId": contact_id}, token=anna)
    page = await staff_browser.new_page()

    # when
    await sign_in(page, server)
    await page.get_by_role("link", name=re.compile(re.escape(HOSTILE[0]))).click()
    await expect(page.locator(".chat li")).to_have_count(2 * len(HOSTILE))

    # then: shown as written, nothing ran, no element came of it
    assert await page.get_by_role("heading", level=1).inner_text() == HOSTILE[0]
    assert "\n".join(HOSTILE) in await page.locator(".answers").inner_text()
    assert await page.locator(".chat .body").all_inner_texts() == [b for b in HOSTILE for _ in range(2)]
    assert await page.evaluate("() => window.__pwned") is None
    assert await page.locator("main script, main style, main svg, main iframe, .answers img, .chat img").count() == 0


async def test_no_request_of_the_console_leaves_rapidlys_origin(server, gql, roofing_site, staff_browser):
    # given
    await a_customer(gql, name="Maija", phone="0401234567")
    page = await staff_browser.new_page()

    # when: every view
    await sign_in(page, server)
    await page.get_by_role("link", name=re.compile("Maija")).click()
    await expect(page.get_by_role("heading", level=1, name="Maija")).to_be_visible()
    for view in ("Notifications", "Settings", "Contacts"):
        await page.get_by_role("navigation").get_by_role("link", name=re.compile(view)).click()
        await expect(page.get_by_role("heading", level=1, name=view)).to_be_visible()

    # then
    ws = server.url.replace("http://", "ws://")
    assert staff_browser.requests and all(url.startswith((server.url, ws)) for url in staff_browser.requests)
    assert "Bearer" not in json.dumps(staff_browser.requests) and "rps_" not in json.dumps(staff_browser.requests)


async def test_search_notifications_and_settings(server, gql, roofing_site, staff_browser):
    # given
    await a_customer(gql, name="Maija Virtanen", email="maija@example.fi")
    await a_customer(gql, name="Matti Korhonen", phone="050 765 4321")
    page = await staff_browser.new_page()
    await sign_in(page, server)

    # when: a search
    await page.get_by_label("Search contacts").fill("050 765")
    await page.get_by_label("Search contacts").press("Enter")

    # then
    await expect(page.locator(".contacts li")).to_have_count(1)
    await expect(page.locator(".contacts li")).to_contain_text("Matti Korhonen")

    # when: the notifications, unread, then read
    navigation = page.get_by_role("navigation")
    await expect(navigation).to_contain_text("2 unread")
    await navigation.get_by_role("link", name=re.compile("Notifications")).click()
    await expect(page.locator(".notifications li.unread")).to_have_count(2)
    await page.get_by_role("button", name="Mark all as read").click()

    # then
    await expect(page.locator(".notifications li.unread")).to_have_count(0)
    await expect(navigation).not_to_contain_text("unread")

    # when: the settings
    await navigation.get_by_role("link", name="Settings").click()

    # then: as the company's admin, Anna sees them as editors
    await expect(page.get_by_label("Days after they were last active")).to_have_value("365")
    await expect(page.locator(".origins")).to_contain_text(roofing_site.url)
    photo_request = page.get_by_role("group", name="photo request")
    await expect(photo_request.get_by_label("email")).to_be_checked()
    await expect(photo_request.get_by_label("text message")).to_be_checked()


async def test_the_console_speaks_fi_sv_and_en_and_remembers_the_choice(server, roofing_site, staff_browser):
    # given
    page = await staff_browser.new_page()
    await sign_in(page, server)

    # when
    await page.get_by_label("Language").select_option("fi")

    # then
    await expect(page.get_by_role("heading", level=1, name="Yhteydenotot")).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "fi"
    await page.reload()
    await expect(page.get_by_role("heading", level=1, name="Yhteydenotot")).to_be_visible()
    await page.get_by_label("Kieli").select_option("sv")
    await expect(page.get_by_role("heading", level=1, name="Kontakter")).to_be_visible()


# -- bad input -----------------------------------------------------------------------------------------------


async def test_wrong_credentials_are_told_and_nothing_else(server, roofing_site, staff_browser):
    # given
    page = await staff_browser.new_page()
    await page.goto(f"{server.url}/console")

    # when
    for email in ("anna@kattohuolto.example", "nobody@example.com"):
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill("wrong password")
        await page.get_by_role("button", name="Sign in", exact=True).click()

        # then: the same words for a wrong password and an unknown account
        await expect(page.get_by_role("alert")).to_have_text("The email address or the password is not right.")
        await expect(page.get_by_label("Password")).to_have_value("")
    assert await page.evaluate("() => sessionStorage.length") == 0


async def test_a_session_revoked_while_the_console_is_open_signs_it_out(server, gql, roofing_site, staff_browser):
    # given
    page = await staff_browser.new_page()
    await sign_in(page, server)

    # when: the session ends (a password reset signs out every session), and a customer types
    with tenancy.as_tenant((await tenants.get_by_slug("kattohuolto")).id):
        await StaffSession.all().delete()
    await a_customer(gql, name="Maija")

    # then: the console says so and signs out, its token forgotten
    await expect(page.get_by_role("alert")).to_have_text("Your session has ended. Sign in again.", timeout=10_000)
    await expect(page.get_by_label("Password")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.length") == 0


async def test_another_companys_contact_is_the_same_as_a_missing_one(server, gql, world, staff_browser):
    # given: a customer of the car repair shop, and roofing staff
    await world.tenant("kattohuolto", name="Kattohuolto Oy")
    await world.staff("kattohuolto", locale="en")
    await world.tenant("bilverkstad", plugin="carrepair_se", default_locale="sv")
    token = await a_customer(gql, "bilverkstad", name="Erik Andersson")
    theirs = (await gql(CONTACT_ID, token=token))["me"]["contactId"]
    page = await staff_browser.new_page()
    await sign_in(page, server)

    # when
    answers = []
    for contact_id in (theirs, "00000000-0000-0000-0000-000000000000", "not-an-id", "%3Cscript%3E"):
        await page.goto(f"{server.url}/console#/contacts/{contact_id}")
        await expect(page.locator("main [role=status]")).to_contain_text("There is no such contact")
        answers.append(await page.locator("main").inner_text())

    # then
    assert len(set(answers)) == 1 and "Erik" not in answers[0]


async def test_an_oversized_chat_message_is_refused_with_a_reason(server, gql, roofing_site, staff_browser):
    # given
    await a_customer(gql, name="Maija")
    page = await staff_browser.new_page()
    await sign_in(page, server)
    await page.get_by_role("link", name=re.compile("Maija")).click()

    # when: past the field's own limit (as a script could)
    await page.get_by_label("Your message").evaluate("(box) => { box.value = 'x'.repeat(5000) }")
    await page.get_by_role("button", name="Send", exact=True).click()

    # then
    await expect(page.locator("section[aria-labelledby=chat-heading] [role=alert]")).to_have_text("This is too long.")
    await expect(page.locator(".chat li.mine")).to_have_count(0)


# -- keyboard and accessibility ----------------------------------------------------------------------------


async def test_sign_in_and_erase_with_the_keyboard_alone(server, gql, roofing_site, staff_browser):
    # given
    await a_customer(gql, name="Maija")
    page = await staff_browser.new_page()
    await page.goto(f"{server.url}/console")

    # when: signing in (the email field has the focus)
    await expect(page.get_by_label("Email")).to_be_focused()
    await page.keyboard.type("anna@kattohuolto.example")
    await page.keyboard.press("Tab")
    await page.keyboard.type(STAFF_PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1, name="Contacts")).to_be_visible()

    async def tab_to(name: str) -> None:
        for _ in range(40):
            await page.keyboard.press("Tab")
            if (await page.evaluate("() => document.activeElement.textContent")).startswith(name):
                return
        raise AssertionError(f"{name} is not reachable with Tab")

    # when: to the contact, to "Delete contact", and through the confirmation
    await tab_to("Maija")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1, name="Maija")).to_be_visible()
    await tab_to("Delete contact")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alertdialog")).to_be_visible()
    focused_first = await page.evaluate("() => document.activeElement.textContent")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")

    # then: the safe choice had the focus first; erased
    assert focused_first == "Cancel"
    await expect(page.get_by_role("heading", level=1, name="Erased")).to_be_visible()


@pytest.mark.parametrize("locale", ["fi", "sv", "en"])
async def test_no_serious_accessibility_violations_in_any_language(server, gql, roofing_site, browser, locale):
    # given: a contact with answers, a chat, a photo request
    token = await a_customer(gql, name="Maija", phone="040 123 4567", damage_description="Vuotaa")
    await gql(SEND_CHAT, {"body": "Hei"}, token=token)
    context = await browser.new_context(locale=locale)
    page = await context.new_page()
    await page.goto(f"{server.url}/console")
    pages = {}
    pages["sign-in"] = await scan(page)
    await page.locator("#email").fill("anna@kattohuolto.example")
    await page.locator("#password").fill(STAFF_PASSWORD)
    await page.locator("form button").click()
    await expect(page.locator(".contacts li")).to_have_count(1)
    pages["list"] = await scan(page)
    await page.locator(".contacts a").click()
    await expect(page.locator(".chat li")).to_have_count(1)
    pages["contact"] = await scan(page)
    for name in ("notifications", "settings", "staff"):
        await page.goto(f"{server.url}/console#/{name}")
        await page.wait_for_timeout(300)
        pages[name] = await scan(page)

    # then
    assert pages == {name: [] for name in pages}, json.dumps(pages, indent=1)
    await context.close()


async def scan(page) -> list:  # type: ignore[no-untyped-def]
    """axe-core's serious and critical violations on the page (axe is loaded by the test only)."""
    await page.evaluate(AXE)
    result = await page.evaluate(
        """() => axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"""
    )
    assert result["passes"]
    return [
        (v["id"], [n["target"] for n in v["nodes"]])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_the_console_page_allows_nothing_inline_and_nothing_from_elsewhere(http):
    # when
    page = await http.get("/console")
    home = await http.get("/")

    # then
    for answer in (page, home):
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
    assert '<script type="module" src="/console/console.js"></script>' in page.text


async def test_live_updates_keep_the_keyboard_focus_and_titles_name_no_one(server, gql, roofing_site, staff_browser):
    # given: two contacts, and staff on the list with the keyboard on the second one
    token = await a_customer(gql, name="Maija")
    await a_customer(gql, name="Matti")
    page = await staff_browser.new_page()
    await sign_in(page, server)
    maija = page.get_by_role("link", name=re.compile("Maija"))
    await maija.focus()

    # when: Maija goes on typing (she rises to the top)
    await save(gql, token, "phone", "040 123 4567")

    # then: the focus stays on her, and the list says she is answering
    await expect(page.locator(".contacts li").first).to_contain_text("answering now")
    await expect(maija).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1, name="Maija")).to_be_visible()
    assert "Maija" not in await page.title()  # titles are kept in the browser's history


async def test_an_idle_console_signs_out_when_looked_at_after_its_session_ended(server, roofing_site, staff_browser):
    # given
    page = await staff_browser.new_page()
    await sign_in(page, server)

    # when: the session ends elsewhere, nothing happens, and the tab is looked at again
    with tenancy.as_tenant((await tenants.get_by_slug("kattohuolto")).id):
        await StaffSession.all().delete()
    await page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")

    # then
    await expect(page.get_by_role("alert")).to_have_text("Your session has ended. Sign in again.")


async def test_the_sign_in_page_speaks_the_browsers_language(server, roofing_site, browser):
    # given
    context = await browser.new_context(locale="fi-FI")
    page = await context.new_page()

    # when
    await page.goto(f"{server.url}/console")

    # then
    await expect(page.get_by_role("heading", level=1)).to_have_text("Kirjaudu konsoliin")
    assert await page.evaluate("document.documentElement.lang") == "fi"
    await context.close()


async def test_an_expired_session_signs_out_the_same_way(server, roofing_site, staff_browser):
    # given
    from datetime import UTC, datetime, timedelta

    page = await staff_browser.new_page()
    await sign_in(page, server)

    # when: its time runs out while the console is open
    with tenancy.as_tenant((await tenants.get_by_slug("kattohuolto")).id):
        await StaffSession.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")

    # then
    await expect(page.get_by_role("alert")).to_have_text("Your session has ended. Sign in again.")


async def test_the_console_fits_a_phone(server, gql, roofing_site, browser):
    # given: a phone's screen
    await a_customer(gql, name="Maija Meikäläinen", damage_description="Pelti irti " * 40)
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await sign_in(page, server)

    # when / then: no page is wider than the screen, on the list and on the contact
    for step in ("list", "contact"):
        if step == "contact":
            await page.get_by_role("link", name=re.compile("Maija")).click()
            await expect(page.get_by_role("heading", level=1, name="Maija Meikäläinen")).to_be_visible()
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360, step
    await context.close()


async def test_a_search_keeps_its_result_when_older_reads_of_the_list_answer_after_it(
    server, gql, roofing_site, staff_browser
):
    # given: the list's reads without a search (the first page, and the one after the live stream
    # connects) answered late, as on a loaded server
    await a_customer(gql, name="Maija Virtanen", email="maija@example.fi")
    await a_customer(gql, name="Matti Korhonen", phone="050 765 4321")
    page = await staff_browser.new_page()

    async def late_unless_searching(route):  # type: ignore[no-untyped-def]
        body = route.request.post_data_json or {}
        if "query Contacts" in body.get("query", "") and not (body.get("variables") or {}).get("search"):
            await asyncio.sleep(1.5)
        await route.continue_()

    await page.route(f"{server.url}/graphql", late_unless_searching)
    await page.goto(f"{server.url}/console")
    await page.get_by_label("Email").fill("anna@kattohuolto.example")
    await page.get_by_label("Password").fill(STAFF_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("heading", level=1, name="Contacts")).to_be_visible()

    # when: a search, once the stream is taken (its re-read is asked for 250 ms after) and before the
    # late answers arrive
    await page.wait_for_timeout(800)
    await page.get_by_label("Search contacts").fill("050 765")
    await page.get_by_label("Search contacts").press("Enter")
    await expect(page.locator(".contacts li")).to_have_count(1)
    await page.wait_for_timeout(3_000)  # the late answers have arrived

    # then: still the search's result
    await expect(page.locator(".contacts li")).to_have_count(1)
    await expect(page.locator(".contacts li")).to_contain_text("Matti Korhonen")
