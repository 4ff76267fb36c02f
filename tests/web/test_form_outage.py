"""The form through a database outage: PostgreSQL stops while the customer keeps typing, and starts
again. Every value typed is stored in its final form, and the form says so."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from playwright.async_api import expect

from tests.outage import StoppableRapidly
from tests.web.conftest import CompanySite

ME = "query { me { values { key value } } }"


@pytest.fixture
def rapidly_alone(tmp_path, company_site: CompanySite):
    rapidly = StoppableRapidly(tmp_path)
    yield rapidly.start(
        ("tenant", "create", "--slug", "kattohuolto", "--name", "Kattohuolto Oy", "--plugin", "roofing_fi"),
        ("tenant", "origins", "kattohuolto", "--add", company_site.url),
    )
    rapidly.close()


async def test_typing_through_a_database_restart_loses_nothing(rapidly_alone, company_site, visitor):
    # given: a customer who has started typing
    page = await visitor.new_page()
    await page.goto(company_site.embedding(rapidly_alone.url, "kattohuolto"))
    await page.locator("#rf-name").fill("Maija")
    await expect(page.locator("#rf-name-status")).to_have_text("Saved", timeout=10_000)

    # when: the database stops, and they keep typing for several seconds
    await asyncio.to_thread(rapidly_alone.stop_database)
    await page.locator("#rf-name").press_sequentially(" Meikäläinen", delay=30)
    await expect(page.locator("#rf-name-status")).to_have_text("Couldn't save, retrying…", timeout=10_000)
    await expect(page.locator(".sr[role=status]")).to_have_text(
        "Saving is not possible right now. Your answers are kept and will be sent automatically."
    )
    for draft in ("Pelti irti", "Pelti irti harjalta", "Pelti irti harjalta, vuotaa sisään"):
        await page.locator("#rf-damage_description").fill(draft)
        await page.wait_for_timeout(700)
    await page.locator("#rf-phone").press_sequentially("040 123 4567", delay=30)
    await page.wait_for_timeout(2000)
    unsaved_while_down = await page.locator("rapidly-form").evaluate("form => form.unsaved")
    await asyncio.to_thread(rapidly_alone.start_database)

    # then: all of it arrives, in its final form, and the form says so
    for key in ("name", "damage_description", "phone"):
        await expect(page.locator(f"#rf-{key}-status")).to_have_text("Saved", timeout=40_000)
    await expect(page.locator(".sr[role=status]")).to_have_text("All answers are saved.")
    assert unsaved_while_down is True
    assert await page.locator("rapidly-form").evaluate("form => form.unsaved") is False
    token = await page.evaluate("() => Object.entries(sessionStorage).find(([k]) => k.startsWith('rapidly-form:'))[1]")
    async with httpx.AsyncClient() as api:
        answer = await api.post(
            rapidly_alone.graphql_url, json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
        )
    assert {v["key"]: v["value"] for v in answer.json()["data"]["me"]["values"]} == {
        "name": "Maija Meikäläinen",
        "damage_description": "Pelti irti harjalta, vuotaa sisään",
        "phone": "+358401234567",
    }
    assert "Maija" not in rapidly_alone.log()
