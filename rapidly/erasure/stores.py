"""Every store that holds contact data, with its eraser. A new store adds its eraser here; the
canary test (tests/erasure/test_canary.py) fails if any table or object keeps a trace."""

from __future__ import annotations

from rapidly.contacts.service import ERASERS as CONTACT_ERASERS
from rapidly.erasure.erasers import Eraser
from rapidly.erasure.service import ErasureService
from rapidly.media.service import ERASER as MEDIA_ERASER
from rapidly.media.service import MediaObjects
from rapidly.messaging.outbox import ERASER as OUTBOX_ERASER
from rapidly.ratelimit.service import ERASER as RATE_LIMIT_ERASER
from rapidly.realtime.publish import ERASER as EVENT_LOG_ERASER
from rapidly.storage import Storage


def default_erasers(storage: Storage) -> list[Eraser]:
    """In receipt order. Notifications and audit events are not here: they hold IDs only, and
    notifications then read "(deleted)"."""
    return [
        *CONTACT_ERASERS,
        MEDIA_ERASER,
        OUTBOX_ERASER,
        RATE_LIMIT_ERASER,
        EVENT_LOG_ERASER,
        MediaObjects(storage),
    ]


def erasure_service(storage: Storage) -> ErasureService:
    """The service with every store's eraser, journaling to the object storage."""
    return ErasureService(default_erasers(storage), journal=storage)
