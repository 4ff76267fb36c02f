"""`/` and `/console`: the two pages of Rapidly that are not a customer's own.

`/console` is the staff console's one HTML page; everything else it needs is `/console/*.js` and
`.css` (see `assets`) and the public GraphQL API. `/` says where to go. Both are served under a strict
Content-Security-Policy: scripts and styles from this origin only, nothing inline, nothing from any
other host but the media storage's, for photos.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rapidly.cors import own_origin
from rapidly.selfservice.pages import page_locale

router = APIRouter()

CONSOLE = files("rapidly.web").joinpath("static", "console", "index.html").read_bytes()
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def csp(request: Request) -> str:
    own = own_origin(request.app.state.settings.base_url)
    websocket = own.replace("https://", "wss://").replace("http://", "ws://")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self' {websocket}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@router.api_route("/console", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/console/invite/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def console(request: Request) -> HTMLResponse:
    """The console; at an invitation's link (`rapidly.staff.invitations`) it opens on the invitation,
    whose token it takes out of the address at once (no referrer is ever sent)."""
    return HTMLResponse(CONSOLE, headers={**HEADERS, "Content-Security-Policy": csp(request)})


_HOME = {
    "fi": {
        "intro": "Yksityisyyttä kunnioittava asiakaslomake: vastaukset tallentuvat kirjoitettaessa, ja asiakas "
        "näkee ja poistaa tietonsa itse.",
        "console": "Henkilökunnan konsoli",
        "console_about": "kirjaudu sisään nähdäksesi asiakkaiden vastaukset, kuvat ja keskustelut.",
        "demo": "Esimerkkiyrityksen sivu",
        "demo_about": "lomake sellaisena kuin asiakas sen näkee.",
        "api": "GraphQL-rajapinta",
        "api_about": "POST JSON, ja WebSocket graphql-transport-ws -protokollalla.",
        "own": "Oletko asiakas? Omat tietosi ovat linkin takana, joka on jokaisessa yrityksen viestissä.",
    },
    "sv": {
        "intro": "Kundformulär med respekt för integriteten: svaren sparas medan de skrivs, och kunden ser och "
        "raderar sina uppgifter själv.",
        "console": "Personalens konsol",
        "console_about": "logga in för att se kundernas svar, bilder och konversationer.",
        "demo": "Exempelföretagets sida",
        "demo_about": "formuläret som kunden ser det.",
        "api": "GraphQL-gränssnittet",
        "api_about": "POST JSON, och WebSocket med protokollet graphql-transport-ws.",
        "own": "Är du kund? Dina egna uppgifter finns bakom länken i varje meddelande från företaget.",
    },
    "en": {
        "intro": "Privacy-first customer intake: answers are saved as they are typed, and customers see and "
        "erase their own data.",
        "console": "Staff console",
        "console_about": "sign in to see your customers' answers, photos and conversations.",
        "demo": "The demo company's page",
        "demo_about": "the form as a customer sees it.",
        "api": "The GraphQL API",
        "api_about": "POST JSON, and WebSocket with the graphql-transport-ws protocol.",
        "own": "A customer? Your own data is behind the link in every message from the company.",
    },
}


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def home(request: Request) -> HTMLResponse:
    locale = page_locale(request, "en")
    t = _HOME[locale]
    demo = getattr(request.app.state, "demo_site_url", None)
    item = lambda href, name, about: f'<li><a href="{escape(href)}">{name}</a>: {about}</li>'  # noqa: E731
    links = [item("/console", t["console"], t["console_about"])]
    if demo:
        links.append(item(demo, t["demo"], t["demo_about"]))
    links.append(f"<li>{t['api']}: <code>/graphql</code>, {t['api_about']}</li>")
    page = f"""<!doctype html>
<html lang="{locale}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rapidly</title><link rel="stylesheet" href="/console/console.css"></head>
<body><main><h1>Rapidly</h1><p>{t["intro"]}</p><ul>{"".join(links)}</ul><p>{t["own"]}</p></main></body></html>"""
    return HTMLResponse(page, headers={**HEADERS, "Content-Security-Policy": csp(request)})
