"""Writing to the outbox. Every message is bound to one contact and one event and goes to that
contact's own saved address: there is no way to name another recipient."""

from __future__ import annotations

from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly.erasure.erasers import SqlEraser
from rapidly.messaging.models import OutboundMessage
from rapidly.plugins import Channel, MessageEvent

ERASER = SqlEraser("outbound_messages", "DELETE FROM outbound_message WHERE tenant_id = $1 AND contact_id = $2")


async def enqueue(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: UUID,
    contact_id: UUID,
    event: MessageEvent,
    channel: Channel,
    locale: str,
    recipient: str,
    payload: dict[str, str],
) -> OutboundMessage:
    return await OutboundMessage.create(
        using_db=conn,
        tenant_id=tenant_id,
        contact_id=contact_id,
        event=event.value,
        channel=channel.value,
        locale=locale,
        recipient=recipient,
        payload=payload,
    )
