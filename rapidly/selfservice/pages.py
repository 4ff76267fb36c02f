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
import re
from datetime import datetime
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from rapidly import security
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.models import Requester
from rapidly.errors import InputInvalid, NotFound
from rapidly.media import service as media
from rapidly.plugins import SUPPORTED_LOCALES, FieldKind
from rapidly.selfservice import service
from rapidly.selfservice.texts import LANGUAGE_NAMES, TEXTS, store_name

#: The delete form is two short fields; anything longer is not ours.
MAX_FORM_BYTES = 4096
#: Photos one submit of the phone page may carry.
MAX_FILES_PER_SUBMIT = 10
CSS = files("rapidly.selfservice").joinpath("style.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
_CSRF = re.compile(r"[0-9a-f]{64}")
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Times are shown in the tenant's own country's zone, with its abbreviation.
ZONES = {"fi": "Europe/Helsinki", "sv": "Europe/Stockholm", "en": "Europe/Helsinki"}
_FORMATS = {
    "fi": "{t.day}.{t.month}.{t.year} klo {t:%H.%M %Z}",
    "sv": "{t:%Y-%m-%d} kl. {t:%H:%M %Z}",
    "en": "{t.day} {t:%b %Y, %H:%M %Z}",
}

_templates = Environment(
    loader=PackageLoader("rapidly.selfservice", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

LANGUAGES = list(LANGUAGE_NAMES.items())

router = APIRouter()


#: No scripts at all; the one stylesheet by its hash; images from here only (photos are served by
#: Rapidly, opened under their contact's key).
CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def csrf_token(settings: Settings, token: str, purpose: str = "self-service-erase") -> str:
    """Bound to this link: an HMAC of the link's token, so it is useless with any other link."""
    return security.keyed_digest(settings.signing_key, purpose, security.hash_token(token))


def _csrf_ok(request: Request, settings: Settings, presented: str, token: str, purpose: str) -> bool:
    return (
        _same_origin(request, settings)
        and _CSRF.fullmatch(presented) is not None
        and hmac.compare_digest(presented.encode(), csrf_token(settings, token, purpose).encode())
    )


@router.api_route("/my/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def my_page(request: Request, token: str) -> Response:
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    locale = page_locale(request, contact.locale)
    data = await service.my_data(request.app.state.plugins, contact, locale)
    return _render(
        request,
        "my.html",
        locale,
        contact,
        data=data,
        photos=list(zip(data.media, await _media_urls(request, data.media), strict=True)),
        token=token,
        csrf=csrf_token(request.app.state.settings, token),
    )


@router.api_route("/my/{token}/export.json", methods=["GET", "HEAD"], include_in_schema=False)
async def export_json(request: Request, token: str) -> Response:
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    data = await service.my_data(request.app.state.plugins, contact, page_locale(request, contact.locale))
    body = json.dumps(service.export(data, await _media_urls(request, data.media)), ensure_ascii=False, indent=2)
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
    if not _csrf_ok(request, request.app.state.settings, form.get("csrf", ""), token, "self-service-erase"):
        return _message(request, locale, contact, "forbidden", status_code=403, back=f"../{token}?lang={locale}")
    try:
        receipt = await request.app.state.erasure.erase(contact.tenant_id, contact.id, Requester.END_USER)
    except NotFound:  # purged between the token check and the erasure
        return _not_found(request)
    return _render(request, "erased.html", locale, contact, receipt=receipt, languages=[])


@router.api_route("/continue/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def continue_page(request: Request, token: str) -> Response:
    """The phone's page: the tenant's image fields, each with a camera button, and what is there."""
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    return await _continue(request, token, contact, page_locale(request, contact.locale))


@router.post("/continue/{token}/upload", include_in_schema=False)
async def continue_upload(request: Request, token: str) -> Response:
    """Adds the photos through the same media service as `uploadMedia`; then back to the page."""
    contact = await contacts.contact_for_token(token)
    if contact is None:
        return _not_found(request)
    settings: Settings = request.app.state.settings
    try:
        form = await request.form(max_files=MAX_FILES_PER_SUBMIT, max_fields=10)
    except MultiPartException:  # malformed, too many parts (an oversized body is the middleware's 413)
        form = None
    fields = {k: v for k, v in (form or {}).items() if isinstance(v, str)}
    locale = page_locale(request, contact.locale, fields.get("lang"))
    if form is None or not _csrf_ok(request, settings, fields.get("csrf", ""), token, "continue-upload"):
        return _message(request, locale, contact, "forbidden", status_code=403, back=f"../{token}?lang={locale}")
    uploads = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename is not None]
    added, problem = 0, None
    try:
        if not uploads:
            raise InputInvalid.one("file", "no_file", "Choose a photo first.")
        for upload in uploads:
            await media.upload(
                settings,
                request.app.state.plugins,
                request.app.state.storage,
                contact,
                fields.get("field", ""),
                upload.read,
            )
            added += 1
    except InputInvalid as exc:
        problem = exc.problems[0].code
    finally:
        await form.close()
    if problem is not None:
        return await _continue(request, token, contact, locale, problem=problem, added=added, status_code=400)
    return RedirectResponse(f"../{token}?lang={locale}&added={added}", status_code=303, headers=HEADERS)


@router.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
async def favicon() -> Response:
    """Browsers ask for it on every page; there is none, and a 404 would be an error in their console."""
    return Response(status_code=204, headers=HEADERS)


@router.api_route("/my/{anything:path}", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/continue/{anything:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def no_such_page(request: Request, anything: str) -> Response:
    """Any other address under /my/ or /continue/ gets the same 404 as a forged link."""
    return _not_found(request)


async def _continue(
    request: Request,
    token: str,
    contact: Contact,
    locale: str,
    *,
    problem: str | None = None,
    added: int | None = None,
    status_code: int = 200,
) -> Response:
    data = await service.my_data(request.app.state.plugins, contact, locale)
    image_fields = [
        spec for spec in contacts.fields_of(request.app.state.plugins, contact.tenant) if spec.kind == FieldKind.IMAGE
    ]
    fallback = contact.tenant.default_locale
    if added is None and (shown := request.query_params.get("added", "")).isdigit():
        added = min(int(shown), MAX_FILES_PER_SUBMIT)
    urls = await _media_urls(request, data.media)
    return _render(
        request,
        "continue.html",
        locale,
        contact,
        status_code=status_code,
        data=data,
        token=token,
        csrf=csrf_token(request.app.state.settings, token, "continue-upload"),
        fields=[
            {
                "key": spec.key,
                "label": spec.label(locale, fallback),
                "purpose": spec.purpose_text(locale, fallback),
                "photos": [url for m, url in zip(data.media, urls, strict=True) if m.field_key == spec.key],
            }
            for spec in image_fields
        ],
        problem=TEXTS[locale].get(f"upload_{problem}", TEXTS[locale]["upload_failed"]) if problem else None,
        added=added,
        saved_count=len(data.values),
    )


async def _media_urls(request: Request, items: list) -> list[str]:
    return [media.signed_url(request.app.state.settings, m) for m in items]


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


def _render(
    request: Request, template: str, locale: str, contact: Contact | None, status_code: int = 200, **context: object
) -> Response:
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
    headers = {**HEADERS, "Content-Security-Policy": CSP}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _message(request: Request, locale: str, contact: Contact, key: str, status_code: int, back: str) -> Response:
    t = TEXTS[locale]
    return _render(
        request,
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
        request, "message.html", locale, None, 404, title=t["not_found_title"], text=t["not_found"], back=None
    )
