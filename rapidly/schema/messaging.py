"""Messages: their status for staff and the end user, and the staff's `requestPhoto`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from rapidly.messaging import service
from rapidly.messaging.models import MessageStatus, OutboundMessage
from rapidly.schema.errors import InputInvalidError, NotFoundError, RateLimitedError, returns_errors
from rapidly.schema.media import ChannelType
from rapidly.schema.permissions import IsStaff

MessageStatusType = strawberry.enum(MessageStatus, name="MessageStatus")


@strawberry.type(description="A message sent (or to be sent) about a contact: what and how, never its text.")
class Message:
    id: strawberry.ID
    event: str
    channel: str
    status: MessageStatusType
    masked_recipient: str | None
    error: str | None = strawberry.field(description='Why it failed or was not sent: "smtp_451", "no_address", ...')
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, row: OutboundMessage) -> Message:
        return cls(
            id=strawberry.ID(str(row.id)),
            event=row.event.upper(),
            channel=row.channel.upper(),
            status=row.status,  # type: ignore[arg-type]
            masked_recipient=row.masked_recipient,
            error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
        )


@strawberry.type
class PhotoRequested:
    channel: ChannelType


RequestPhotoResult = Annotated[
    PhotoRequested | NotFoundError | InputInvalidError | RateLimitedError, strawberry.union("RequestPhotoResult")
]


@strawberry.type
class MessagingMutation:
    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Ask a contact of my tenant for a photo: a link to the phone page, sent to the contact's own "
        "saved email or phone.",
    )
    @returns_errors
    async def request_photo(
        self, info: strawberry.Info, contact_id: strawberry.ID, channel: ChannelType
    ) -> RequestPhotoResult:
        staff = await info.context.staff()
        await service.request_photo(info.context.plugins, staff, contact_id, channel)  # type: ignore[arg-type]
        return PhotoRequested(channel=channel)
