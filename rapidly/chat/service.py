"""Chat: one conversation per contact. Both sides write; each sees the other's messages arrive in
real time (CHAT_MESSAGE), marks them read, and is told by a throttled message when away."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.expressions import Q

from rapidly import db
from rapidly.chat.models import Author, ChatMessage
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.erasers import SqlEraser
from rapidly.errors import InputInvalid, NotFound
from rapidly.keys import Unreadable, open_sealed, place, seal
from rapidly.keys import service as keys
from rapidly.media import service as media
from rapidly.messaging import service as messaging
from rapidly.notifications import service as notifications
from rapidly.plugins import Channel, MessageEvent
from rapidly.ratelimit import service as ratelimit
from rapidly.realtime import EventKind, publish
from rapidly.staff.models import StaffUser
from rapidly.storage import Storage
from rapidly.tenants.models import Tenant

log = logging.getLogger(__name__)

MAX_BODY = 4000
MAX_PAGE = 200
PER_CONTACT = ratelimit.Limit("chat-contact", 60, 3600)
PER_STAFF = ratelimit.Limit("chat-staff", 300, 3600)
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
        key = await keys.ring().key_for_writing(conn, tenant.id, contact.id)
        message_id = uuid.uuid4()
        message = await ChatMessage.create(
            using_db=conn,
            id=message_id,
            tenant_id=tenant.id,
            contact_id=contact.id,
            author=Author.STAFF if staff else Author.CONTACT,
            staff_id=staff.id if staff else None,
            sealed_body=seal(key, text.encode(), body_place(tenant.id, contact.id, message_id)),
            attachment=photo,
            created_at=locked.at,
        )
        message.body = text
        if staff is None:
            if locked.first_save:
                await notifications.notify_staff(conn, tenant.id, notifications.NEW_CONTACT, contact.id)
                await messaging.to_staff(conn, tenant, MessageEvent.NEW_CONTACT, contact.id)
                await publish(tenant.id, contact.id, EventKind.CREATED, connection=conn)
            await notifications.notify_staff(conn, tenant.id, notifications.CHAT_MESSAGE, contact.id)
            if not await messaging.queued_lately(conn, contact, MessageEvent.CHAT_MESSAGE):
                await messaging.to_staff(conn, tenant, MessageEvent.CHAT_MESSAGE, contact.id)
        elif not await messaging.queued_lately(conn, contact, MessageEvent.CHAT_REPLY):
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


async def page(contact: Contact, first: int, after: str | None) -> Page:
    """The conversation, oldest first, keyset-paginated on (created_at, id)."""
    if not 1 <= first <= MAX_PAGE:
        raise InputInvalid.one("first", "out_of_range", f"Ask for 1 to {MAX_PAGE} messages.")
    query = ChatMessage.filter(tenant_id=contact.tenant_id, contact_id=contact.id)  # type: ignore[attr-defined]
    if after is not None:
        at, mid = decode_cursor(after)
        query = query.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=mid))
    rows = await query.order_by("created_at", "id").limit(first + 1).prefetch_related("attachment")
    return Page(await opened(contact, rows[:first]), len(rows) > first)


_UNSEALED_BODIES = """
SELECT id, contact_id, body FROM chat_message WHERE tenant_id = $1 AND sealed_body IS NULL AND body IS NOT NULL
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""


async def seal_existing_bodies(tenant_id: uuid.UUID, batch: int) -> int:
    """Seal up to `batch` of the tenant's messages written before encryption; how many. As the tenant."""
    ring = keys.ring()
    async with db.transaction() as tx:
        _, rows = await tx.execute_query(_UNSEALED_BODIES, [tenant_id, batch])
        contact_keys: dict[uuid.UUID, bytes] = {}
        for row in rows:
            cid = row["contact_id"]
            if cid not in contact_keys:
                contact_keys[cid] = await ring.key_for_writing(tx, tenant_id, cid)
            sealed = seal(contact_keys[cid], row["body"].encode(), body_place(tenant_id, cid, row["id"]))
            await tx.execute_query(
                "UPDATE chat_message SET sealed_body = $2, body = NULL WHERE id = $1", [row["id"], sealed]
            )
    return len(rows)


def body_place(tenant_id: uuid.UUID, contact_id: uuid.UUID, message_id: uuid.UUID) -> bytes:
    return place("chat-body", tenant_id, contact_id, str(message_id))


async def opened(contact: Contact, messages: list[ChatMessage]) -> list[ChatMessage]:
    """The messages with their text opened (in memory only) under the contact's data key. One that
    does not open (altered, or moved from another row) is left out, and logged by its ID only."""
    tenant_id = contact.tenant_id  # type: ignore[attr-defined]
    key = await keys.ring().contact_key(tenant_id, contact.id) if any(m.sealed_body for m in messages) else None
    shown = []
    for message in messages:
        if message.sealed_body is not None:
            if key is None:  # its key is gone: the contact is erased, whatever rows are left
                raise NotFound("No such contact.")
            try:
                message.body = open_sealed(
                    key, bytes(message.sealed_body), body_place(tenant_id, contact.id, message.id)
                ).decode()
            except Unreadable:
                log.error("chat message %s of contact %s does not open: left out", message.id, contact.id)
                continue
        shown.append(message)
    return shown


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
