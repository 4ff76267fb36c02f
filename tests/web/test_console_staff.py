"""The console's Staff screen in headless Chromium: an admin and a colleague, each in a browser of their own."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from rapidly import tenancy
from rapidly.audit.models import AuditEvent
from rapidly.staff.models import StaffUser
from tests.staff.test_invitations import LINK
from tests.web.test_console import scan, sign_in

ANNA, VILLE = "anna@kattohuolto.example", "ville@kattohuolto.example"


@pytest.fixture
async def company(world, roofing_site):
    """Kattohuolto with Anna, its admin (the first staff member), and Ville, staff."""
    ville = await world.staff("kattohuolto", VILLE, locale="en")
    return ville


@pytest.fixture
async def colleague_browser(browser):
    context = await browser.new_context(locale="en-GB")
    yield context
    await context.close()


async def test_an_admin_removes_a_colleague_whose_open_console_signs_out(
    server, company, staff_browser, colleague_browser
):
    # given: Ville's console open, Anna on the Staff screen
    theirs = await colleague_browser.new_page()
    await sign_in(theirs, server, VILLE)
    mine = await staff_browser.new_page()
    await sign_in(mine, server, ANNA)
    await mine.get_by_role("link", name="Staff").click()
    await expect(mine.get_by_role("heading", level=1, name="Staff")).to_be_visible()
    await expect(mine.locator("table.staff tbody tr")).to_have_count(2)

    # when: Anna removes Ville, with the keyboard through the confirmation (Cancel has the focus first)
    await mine.get_by_role("button", name=f"Remove {VILLE}").click()
    await expect(mine.get_by_role("alertdialog")).to_contain_text(f"Remove {VILLE}?")
    focused_first = await mine.evaluate("() => document.activeElement.textContent")
    await mine.keyboard.press("Tab")
    await mine.keyboard.press("Enter")

    # then: gone from the list; Ville's console says the session ended and forgets its token
    assert focused_first == "Cancel"
    await expect(mine.locator("table.staff tbody tr")).to_have_count(1)
    await expect(mine.locator("[role=status].sr")).to_have_text(f"{VILLE} was removed.")
    await expect(theirs.get_by_role("alert")).to_have_text("Your session has ended. Sign in again.", timeout=5_000)
    assert await theirs.evaluate("() => sessionStorage.length") == 0
    with tenancy.as_tenant(company.tenant_id):
        assert await StaffUser.filter(email=VILLE).count() == 0


async def test_the_last_admin_stays_and_a_colleague_made_admin_gets_the_screen(
    server, company, staff_browser, colleague_browser
):
    # given
    mine = await staff_browser.new_page()
    await sign_in(mine, server, ANNA)
    await mine.goto(f"{server.url}/console#/staff")
    anna_role = mine.get_by_label(f"Role of {ANNA}")
    ville_role = mine.get_by_label(f"Role of {VILLE}")

    # when: choosing a role with the keyboard changes nothing by itself
    await anna_role.focus()
    await mine.keyboard.press("ArrowDown")
    await mine.wait_for_timeout(300)

    # then
    with tenancy.as_tenant(company.tenant_id):
        assert {s.email: s.role.value for s in await StaffUser.all()} == {ANNA: "ADMIN", VILLE: "STAFF"}

    # when: Anna asks to make herself staff while the only admin, and confirms
    await anna_role.select_option("STAFF")
    await mine.get_by_role("button", name=f"Change the role of {ANNA}").click()
    await expect(mine.get_by_role("alertdialog")).to_contain_text("Give up your own admin role?")
    await mine.get_by_role("button", name="Change the role", exact=True).click()

    # then: refused with the reason, and the choice goes back
    await expect(mine.locator("main > .view > [role=alert]")).to_have_text(
        "A company keeps at least one admin: make someone else an admin first."
    )
    await expect(anna_role).to_have_value("ADMIN")

    # when: she makes Ville an admin: asked first, cancelled once, then confirmed
    await ville_role.select_option("ADMIN")
    await mine.get_by_role("button", name=f"Change the role of {VILLE}").click()
    await expect(mine.get_by_role("alertdialog")).to_contain_text(f"Make {VILLE} an admin?")
    await mine.get_by_role("button", name="Cancel").click()
    await expect(ville_role).to_have_value("STAFF")
    await ville_role.select_option("ADMIN")
    await mine.get_by_role("button", name=f"Change the role of {VILLE}").click()
    await mine.get_by_role("button", name="Change the role", exact=True).click()
    await expect(mine.locator("[role=status].sr")).to_have_text(f"{VILLE} is now admin.")
    theirs = await colleague_browser.new_page()
    await sign_in(theirs, server, VILLE)

    # then: Ville has the Staff screen; the change is in the audit trail, by name only
    await theirs.get_by_role("link", name="Staff").click()
    await expect(theirs.get_by_label(f"Role of {VILLE}")).to_have_value("ADMIN")
    tenant_id = company.tenant_id
    with tenancy.as_tenant(tenant_id):
        changes = await AuditEvent.filter(tenant_id=tenant_id, action="staff.role_changed").values_list("detail")
    assert changes == [("ADMIN",)]


async def test_staff_who_are_not_admins_get_no_staff_screen(server, company, colleague_browser):
    # given
    page = await colleague_browser.new_page()
    await sign_in(page, server, VILLE)

    # when
    links = await page.get_by_role("navigation").get_by_role("link").all_inner_texts()
    await page.goto(f"{server.url}/console#/staff")

    # then: no link to it, and the address alone shows the refusal and no one's address
    assert [link.split(" ")[0] for link in links] == ["Contacts", "Notifications", "Settings", "My"]
    await expect(page.locator("main [role=alert]")).to_have_text("Only an admin of this company may do this.")
    assert ANNA not in await page.locator("main").inner_text()


async def test_an_admin_invites_a_colleague_who_joins_from_the_emailed_link(
    server, company, staff_browser, colleague_browser, dispatcher, smtp
):
    # given: Anna on the Staff screen
    mine = await staff_browser.new_page()
    await sign_in(mine, server, ANNA)
    await mine.goto(f"{server.url}/console#/staff")

    # when: she invites Aino, and the email goes out
    await mine.get_by_label("Email").fill("aino@kattohuolto.example")
    await mine.get_by_role("button", name="Send invitation").click()
    await expect(mine.locator("#invite-heading ~ [role=status]")).to_contain_text("aino@kattohuolto.example")
    await expect(mine.locator(".invitations")).to_contain_text("aino@kattohuolto.example (staff), until")
    await dispatcher.run_once()
    _, mailbox, _ = smtp
    [mail] = mailbox.messages
    link = LINK.search(mail.get_body(("plain",)).get_content()).group(0)

    # then: the link opens the invitation, its token gone from the address at once
    theirs = await colleague_browser.new_page()
    await theirs.goto(link)
    await expect(theirs.get_by_role("heading", level=1, name="Join Kattohuolto Oy on Rapidly")).to_be_visible()
    assert theirs.url == f"{server.url}/console"
    assert await scan(theirs) == []

    # when: two different passwords, then the same one twice
    await theirs.get_by_label("New password", exact=True).fill("a long new password")
    await theirs.get_by_label("New password again").fill("another long password")
    await theirs.get_by_role("button", name="Join and sign in").click()
    await expect(theirs.get_by_role("alert")).to_have_text("The two passwords are not the same.")
    await theirs.get_by_label("New password again").fill("a long new password")
    await theirs.get_by_role("button", name="Join and sign in").click()

    # then: signed in as staff (no Staff screen), and on Anna's list; the link works no more
    await expect(theirs.get_by_role("heading", level=1, name="Contacts")).to_be_visible()
    assert await theirs.get_by_role("link", name="Staff").count() == 0
    await mine.reload()
    await expect(mine.locator("table.staff tbody tr")).to_have_count(3)
    await expect(mine.locator(".invitations")).to_have_text("None.")
    again = await colleague_browser.new_page()
    await again.goto(link)
    await expect(again.get_by_role("alert")).to_contain_text("This invitation has been used")


async def test_an_invitation_link_that_is_forged_shows_why_and_leads_to_sign_in(server, company, colleague_browser):
    # given
    page = await colleague_browser.new_page()

    # when
    await page.goto(f"{server.url}/console/invite/rpi_forged%3Cscript%3E")

    # then
    await expect(page.get_by_role("alert")).to_contain_text("This invitation has been used, has expired")
    assert page.url == f"{server.url}/console"
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_label("Password")).to_be_visible()


async def test_an_origin_added_in_the_console_lets_the_form_work_there_at_once(
    server, company, roofing_site, staff_browser, visitor
):
    # given: the company's site also answers as http://localhost:<port>, an origin not yet listed
    other = roofing_site.url.replace("127.0.0.1", "localhost")
    page = roofing_site.embedding(server.url, "kattohuolto", path="/elsewhere").replace(roofing_site.url, other)
    before = await visitor.new_page()
    await before.goto(page)
    await expect(before.locator("rapidly-form [role=status]")).to_contain_text("The form could not be loaded")
    mine = await staff_browser.new_page()
    await sign_in(mine, server, ANNA)
    await mine.goto(f"{server.url}/console#/settings")

    # when: a wrong one first, then the right one
    await mine.get_by_label("Add a website").fill(other + "/form")
    await mine.get_by_role("button", name="Add", exact=True).click()
    await expect(mine.locator("#origins-heading ~ [role=status]")).to_have_text(
        "Give the origin only, without a path: https://www.example.fi."
    )
    await mine.get_by_label("Add a website").fill(other)
    await mine.get_by_role("button", name="Add", exact=True).click()

    # then: listed, and the form on that origin works at once
    await expect(mine.locator(".origins")).to_contain_text(other)
    after = await visitor.new_page()
    await after.goto(page)
    await expect(after.locator("#rf-name")).to_be_visible()
    await expect(mine.get_by_role("button", name=f"Remove {other}")).to_be_visible()


async def test_staff_who_are_not_admins_see_the_settings_but_no_editor(
    server, company, roofing_site, colleague_browser
):
    # given
    page = await colleague_browser.new_page()
    await sign_in(page, server, VILLE)

    # when
    await page.get_by_role("navigation").get_by_role("link", name="Settings").click()

    # then
    settings = page.locator(".settings")
    await expect(settings).to_contain_text("365 days after they were last active")
    await expect(settings).to_contain_text(roofing_site.url)
    await expect(settings).to_contain_text("photo request: email, text message")
    assert await page.locator("main input, main button").count() == 0


async def test_an_admin_withdraws_an_invitation_before_it_is_used(server, company, staff_browser):
    # given
    mine = await staff_browser.new_page()
    await sign_in(mine, server, ANNA)
    await mine.goto(f"{server.url}/console#/staff")
    await mine.get_by_label("Email").fill("aino@kattohuolto.example")
    await mine.get_by_role("button", name="Send invitation").click()

    # when
    await mine.get_by_role("button", name="Withdraw the invitation to aino@kattohuolto.example").click()

    # then
    await expect(mine.locator("#invite-heading ~ [role=status]")).to_have_text(
        "The invitation to aino@kattohuolto.example was withdrawn."
    )
    await expect(mine.locator(".invitations")).to_have_text("None.")
    assert await mine.evaluate("() => document.activeElement.id") == "invite-email"
