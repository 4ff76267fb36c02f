"""The per-request context: settings, plugins, the caller's address, credentials and DataLoaders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from rapidly.audit import service as audit
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.cors import foreign_origin, own_origin
from rapidly.errors import OriginNotAllowed
from rapidly.media import service as media
from rapidly.messaging import outbox
from rapidly.plugins import FieldSpec, PluginRegistry
from rapidly.staff import service as staff_service
from rapidly.staff.models import StaffUser
from rapidly.tenants import origins
from rapidly.tenants.models import Tenant

if TYPE_CHECKING:
    from rapidly.erasure.service import ErasureService
    from rapidly.realtime import EventHub
    from rapidly.schema.fanout import Fanout
    from rapidly.storage import Storage

_UNSET = object()
T = TypeVar("T")


class Loaders:
    """DataLoaders live for one operation (or one subscription event), so caches never go stale.

    Each is made on first use: most operations (a save, a login) need none of them.
    """

    def __init__(self, context: Context) -> None:
        self._context = context

    @cached_property
    def values(self) -> DataLoader:
        return DataLoader(load_fn=lambda ids: self._of_tenant(contacts.values_by_contact, ids))

    @cached_property
    def media(self) -> DataLoader:
        return DataLoader(load_fn=lambda ids: self._of_tenant(media.media_by_contact, ids))

    @cached_property
    def messages(self) -> DataLoader:
        return DataLoader(load_fn=outbox.messages_by_contact)

    @cached_property
    def contacts(self) -> DataLoader:
        return DataLoader(load_fn=contacts.contacts_by_id)

    @cached_property
    def audited_reads(self) -> DataLoader:
        return DataLoader(load_fn=self._context.record_reads)

    async def _of_tenant(
        self, load: Callable[[uuid.UUID, list[uuid.UUID]], Awaitable[list[list[T]]]], contact_ids: list[uuid.UUID]
    ) -> list[list[T]]:
        """A batch of the caller's tenant's contacts' rows: each table's index for them is led by
        the tenant (PostgreSQL before 18 cannot use it without), and no other tenant's row can load."""
        tenant = await self._context.tenant()
        return await load(tenant.id, contact_ids) if tenant is not None else [[] for _ in contact_ids]


@dataclass
class Context(BaseContext):
    settings: Settings
    plugins: PluginRegistry
    hub: EventHub | None
    erasure: ErasureService
    storage: Storage
    client_ip: str
    bearer: str | None
    #: The website a browser sent this from, when it is not Rapidly's own (see `rapidly.cors`).
    origin: str | None = None
    #: The process's live groups, on a WebSocket (`rapidly.schema.fanout`).
    fanout: Fanout | None = None
    _staff: object = field(default=_UNSET, repr=False)
    _contact: object = field(default=_UNSET, repr=False)
    _fields: list[FieldSpec] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__init__()
        self.loaders = Loaders(self)

    def authenticate(self, bearer: str | None) -> None:
        """Use these credentials from now on (a WebSocket's `connection_init`)."""
        self.bearer = bearer
        self._staff = self._contact = _UNSET
        self._fields = None

    def fresh_loaders(self) -> None:
        self.loaders = Loaders(self)

    async def signed_in_until(self) -> datetime | None:
        """When the credentials end, checked again now; None if they have (a long-lived WebSocket
        outlives sessions and tokens). A staff member's: one short query whether the session is
        still live and its tenant still lists the origin (`OriginNotAllowed` otherwise). A contact's
        token: `datetime.max`, no timer: its deletion (erasure, or the purge after it expired) is
        announced (migration 0013), as a session's is."""
        if isinstance(self._staff, StaffUser):
            session = await staff_service.live_session(self.bearer)
            if session is not None and self.origin is not None and self.origin not in session.allowed_origins:
                raise OriginNotAllowed()
            return None if session is None else session.expires_at
        if isinstance(self._contact, Contact):  # read afresh into a local: other checks may run meanwhile
            contact = await contacts.contact_for_token(self.bearer) if self.bearer else None
            if contact is None:
                return None
            origins.require(contact.tenant, self.origin)  # type: ignore[attr-defined]
            self._contact = contact
            return datetime.max.replace(tzinfo=UTC)
        self._staff = self._contact = _UNSET
        if await self.staff() is not None:
            return await self.signed_in_until()
        return datetime.max.replace(tzinfo=UTC) if await self.contact() is not None else None

    def signed_in_as(self) -> tuple[StaffUser | None, Contact | None]:
        """Who the credentials were last found to be (no query): the staff member, or the contact."""
        staff = self._staff if isinstance(self._staff, StaffUser) else None
        contact = self._contact if isinstance(self._contact, Contact) else None
        return staff, contact

    async def read_values(self, contact_id: uuid.UUID) -> list:
        """A contact's values; a staff member's read is recorded in the audit trail (batched)."""
        return await self._audited(self.loaders.values, contact_id)

    async def read_media(self, contact_id: uuid.UUID) -> list:
        """A contact's images, audited like `read_values`."""
        return await self._audited(self.loaders.media, contact_id)

    async def _audited(self, loader: DataLoader, contact_id: uuid.UUID) -> list:
        """A staff member gets what `loader` loads only once the read is in the audit trail; the
        two go to the database side by side (the audit row needs nothing the read returns)."""
        if await self.staff() is None:
            return await loader.load(contact_id)
        _, rows = await asyncio.gather(self.loaders.audited_reads.load(contact_id), loader.load(contact_id))
        return rows

    async def staff(self) -> StaffUser | None:
        """The authenticated staff member, resolved once per request.

        Raises `OriginNotAllowed` when a browser sent the request from a website that the staff
        member's tenant does not list: a credential works from its own tenant's sites only."""
        if self._staff is _UNSET:
            self._staff = await staff_service.staff_for_token(self.bearer) if self.bearer else None
        if self._staff is not None:
            origins.require(self._staff.tenant, self.origin)  # type: ignore[attr-defined]
        return self._staff  # type: ignore[return-value]

    async def contact(self) -> Contact | None:
        """The end user behind a contact token, resolved once per request; `OriginNotAllowed` as
        for `staff()`."""
        if self._contact is _UNSET:
            self._contact = await contacts.contact_for_token(self.bearer) if self.bearer else None
        if self._contact is not None:
            origins.require(self._contact.tenant, self.origin)  # type: ignore[attr-defined]
        return self._contact  # type: ignore[return-value]

    async def tenant(self) -> Tenant | None:
        """The caller's tenant, whoever the caller is."""
        if (staff := await self.staff()) is not None:
            return staff.tenant
        if (contact := await self.contact()) is not None:
            return contact.tenant
        return None

    async def fields(self) -> list[FieldSpec]:
        """The caller's tenant's fields, from its plugin, once per request."""
        if self._fields is None:
            tenant = await self.tenant()
            self._fields = contacts.fields_of(self.plugins, tenant) if tenant else []
        return self._fields

    async def record_reads(self, contact_ids: list[uuid.UUID]) -> list[None]:
        """Batch for `loaders.audited_reads`: one audit row per contact a staff member was shown."""
        staff = await self.staff()
        if staff is not None:
            await audit.record_reads(staff.tenant_id, staff.id, contact_ids)  # type: ignore[attr-defined]
        return [None] * len(contact_ids)


def bearer_token(authorization: object) -> str | None:
    if not isinstance(authorization, str) or not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def get_context(connection: HTTPConnection) -> Context:
    state = connection.app.state
    return Context(
        settings=state.settings,
        plugins=state.plugins,
        hub=getattr(state, "hub", None),
        erasure=state.erasure,
        storage=state.storage,
        client_ip=connection.client.host if connection.client else "unknown",
        # WebSockets authenticate in connection_init only (see RapidlyGraphQLRouter.on_ws_connect).
        bearer=bearer_token(connection.headers.get("authorization")) if connection.scope["type"] == "http" else None,
        origin=foreign_origin(connection.scope, own_origin(state.settings.base_url)),
        fanout=getattr(state, "fanout", None) if connection.scope["type"] == "websocket" else None,
    )
