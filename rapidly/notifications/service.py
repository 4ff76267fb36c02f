"""Staff notifications. Rows hold a kind and a contact ID; the text is worded when read, in the
reader's language, so that after erasure it says "(deleted)" instead of a name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from rapidly import db
from rapidly.errors import InputInvalid
from rapidly.notifications.models import Notification
from rapidly.validation import parse_id


class NotificationKind(StrEnum):
    NEW_CONTACT = "NEW_CONTACT"
    MEDIA_ADDED = "MEDIA_ADDED"
    CHAT_MESSAGE = "CHAT_MESSAGE"


NEW_CONTACT = NotificationKind.NEW_CONTACT
MEDIA_ADDED = NotificationKind.MEDIA_ADDED
CHAT_MESSAGE = NotificationKind.CHAT_MESSAGE
MAX_PAGE = 100
MAX_MARK = 500

_TEXTS = {
    NEW_CONTACT: {"fi": "Uusi yhteydenotto: {name}", "sv": "Ny kontakt: {name}", "en": "New contact: {name}"},
    MEDIA_ADDED: {"fi": "Uusi kuva: {name}", "sv": "Ny bild: {name}", "en": "New photo: {name}"},
    CHAT_MESSAGE: {"fi": "Uusi viesti: {name}", "sv": "Nytt meddelande: {name}", "en": "New message: {name}"},
}
DELETED = {"fi": "(poistettu)", "sv": "(raderad)", "en": "(deleted)"}
UNNAMED = {"fi": "(ei nimeä)", "sv": "(inget namn)", "en": "(no name)"}

_NOTIFY_STAFF = """
INSERT INTO notification (id, tenant_id, staff_id, kind, contact_id, created_at)
SELECT gen_random_uuid(), tenant_id, id, $2, $3, now() FROM staff_user WHERE tenant_id = $1
"""


@dataclass(frozen=True, slots=True)
class Page:
    notifications: list[Notification]
    has_next: bool


async def notify_staff(conn: BaseDBAsyncClient, tenant_id: uuid.UUID, kind: str, contact_id: uuid.UUID) -> None:
    """One notification per staff member of the tenant, in the caller's transaction."""
    await conn.execute_query(_NOTIFY_STAFF, [tenant_id, kind, contact_id])


def render(kind: str, locale: str, name: str | None, *, erased: bool) -> str:
    """The notification's text for a reader in `locale`; `name` is the contact's current name."""
    texts = _TEXTS.get(kind, {})
    template = texts.get(locale) or texts.get("en", kind)
    shown = DELETED.get(locale, DELETED["en"]) if erased else name or UNNAMED.get(locale, UNNAMED["en"])
    return template.format(name=shown)


async def list_for_staff(staff_id: uuid.UUID, first: int, after: str | None, unread_only: bool) -> Page:
    """Newest first, keyset-paginated on (created_at, id)."""
    if not 1 <= first <= MAX_PAGE:
        raise InputInvalid.one("first", "out_of_range", f"Ask for 1 to {MAX_PAGE} notifications.")
    query = Notification.filter(staff_id=staff_id)
    if unread_only:
        query = query.filter(read_at__isnull=True)
    if after is not None:
        anchor = await Notification.get_or_none(id=parse_id(after), staff_id=staff_id)
        if anchor is None:
            raise InputInvalid.one("after", "invalid_cursor", "This cursor is not valid.")
        query = query.filter(Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, id__lt=anchor.id))
    rows = await query.order_by("-created_at", "-id").limit(first + 1)
    return Page(notifications=rows[:first], has_next=len(rows) > first)


async def unread_count(staff_id: uuid.UUID, limit: int = 1000) -> int:
    """How many of the staff member's notifications are unread, counted up to `limit` (a badge says
    "999+" long before that)."""
    async with db.connection() as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM notification WHERE staff_id = $1 AND read_at IS NULL LIMIT $2) n",
            staff_id,
            limit,
        )


async def mark_read(staff_id: uuid.UUID, ids: Sequence[str]) -> int:
    """Mark the staff member's own unread notifications read; returns how many changed.

    IDs that are malformed, unknown or someone else's are ignored, so the answer reveals nothing.
    """
    if len(ids) > MAX_MARK:
        raise InputInvalid.one("ids", "too_many", f"Mark at most {MAX_MARK} at a time.")
    wanted = [u for u in map(parse_id, ids) if u is not None]
    if not wanted:
        return 0
    return await Notification.filter(staff_id=staff_id, id__in=wanted, read_at__isnull=True).update(
        read_at=datetime.now(UTC)
    )
