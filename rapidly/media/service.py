"""Adding a photo to a contact, and reading photos back through short-lived signed URLs.

The upload is read up to its cap, cleaned in a worker thread (at most `CLEANING_AT_ONCE` at a time,
which bounds the memory a burst of uploads can take), then stored in one transaction with the
contact locked: the quota count, the row, the object, the event and the notification commit
together, and an erasure waits for an upload in flight and then removes its object too.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, security, tenancy
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.erasure.erasers import SqlEraser, Target
from rapidly.errors import AuthFailed, InputInvalid
from rapidly.keys import Unreadable, open_sealed, place
from rapidly.keys import service as keys
from rapidly.keys.sealing import SEGMENT, SEGMENTED, SegmentOpener, is_sealed, seal_segmented
from rapidly.media import images
from rapidly.media.models import Media
from rapidly.messaging import service as messaging
from rapidly.notifications import service as notifications
from rapidly.plugins import FieldKind, MessageEvent, PluginRegistry
from rapidly.realtime import EventKind, publish
from rapidly.storage import Storage, contact_prefix, object_key

log = logging.getLogger(__name__)

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
                if not await messaging.queued_lately(conn, contact, MessageEvent.MEDIA_ADDED):
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
        sealed=True,
    )
    key = await keys.ring().key_for_writing(conn, tenant_id, contact_id)
    sealed = seal_segmented(key, image.data, photo_place(tenant_id, contact_id, media.id))
    await storage.put(object_key(tenant_id, contact_id, media.id), sealed, SEALED_TYPE)
    return media


_UNSEALED_PHOTOS = "SELECT id, contact_id FROM media WHERE tenant_id = $1 AND sealed IS NULL ORDER BY id LIMIT $2"
_LOCK_UNSEALED = "SELECT 1 FROM media WHERE id = $1 AND sealed IS NULL FOR UPDATE SKIP LOCKED"


async def seal_existing_photos(storage: Storage, tenant_id: uuid.UUID, batch: int) -> int:
    """Seal up to `batch` of the tenant's photos stored before encryption, one transaction each, each
    object replaced with every earlier version of it deleted; how many. As the tenant.

    The contact's key is made and committed before its photo is replaced: a photo is never sealed
    under a key that a rollback could take away."""
    ring = keys.ring()
    async with db.transaction() as tx:
        _, rows = await tx.execute_query(_UNSEALED_PHOTOS, [tenant_id, batch])
    for row in rows:
        cid, mid = row["contact_id"], row["id"]
        key = await ring.contact_key(tenant_id, cid)
        if key is None:
            async with db.transaction() as tx:
                key = await ring.key_for_writing(tx, tenant_id, cid)
        async with db.transaction() as tx:
            _, locked = await tx.execute_query(_LOCK_UNSEALED, [mid])
            if not locked:  # erased, sealed or being sealed meanwhile
                continue
            object_name = object_key(tenant_id, cid, mid)
            try:
                data = await storage.get(object_name)
            except (KeyError, FileNotFoundError):  # gone already: nothing to seal
                data = None
            if data is not None and not is_sealed(data):
                sealed = seal_segmented(key, data, photo_place(tenant_id, cid, mid))
                await storage.replace(object_name, sealed, SEALED_TYPE)
            await tx.execute_query("UPDATE media SET sealed = true WHERE id = $1", [mid])
    return len(rows)


#: What the object storage is told a photo is: it holds only ciphertext.
SEALED_TYPE = "application/octet-stream"


def photo_place(tenant_id: uuid.UUID, contact_id: uuid.UUID, media_id: uuid.UUID) -> bytes:
    return place("photo", tenant_id, contact_id, str(media_id))


#: A photo's state and its contact's wrapped key, in one round trip that sets the tenant itself.
_PHOTO = db.Routine(
    "rapidly_photo_key",
    params=("uuid", "uuid", "uuid"),
    returns="TABLE (sealed boolean, wrapped bytea)",
    body="""
SELECT m.sealed, k.wrapped
FROM media m LEFT JOIN contact_key k ON k.tenant_id = m.tenant_id AND k.contact_id = m.contact_id
WHERE m.tenant_id = $1 AND m.contact_id = $2 AND m.id = $3
""",
)


#: How much of a photo's object is read at a time while it is served: a few segments (the pieces do
#: not need to line up with them).
SERVED_PIECE = 4 * SEGMENT


async def photo(
    storage: Storage, tenant_id: uuid.UUID, contact_id: uuid.UUID, media_id: uuid.UUID
) -> AsyncIterator[bytes] | None:
    """A photo's image as it is read and opened under its contact's data key, its first piece opened
    already (a photo that does not open from its start is None, not a response cut short); None when
    it, its row or its contact's key is gone. A photo stored before encryption (its row not sealed
    yet) is served as it is until it is sealed; a row sealed is never served but opened.

    The row and the object's first piece are read at once (a photo's first byte waits for the slower
    of the two, not for both): whatever a concurrent sealing or erasure did in between, a sealed
    object is only ever opened, and a plain one served only while its row says it is not sealed. A
    segment further on that does not open ends the response unfinished: what went out before it was
    authentic, and the client sees the photo cut, never a wrong one."""
    name = object_key(tenant_id, contact_id, media_id)
    rows, reading = await asyncio.gather(
        _PHOTO.fetch(tenant_id, contact_id, media_id), _Reading.start(storage, name), return_exceptions=True
    )
    if isinstance(rows, BaseException) or isinstance(reading, BaseException):
        if isinstance(reading, _Reading):  # the row failed: the object's reading is closed, not left to GC
            await reading.close()
        raise rows if isinstance(rows, BaseException) else reading  # type: ignore[misc]
    row = rows[0] if rows else None
    if row is not None and row["sealed"] and reading is not None and not is_sealed(reading.first):
        await reading.close()  # read while it was being sealed: the row came after the new object
        reading = await _Reading.start(storage, name)
    if row is None or reading is None:  # erased, or never was
        if reading is not None:
            await reading.close()
        return None
    if row["sealed"] is None and not is_sealed(reading.first):
        return reading.as_stored()
    if row["wrapped"] is None:  # its key is gone: the contact is erased, whatever objects are left
        await reading.close()
        return None
    where = photo_place(tenant_id, contact_id, media_id)
    try:
        key = await keys.ring().open_contact_key(tenant_id, contact_id, row["wrapped"])
        if reading.first[:1] != SEGMENTED:  # sealed whole, before segments: opened whole
            return _once(open_sealed(key, await reading.whole(), where))
        return await reading.opened(SegmentOpener(key, where), f"photo {media_id} of contact {contact_id}")
    except Unreadable:
        log.error("photo %s of contact %s does not open: not served", media_id, contact_id)
        await reading.close()
        return None
    except BaseException:
        await reading.close()
        raise


async def photo_bytes(
    storage: Storage, tenant_id: uuid.UUID, contact_id: uuid.UUID, media_id: uuid.UUID
) -> bytes | None:
    """A photo's image whole (see `photo`); None also when a segment further on does not open."""
    pieces = await photo(storage, tenant_id, contact_id, media_id)
    try:
        return None if pieces is None else b"".join([piece async for piece in pieces])
    except Unreadable:
        return None


@dataclass(slots=True)
class _Reading:
    """An object being read: its first piece, and the rest to come."""

    first: bytes
    rest: AsyncGenerator[bytes, None]

    @classmethod
    async def start(cls, storage: Storage, name: str) -> _Reading | None:
        pieces = storage.pieces(name, SERVED_PIECE)
        try:
            return cls(await anext(pieces, b""), pieces)  # type: ignore[arg-type]
        except (KeyError, FileNotFoundError):
            return None

    async def close(self) -> None:
        await self.rest.aclose()

    async def whole(self) -> bytes:
        return self.first + b"".join([piece async for piece in self.rest])

    async def as_stored(self) -> AsyncIterator[bytes]:
        try:
            yield self.first
            async for piece in self.rest:
                yield piece
        finally:
            await self.rest.aclose()

    async def opened(self, opener: SegmentOpener, what: str) -> AsyncIterator[bytes]:
        """The plaintext, its first segment opened before this returns."""
        first, ended = opener.feed(self.first), False
        while not first and not ended:
            piece = await anext(self.rest, None)
            first, ended = (opener.end(), True) if piece is None else (opener.feed(piece), False)
        return self._rest_opened(first, opener, ended, what)

    async def _rest_opened(self, first: bytes, opener: SegmentOpener, ended: bool, what: str) -> AsyncIterator[bytes]:
        try:
            yield first
            if ended:
                return
            async for piece in self.rest:
                if opened := opener.feed(piece):
                    yield opened
            yield opener.end()
        except Unreadable:
            log.error("%s does not open further on: its response is cut short", what)
            raise
        finally:
            await self.rest.aclose()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


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


def signed_url(settings: Settings, media: Media) -> str:
    """An expiring, app-signed URL of the photo: the app opens it and serves it (the object storage
    holds ciphertext only, so it cannot serve photos itself)."""
    key = object_key(media.tenant_id, media.contact_id, media.id)  # type: ignore[attr-defined]
    expires = int(time.time()) + settings.media_url_seconds
    signature = url_signature(settings, key, expires, media.content_type)
    query = {"expires": expires, "type": media.content_type, "signature": signature}
    return f"{settings.base_url}/media/{key}?{urlencode(query)}"


def url_signature(settings: Settings, key: str, expires: int, content_type: str) -> str:
    return security.keyed_digest(settings.signing_key, "media", key, str(expires), content_type)


def url_is_valid(settings: Settings, key: str, expires: str, content_type: str, signature: str) -> bool:
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(url_signature(settings, key, int(expires), content_type), signature)
