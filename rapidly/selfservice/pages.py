"""The self-service pages: `GET /my/{token}`, `POST /my/{token}/delete`, `GET /my/{token}/export.json`.

Server-rendered, no JavaScript, no third-party assets: the one stylesheet is inline and allowed by
its hash. GET and HEAD only read, so mail scanners that open every link change nothing. The one
button posts a form whose CSRF token is an HMAC of the link's token: valid for that link only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from rapidly import security
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.models import Requester
from rapidly.plugins import SUPPORTED_LOCALES
from rapidly.selfservice import service
from rapidly.selfservice.texts import LANGUAGE_NAMES, TEXTS, store_name

#: The delete form is two short fields; anything longer is not ours.
MAX_FORM_BYTES = 4096
CSS = files("rapidly.selfservice").joinpath("style.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Times are shown in the tenant's own country's zone.
ZONES = {"fi": "Europe/Helsinki", "sv": "Europe/Stockholm", "en": "Europe/Helsinki"}
_FORMATS = {
    "fi": "{t.day}.{t.month}.{t.year} klo {t:%H.%M}",
    "sv": "{t:%Y-%m-%d} kl. {t:%H:%M}",
    "en": "{t.day} {t:%b %Y, %H:%M}",
}

_templates = Environment(
    loader=PackageLoader("rapidly.selfservice", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

LANGUAGES = list(LANGUAGE_NAMES.items())

router = APIRouter()


def csrf_token(settings: Settings, token: str) -> str:
    """Bound to this link: an HMAC of the link's token, so it is useless with any other link."""
    return security.keyed_digest(settings.signing_key, "self-service-erase", security.hash_token(token))


@router.api_route("/my/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def my_page(request: Request, token: str) -> Response:
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    locale = page_locale(request, contact.locale)
    data = await service.my_data(request.app.state.plugins, contact, locale)
    return _render(
        "my.html", locale, contact, data=data, token=token, csrf=csrf_token(request.app.state.settings, token)
    )


@router.api_route("/my/{token}/export.json", methods=["GET", "HEAD"], include_in_schema=False)
async def export_json(request: Request, token: str) -> Response:
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    data = await service.my_data(request.app.state.plugins, contact, page_locale(request, contact.locale))
    url = contacts.self_service_url(request.app.state.settings, token)
    body = json.dumps(service.export(data, url), ensure_ascii=False, indent=2)
    return Response(
        body,
        media_type="application/json",
        headers={**HEADERS, "Content-Disposition": 'attachment; filename="my-data.json"'},
    )


@router.post("/my/{token}/delete", include_in_schema=False)
async def erase(request: Request, token: str) -> Response:
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    form = await _form(request)
    locale = page_locale(request, contact.locale, form.get("lang"))
    settings: Settings = request.app.state.settings
    if not _same_origin(request, settings) or not hmac.compare_digest(
        form.get("csrf", ""), csrf_token(settings, token)
    ):
        return _message(locale, contact, "forbidden", status_code=403, back=f"../{token}?lang={locale}")
    receipt = await request.app.state.erasure.erase(contact.tenant_id, contact.id, Requester.END_USER)
    return _render("erased.html", locale, contact, receipt=receipt, languages=[])


@router.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
async def favicon() -> Response:
    """Browsers ask for it on every page; there is none, and a 404 would be an error in their console."""
    return Response(status_code=204, headers=HEADERS)


@router.api_route("/my/{anything:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def no_such_page(request: Request, anything: str) -> Response:
    """Any other address under /my/ gets the same 404 as a forged link."""
    return _not_found(request)


def page_locale(request: Request, contact_locale: str, chosen: str | None = None) -> str:
    """`?lang=` (or the form's), then the browser's Accept-Language, then the contact's own."""
    for candidate in (chosen, request.query_params.get("lang")):
        if candidate in SUPPORTED_LOCALES:
            return candidate  # type: ignore[return-value]
    for tag in _accepted_languages(request.headers.get("accept-language", "")):
        if tag in SUPPORTED_LOCALES:
            return tag
    return contact_locale if contact_locale in SUPPORTED_LOCALES else "en"


def _accepted_languages(header: str) -> list[str]:
    """Primary language tags by descending quality ("sv-FI,sv;q=0.9,en;q=0.8" -> sv, sv, en)."""
    ranked = []
    for position, part in enumerate(header[:512].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            ranked.append((-quality, position, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def _same_origin(request: Request, settings: Settings) -> bool:
    """Refuse what the browser says came from another site.

    `Sec-Fetch-Site` decides when present (web content cannot set it). Without it, `Origin` decides,
    except "null": under `Referrer-Policy: no-referrer` browsers send "null" for our own form. Either
    way the link-bound CSRF token must also match.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    base = urlsplit(settings.base_url)
    return origin in {f"{base.scheme}://{base.netloc}", f"{request.url.scheme}://{request.headers.get('host', '')}"}


async def _form(request: Request) -> dict[str, str]:
    """The url-encoded form, read up to `MAX_FORM_BYTES`; anything else reads as empty."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def _formatter(tenant_locale: str, locale: str):  # type: ignore[no-untyped-def]
    try:
        zone = ZoneInfo(ZONES.get(tenant_locale, "Europe/Helsinki"))
    except ZoneInfoNotFoundError:  # a system without time zone data
        zone = None

    def when(moment: datetime) -> str:
        local = moment.astimezone(zone) if zone else moment
        return _FORMATS[locale].format(t=local) + ("" if zone else " UTC")

    return when


def _render(template: str, locale: str, contact: Contact | None, status_code: int = 200, **context: object) -> Response:
    tenant_locale = contact.tenant.default_locale if contact is not None else locale
    html = _templates.get_template(template).render(
        locale=locale,
        t=TEXTS[locale],
        css=CSS,
        languages=context.pop("languages", LANGUAGES),
        when=_formatter(tenant_locale, locale),
        store_name=lambda store: store_name(store, locale),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def _message(locale: str, contact: Contact, key: str, status_code: int, back: str) -> Response:
    t = TEXTS[locale]
    return _render(
        "message.html",
        locale,
        contact,
        status_code=status_code,
        title=t[f"{key}_title"],
        text=t[key],
        back=back,
        languages=[],
    )


def _not_found(request: Request) -> Response:
    """The same page for a forged, expired and erased link: it reveals nothing."""
    locale = page_locale(request, "en")
    t = TEXTS[locale]
    return _render(
        "message.html", locale, None, status_code=404, title=t["not_found_title"], text=t["not_found"], back=None
    )
