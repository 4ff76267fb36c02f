"""The demo's sample company website: a page of its own origin (a second port) that embeds the form
with the two lines a company pastes, under the strict Content-Security-Policy we advise.

`rapidly demo` serves it from the same process on another socket (`ByPort`), so that the browser
sees two origins, as in real use: the company's site and Rapidly.
"""

from __future__ import annotations

from html import escape

from starlette.types import ASGIApp, Receive, Scope, Send

_PAGE = """<!doctype html>
<html lang="fi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{company} – Pyydä tarjous</title>
<link rel="stylesheet" href="/site.css">
<script type="module" src="{rapidly}/embed/form.js"></script>
</head>
<body>
<header><p class="brand">{company}</p></header>
<main>
<h1>Pyydä tarjous kattotöistä</h1>
<p>Kerro meille katostasi. Vastauksesi tallentuvat sitä mukaa kun kirjoitat, ja näemme ne heti.
Voit katsoa ja poistaa tietosi milloin tahansa.</p>
<rapidly-form tenant="{tenant}"></rapidly-form>
</main>
<footer><p>Tämä on Rapidlyn esimerkkisivu: lomake tulee osoitteesta {rapidly}, sivu itse toisesta
alkuperästä, kuten yrityksen omalla sivustolla.</p></footer>
</body>
</html>
"""

_CSS = """body { margin: 0; font: 1rem/1.5 Georgia, serif; background: #f4efe6; color: #222; }
header { background: #5b2a12; color: #fff; padding: .75rem 1.5rem; }
.brand { margin: 0; font-weight: bold; font-size: 1.2rem; }
main { max-width: 46rem; margin: 0 auto; padding: 1rem 1.5rem; }
footer { max-width: 46rem; margin: 2rem auto; padding: 0 1.5rem; font-size: .9rem; color: #555; }
rapidly-form { max-width: 42rem; margin: 1.5rem 0; box-shadow: 0 1px 4px rgba(0, 0, 0, .15); border-radius: 8px; }
"""


def csp(rapidly_origin: str) -> str:
    """What we advise companies: scripts, styles, photos and the API from Rapidly's origin only,
    nothing inline, nothing from anywhere else."""
    websocket = rapidly_origin.replace("https://", "wss://").replace("http://", "ws://")
    return (
        f"default-src 'none'; script-src {rapidly_origin}; style-src 'self' {rapidly_origin}; "
        f"img-src 'self' {rapidly_origin}; connect-src {rapidly_origin} {websocket}; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


class DemoSite:
    def __init__(self, rapidly_origin: str, tenant: str, company: str) -> None:
        page = _PAGE.format(rapidly=escape(rapidly_origin), tenant=escape(tenant), company=escape(company))
        self.page = page.encode()
        self.policy = csp(rapidly_origin).encode()

    def respond(self, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body for a GET of `path`."""
        headers = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if path == "/":
            headers += [(b"content-type", b"text/html; charset=utf-8"), (b"content-security-policy", self.policy)]
            return 200, headers, self.page
        if path == "/site.css":
            return 200, [*headers, (b"content-type", b"text/css; charset=utf-8")], _CSS.encode()
        if path == "/favicon.ico":
            return 204, headers, b""
        return 404, [*headers, (b"content-type", b"text/plain; charset=utf-8")], b"Not found"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, headers, body = self.respond(scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})


class ByPort:
    """One ASGI app per listening port: `sites[port]` for its port, `main` for the rest (and lifespan)."""

    def __init__(self, main: ASGIApp, sites: dict[int, ASGIApp]) -> None:
        self.main = main
        self.sites = sites

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or (None, None)
        await self.sites.get(server[1], self.main)(scope, receive, send)
