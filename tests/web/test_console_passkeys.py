"""Passkeys in the console, in headless Chromium with its virtual authenticator (DevTools protocol):
a staff member adds one on My account, signs out and back in with it; the admin requires passkeys and a
password alone is refused; a colleague without one may only add one."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from rapidly import tenancy
from rapidly.staff.models import StaffPasskey
from tests.conftest import STAFF_PASSWORD
from tests.support.served import Served
from tests.web.test_console import scan, sign_in

ANNA, VILLE = "anna@kattohuolto.example", "ville@kattohuolto.example"


@pytest.fixture
def console(env, tmp_path):  # type: ignore[no-untyped-def]
    """`rapidly serve` at http://localhost:<port>: Chromium allows passkeys on a domain name only (not on
    127.0.0.1, the in-process server's address), and the relying party is Rapidly's own address."""
    served = Served(env, tmp_path / "serve.log", host_name="localhost")
    yield served
    assert served.stop() == 0


@pytest.fixture
async def company(world, roofing_site):
    """Kattohuolto with Anna, its admin, and Ville, staff."""
    return await world.staff("kattohuolto", VILLE, locale="en")


@pytest.fixture
async def colleague_browser(browser):
    context = await browser.new_context(locale="en-GB")
    yield context
    await context.close()


async def with_authenticator(page) -> object:
    """A platform authenticator on this tab that keeps discoverable credentials and verifies its user
    (as a laptop's fingerprint reader does), answering at once."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp


async def add_passkey(page, name: str) -> None:
    await page.get_by_role("link", name="My account").click()
    await expect(page.get_by_role("heading", level=1, name="My account")).to_be_visible()
    await page.get_by_label("Name of the new passkey").fill(name)
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("ul.passkeys li")).to_contain_text(name)


async def test_a_staff_member_adds_a_passkey_signs_out_and_back_in_with_it(console, company, colleague_browser):
    # given: Ville signed in with his password, on a device with a passkey authenticator
    page = await colleague_browser.new_page()
    await with_authenticator(page)
    await sign_in(page, console, VILLE)

    # when: he adds a passkey on My account, signs out, and signs in with it (no email typed)
    await add_passkey(page, "Work laptop")
    violations = await scan(page)
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("button", name="Sign in with a passkey").click()

    # then: in, as himself, back where he was; the passkey shows when it was last used
    await expect(page.get_by_role("heading", level=1, name="My account")).to_be_visible()
    assert violations == []
    await expect(page.get_by_text(f"Signed in as {VILLE}.")).to_be_visible()
    await expect(page.locator("ul.passkeys li")).not_to_contain_text("last used never")
    with tenancy.as_tenant(company.tenant_id):
        assert await StaffPasskey.filter(staff_id=company.id).count() == 1


async def test_an_admin_requires_passkeys_and_a_password_alone_is_refused(
    console, company, staff_browser, colleague_browser
):
    # given: both have passkeys; Anna, the admin, on Settings
    theirs = await colleague_browser.new_page()
    await with_authenticator(theirs)
    await sign_in(theirs, console, VILLE)
    await add_passkey(theirs, "Phone")
    await theirs.get_by_role("button", name="Sign out").click()
    mine = await staff_browser.new_page()
    await with_authenticator(mine)
    await sign_in(mine, console, ANNA)
    await add_passkey(mine, "Desk")

    # when: Anna requires passkeys (a checkbox, with the keyboard)
    await mine.get_by_role("link", name="Settings").click()
    required = mine.get_by_label("Staff must sign in with a passkey")
    await required.focus()
    await mine.keyboard.press("Space")
    await expect(mine.locator("[role=status].sr")).to_have_text("Saved.")
    violations = await scan(mine)

    # then: Ville's password alone is refused with the reason; his passkey still signs him in
    await theirs.get_by_label("Email", exact=True).fill(VILLE)
    await theirs.get_by_label("Password").fill(STAFF_PASSWORD)
    await theirs.get_by_role("button", name="Sign in", exact=True).click()
    await expect(theirs.get_by_role("alert")).to_have_text(
        "This account signs in with a passkey: use “Sign in with a passkey”."
    )
    await theirs.get_by_role("button", name="Sign in with a passkey").click()
    await expect(theirs.get_by_role("heading", level=1, name="My account")).to_be_visible()
    await expect(mine.get_by_label("Staff must sign in with a passkey")).to_be_checked()
    assert violations == []


async def test_under_the_requirement_a_colleague_without_a_passkey_may_only_add_one(
    console, company, staff_browser, colleague_browser
):
    # given: Anna has a passkey and requires them; Ville has none (new, or his was reset)
    mine = await staff_browser.new_page()
    await with_authenticator(mine)
    await sign_in(mine, console, ANNA)
    await add_passkey(mine, "Desk")
    await mine.get_by_role("link", name="Settings").click()
    await mine.get_by_label("Staff must sign in with a passkey").check()
    await expect(mine.locator("[role=status].sr")).to_have_text("Saved.")

    # when: Ville signs in with his password
    theirs = await colleague_browser.new_page()
    await with_authenticator(theirs)
    await theirs.goto(f"{console.url}/console")
    await theirs.get_by_label("Email", exact=True).fill(VILLE)
    await theirs.get_by_label("Password").fill(STAFF_PASSWORD)
    await theirs.get_by_role("button", name="Sign in", exact=True).click()

    # then: the one screen he gets is adding a passkey; once added, the console
    await expect(theirs.get_by_role("heading", level=1, name="Add a passkey")).to_be_focused()
    assert await scan(theirs) == []
    await theirs.get_by_label("Name of the new passkey").fill("Phone")
    await theirs.get_by_role("button", name="Add a passkey").click()
    await expect(theirs.get_by_role("heading", level=1, name="Contacts")).to_be_visible()


async def test_a_staff_member_makes_their_passkey_the_second_factor_and_their_password_alone_is_refused(
    console, company, colleague_browser
):
    # given: Ville has added a passkey on My account
    page = await colleague_browser.new_page()
    await with_authenticator(page)
    await sign_in(page, console, VILLE)
    await add_passkey(page, "Phone")

    # when: he turns the second factor on with the keyboard, signs out, and tries his password
    only = page.get_by_label("My password alone no longer signs me in (a passkey is my second factor)")
    await only.focus()
    await page.keyboard.press("Space")
    await expect(page.locator("[role=status].sr")).to_have_text("Saved.")
    await expect(only).to_be_checked()
    violations = await scan(page)
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Email", exact=True).fill(VILLE)
    await page.get_by_label("Password").fill(STAFF_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()

    # then: refused with the reason; his passkey signs him in, and the setting shows as on
    await expect(page.get_by_role("alert")).to_have_text(
        "This account signs in with a passkey: use “Sign in with a passkey”."
    )
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.get_by_role("heading", level=1, name="My account")).to_be_visible()
    await expect(only).to_be_checked()
    assert violations == []
