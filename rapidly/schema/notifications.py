"""Staff notifications, worded when read in the reader's language."""

from __future__ import annotations

from datetime import datetime

import strawberry

from rapidly.contacts import service as contacts
from rapidly.notifications import service
from rapidly.notifications.models import Notification as NotificationModel
from rapidly.plugins import FieldRole, resolve_locale
from rapidly.schema.pagination import DEFAULT_PAGE, Connection
from rapidly.schema.permissions import IsStaff

NotificationKind = strawberry.enum(service.NotificationKind, name="NotificationKind")


@strawberry.type
class Notification:
    id: strawberry.ID
    kind: NotificationKind
    contact_id: strawberry.ID
    created_at: datetime
    read_at: datetime | None
    model: strawberry.Private[NotificationModel]

    @classmethod
    def of(cls, row: NotificationModel) -> Notification:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=row.kind,
            contact_id=strawberry.ID(str(row.contact_id)),
            created_at=row.created_at,
            read_at=row.read_at,
            model=row,
        )

    @strawberry.field(
        description='Worded now, in `locale` (default: the reader\'s): an erased contact reads "(deleted)".'
    )
    async def text(self, info: strawberry.Info, locale: str | None = None) -> str:
        staff = await info.context.staff()
        contact = await info.context.loaders.contacts.load(self.model.contact_id)
        name = None
        if contact is not None:
            values = await info.context.read_values(contact.id)
            name = contacts.role_value(values, await info.context.fields(), FieldRole.NAME)
        return service.render(self.kind, resolve_locale(locale, staff.locale), name, erased=contact is None)


@strawberry.type
class NotificationQuery:
    @strawberry.field(permission_classes=[IsStaff], description="The signed-in staff member's, newest first.")
    async def notifications(
        self,
        info: strawberry.Info,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
        unread_only: bool | None = False,
    ) -> Connection[Notification]:
        staff = await info.context.staff()
        first = DEFAULT_PAGE if first is None else first
        page = await service.list_for_staff(staff.id, first, after, bool(unread_only))
        return Connection.of(page.notifications, page.has_next, cursor=lambda n: str(n.id), node=Notification.of)


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(permission_classes=[IsStaff], description="Returns how many were newly marked read.")
    async def mark_notifications_read(self, info: strawberry.Info, ids: list[strawberry.ID]) -> int:
        staff = await info.context.staff()
        return await service.mark_read(staff.id, ids)
