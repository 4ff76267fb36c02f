"""Publishing an event: one statement writes the log row and queues the NOTIFY.

PostgreSQL sends a notification when (and only when) the transaction that queued it commits, so
an event published inside the caller's transaction reaches listeners exactly when its data is
visible, and a rolled-back write leaves neither a row nor a notification.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly.erasure.erasers import SqlEraser
from rapidly.realtime.events import CHANNEL, ContactEvent, EventKind

#: Two CTEs for a statement that publishes along with its own write: `published` logs one event for
#: each row of a `to_publish (tenant_id, contact_id, kind, ord)` CTE defined before them, in `ord`
#: order, and `notified` queues each one's NOTIFY. The statement must read `notified` (a CTE that
#: writes runs anyway; one that only selects, like this one, runs only when read).
#: `kind` is an EventKind value and the rest are integers, UUIDs and a timestamp: nothing here
#: needs JSON escaping, and nothing but IDs, a kind and a time can end up in the payload.
PUBLISH_CTES = f"""
published AS (
    INSERT INTO contact_event (tenant_id, contact_id, kind, created_at)
    SELECT tenant_id, contact_id, kind, clock_timestamp() FROM to_publish ORDER BY ord
    RETURNING id, tenant_id, contact_id, kind, created_at
), notified AS (
    SELECT published.*, pg_notify(
        '{CHANNEL}',
        format(
            '{{"seq":%s,"t":"%s","c":"%s","k":"%s","at":"%s"}}',
            id, tenant_id, contact_id, kind,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        )
    ) FROM published
)"""  # noqa: S608 -- a module constant; every value comes from the rows

_PUBLISH = f"""
WITH to_publish AS (SELECT $1::uuid AS tenant_id, $2::uuid AS contact_id, $3::text AS kind, 1 AS ord),
{PUBLISH_CTES}
SELECT id, tenant_id, contact_id, kind, created_at FROM notified
"""  # noqa: S608 -- module constants; every value is a bind parameter

#: IDs and kinds only, but they still tell when the contact was active. The DELETED event is
#: published after the erasers run, so it stays (and is pruned with the rest).
ERASER = SqlEraser("contact_events", "DELETE FROM contact_event WHERE tenant_id = $1 AND contact_id = $2")

_PRUNE = "DELETE FROM contact_event WHERE created_at < clock_timestamp() - $1::interval"


async def publish(
    tenant_id: UUID,
    contact_id: UUID,
    kind: EventKind | str,
    *,
    connection: BaseDBAsyncClient | None = None,
) -> ContactEvent:
    """Log the event and notify every process's hub; pass `connection` (from `in_transaction()`)
    to make the event commit, or roll back, with the caller's write."""
    kind = EventKind(kind)
    client = connection or connections.get("default")
    _, rows = await client.execute_query(_PUBLISH, [tenant_id, contact_id, kind.value])
    return ContactEvent.from_row(rows[0])


async def prune(older_than: timedelta = timedelta(hours=1), *, connection: BaseDBAsyncClient | None = None) -> int:
    """Delete log rows older than `older_than`; returns how many. A listener can only resync
    across a disconnection shorter than this."""
    client = connection or connections.get("default")
    removed, _ = await client.execute_query(_PRUNE, [older_than])
    return removed
