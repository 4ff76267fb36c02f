"""The GraphQL over HTTP specification's own audit suite (graphql-http's `auditServer`, vendored from the
npm registry: tests/vendor/graphql-http) run against a served Rapidly, in Chromium, from a page of
Rapidly's own: no error, no warning. A future regression of the specification fails here."""

from __future__ import annotations

from pathlib import Path

AUDITS = (Path(__file__).parents[1] / "vendor" / "graphql-http" / "graphql-http-audits.js").read_text(encoding="utf-8")
#: The notices Rapidly keeps on purpose: it answers no GET, so no mutation can be made by a GET and no
#: page of another site can make one with a link or an image (no CSRF surface).
DELIBERATE_NOTICES = {
    "5A70": "MAY accept application/x-www-form-urlencoded formatted GET requests",
    "D6D5": "MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting "
    "application/graphql-response+json",
    "6A70": "MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/json",
}


async def test_the_specifications_audit_finds_no_error_and_no_warning(server, browser):
    # given: a page of Rapidly's own (the audit's requests are then same-origin), with the audit loaded
    page = await browser.new_page()
    await page.goto(f"{server.url}/console")
    await page.evaluate(AUDITS)

    # when
    results = await page.evaluate(
        """async () => (await graphqlHttpAudits.auditServer({ url: location.origin + '/graphql' }))
          .map(({ id, name, status, reason }) => ({ id, name, status, reason }))"""
    )
    await page.close()

    # then
    by_status: dict[str, list[dict]] = {}
    for result in results:
        by_status.setdefault(result["status"], []).append(result)
    assert by_status.get("error", []) == [] and by_status.get("warn", []) == [], by_status
    assert {r["id"]: r["name"] for r in by_status.get("notice", [])} == DELIBERATE_NOTICES
    assert len(by_status["ok"]) >= 55, len(by_status["ok"])
