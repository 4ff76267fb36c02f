from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class MessageStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class OutboundMessage(Model):
    """One message to send, bound to one contact and one event. It holds the recipient and the links
    until it is sent; erasing the contact removes it."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="outbound_messages", on_delete=fields.CASCADE)
    contact_id = fields.UUIDField(null=True, db_index=True)
    event = fields.CharField(max_length=30)
    channel = fields.CharField(max_length=10)
    locale = fields.CharField(max_length=5)
    recipient = fields.CharField(max_length=320)
    #: What the template needs besides the tenant: the event's link and the self-service link.
    payload = fields.JSONField(default=dict)
    status = fields.CharEnumField(MessageStatus, max_length=10, default=MessageStatus.PENDING)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "outbound_message"
        indexes = (("status", "created_at"),)
