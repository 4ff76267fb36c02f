"""Chat: one conversation per contact. Both sides write; each sees the other's messages arrive in
real time (CHAT_MESSAGE), marks them read, and is told by a throttled message when away."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from rapidly import db
from rapidly.chat.models import Author, ChatMessage
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.erasers import SqlEraser
from rapidly.errors import InputInvalid, NotFound
from rapidly.media import service as media
from rapidly.messaging import service as messaging
from rapidly.notifications import service as notifications
from rapidly.plugins import Channel, MessageEvent
from rapidly.ratelimit import service as ratelimit
from rapidly.realtime import EventKind, publish
from rapidly.staff.models import StaffUser
from rapidly.storage import Storage
from rapidly.tenants.models import Tenant

MAX_BODY = 4000
MAX_PAGE = 200
PER_CONTACT = ratelimit.Limit("chat-contact", 60, 3600)
PER_STAFF = ratelimit.Limit("chat-staff", 300, 3600)
#: At most one message (email/SMS) per conversation and recipient in this many seconds, however
#: lively the chat: the rest is seen on the page or in the staff's view.
NUDGE_SECONDS = 15 * 60
#: Line breaks and tabs are text; other control characters, and the bidirectional overrides that
#: can make a message display as something else, are refused.
_REFUSED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

ERASER = SqlEraser("chat_messages", "DELETE FROM chat_message WHERE tenant_id = $1 AND contact_id = $2")


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[ChatMessage]
    has_next: bool


def clean_body(body: str) -> str:
    if len(body) > MAX_BODY * 2:
        raise InputInvalid.one("body", "too_long", f"At most {MAX_BODY} characters.")
    text = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InputInvalid.one("body", "empty", "Write something first.")
    if len(text) > MAX_BODY:
        raise InputInvalid.one("body", "too_long", f"At most {MAX_BODY} characters.")
    if _REFUSED.search(text):
        raise InputInvalid.one("body", "invalid_characters", "The message contains characters that are not allowed.")
    return text


async def contact_of_tenant(tenant_id: uuid.UUID, contact_id: str) -> Contact:
    """A visible contact of the staff's tenant, with its tenant; NotFound for an absent or another
    tenant's one."""
    contact = await contacts.get_contact(tenant_id, contact_id)
    if contact is None:
        raise NotFound("No such contact.")
    await contact.fetch_related("tenant")
    return contact


async def send(
    settings: Settings,
    storage: Storage,
    contact: Contact,
    body: str,
    *,
    staff: StaffUser | None = None,
    attachment: object | None = None,
) -> ChatMessage:
    """Add a message to the contact's conversation, from the contact or (with `staff`) from staff.

    `attachment` is an upload's `read(n)`: a photo cleaned and stored like any other.
    """
    text = clean_body(body)
    tenant: Tenant = contact.tenant
    if staff is None:
        await ratelimit.hit(PER_CONTACT, str(contact.id), tenant.id, contact_id=contact.id)
    else:
        await ratelimit.hit(PER_STAFF, str(staff.id), tenant.id)
    image = await media.clean_upload(settings, attachment, field="attachment") if attachment is not None else None
    async with db.transaction() as conn:
        locked = await media.lock_contact(conn, tenant.id, contact.id)
        photo = None
        if image is not None:
            photo = await media.store(conn, settings, storage, tenant.id, contact.id, media.CHAT_FIELD, None, image)
        message = await ChatMessage.create(
            using_db=conn,
            tenant_id=tenant.id,
            contact_id=contact.id,
            author=Author.STAFF if staff else Author.CONTACT,
            staff_id=staff.id if staff else None,
            body=text,
            attachment=photo,
            created_at=locked.at,
        )
        if staff is None:
            if locked.first_save:
                await notifications.notify_staff(conn, tenant.id, notifications.NEW_CONTACT, contact.id)
                await messaging.to_staff(conn, tenant, MessageEvent.NEW_CONTACT, contact.id)
                await publish(tenant.id, contact.id, EventKind.CREATED, connection=conn)
            await notifications.notify_staff(conn, tenant.id, notifications.CHAT_MESSAGE, contact.id)
            if not await _nudged_lately(conn, contact, MessageEvent.CHAT_MESSAGE):
                await messaging.to_staff(conn, tenant, MessageEvent.CHAT_MESSAGE, contact.id)
        elif not await _nudged_lately(conn, contact, MessageEvent.CHAT_REPLY):
            for channel in (Channel.EMAIL, Channel.SMS):
                if messaging.enabled(tenant, MessageEvent.CHAT_REPLY, channel):
                    await messaging.outbox.enqueue(
                        conn,
                        tenant_id=tenant.id,
                        contact_id=contact.id,
                        event=MessageEvent.CHAT_REPLY,
                        channel=channel,
                        locale=contact.locale,
                    )
        await publish(tenant.id, contact.id, EventKind.CHAT_MESSAGE, connection=conn)
    return message


async def _nudged_lately(conn: BaseDBAsyncClient, contact: Contact, event: MessageEvent) -> bool:
    """Whether this conversation queued this kind of message within `NUDGE_SECONDS` (asked with
    the contact locked, so two messages at once cannot both nudge)."""
    rows = await conn.execute_query_dict(
        "SELECT 1 FROM outbound_message WHERE tenant_id = $1 AND contact_id = $2 AND event = $3 "
        "AND created_at > clock_timestamp() - make_interval(secs => $4) LIMIT 1",
        [contact.tenant_id, contact.id, event.value, float(NUDGE_SECONDS)],  # type: ignore[attr-defined]
    )
    return bool(rows)


async def page(contact: Contact, first: int, after: str | None) -> Page:
    """The conversation, oldest first, keyset-paginated on (created_at, id)."""
    if not 1 <= first <= MAX_PAGE:
        raise InputInvalid.one("first", "out_of_range", f"Ask for 1 to {MAX_PAGE} messages.")
    query = ChatMessage.filter(tenant_id=contact.tenant_id, contact_id=contact.id)  # type: ignore[attr-defined]
    if after is not None:
        at, mid = decode_cursor(after)
        query = query.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=mid))
    rows = await query.order_by("created_at", "id").limit(first + 1).prefetch_related("attachment")
    return Page(rows[:first], len(rows) > first)


async def mark_read(contact: Contact, reader: Author) -> int:
    """Mark the other side's messages read; returns how many were unread."""
    other = Author.STAFF if reader == Author.CONTACT else Author.CONTACT
    return await ChatMessage.filter(
        tenant_id=contact.tenant_id,
        contact_id=contact.id,
        author=other,
        read_at__isnull=True,  # type: ignore[attr-defined]
    ).update(read_at=datetime.now(UTC))


def encode_cursor(message: ChatMessage) -> str:
    return base64.urlsafe_b64encode(f"{message.created_at.isoformat()}|{message.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, mid = base64.urlsafe_b64decode(cursor.encode()[:200]).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(mid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InputInvalid.one("after", "invalid_cursor", "This cursor is not valid.") from None
