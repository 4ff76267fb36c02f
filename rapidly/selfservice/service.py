"""Everything stored about one contact, labelled in the end user's language. One builder feeds the
`me` query, the self-service page and `export.json`, so the three can never disagree.

As media, chat and messages land, each adds its section here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from rapidly import tenancy
from rapidly.chat import service as chat_service
from rapidly.chat.models import ChatMessage
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.media.models import Media
from rapidly.media.service import CHAT_FIELD
from rapidly.plugins import FieldKind, FieldSpec, PluginRegistry
from rapidly.tenants.models import Tenant

YES = {"fi": "Kyllä", "sv": "Ja", "en": "Yes"}
CHAT_LABEL = {"fi": "Keskustelu", "sv": "Chatt", "en": "Chat"}
NO = {"fi": "Ei", "sv": "Nej", "en": "No"}


@dataclass(frozen=True, slots=True)
class LabelledValue:
    key: str
    label: str
    kind: FieldKind | None
    #: As stored (JSON).
    value: object
    #: As a person reads it: choice labels, yes/no, lists joined.
    text: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MyData:
    contact_id: UUID
    created_at: datetime
    updated_at: datetime
    locale: str
    tenant_name: str
    privacy_policy_url: str | None
    values: list[LabelledValue]
    media: list[Media]
    #: Field key -> label, for the media's fields.
    labels: dict[str, str]
    #: The whole conversation, oldest first.
    chat: list[ChatMessage]


async def my_data(plugins: PluginRegistry, contact: Contact, locale: str) -> MyData:
    """The contact's data in `locale`. Values of fields the plugin no longer defines are shown too,
    under their key: the end user sees everything that is stored, not just what the form asks today."""
    tenant: Tenant = contact.tenant
    specs = {spec.key: spec for spec in contacts.fields_of(plugins, tenant)}
    order = {key: i for i, key in enumerate(specs)}
    with tenancy.scoped(tenant.id):  # the contact's tenant: its rows, and only its rows, are visible
        values = await contacts.values_of(contact)
        # Chat photos belong to the conversation, where they are shown.
        media = (
            await Media.filter(contact_id=contact.id, tenant_id=tenant.id)
            .exclude(field_key=CHAT_FIELD)
            .order_by("created_at", "id")
        )
        chat = await chat_service.opened(
            contact, await ChatMessage.filter(contact_id=contact.id, tenant_id=tenant.id).order_by("created_at", "id")
        )
    rows = sorted(values, key=lambda r: (order.get(r.key, len(order)), r.key))
    fallback = tenant.default_locale
    return MyData(
        contact_id=contact.id,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        locale=locale,
        tenant_name=tenant.name,
        privacy_policy_url=tenant.privacy_policy_url,
        values=[_labelled(row, specs.get(row.key), locale, fallback) for row in rows],
        media=media,
        labels={
            CHAT_FIELD: CHAT_LABEL.get(locale, "Chat"),
            **{k: spec.label(locale, fallback) for k, spec in specs.items()},
        },
        chat=chat,
    )


def _labelled(row: contacts.SavedValue, spec: FieldSpec | None, locale: str, fallback: str) -> LabelledValue:
    if spec is None:
        return LabelledValue(row.key, row.key, None, row.value, _plain(row.value), row.updated_at)
    return LabelledValue(
        key=row.key,
        label=spec.label(locale, fallback),
        kind=spec.kind,
        value=row.value,
        text=display_text(spec, row.value, locale, fallback),
        updated_at=row.updated_at,
    )


def display_text(spec: FieldSpec, value: object, locale: str, fallback: str) -> str:
    labels = {c.value: c.label(locale, fallback) for c in spec.choices}
    match spec.kind:
        case FieldKind.BOOLEAN:
            return (YES if value else NO).get(locale, YES["en"] if value else NO["en"])
        case FieldKind.CHOICE:
            return labels.get(str(value), str(value))
        case FieldKind.MULTI_CHOICE if isinstance(value, list):
            return ", ".join(labels.get(str(v), str(v)) for v in value)
    return _plain(value)


def _plain(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export(data: MyData, media_urls: list[str]) -> dict:
    """The portable copy (`export.json`): stored values as stored, with labels for reading, and the
    photos as short-lived links. The page's own link is left out: the file may be handed on, and
    the link would let its holder erase everything."""
    return {
        "exportedBy": "Rapidly",
        "company": {"name": data.tenant_name, "privacyPolicyUrl": data.privacy_policy_url},
        "contact": {
            "id": str(data.contact_id),
            "createdAt": data.created_at.isoformat(),
            "updatedAt": data.updated_at.isoformat(),
            "locale": data.locale,
        },
        "values": [
            {"key": v.key, "label": v.label, "value": v.value, "updatedAt": v.updated_at.isoformat()}
            for v in data.values
        ],
        "photos": [
            {
                "id": str(m.id),
                "field": m.field_key,
                "label": data.labels.get(m.field_key, m.field_key),
                "contentType": m.content_type,
                "width": m.width,
                "height": m.height,
                "createdAt": m.created_at.isoformat(),
                "downloadUrl": url,
            }
            for m, url in zip(data.media, media_urls, strict=True)
        ],
        "chat": [
            {
                "id": str(c.id),
                "author": c.author.value,
                "body": c.body,
                "photoId": str(c.attachment_id) if c.attachment_id else None,  # type: ignore[attr-defined]
                "createdAt": c.created_at.isoformat(),
                "readAt": c.read_at.isoformat() if c.read_at else None,
            }
            for c in data.chat
        ],
    }
