"""Adding a photo to a contact, and reading photos back through short-lived signed URLs.

The upload is read up to its cap, cleaned in a worker thread (at most `CLEANING_AT_ONCE` at a time,
which bounds the memory a burst of uploads can take), then stored in one transaction with the
contact locked: the quota count, the row, the object, the event and the notification commit
together, and an erasure waits for an upload in flight and then removes its object too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, tenancy
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.erasers import SqlEraser, Target
from rapidly.errors import AuthFailed, InputInvalid
from rapidly.media import images
from rapidly.media.models import Media
from rapidly.messaging import service as messaging
from rapidly.notifications import service as notifications
from rapidly.plugins import FieldKind, MessageEvent, PluginRegistry
from rapidly.realtime import EventKind, publish
from rapidly.storage import Storage, contact_prefix, object_key

#: Images decoded at once per process. A 12-megapixel photo takes ~80 MB while it is cleaned. Its
#: own threads, not the default pool: each thread that decodes keeps a malloc arena of its own.
CLEANING_AT_ONCE = 1
_cleaner = ThreadPoolExecutor(max_workers=CLEANING_AT_ONCE, thread_name_prefix="rapidly-images")
#: Uploads read into memory at once; the others wait in their spooled temporary files, so a burst
#: of uploads cannot hold more than this many files' worth of memory.
READING_AT_ONCE = 4
_reading = asyncio.Semaphore(READING_AT_ONCE)

ERASER = SqlEraser("media", "DELETE FROM media WHERE tenant_id = $1 AND contact_id = $2")


@dataclass(frozen=True, slots=True)
class MediaObjects:
    """The objects in storage: every version of every object under the contact's prefix."""

    storage: Storage
    store: str = "media_objects"
    transactional: bool = False

    async def erase(self, target: Target, conn: object) -> int:
        return await self.storage.delete_prefix(contact_prefix(target.tenant_id, target.contact_id))


#: The field key of photos attached to chat messages (no form field has it: keys are slugs).
CHAT_FIELD = "_chat"
CHAT_PHOTOS_PER_CONTACT = 50


async def upload(
    settings: Settings,
    plugins: PluginRegistry,
    storage: Storage,
    contact: Contact,
    field_key: str,
    read: object,
) -> Media:
    """Clean and store one image for `field_key`. `read(n)` returns at most n bytes of the upload.

    Raises `InputInvalid` (unknown or non-image field, too large, not an image, quota reached) and
    changes nothing then.
    """
    spec = next((f for f in contacts.fields_of(plugins, contact.tenant) if f.key == field_key), None)
    if spec is None:
        raise InputInvalid.one("fieldKey", "unknown_field", "This form has no field with that key.")
    if spec.kind != FieldKind.IMAGE:
        raise InputInvalid.one("fieldKey", "not_an_image_field", "This field does not take images.")
    limits = spec.effective_limits
    image = await clean_upload(settings, read, limits.max_file_bytes)
    tenant_id, contact_id = contact.tenant_id, contact.id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as conn:
            first_save = (await lock_contact(conn, tenant_id, contact_id)).first_save
            media = await store(conn, settings, storage, tenant_id, contact_id, field_key, limits.max_files, image)
            if first_save:
                await notifications.notify_staff(conn, tenant_id, notifications.NEW_CONTACT, contact_id)
                await messaging.to_staff(conn, contact.tenant, MessageEvent.NEW_CONTACT, contact_id)
                await publish(tenant_id, contact_id, EventKind.CREATED, connection=conn)
            else:
                await notifications.notify_staff(conn, tenant_id, notifications.MEDIA_ADDED, contact_id)
                await messaging.to_staff(conn, contact.tenant, MessageEvent.MEDIA_ADDED, contact_id)
            await publish(tenant_id, contact_id, EventKind.MEDIA_ADDED, connection=conn)
    return media


async def clean_upload(
    settings: Settings, read: object, max_bytes: int | None = None, *, field: str = "file"
) -> images.CleanImage:
    """Read an upload up to its cap and clean it (see `images.clean`); `InputInvalid` naming
    `field` otherwise."""
    cap = min(settings.media_max_bytes, max_bytes or settings.media_max_bytes)
    try:
        async with _reading:
            data = await read(cap + 1)  # type: ignore[operator]
            if len(data) > cap:
                raise InputInvalid.one("file", "too_large", f"The file is larger than {cap // (1024 * 1024)} MB.")
            if not data:
                raise InputInvalid.one("file", "empty", "The file is empty.")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_cleaner, images.clean, data, settings.media_max_pixels)
    except InputInvalid as exc:
        raise InputInvalid(*(replace(p, field=field) for p in exc.problems)) from None


@dataclass(frozen=True, slots=True)
class Locked:
    #: This write is the contact's first saved content (it becomes visible to staff).
    first_save: bool
    #: The database's time (one clock for every server process), for what is written under the lock.
    at: datetime


# One round trip: lock the contact, mark it active, and say whether this is its first content.
_LOCK = """
WITH before AS (
    SELECT id, first_saved_at FROM contact WHERE id = $1 AND tenant_id = $2 FOR NO KEY UPDATE
)
UPDATE contact SET updated_at = GREATEST(contact.updated_at, clock_timestamp()),
    first_saved_at = COALESCE(contact.first_saved_at, clock_timestamp())
FROM before WHERE contact.id = before.id
RETURNING before.first_saved_at IS NULL AS first_save, clock_timestamp() AS at
"""


async def lock_contact(conn: BaseDBAsyncClient, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> Locked:
    """Lock the contact for a write and mark it active.

    `AuthFailed` when it is gone (erased since its token was checked).
    """
    rows = await conn.execute_query_dict(_LOCK, [contact_id, tenant_id])
    if not rows:
        raise AuthFailed()
    return Locked(rows[0]["first_save"], rows[0]["at"])


async def store(
    conn: BaseDBAsyncClient,
    settings: Settings,
    storage: Storage,
    tenant_id: uuid.UUID,
    contact_id: uuid.UUID,
    field_key: str,
    max_files: int | None,
    image: images.CleanImage,
) -> Media:
    """Within the caller's transaction, with the contact locked: quotas, the row, the object."""
    # Chat photos and the form's photos have separate quotas: a chat cannot fill up the form.
    counts = await conn.execute_query_dict(
        "SELECT count(*) FILTER (WHERE (field_key = $4) = ($3 = $4)) AS total, "
        "count(*) FILTER (WHERE field_key = $3) AS in_field FROM media WHERE tenant_id = $1 AND contact_id = $2",
        [tenant_id, contact_id, field_key, CHAT_FIELD],
    )
    quota = CHAT_PHOTOS_PER_CONTACT if field_key == CHAT_FIELD else settings.media_per_contact
    if max_files is not None and counts[0]["in_field"] >= max_files:
        raise InputInvalid.one("file", "field_full", f"This field takes at most {max_files} images.")
    if counts[0]["total"] >= quota:
        raise InputInvalid.one("file", "quota", f"At most {quota} images here per contact.")
    media = await Media.create(
        using_db=conn,
        tenant_id=tenant_id,
        contact_id=contact_id,
        field_key=field_key,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size_bytes=len(image.data),
    )
    await storage.put(object_key(tenant_id, contact_id, media.id), image.data, image.content_type)
    return media


async def media_by_contact(tenant_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]) -> list[list[Media]]:
    """DataLoader batch: each of a tenant's contacts' images, oldest first, in one query. Sorted here,
    not by the query: asked for an order its index cannot give, PostgreSQL before 17 may rather read
    the tenant's every photo in index order than look up each contact's."""
    grouped: dict[uuid.UUID, list[Media]] = {cid: [] for cid in contact_ids}
    with tenancy.scoped(tenant_id):
        rows = await Media.filter(tenant_id=tenant_id, contact_id__in=list(contact_ids))
    for row in rows:
        grouped[row.contact_id].append(row)  # type: ignore[attr-defined]
    return [sorted(grouped[cid], key=lambda m: (m.created_at, m.id)) for cid in contact_ids]


async def signed_url(settings: Settings, storage: Storage, media: Media) -> str:
    key = object_key(media.tenant_id, media.contact_id, media.id)  # type: ignore[attr-defined]
    return await storage.signed_url(key, media.content_type, settings.media_url_seconds)
