"""A company's own website on another origin (another port of loopback), for the browser tests of
the embeddable form, and the browser contexts that visit it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tests.conftest import free_port

#: Chromium without its own network chatter (this machine refuses it anyway).
QUIET = ["--disable-background-networking", "--disable-component-update", "--no-first-run"]


@dataclass
class CompanySite:
    """Pages served at `url + path`: HTML and headers set by each test."""

    url: str
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def page(self, path: str, html: str, headers: dict[str, str] | None = None) -> str:
        self.pages[path] = (html, headers or {})
        return self.url + path

    def embedding(
        self,
        rapidly_url: str,
        tenant: str,
        *,
        path: str = "/",
        lang: str = "en",
        attributes: str = "",
        strict_csp: bool = True,
    ) -> str:
        """A page with the two lines a company pastes, under a CSP that allows Rapidly's origin only."""
        html = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Company</title>
<script type="module" src="{rapidly_url}/embed/form.js"></script></head>
<body><main><h1>Company</h1><rapidly-form tenant="{tenant}" {attributes}></rapidly-form></main></body></html>"""
        ws = rapidly_url.replace("http://", "ws://")
        csp = (
            f"default-src 'none'; script-src {rapidly_url}; style-src {rapidly_url}; img-src {rapidly_url}; "
            f"connect-src {rapidly_url} {ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return self.page(path, html, {"Content-Security-Policy": csp} if strict_csp else {})

    async def app(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        found = self.pages.get(request.url.path)
        response = HTMLResponse(found[0], headers=found[1]) if found else Response(status_code=404)
        await response(scope, receive, send)


@pytest.fixture(scope="session")
async def company_site_server() -> AsyncIterator[CompanySite]:
    port = free_port()
    site = CompanySite(url=f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        site.app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off", interface="asgi3"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield site
    server.should_exit = True
    await task


@pytest.fixture
def company_site(company_site_server: CompanySite) -> CompanySite:
    company_site_server.pages.clear()
    return company_site_server


@pytest.fixture
async def visitor(browser) -> AsyncIterator[object]:
    """A fresh browser context (its own storage), that records console errors and failed requests."""
    context = await browser.new_context(locale="en-GB")
    context.problems = []  # type: ignore[attr-defined]
    context.on(
        "console",
        lambda message: context.problems.append(message.text) if message.type == "error" else None,  # type: ignore[attr-defined]
    )
    yield context
    await context.close()


@pytest.fixture
async def roofing_site(world, company_site: CompanySite) -> CompanySite:
    """Kattohuolto Oy, listing the company site's origin, with Anna, its admin (the console speaks her language)."""
    from rapidly.tenants import service as tenants

    await world.tenant("kattohuolto", name="Kattohuolto Oy", retention_days=365)
    await world.staff("kattohuolto", locale="en")
    await tenants.change_origins("kattohuolto", add=[company_site.url])
    return company_site


@pytest.fixture
async def staff_browser(browser) -> AsyncIterator[object]:
    """Staff's own browser: a context of its own, recording every request it makes."""
    context = await browser.new_context(locale="en-GB")
    context.requests = []  # type: ignore[attr-defined]
    context.on("request", lambda request: context.requests.append(request.url))  # type: ignore[attr-defined]
    yield context
    await context.close()
