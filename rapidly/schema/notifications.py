"""Staff notifications, worded when read in the reader's language."""

from __future__ import annotations

from datetime import datetime

import strawberry

from rapidly.contacts import service as contacts
from rapidly.notifications import service
from rapidly.notifications.models import Notification as NotificationModel
from rapidly.plugins import FieldRole
from rapidly.schema.contacts import PageInfo
from rapidly.schema.permissions import IsStaff


@strawberry.type
class Notification:
    id: strawberry.ID
    kind: str
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

    @strawberry.field(description='Worded now: an erased contact reads "(deleted)".')
    async def text(self, info: strawberry.Info) -> str:
        staff = await info.context.staff()
        contact = await info.context.loaders.contacts.load(self.model.contact_id)
        name = None
        if contact is not None:
            values = await info.context.loaders.values.load(contact.id)
            name = contacts.role_value(values, await info.context.fields(), FieldRole.NAME)
        return service.render(self.kind, staff.locale, name, erased=contact is None)


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo


@strawberry.type
class NotificationQuery:
    @strawberry.field(permission_classes=[IsStaff], description="The signed-in staff member's, newest first.")
    async def notifications(
        self, info: strawberry.Info, first: int = 20, after: str | None = None, unread_only: bool = False
    ) -> NotificationConnection:
        staff = await info.context.staff()
        page = await service.list_for_staff(staff.id, first, after, unread_only)
        edges = [NotificationEdge(cursor=str(n.id), node=Notification.of(n)) for n in page.notifications]
        return NotificationConnection(
            edges=edges, page_info=PageInfo(has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None)
        )


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(permission_classes=[IsStaff], description="Returns how many were newly marked read.")
    async def mark_notifications_read(self, info: strawberry.Info, ids: list[strawberry.ID]) -> int:
        staff = await info.context.staff()
        return await service.mark_read(staff.id, ids)
