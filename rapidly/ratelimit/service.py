"""Fixed-window counters shared by all processes through PostgreSQL."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

from tortoise import connections

from rapidly import db, tenancy
from rapidly.erasure.erasers import SqlEraser
from rapidly.errors import RateLimited

#: Scope for limits that apply before a tenant is known (e.g. login by email).
PLATFORM = tenancy.PLATFORM

ERASER = SqlEraser("rate_limits", "DELETE FROM rate_limit WHERE tenant_id = $1 AND contact_id = $2")

_HIT = """
INSERT INTO rate_limit (key, tenant_id, contact_id, hits, reset_at)
VALUES ($1, $2, $4, 1, now() + make_interval(secs => $3))
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN rate_limit.reset_at <= now() THEN 1 ELSE rate_limit.hits + 1 END,
    reset_at = CASE WHEN rate_limit.reset_at <= now() THEN excluded.reset_at ELSE rate_limit.reset_at END
RETURNING hits, GREATEST(1, CEIL(EXTRACT(EPOCH FROM reset_at - now())))::int AS retry_after
"""


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str
    max_hits: int
    window_seconds: int


async def hit(limit: Limit, key: str, tenant_id: uuid.UUID = PLATFORM, *, contact_id: uuid.UUID | None = None) -> None:
    """Count one attempt; raise `RateLimited` once the window's budget is spent.

    `key` must not be personal data: pass `security.keyed_digest(...)` of an address. Pass
    `contact_id` when the limit counts one contact's actions: erasing the contact removes it.
    Limits on an address or a network are not the contact's to erase (erasing would reset an
    abuse limit); they hold keyed digests only and end with their window.
    """
    with tenancy.as_tenant(tenant_id):  # a platform-wide limit's rows are no tenant's
        rows = await connections.get("default").execute_query_dict(
            _HIT, [f"{limit.scope}:{key}", tenant_id, float(limit.window_seconds), contact_id]
        )
    if rows[0]["hits"] > limit.max_hits:
        raise RateLimited(rows[0]["retry_after"])


async def check(limit: Limit, key: str, tenant_id: uuid.UUID = PLATFORM) -> None:
    """Raise `RateLimited` if the window's budget is already spent, without counting this call."""
    with tenancy.as_tenant(tenant_id):
        rows = await connections.get("default").execute_query_dict(
            "SELECT GREATEST(1, CEIL(EXTRACT(EPOCH FROM reset_at - now())))::int AS retry_after "
            "FROM rate_limit WHERE key = $1 AND reset_at > now() AND hits >= $2",
            [f"{limit.scope}:{key}", limit.max_hits],
        )
    if rows:
        raise RateLimited(rows[0]["retry_after"])


async def clear(limit: Limit, key: str, tenant_id: uuid.UUID = PLATFORM) -> None:
    with tenancy.as_tenant(tenant_id):
        await connections.get("default").execute_query(
            "DELETE FROM rate_limit WHERE key = $1", [f"{limit.scope}:{key}"]
        )


def network_of(address: str) -> str:
    """The unit a per-client limit counts: the IPv4 address, or the IPv6 /64 (one subscriber's LAN)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


_PURGE_EXPIRED = """
WITH picked AS MATERIALIZED (
    SELECT key FROM rate_limit WHERE reset_at <= now() ORDER BY reset_at LIMIT $1 FOR UPDATE SKIP LOCKED)
DELETE FROM rate_limit r USING picked WHERE r.key = picked.key RETURNING 1
"""


async def purge_expired() -> int:
    """Drop finished windows, in batches; run periodically."""
    return await db.delete_in_batches(_PURGE_EXPIRED, [])
