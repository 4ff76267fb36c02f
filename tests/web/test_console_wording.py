"""The wording of messages edited in the console (headless Chromium): a live preview from the sandbox that
sends, a hostile wording refused with the reason, the saved wording in the next email, reset to default."""

from __future__ import annotations

from playwright.async_api import expect

from tests.messaging.test_dispatch import SEND, contact, only
from tests.web.test_console import scan, sign_in

BODY = "Moi {{ contact_name }}! Jatka kuvien lisäämistä tästä: {{ link }}"


async def test_an_admin_words_a_message_sees_it_as_sent_and_the_next_email_carries_it(
    server, gql, roofing_site, staff_browser, dispatcher, smtp
):
    # given: Anna, the admin, on Settings, at the continue link's email in Finnish
    _, mailbox, _ = smtp
    page = await staff_browser.new_page()
    await sign_in(page, server)
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_role("heading", level=2, name="Wording of the messages")).to_be_visible()
    await page.get_by_label("Message", exact=True).select_option("CONTINUE_LINK")
    await page.get_by_label("Sent by", exact=True).select_option("EMAIL")
    await page.locator("#wording-locale").select_option("fi")
    await expect(page.get_by_text("The default wording.")).to_be_visible()

    # when: she types a hostile wording, then her own
    body = page.get_by_label("Text", exact=True)
    await body.fill("{{ link.__class__.__mro__ }}")
    await expect(page.locator(".preview .error")).to_contain_text("This wording cannot be used: template body")
    await page.get_by_label("Subject", exact=True).fill("Kuvat katostanne")
    await body.fill(BODY)

    # then: the preview is the message as it goes out, the core's link and button after her words
    preview = page.locator(".preview-text")
    await expect(preview).to_contain_text("Moi Matti Esimerkki! Jatka kuvien lisäämistä tästä: http://")
    await expect(preview).to_contain_text("Näet kaikki tietosi ja voit poistaa ne tästä:")
    await expect(page.locator(".button-sample")).to_have_text("Poista kaikki tietoni")
    await expect(page.locator(".preview .error")).to_have_text("")
    assert await scan(page) == []

    # when: saved, and a customer asks for the link
    await page.get_by_role("button", name="Save").last.click()
    await expect(page.get_by_text("Your company’s own wording.")).to_be_visible()
    token = await contact(gql)
    assert (await gql(SEND, {"channel": "EMAIL"}, token=token))["sendContinueLink"]["__typename"] == "LinkSent"
    await only("continue_link")
    await dispatcher.run_once()

    # then: the email is in her words, with the customer's link and the delete button
    [mail] = mailbox.messages
    assert mail["Subject"] == "Kuvat katostanne"
    text = mail.get_body(("plain",)).get_content()
    assert text.startswith("Moi Maija Meikäläinen! Jatka kuvien lisäämistä tästä: http://") and "/continue/rpc_" in text
    assert "Poista kaikki tietoni</a>" in mail.get_body(("html",)).get_content()

    # when: reset to default
    await page.get_by_role("button", name="Reset to default").click()

    # then
    await expect(page.get_by_text("The default wording.")).to_be_visible()
    await expect(body).not_to_have_value(BODY)
