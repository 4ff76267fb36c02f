"""A message's words: the tenant's template rendered in a sandbox, then the core's own part.

To every message for an end user the core appends the link to their page and a delete button (HTML
email) or the link (SMS). It is added after the template is rendered, outside the template's reach,
and the template's own text is escaped in the HTML part: no template can remove, hide, restyle or
redirect it. Templates are checked when they are loaded (plugins.validation.check_template_source):
no loops or macros, a few harmless filters, no links of their own.
"""

from __future__ import annotations

import functools
import html
import re
import time
import unicodedata
from dataclasses import dataclass

from jinja2.sandbox import ImmutableSandboxedEnvironment

from rapidly.plugins import Channel, MessageEvent, MessageTemplate

#: Largest rendered subject / body; a template that renders more is cut off and fails.
MAX_SUBJECT = 200
MAX_BODY = {Channel.EMAIL: 8_000, Channel.SMS: 600}
#: A render that takes longer fails (it cannot with the allowed constructs; this is the backstop).
RENDER_SECONDS = 0.25

FOOTER = {
    "fi": "Näet kaikki tietosi ja voit poistaa ne tästä:",
    "sv": "Här ser du alla dina uppgifter och kan radera dem:",
    "en": "See all your data, and delete it, here:",
}
BUTTON = {"fi": "Poista kaikki tietoni", "sv": "Radera alla mina uppgifter", "en": "Delete all my data"}
SMS_FOOTER = {"fi": "Tietosi/poisto:", "sv": "Dina uppgifter/radera:", "en": "Your data/delete:"}


class RenderError(Exception):
    """The template could not be rendered within its limits; the message is not sent."""


@dataclass(frozen=True, slots=True)
class Composed:
    subject: str | None
    text: str
    html: str | None


@functools.cache
def _env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


@functools.lru_cache(maxsize=512)
def _compiled(source: str):  # type: ignore[no-untyped-def]
    return _env().from_string(source)


def render(source: str, context: dict[str, str], limit: int) -> str:
    """Render with a size and a time cap, chunk by chunk."""
    deadline = time.monotonic() + RENDER_SECONDS
    out: list[str] = []
    size = 0
    try:
        for chunk in _compiled(source).generate(**context):
            size += len(chunk)
            if size > limit:
                raise RenderError(f"rendered text longer than {limit} characters")
            if time.monotonic() > deadline:
                raise RenderError("rendering took too long")
            out.append(chunk)
    except RenderError:
        raise
    except Exception as exc:  # a sandbox violation or a template error: the type says enough
        raise RenderError(f"template failed ({type(exc).__name__})") from None
    return "".join(out)


def compose(
    template: MessageTemplate,
    *,
    event: MessageEvent,
    channel: Channel,
    locale: str,
    context: dict[str, str],
    self_service_link: str | None,
) -> Composed:
    """The message to send. `self_service_link` is required for messages to end users."""
    if not event.to_staff and not self_service_link:
        raise ValueError("a message to an end user needs the self-service link")
    subject = None
    if channel == Channel.EMAIL:
        subject = " ".join(render(template.subject or "", context, MAX_SUBJECT).split())
        _no_links_of_its_own(subject, context)
    body = _tidy(render(template.body, context, MAX_BODY[channel]))
    _no_links_of_its_own(body, context)
    if channel == Channel.SMS:
        text = body if event.to_staff else f"{body}\n{SMS_FOOTER[locale]} {self_service_link}"
        return Composed(None, text, None)
    if event.to_staff:
        return Composed(subject, body + "\n", _html(body, locale, None))
    text = f"{body}\n\n--\n{FOOTER[locale]}\n{self_service_link}\n"
    return Composed(subject, text, _html(body, locale, self_service_link))


#: Anything that mail clients and phones would turn into a link, after NFKC folds look-alike
#: characters (full-width colons and slashes) into plain ones.
_LINK_LIKE = re.compile(r"https?:|www\.|//|\b[\w-]+\.[a-z]{2,}/", re.IGNORECASE)
MAX_LINES = {Channel.EMAIL: 60, Channel.SMS: 12}


def _tidy(body: str) -> str:
    """No runs of empty lines to push the core's part out of sight."""
    lines = [line.rstrip() for line in body.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    if len(out) > MAX_LINES[Channel.EMAIL]:
        raise RenderError("too many lines")
    return "\n".join(out)


def _no_links_of_its_own(text: str, context: dict[str, str]) -> None:
    """The rendered text may hold the links the core gave it and no others (a template split into
    pieces can assemble one that the load-time check cannot see)."""
    # The core's link, and the names (what a person typed is theirs, and goes to them).
    for allowed in (
        context.get("link"),
        context.get("tenant_name"),
        context.get("contact_name"),
        context.get("staff_name"),
    ):
        if allowed:
            text = text.replace(allowed, " ")
    if _LINK_LIKE.search(unicodedata.normalize("NFKC", text)):
        raise RenderError("the template wrote a link of its own")


def _html(body: str, locale: str, self_service_link: str | None) -> str:
    """The HTML part: the template's text escaped, paragraph by paragraph, then the core's button."""
    paragraphs = "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in body.split("\n\n") if p.strip())
    footer = ""
    if self_service_link:
        link = html.escape(self_service_link, quote=True)
        footer = (
            '<hr style="border:0;border-top:1px solid #ccc;margin:24px 0">'
            f'<p style="margin:0 0 12px">{html.escape(FOOTER[locale])}</p>'
            f'<p style="margin:0 0 12px"><a href="{link}" style="display:inline-block;background:#a4161a;'
            'color:#ffffff;padding:12px 20px;border-radius:6px;text-decoration:none;font-weight:600">'
            f"{html.escape(BUTTON[locale])}</a></p>"
            f'<p style="margin:0;font-size:13px"><a href="{link}" style="color:#0b5394">{link}</a></p>'
        )
    return (
        f'<!doctype html><html lang="{locale}"><head><meta charset="utf-8"></head>'
        f'<body style="font-family:system-ui,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a">'
        f"{paragraphs}{footer}</body></html>"
    )
