"""Retention: a tenant with `retention_days` set keeps a contact for that many days after its last
activity; the sweeper then erases it through the same service as every other erasure."""

from __future__ import annotations

import logging

from tortoise import connections

from rapidly.erasure.models import Requester
from rapidly.erasure.service import ErasureService
from rapidly.errors import NotFound, for_the_log

log = logging.getLogger(__name__)

_EXPIRED = """
SELECT c.tenant_id, c.id FROM contact c JOIN tenant t ON t.id = c.tenant_id
WHERE t.retention_days IS NOT NULL AND c.updated_at < now() - make_interval(days => t.retention_days)
  AND c.id <> ALL($2::uuid[])
ORDER BY c.updated_at
LIMIT $1
"""


async def sweep(erasure: ErasureService, batch: int = 200) -> int:
    """Erase every contact past its tenant's retention; returns how many.

    Each contact is checked again under its lock, so one that became active (or whose tenant
    switched retention off) since it was listed stays. One that fails is logged and skipped.
    """
    erased, skipped = 0, []
    while True:
        rows = await connections.get("default").execute_query_dict(_EXPIRED, [batch, skipped])
        for row in rows:
            try:
                await erasure.erase(row["tenant_id"], row["id"], Requester.RETENTION, expired_only=True)
                erased += 1
            except NotFound:  # active again, or erased meanwhile
                skipped.append(row["id"])
            except Exception as exc:
                log.error("retention: erasing contact %s failed: %s", row["id"], for_the_log(exc))
                skipped.append(row["id"])
        if len(rows) < batch:
            return erased
