"""How a staff member is reached, set in the console's My account (headless Chromium): a mobile number
confirmed by the code texted to it (the SMS gateway on loopback), then new contacts by text message
alone, and back to the company's choice."""

from __future__ import annotations

from playwright.async_api import expect

from tests.messaging.test_dispatch import contact
from tests.staff.test_reach import code_in
from tests.web.test_console import scan, sign_in


async def test_a_staff_member_confirms_their_number_and_gets_new_contacts_by_text_message(
    server, gql, roofing_site, staff_browser, dispatcher, smtp, gateway
):
    # given: Anna on My account
    _, mailbox, _ = smtp
    page = await staff_browser.new_page()
    await sign_in(page, server)
    await page.get_by_role("link", name="My account").click()
    await expect(page.get_by_role("heading", level=2, name="Messages to me")).to_be_visible()
    await expect(page.get_by_text("No mobile number yet.")).to_be_visible()
    await expect(page.get_by_role("checkbox", name="text message").first).to_be_disabled()

    # when: a number that is not a mobile one, then hers
    number = page.get_by_label("Mobile number for text messages")
    await number.fill("+358 9 1234 5678")
    await number.press("Enter")
    await expect(page.locator("#reach-heading ~ .note")).to_have_text(
        "Text messages go to mobile numbers in the EU/EEA only."
    )
    await number.fill("040 111 2233")
    await number.press("Enter")

    # then: the code is on its way, and the focus waits in its field
    code = page.get_by_label("Code from the text message")
    await expect(code).to_be_focused()
    await expect(page.locator("#sms-code-help")).to_have_text("A code is on its way to +358401112233.")
    assert await scan(page) == []

    # when: the dispatcher texts it, and she types a wrong code, then the right one
    await dispatcher.run_once()
    sent = code_in(gateway.requests[-1]["body"]["message"])
    await code.fill("000000" if sent != "000000" else "111111")
    await code.press("Enter")
    await expect(page.locator("#reach-heading ~ .note")).to_have_text("This is not the code we sent.")
    await code.fill(sent)
    await code.press("Enter")

    # then
    await expect(page.locator("#reach-heading ~ div p").first).to_contain_text("Text messages go to +358401112233.")
    await expect(page.get_by_label("Code from the text message")).to_have_count(0)

    # when: new contacts by text message alone (keyboard only)
    # (the second change made at once, before the first is answered: changes go one after another)
    await page.locator("#my-channel-NEW_CONTACT-SMS").focus()
    await page.keyboard.press("Space")
    await page.locator("#my-channel-NEW_CONTACT-EMAIL").focus()
    await page.keyboard.press("Space")
    await expect(page.get_by_role("button", name="Use the company’s choice for new contact (to staff)")).to_be_visible()
    await expect(page.locator("[role=status].sr")).to_have_text("Saved.")
    await page.reload()  # as the server keeps it
    await expect(page.locator("#my-channel-NEW_CONTACT-SMS")).to_be_checked()
    await expect(page.locator("#my-channel-NEW_CONTACT-EMAIL")).not_to_be_checked()
    assert await scan(page) == []
    await contact(gql, email=None, phone=None)
    await dispatcher.run_once()

    # then: a text that names no one, no email
    notice = gateway.requests[-1]["body"]
    assert notice["recipients"] == [{"msisdn": 358401112233}] and "/staff/contacts/" in notice["message"]
    assert "Maija" not in notice["message"] and mailbox.messages == []

    # when: back to the company's choice
    await page.get_by_role("button", name="Use the company’s choice for new contact (to staff)").click()

    # then
    await expect(page.locator("#my-channel-NEW_CONTACT-EMAIL")).to_be_checked()
    await expect(page.locator("#my-channel-NEW_CONTACT-SMS")).not_to_be_checked()
    await expect(page.get_by_text("as your company chose").first).to_be_visible()
