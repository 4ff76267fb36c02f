"""The self-service page in headless Chromium: open the link, see the data, press the button."""

from __future__ import annotations

from pathlib import Path

from tests.contacts.test_contacts_api import CONTACTS, save, staff_token, start


async def a_contact(gql, world) -> str:
    await world.tenant(
        "kattohuolto", name="Kattohuolto Oy", privacy_policy_url="https://kattohuolto.example/tietosuoja"
    )
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija Meikäläinen")
    await save(gql, token, "phone", "040 123 4567")
    await save(gql, token, "damage_description", "Pelti irti <b>harjalta</b>")
    return token


async def test_two_clicks_from_the_link_to_erased_without_javascript(browser, server, gql, world):
    # given
    token = await a_contact(gql, world)
    anna = await staff_token(gql)
    assert len((await gql(CONTACTS, token=anna))["contacts"]["edges"]) == 1
    context = await browser.new_context(java_script_enabled=False, locale="fi-FI")
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("requestfailed", lambda request: problems.append(request.url))

    # when: click one, the link
    response = await page.goto(f"{server.url}/my/{token}")

    # then: everything is there, styled (the inline stylesheet passes the CSP)
    assert response.status == 200
    assert await page.get_by_role("heading", level=1).inner_text() == "Tietosi yrityksellä Kattohuolto Oy"
    body = await page.locator("main").inner_text()
    for shown in ("Maija Meikäläinen", "+358401234567", "Pelti irti <b>harjalta</b>"):
        assert shown in body
    button = page.get_by_role("button", name="Poista kaikki tietoni")
    assert await button.count() == 1
    assert await button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(164, 22, 26)"

    # when: click two, the button
    await button.click()

    # then: the receipt, and the contact is gone from the staff's list
    await page.get_by_role("heading", name="Kaikki tietosi on poistettu").wait_for()
    rows = await page.locator("tbody tr").all_inner_texts()
    assert "Tallennetut vastaukset\t3" in rows and "Yhteystietue\t1" in rows
    assert (await gql(CONTACTS, token=anna))["contacts"]["edges"] == []
    assert problems == []
    await page.goto(f"{server.url}/my/{token}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Linkki ei kelpaa"
    await context.close()


async def test_the_page_works_from_the_keyboard_and_switches_language(browser, server, gql, world):
    # given
    token = await a_contact(gql, world)
    context = await browser.new_context(locale="sv-SE")
    page = await context.new_page()
    await page.goto(f"{server.url}/my/{token}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Dina uppgifter hos Kattohuolto Oy"

    # when: switch to English from the language menu, then reach the button with Tab and press Enter
    await page.get_by_role("link", name="English").click()
    await page.get_by_role("heading", name="Your data at Kattohuolto Oy").wait_for()
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
    focused = await page.evaluate("document.activeElement.textContent")
    await page.keyboard.press("Enter")

    # then
    assert focused == "Delete all my data"
    await page.get_by_role("heading", name="All your data has been erased").wait_for()
    await context.close()


async def test_export_downloads_the_json_file(browser, server, gql, world):
    # given
    token = await a_contact(gql, world)
    context = await browser.new_context(accept_downloads=True, locale="en-GB")
    page = await context.new_page()
    await page.goto(f"{server.url}/my/{token}")

    # when
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download all data (JSON)").click()
    download = await download_info.value

    # then
    assert download.suggested_filename == "my-data.json"
    content = Path(await download.path()).read_text(encoding="utf-8")
    assert "Maija Meikäläinen" in content and token not in content
    await context.close()
