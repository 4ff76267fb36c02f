"""A company's own wording of its messages, per event, channel and language, above its plugin's.

What an admin writes is held to exactly the rules of a plugin's template (`validate_template`: no
loops, a few filters, no links of its own, within the lengths), then rendered once with sample
values by the same sandbox and `compose` that send, so a wording that would fail or grow too long is
refused when it is saved, with the reason, and never when a message goes out. The core's part (the
link to the person's own page and the delete button) is appended after the company's words, as for
every message: no wording can remove it. Deleting the company's wording ("reset to default") brings
back its plugin's, which stays beneath it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rapidly import tenancy
from rapidly.errors import InputInvalid
from rapidly.messaging.models import MessageWording
from rapidly.messaging.service import ALWAYS_ON
from rapidly.messaging.templates import BUTTON, Composed, RenderError, compose
from rapidly.plugins import Channel, MessageEvent, MessageTemplate, PluginError, resolve_locale, template_context
from rapidly.plugins.defaults import DEFAULT_TEMPLATES
from rapidly.plugins.manager import PluginRegistry
from rapidly.plugins.validation import validate_template
from rapidly.tenants import service as tenants
from rapidly.tenants.models import Tenant
from rapidly.validation import LOCALES

#: What a preview is rendered with: sample values, never anyone's.
SAMPLE_NAME = {"fi": "Matti Esimerkki", "sv": "Maja Exempel", "en": "Sam Example"}
SAMPLE_PATH = "/c/esimerkki"
SAMPLE_PAGE = "/my/esimerkki"


@dataclass(frozen=True, slots=True)
class Wording:
    event: MessageEvent
    channel: Channel
    locale: str
    template: MessageTemplate
    #: The company's own; otherwise its plugin's (or the core's) default.
    custom: bool


def channels_of(event: MessageEvent) -> tuple[Channel, ...]:
    """The channels a message of `event` can go on: the invitation by email only."""
    return (Channel.EMAIL,) if event in ALWAYS_ON else (Channel.EMAIL, Channel.SMS)


def checked_key(event: str, channel: str, locale: str) -> tuple[MessageEvent, Channel, str]:
    ev, ch = MessageEvent.coerce(event), Channel.coerce(channel)
    if ev is None:
        raise InputInvalid.one("event", "unknown_event", f"Events: {', '.join(e.name for e in MessageEvent)}.")
    if ch is None:
        raise InputInvalid.one("channel", "unknown_channel", "Channels: EMAIL, SMS.")
    if ch not in channels_of(ev):
        raise InputInvalid.one("channel", "staff_email_only", f"{ev.name} is sent by email only.")
    if locale not in LOCALES:
        raise InputInvalid.one("locale", "unknown_locale", f"Languages: {', '.join(LOCALES)}.")
    return ev, ch, locale


def layers(
    plugins: PluginRegistry, tenant: Tenant, event: MessageEvent, channel: Channel, locale: str | None
) -> list[tuple[str, Callable[[], Awaitable[MessageTemplate | None]]]]:
    """Where a message's wording comes from, the first that renders winning: the company's own
    (None when it has none), its plugin's, the core's. Each is read only when the one above failed."""
    resolved = resolve_locale(locale, tenant.default_locale)

    async def company() -> MessageTemplate | None:
        with tenancy.scoped(tenant.id):
            own = await MessageWording.get_or_none(
                tenant_id=tenant.id, event=event.name, channel=channel.value, locale=resolved
            )
        return None if own is None else MessageTemplate(subject=own.subject, body=own.body)

    async def plugin() -> MessageTemplate:
        return plugins.message_template(tenants.tenant_info(tenant), event, channel, resolved)

    async def core() -> MessageTemplate:
        return DEFAULT_TEMPLATES[(event, channel, resolved)]

    return [("company", company), ("plugin", plugin), ("core", core)]


async def all_of(plugins: PluginRegistry, tenant: Tenant) -> list[Wording]:
    """Every message's wording in every language, the company's own marked."""
    with tenancy.scoped(tenant.id):
        own = {(w.event, w.channel, w.locale): w for w in await MessageWording.filter(tenant_id=tenant.id)}
    info = tenants.tenant_info(tenant)
    wordings = []
    for event in MessageEvent:
        for channel in channels_of(event):
            for locale in LOCALES:
                mine = own.get((event.name, channel.value, locale))
                words = (
                    MessageTemplate(subject=mine.subject, body=mine.body)
                    if mine
                    else plugins.message_template(info, event, channel, locale)
                )
                wordings.append(Wording(event, channel, locale, words, mine is not None))
    return wordings


def checked(
    settings_base_url: str,
    tenant: Tenant,
    event: MessageEvent,
    channel: Channel,
    locale: str,
    subject: str | None,
    body: str,
) -> tuple[MessageTemplate, Composed]:
    """The wording as a template, and the message it makes with sample values; `InputInvalid` with
    the reason when it breaks a rule or fails to render within the limits."""
    words = MessageTemplate(subject=" ".join((subject or "").split()) if channel == Channel.EMAIL else None, body=body)
    # The subject on its own first (with a body that passes), so that the problem names its part.
    for field, candidate in (("subject", MessageTemplate(words.subject, "x")), ("body", words)):
        try:
            validate_template("company", candidate, event=event.value, channel=channel, locale=locale)
        except PluginError as exc:
            raise InputInvalid.one(field, "template_invalid", exc.problem) from None
    link = f"{settings_base_url}{SAMPLE_PATH}"
    context = template_context(
        event, tenant_name=tenant.name, link=link, contact_name=SAMPLE_NAME[locale]
    )  # no staff name: messages are sent without one
    own_page = None if event.to_staff else f"{settings_base_url}{SAMPLE_PAGE}"
    try:
        composed = compose(
            words, event=event, channel=channel, locale=locale, context=context, self_service_link=own_page
        )
    except RenderError as exc:
        raise InputInvalid.one("body", "template_invalid", f"The wording cannot be sent: {exc}.") from None
    return words, composed


def button_label(event: MessageEvent, channel: Channel, locale: str) -> str | None:
    """The delete button the core adds to an email to an end user, in its language."""
    return None if event.to_staff or channel != Channel.EMAIL else BUTTON[locale]


async def save(tenant: Tenant, event: MessageEvent, channel: Channel, locale: str, words: MessageTemplate) -> None:
    """The company's wording, replacing the one before (inside the caller's transaction and tenant)."""
    await MessageWording.update_or_create(
        tenant_id=tenant.id,
        event=event.name,
        channel=channel.value,
        locale=locale,
        defaults={"subject": words.subject, "body": words.body},
    )


async def reset(tenant: Tenant, event: MessageEvent, channel: Channel, locale: str) -> None:
    """Back to the default beneath: the company's wording is deleted."""
    await MessageWording.filter(tenant_id=tenant.id, event=event.name, channel=channel.value, locale=locale).delete()
