"""Publishing an event: the writer logs it in its own transaction, and it is announced once that commits.

A rolled-back write leaves neither a row nor an announcement, and an event reaches listeners only
after its data is visible. The NOTIFY itself is sent after the commit, by the process's `Announcer`
(`rapidly.realtime.announce` says why).
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, tenancy
from rapidly.erasure.erasers import SqlEraser
from rapidly.realtime.announce import announcer
from rapidly.realtime.events import ContactEvent, EventKind

#: A CTE for a statement that publishes along with its own write: `published` logs one event for
#: each row of a `to_publish (tenant_id, contact_id, kind, ord)` CTE defined before it, in `ord`
#: order, and returns each one's NOTIFY `payload`, for `announcer.announce()` once the statement's
#: transaction has committed (`PAYLOADS` reads them in order).
#: `kind` is an EventKind value and the rest are integers, UUIDs and a timestamp: nothing here
#: needs JSON escaping, and nothing but IDs, a kind and a time can end up in the payload.
PUBLISH_CTES = """
published AS (
    INSERT INTO contact_event (tenant_id, contact_id, kind, created_at)
    SELECT tenant_id, contact_id, kind, clock_timestamp() FROM to_publish ORDER BY ord
    RETURNING id, tenant_id, contact_id, kind, created_at, format(
        '{"seq":%s,"t":"%s","c":"%s","k":"%s","at":"%s"}',
        id, tenant_id, contact_id, kind,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    ) AS payload
)"""

#: The payloads of `published`, in sequence order, as one text[] column.
PAYLOADS = "ARRAY(SELECT payload FROM published ORDER BY id)"

_PUBLISH = f"""
WITH to_publish AS (SELECT $1::uuid AS tenant_id, $2::uuid AS contact_id, $3::text AS kind, 1 AS ord),
{PUBLISH_CTES}
SELECT id, tenant_id, contact_id, kind, created_at, payload FROM published
"""  # noqa: S608 -- module constants; every value is a bind parameter

#: IDs and kinds only, but they still tell when the contact was active. The DELETED event is
#: published after the erasers run, so it stays (and is pruned with the rest).
ERASER = SqlEraser("contact_events", "DELETE FROM contact_event WHERE tenant_id = $1 AND contact_id = $2")

_PRUNE = """
WITH picked AS MATERIALIZED (
    SELECT id FROM contact_event WHERE created_at < clock_timestamp() - $1::interval ORDER BY created_at LIMIT $2)
DELETE FROM contact_event e USING picked WHERE e.id = picked.id RETURNING 1
"""


async def publish(
    tenant_id: UUID,
    contact_id: UUID,
    kind: EventKind | str,
    *,
    connection: BaseDBAsyncClient | None = None,
) -> ContactEvent:
    """Log the event and announce it to every process's hub. Inside `db.transaction()` (pass its
    `connection`) the event commits, or rolls back, with the caller's write, and is announced after
    the commit; elsewhere it is its own statement and is announced at once. Inside an ORM
    transaction not opened by `db.transaction()` it raises RuntimeError (and so rolls back).
    The event is `tenant_id`'s: a transaction must have begun as that tenant (`tenancy.scoped`)."""
    kind = EventKind(kind)
    client = connection or connections.get("default")
    with tenancy.scoped(tenant_id):
        _, rows = await client.execute_query(_PUBLISH, [tenant_id, contact_id, kind.value])
    announce_committed([rows[0]["payload"]])
    return ContactEvent.from_row(rows[0])


def announce_committed(payloads: list[str]) -> None:
    """Announce these logged events once they have committed (`db.on_commit`: refused, and so
    rolled back, inside an ORM transaction not opened by `db.transaction()`)."""
    if payloads:
        db.on_commit(lambda: announcer.announce(payloads))


async def prune(older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete log rows older than `older_than`, in batches; returns how many. A listener can only
    resync across a disconnection shorter than this."""
    return await db.delete_in_batches(_PRUNE, [older_than])
