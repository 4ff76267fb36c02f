"""Contacts: the public form, starting a contact, autosave, the staff's view and live events."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from rapidly.contacts import service
from rapidly.contacts.models import Contact as ContactModel
from rapidly.plugins import FieldKind, FieldRole, FieldSpec, resolve_locale
from rapidly.realtime import ContactEvent as Event
from rapidly.realtime import EventKind, SubscriptionOverflow
from rapidly.schema.errors import AuthError, InputInvalidError, NotFoundError, RateLimitedError, returns_errors
from rapidly.schema.media import Media
from rapidly.schema.messaging import Message
from rapidly.schema.pagination import DEFAULT_PAGE, Connection
from rapidly.schema.permissions import CONTACT, OVERFLOW, SESSION_ENDED, TENANT, IsStaff, shared

FieldKindType = strawberry.enum(FieldKind, name="FieldKind")
FieldRoleType = strawberry.enum(FieldRole, name="FieldRole")
EventKindType = strawberry.enum(EventKind, name="ContactEventKind")


@strawberry.type
class Choice:
    value: str
    label: str


@strawberry.type
class FieldLimits:
    max_length: int | None
    min_value: float | None
    max_value: float | None
    max_items: int | None
    max_files: int | None
    max_file_bytes: int | None


@strawberry.type
class FieldDefinition:
    key: str
    kind: FieldKindType
    label: str
    purpose: str = strawberry.field(description="Why the company collects this value.")
    help: str | None
    required: bool
    role: FieldRoleType | None
    choices: list[Choice]
    limits: FieldLimits

    @classmethod
    def of(cls, spec: FieldSpec, locale: str, fallback: str) -> FieldDefinition:
        return cls(
            key=spec.key,
            kind=spec.kind,  # type: ignore[arg-type]
            label=spec.label(locale, fallback),
            purpose=spec.purpose_text(locale, fallback),
            help=spec.help_text(locale, fallback),
            required=spec.required,
            role=spec.role,  # type: ignore[arg-type]
            choices=[Choice(value=c.value, label=c.label(locale, fallback)) for c in spec.choices],
            limits=FieldLimits(**dataclasses.asdict(spec.effective_limits)),
        )


@strawberry.type
class Form:
    tenant_name: str
    privacy_policy_url: str | None
    locale: str
    fields: list[FieldDefinition]


@strawberry.type
class FieldValue:
    key: str
    value: JSON | None = strawberry.field(description="Null once cleared.")
    updated_at: datetime | None


@strawberry.type
class Contact:
    id: strawberry.ID
    created_at: datetime
    updated_at: datetime
    model: strawberry.Private[ContactModel]

    @classmethod
    def of(cls, contact: ContactModel) -> Contact:
        return cls(
            id=strawberry.ID(str(contact.id)),
            created_at=contact.created_at,
            updated_at=contact.updated_at,
            model=contact,
        )

    @strawberry.field(description="From the field whose role is NAME.")
    async def display_name(self, info: strawberry.Info) -> str | None:
        values = await info.context.read_values(self.model.id)
        return service.role_value(values, await info.context.fields(), FieldRole.NAME)

    @strawberry.field
    async def values(self, info: strawberry.Info) -> list[FieldValue]:
        rows = await info.context.read_values(self.model.id)
        return [FieldValue(key=r.key, value=r.value, updated_at=r.updated_at) for r in rows]

    @strawberry.field(description="Messages sent about this contact, newest first: event, channel, status.")
    async def messages(self, info: strawberry.Info) -> list[Message]:
        return [Message.of(m) for m in await info.context.loaders.messages.load(self.model.id)]

    @strawberry.field(description="Photos, oldest first.")
    async def media(self, info: strawberry.Info) -> list[Media]:
        return [Media.of(m) for m in await info.context.read_media(self.model.id)]


@strawberry.type
class ContactSession:
    token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`; keep it secret.")
    self_service_url: str = strawberry.field(description="The end user's own page: see and erase everything.")


@strawberry.type
class FieldSaved:
    value: FieldValue


@strawberry.type
class ContactEvent:
    kind: EventKindType = strawberry.field(metadata=shared())
    contact_id: strawberry.ID = strawberry.field(metadata=shared())
    at: datetime = strawberry.field(metadata=shared())

    @strawberry.field(description="The contact as it is now; null once deleted.")
    async def contact(self, info: strawberry.Info) -> Contact | None:
        if self.kind == EventKind.DELETED:
            return None
        model = await info.context.loaders.contacts.load(uuid.UUID(self.contact_id))
        return Contact.of(model) if model else None

    @classmethod
    def of(cls, event: Event) -> ContactEvent:
        return cls(kind=event.kind, contact_id=strawberry.ID(str(event.contact_id)), at=event.at)  # type: ignore[arg-type]


StartContactResult = Annotated[
    ContactSession | NotFoundError | RateLimitedError, strawberry.union("StartContactResult")
]
SaveFieldResult = Annotated[FieldSaved | InputInvalidError | AuthError, strawberry.union("SaveFieldResult")]


@strawberry.type
class ContactQuery:
    @strawberry.field(
        description="Public: the tenant's name, privacy policy and fields; null for an unknown tenant. From a "
        "browser on another website, that website must be among the tenant's allowed origins."
    )
    async def form(self, info: strawberry.Info, tenant: str, locale: str | None = None) -> Form | None:
        view = await service.form(info.context.plugins, tenant, locale, origin=info.context.origin)
        if view is None:
            return None
        fallback = view.tenant.default_locale
        return Form(
            tenant_name=view.tenant.name,
            privacy_policy_url=view.tenant.privacy_policy_url,
            locale=view.locale,
            fields=[FieldDefinition.of(spec, view.locale, fallback) for spec in view.fields],
        )

    @strawberry.field(
        permission_classes=[IsStaff],
        description="The fields of the signed-in staff's tenant, in `locale` (default: the staff member's).",
    )
    async def fields(self, info: strawberry.Info, locale: str | None = None) -> list[FieldDefinition]:
        staff = await info.context.staff()
        locale = resolve_locale(locale, staff.locale)
        return [FieldDefinition.of(spec, locale, staff.tenant.default_locale) for spec in await info.context.fields()]

    @strawberry.field(
        permission_classes=[IsStaff],
        description="Most recently active first. `search`: only contacts with a value that holds this text "
        "(at least 3 characters, any case; a phone number also as typed without its country code).",
    )
    async def contacts(
        self,
        info: strawberry.Info,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
        search: str | None = None,
    ) -> Connection[Contact]:
        staff = await info.context.staff()
        page = await service.list_contacts(staff.tenant, DEFAULT_PAGE if first is None else first, after, search)
        if search:  # a match tells what a contact's values hold: as good as reading them, and audited so
            await info.context.loaders.audited_reads.load_many([contact.id for contact in page.contacts])
        for contact_id, values in (page.values or {}).items():  # opened by the search already
            info.context.loaders.values.prime(contact_id, values)
        return Connection.of(page.contacts, page.has_next, cursor=service.encode_cursor, node=Contact.of)

    @strawberry.field(permission_classes=[IsStaff], description="Null if absent or another tenant's.")
    async def contact(self, info: strawberry.Info, id: strawberry.ID) -> Contact | None:
        staff = await info.context.staff()
        model = await service.get_contact(staff.tenant_id, id)
        return Contact.of(model) if model else None


@strawberry.type
class ContactMutation:
    @strawberry.mutation(description="Public: a new contact and its token.")
    @returns_errors
    async def start_contact(self, info: strawberry.Info, tenant: str, locale: str | None = None) -> StartContactResult:
        ctx = info.context
        token = await service.start_contact(
            ctx.settings, slug=tenant, locale=locale, client_ip=ctx.client_ip, origin=ctx.origin
        )
        return ContactSession(token=token, self_service_url=service.self_service_url(ctx.settings, token))

    @strawberry.mutation(description="Contact token: store one answer at once. Null or empty clears it.")
    @returns_errors
    async def save_field(self, info: strawberry.Info, key: str, value: JSON | None = None) -> SaveFieldResult:
        ctx = info.context
        saved = await service.save_field(ctx.plugins, ctx.bearer, key, value, origin=ctx.origin)
        return FieldSaved(value=FieldValue(key=saved.key, value=saved.value, updated_at=saved.updated_at))


async def _events(
    info: strawberry.Info, tenant_id: uuid.UUID, contact_id: uuid.UUID | None
) -> AsyncGenerator[ContactEvent, None]:
    """The events of one subscriber that runs its own selection per event (one that reads the
    contact: `rapidly.schema.fanout` runs the others once per group). Its credentials are checked
    again when the database announces that they changed, not per event (`Fanout.watch`)."""
    context = info.context
    async with context.hub.subscribe(tenant_id, contact_id) as events:
        watch, checked, failed = None, asyncio.Event(), []
        checked.set()

        def fail(error: str) -> None:
            failed.append(error)
            events.end(GraphQLError(error))
            checked.set()

        if context.fanout is not None:
            # A staff member's events wait while the check runs; a contact's do not: its own erasure's
            # DELETED event comes after its token's deletion is announced (`CONTACT_GRACE_SECONDS`).
            hold = (checked.clear, checked.set) if contact_id is None else (None, None)
            watch = await context.fanout.watch(context, fail, *hold)
            if watch is None:
                raise GraphQLError(SESSION_ENDED)
        try:
            async for event in events:
                await checked.wait()  # nothing is read for a viewer whose credentials are being checked
                if failed:
                    raise GraphQLError(failed[0])
                context.fresh_loaders()  # each event is read afresh
                if contact_id is not None and event.kind == EventKind.DELETED:
                    yield ContactEvent.of(event)  # the end user's own erasure: the last event there is
                    return
                yield ContactEvent.of(event)
        except SubscriptionOverflow:
            raise GraphQLError(OVERFLOW) from None
        finally:
            if watch is not None:
                context.fanout.unwatch(watch)


@strawberry.type
class ContactSubscription:
    @strawberry.subscription(description="Staff: every change to the tenant's contacts.", metadata=shared(TENANT))
    async def contact_events(self, info: strawberry.Info) -> AsyncGenerator[ContactEvent, None]:
        staff = await info.context.staff()
        if staff is None:
            raise GraphQLError("Staff sign-in required.")
        async for event in _events(info, staff.tenant_id, None):
            yield event

    @strawberry.subscription(
        description="Contact: changes to my own contact, e.g. a photo sent from my phone.", metadata=shared(CONTACT)
    )
    async def my_events(self, info: strawberry.Info) -> AsyncGenerator[ContactEvent, None]:
        contact = await info.context.contact()
        if contact is None:
            raise GraphQLError("Contact token required.")
        async for event in _events(info, contact.tenant_id, contact.id):
            yield event
