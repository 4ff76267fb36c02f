"""Every store that holds contact data, with its eraser. A new store adds its eraser here; the
canary test (tests/erasure/test_canary.py) fails if any table or object keeps a trace."""

from __future__ import annotations

from rapidly.contacts.service import ERASERS as CONTACT_ERASERS
from rapidly.erasure.erasers import Eraser
from rapidly.ratelimit.service import ERASER as RATE_LIMIT_ERASER
from rapidly.realtime.publish import ERASER as EVENT_LOG_ERASER


def default_erasers() -> list[Eraser]:
    """In receipt order. Notifications and audit events are not here: they hold IDs only, and
    notifications then read "(deleted)"."""
    return [*CONTACT_ERASERS, RATE_LIMIT_ERASER, EVENT_LOG_ERASER]
