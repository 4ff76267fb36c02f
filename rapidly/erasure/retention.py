"""Retention: a tenant with `retention_days` set keeps a contact for that many days after its last
activity; the sweeper then erases it through the same service as every other erasure."""

from __future__ import annotations

from tortoise import connections

from rapidly.erasure.models import Requester
from rapidly.erasure.service import ErasureService

_EXPIRED = """
SELECT c.tenant_id, c.id FROM contact c JOIN tenant t ON t.id = c.tenant_id
WHERE t.retention_days IS NOT NULL AND c.updated_at < now() - make_interval(days => t.retention_days)
ORDER BY c.updated_at
LIMIT $1
"""

MIN_DAYS = 1
MAX_DAYS = 3650


async def sweep(erasure: ErasureService, batch: int = 200) -> int:
    """Erase every contact past its tenant's retention; returns how many."""
    erased = 0
    while True:
        rows = await connections.get("default").execute_query_dict(_EXPIRED, [batch])
        for row in rows:
            await erasure.erase(row["tenant_id"], row["id"], Requester.RETENTION)
        erased += len(rows)
        if len(rows) < batch:
            return erased
