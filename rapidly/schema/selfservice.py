"""`me`: everything stored about the end user behind a contact token."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from rapidly.contacts import service as contacts
from rapidly.messaging import outbox
from rapidly.plugins import resolve_locale
from rapidly.schema.chat import CHAT_PAGE, ChatMessage, conversation
from rapidly.schema.contacts import FieldKindType
from rapidly.schema.media import Media
from rapidly.schema.messaging import Message
from rapidly.schema.pagination import Connection
from rapidly.selfservice import service


@strawberry.type
class MyValue:
    key: str
    label: str = strawberry.field(description="In my language; the key for a field the form no longer has.")
    kind: FieldKindType | None
    value: JSON = strawberry.field(description="As stored.")
    text: str = strawberry.field(description="As a person reads it: choice labels, yes/no.")
    updated_at: datetime


@strawberry.type
class MyData:
    contact_id: strawberry.ID
    created_at: datetime
    updated_at: datetime
    locale: str
    tenant_name: str
    privacy_policy_url: str | None
    self_service_url: str = strawberry.field(description="My own page: see, download and erase everything.")
    values: list[MyValue]
    media: list[Media] = strawberry.field(description="My photos, oldest first.")
    messages: list[Message] = strawberry.field(description="Messages sent to me, newest first (not their text).")
    contact: strawberry.Private[object]

    @strawberry.field(description="My conversation with the company's staff, oldest first.")
    async def chat_messages(self, first: int | None = CHAT_PAGE, after: str | None = None) -> Connection[ChatMessage]:
        return await conversation(self.contact, first, after, for_staff=False)  # type: ignore[arg-type]


@strawberry.type
class SelfServiceQuery:
    @strawberry.field(description="Contact token: everything stored about me; null without a valid token.")
    async def me(self, info: strawberry.Info, locale: str | None = None) -> MyData | None:
        contact = await info.context.contact()
        if contact is None:
            return None
        data = await service.my_data(info.context.plugins, contact, resolve_locale(locale, contact.locale))
        return MyData(
            contact_id=strawberry.ID(str(data.contact_id)),
            created_at=data.created_at,
            updated_at=data.updated_at,
            locale=data.locale,
            tenant_name=data.tenant_name,
            privacy_policy_url=data.privacy_policy_url,
            self_service_url=contacts.self_service_url(info.context.settings, info.context.bearer or ""),
            values=[
                MyValue(key=v.key, label=v.label, kind=v.kind, value=v.value, text=v.text, updated_at=v.updated_at)  # type: ignore[arg-type]
                for v in data.values
            ],
            media=[Media.of(m) for m in data.media],
            messages=[Message.of(m) for m in (await outbox.messages_by_contact([contact.id]))[0]],
            contact=contact,
        )
