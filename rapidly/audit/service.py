from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db
from rapidly.audit.models import AuditEvent

CONTACT_READ = "contact.read"
#: An admin's changes to the company's account (`rapidly.staff.admin`).
STAFF_REMOVED = "staff.removed"
STAFF_ROLE_CHANGED = "staff.role_changed"
STAFF_INVITED = "staff.invited"
INVITATION_CANCELLED = "staff.invitation_cancelled"
#: Someone joined by an invitation: the new staff member, and (as the subject) who invited them.
STAFF_JOINED = "staff.joined"
SETTING_CHANGED = "setting.changed"
#: An admin removed a colleague's passkeys (the recovery of a lost one).
PASSKEYS_RESET = "passkey.reset"
#: A staff member proved they hold a mobile number for their notifications, or removed it.
SMS_NUMBER_VERIFIED = "staff.sms_number_verified"
SMS_NUMBER_REMOVED = "staff.sms_number_removed"

#: One round trip that sets the tenant itself (`db.Routine`): every page a staff member reads waits for it.
_RECORD_READS = db.Routine(
    "rapidly_record_reads",
    params=("uuid", "uuid", "uuid[]", "text"),
    returns="TABLE (recorded bigint)",
    body="""
WITH recorded AS (
    INSERT INTO audit_event (id, tenant_id, staff_id, contact_id, action, created_at)
    SELECT gen_random_uuid(), $1, $2, contact_id, $4, now() FROM unnest($3::uuid[]) AS contact_id
    RETURNING 1
)
SELECT count(*) FROM recorded
""",
)


async def record_reads(tenant_id: UUID, staff_id: UUID, contact_ids: Iterable[UUID]) -> None:
    """One `contact.read` row per contact shown to a staff member, in one plain statement (the
    ORM's bulk insert of a page's 50 rows cost more than the insert)."""
    if ids := list(contact_ids):
        await _RECORD_READS.fetch(tenant_id, staff_id, ids, CONTACT_READ)


async def record_change(
    conn: BaseDBAsyncClient, tenant_id: UUID, staff_id: UUID, action: str, subject_id: UUID, detail: str | None = None
) -> None:
    """An admin's change, in the transaction that makes it: who (`staff_id`), what (`action`, and
    `detail`, a name such as the role given), about whom (`subject_id`); the time is the row's."""
    await AuditEvent.create(
        tenant_id=tenant_id, staff_id=staff_id, action=action, subject_id=subject_id, detail=detail, using_db=conn
    )
