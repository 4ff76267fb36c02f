"""Every store that holds contact data, with its eraser. A new store adds its eraser here; the
canary test (tests/erasure/test_canary.py) fails if any table or object keeps a trace."""

from __future__ import annotations

from pathlib import Path

from rapidly.chat.service import ERASER as CHAT_ERASER
from rapidly.config import SMS_TO_FILE, Settings
from rapidly.contacts.service import ERASERS as CONTACT_ERASERS
from rapidly.erasure.erasers import Eraser
from rapidly.erasure.service import ErasureService
from rapidly.keys.service import ERASER as KEY_ERASER
from rapidly.media.service import ERASER as MEDIA_ERASER
from rapidly.media.service import MediaObjects
from rapidly.messaging import channels
from rapidly.messaging.channels import FileSmsEraser
from rapidly.messaging.outbox import ERASER as OUTBOX_ERASER
from rapidly.ratelimit.service import ERASER as RATE_LIMIT_ERASER
from rapidly.realtime.publish import ERASER as EVENT_LOG_ERASER
from rapidly.storage import Storage


def default_erasers(storage: Storage, demo_texts: Path | None = None) -> list[Eraser]:
    """In receipt order. Notifications and audit events are not here: they hold IDs only, and
    notifications then read "(deleted)"."""
    return [
        KEY_ERASER,  # first: whatever happens to the steps after it, the rest is unreadable
        *CONTACT_ERASERS,
        CHAT_ERASER,
        MEDIA_ERASER,
        OUTBOX_ERASER,
        RATE_LIMIT_ERASER,
        EVENT_LOG_ERASER,
        MediaObjects(storage),
        *([FileSmsEraser(demo_texts)] if demo_texts else []),
    ]


def erasure_service(storage: Storage, settings: Settings) -> ErasureService:
    """The service with every store's eraser, journaling to the object storage. The demo's SMS
    file store is one of them when texts go to files (`RAPIDLY_SMS_URL=file:`)."""
    texts = channels.demo_texts(settings) if settings.sms_url == SMS_TO_FILE else None
    return ErasureService(default_erasers(storage, texts), journal=storage)
