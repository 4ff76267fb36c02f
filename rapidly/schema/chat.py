"""Chat: `chatMessages`, `sendChatMessage`, `markChatRead`; the end user's thread is on `me`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.file_uploads import Upload

from rapidly.chat import service
from rapidly.chat.models import Author
from rapidly.chat.models import ChatMessage as ChatMessageModel
from rapidly.contacts.models import Contact
from rapidly.errors import AuthFailed, NotFound
from rapidly.schema.errors import AuthError, InputInvalidError, NotFoundError, RateLimitedError, returns_errors
from rapidly.schema.media import Media
from rapidly.schema.pagination import Connection

AuthorType = strawberry.enum(Author, name="ChatAuthor")
CHAT_PAGE = 50


@strawberry.type
class ChatMessage:
    id: strawberry.ID
    body: str
    author: AuthorType
    staff_id: strawberry.ID | None = strawberry.field(description="The staff member who wrote it (STAFF messages).")
    created_at: datetime
    read_at: datetime | None = strawberry.field(description="When the other side read it.")
    attachment: Media | None

    @classmethod
    def of(cls, row: ChatMessageModel, *, for_staff: bool = True) -> ChatMessage:
        photo = row.attachment  # prefetched
        return cls(
            id=strawberry.ID(str(row.id)),
            body=row.body,
            author=row.author,  # type: ignore[arg-type]
            staff_id=strawberry.ID(str(row.staff_id)) if row.staff_id and for_staff else None,
            created_at=row.created_at,
            read_at=row.read_at,
            attachment=Media.of(photo) if photo else None,  # type: ignore[arg-type]
        )


@strawberry.type
class ChatMessageSent:
    chat_message: ChatMessage


SendChatMessageResult = Annotated[
    ChatMessageSent | InputInvalidError | NotFoundError | AuthError | RateLimitedError,
    strawberry.union("SendChatMessageResult"),
]


async def conversation(
    contact: Contact, first: int | None, after: str | None, *, for_staff: bool = True
) -> Connection[ChatMessage]:
    """A page of the conversation; the end user's copy does not show which staff member wrote."""
    page = await service.page(contact, CHAT_PAGE if first is None else first, after)
    return Connection.of(
        page.messages,
        page.has_next,
        cursor=service.encode_cursor,
        node=lambda m: ChatMessage.of(m, for_staff=for_staff),
    )


async def _whose(info: strawberry.Info, contact_id: strawberry.ID | None) -> tuple[Contact, object | None]:
    """(the conversation's contact, the staff member or None): staff name the contact, the end
    user's token implies it."""
    staff = await info.context.staff()
    if staff is not None:
        if contact_id is None:
            raise NotFound("No such contact.")
        return await service.contact_of_tenant(staff.tenant_id, contact_id), staff
    contact = await info.context.contact()
    if contact is None:
        raise AuthFailed()
    if contact_id is not None and contact_id != str(contact.id):
        raise NotFound("No such contact.")
    return contact, None


@strawberry.type
class ChatQuery:
    @strawberry.field(description="Staff: a contact's conversation, oldest first; null if absent or another tenant's.")
    async def chat_messages(
        self, info: strawberry.Info, contact_id: strawberry.ID, first: int | None = CHAT_PAGE, after: str | None = None
    ) -> Connection[ChatMessage] | None:
        staff = await info.context.staff()
        if staff is None:
            return None
        try:
            contact = await service.contact_of_tenant(staff.tenant_id, contact_id)
        except NotFound:
            return None
        await info.context.loaders.audited_reads.load(contact.id)
        return await conversation(contact, first, after)


@strawberry.type
class ChatMutation:
    @strawberry.mutation(
        description="Write in a contact's conversation: staff give `contactId`; the end user's token implies it. "
        "An optional photo (multipart request, `Rapidly-Upload: 1`)."
    )
    @returns_errors
    async def send_chat_message(
        self,
        info: strawberry.Info,
        body: str,
        contact_id: strawberry.ID | None = None,
        attachment: Upload | None = None,
    ) -> SendChatMessageResult:
        contact, staff = await _whose(info, contact_id)
        ctx = info.context
        read = attachment.read if attachment is not None else None  # type: ignore[attr-defined]
        try:
            message = await service.send(ctx.settings, ctx.storage, contact, body, staff=staff, attachment=read)  # type: ignore[arg-type]
        except AuthFailed:
            if staff is not None:  # erased meanwhile: for staff, simply not there
                raise NotFound("No such contact.") from None
            raise
        await message.fetch_related("attachment")
        return ChatMessageSent(chat_message=ChatMessage.of(message, for_staff=staff is not None))

    @strawberry.mutation(description="Mark the other side's messages read; returns how many were unread.")
    async def mark_chat_read(self, info: strawberry.Info, contact_id: strawberry.ID | None = None) -> int:
        try:
            contact, staff = await _whose(info, contact_id)
        except (NotFound, AuthFailed):
            return 0
        return await service.mark_read(contact, Author.STAFF if staff else Author.CONTACT)
