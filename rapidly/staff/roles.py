"""Who may run the company's account: the admin check, and the lock every admin change is judged under.

Every admin change is made in one transaction that first locks the company's admins: two admins
demoting or removing each other (or inviting) at the same moment are taken one after the other, the
second judged by what the first left, so a company never ends up without an admin, and an admin
demoted a moment ago changes nothing.
"""

from __future__ import annotations

import uuid

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly.errors import AdminRequired
from rapidly.staff.models import StaffRole, StaffUser

#: NO KEY UPDATE: enough to take admin changes one at a time, and no wait for an admin signing in
#: (a new session's foreign key locks its staff row FOR KEY SHARE).
_LOCK_ADMINS = "SELECT id FROM staff_user WHERE tenant_id = $1 AND role = 'ADMIN' ORDER BY id FOR NO KEY UPDATE"


def require_admin(staff: StaffUser) -> None:
    if staff.role != StaffRole.ADMIN:
        raise AdminRequired()


async def locked_admins(tx: BaseDBAsyncClient, admin: StaffUser) -> set[uuid.UUID]:
    """The company's admins, locked until the transaction ends; `AdminRequired` unless `admin` is
    still one of them (a role taken away a moment ago counts, whatever the session said)."""
    require_admin(admin)
    _, rows = await tx.execute_query(_LOCK_ADMINS, [admin.tenant_id])  # type: ignore[attr-defined]
    admins = {row["id"] for row in rows}
    if admin.id not in admins:
        raise AdminRequired()
    return admins
