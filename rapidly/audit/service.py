from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from rapidly.audit.models import AuditEvent

CONTACT_READ = "contact.read"


async def record_reads(tenant_id: UUID, staff_id: UUID, contact_ids: Iterable[UUID]) -> None:
    """One `contact.read` row per contact shown to a staff member, in one statement."""
    events = [
        AuditEvent(tenant_id=tenant_id, staff_id=staff_id, contact_id=cid, action=CONTACT_READ) for cid in contact_ids
    ]
    if events:
        await AuditEvent.bulk_create(events)
