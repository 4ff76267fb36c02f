"""Retention: a tenant with `retention_days` set keeps a contact for that many days after its last
activity; the sweeper then erases it through the same service as every other erasure.

The sweep goes tenant by tenant, reading each one's expired contacts a page at a time along its
(tenant_id, updated_at, id) index, and erases them one by one, each in its own short transaction: a
sweep of thousands holds no lock for longer than one erasure, and one cut off (a crash, SIGKILL)
leaves every erasure it made complete or pending in the ledger, and the rest for the next sweep.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from tortoise import connections

from rapidly import tenancy
from rapidly.erasure.models import Requester
from rapidly.erasure.service import ErasureService
from rapidly.errors import NotFound, for_the_log

log = logging.getLogger(__name__)

_TENANTS = "SELECT id, retention_days FROM tenant WHERE retention_days IS NOT NULL ORDER BY id"
# The next page of a tenant's contacts past its retention, after ($3, $4) in (updated_at, id) order.
_EXPIRED = """
SELECT id, updated_at FROM contact
WHERE tenant_id = $1 AND updated_at < now() - make_interval(days => $2) AND (updated_at, id) > ($3, $4)
ORDER BY updated_at, id
LIMIT $5
"""
_START = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))


async def sweep(erasure: ErasureService, batch: int = 200) -> int:
    """Erase every contact past its tenant's retention; returns how many.

    Each contact is checked again under its lock, so one that became active (or whose tenant
    switched retention off) since it was listed stays; one locked by a save or by another sweeper
    is left to it. One that fails is logged and passed over until the next sweep.
    """
    erased = 0
    conn = connections.get("default")
    for tenant in await conn.execute_query_dict(_TENANTS):
        after = _START
        while True:
            with tenancy.as_tenant(tenant["id"]):
                rows = await conn.execute_query_dict(_EXPIRED, [tenant["id"], tenant["retention_days"], *after, batch])
            for row in rows:
                try:
                    await erasure.erase(tenant["id"], row["id"], Requester.RETENTION, expired_only=True)
                    erased += 1
                except NotFound:  # active again, erased meanwhile, or being erased by another sweeper
                    pass
                except Exception as exc:
                    log.error("retention: erasing contact %s failed: %s", row["id"], for_the_log(exc))
            if len(rows) < batch:
                break
            after = (rows[-1]["updated_at"], rows[-1]["id"])
    return erased
