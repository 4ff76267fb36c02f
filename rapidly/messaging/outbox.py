"""Writing to the outbox. Every message is bound to one event and to one contact (or staff member):
there is no operation that takes a list of recipients or an address."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db
from rapidly.erasure.erasers import SqlEraser
from rapidly.messaging.models import AccountMessage, OutboundMessage
from rapidly.plugins import Channel, MessageEvent

ERASER = SqlEraser("outbound_messages", "DELETE FROM outbound_message WHERE tenant_id = $1 AND contact_id = $2")

#: A CTE for a statement that queues messages along with its own write: `enqueued` queues one message
#: for each row of a `to_enqueue (tenant_id, contact_id, staff_id, event, channel, locale, payload,
#: dedupe_key, next_attempt_at)` CTE defined before it, skipping a `dedupe_key` used before.
ENQUEUE_CTE = """
enqueued AS (
    INSERT INTO outbound_message (id, tenant_id, contact_id, staff_id, event, channel, locale, payload, dedupe_key,
                                  status, attempts, next_attempt_at, created_at)
    SELECT gen_random_uuid(), tenant_id, contact_id, staff_id, event, channel, locale, payload, dedupe_key,
           'PENDING', 0, next_attempt_at, now()
    FROM to_enqueue
    ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
    RETURNING id
)"""

_INSERT = f"""
WITH to_enqueue AS (
    SELECT $1::uuid AS tenant_id, $2::uuid AS contact_id, $3::uuid AS staff_id, $4::text AS event, $5::text AS channel,
           $6::text AS locale, $7::jsonb AS payload, $8::text AS dedupe_key, $9::timestamptz AS next_attempt_at
), {ENQUEUE_CTE}
SELECT id FROM enqueued
"""  # noqa: S608 -- module constants; every value is a bind parameter


async def enqueue(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: UUID,
    event: MessageEvent | AccountMessage,
    channel: Channel,
    locale: str,
    contact_id: UUID | None = None,
    staff_id: UUID | None = None,
    payload: dict[str, str] | None = None,
    dedupe_key: str | None = None,
    delay: timedelta = timedelta(0),
) -> UUID | None:
    """Queue one message in the caller's transaction; None when `dedupe_key` was used before."""
    rows = await conn.execute_query_dict(
        _INSERT,
        [
            tenant_id,
            contact_id,
            staff_id,
            event.value,
            channel.value,
            locale,
            json.dumps(payload or {}),
            dedupe_key,
            datetime.now(UTC) + delay,
        ],
    )
    return rows[0]["id"] if rows else None


#: How long a handled message bound to no contact (an invitation, a staff member's code) is kept: its
#: outcome is shown while it matters (an invitation lives 72 hours), then its masked address goes.
ACCOUNT_MESSAGE_DAYS = 30
_PURGE_ACCOUNT_MESSAGES = """
WITH picked AS MATERIALIZED (
    SELECT id FROM outbound_message
    WHERE contact_id IS NULL AND status <> 'PENDING' AND created_at < now() - make_interval(days => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED
)
DELETE FROM outbound_message m USING picked WHERE m.id = picked.id RETURNING 1
"""


async def purge_account_messages() -> int:
    """Handled messages bound to no contact, `ACCOUNT_MESSAGE_DAYS` after they were queued (the
    others go with their contact's erasure)."""
    return await db.delete_in_batches(_PURGE_ACCOUNT_MESSAGES, [ACCOUNT_MESSAGE_DAYS])


async def depth() -> int:
    """Messages waiting to be sent (all tenants; a count, for /metrics)."""
    rows = await connections.get("default").execute_query_dict("SELECT messages FROM rapidly_pending_counts()")
    return rows[0]["messages"]


async def outcomes(tenant_id: UUID, dedupe_keys: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """How the tenant's messages with these dedupe keys fared: (status, short error code) by key."""
    rows = OutboundMessage.filter(tenant_id=tenant_id, dedupe_key__in=list(dedupe_keys))
    return {key: (status, error) for key, status, error in await rows.values_list("dedupe_key", "status", "last_error")}


async def messages_by_contact(contact_ids: Sequence[UUID]) -> list[list[OutboundMessage]]:
    """DataLoader batch: each contact's end-user messages (not the staff's), newest first."""
    grouped: dict[UUID, list[OutboundMessage]] = {cid: [] for cid in contact_ids}
    rows = OutboundMessage.filter(contact_id__in=list(contact_ids), staff_id__isnull=True).order_by("-created_at")
    for row in await rows:
        grouped[row.contact_id].append(row)  # type: ignore[index]
    return [grouped[cid] for cid in contact_ids]
