from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class MessageStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    #: Gave up after the last attempt (visible to staff with its error code).
    FAILED = "FAILED"
    #: Not sent on purpose: switched off, no saved address, or a limit that protects someone else.
    SUPPRESSED = "SUPPRESSED"


class AccountMessage(StrEnum):
    """Messages about a staff member's own account rather than about a contact: worded by the core
    alone (no company's or plugin's wording, no setting switches them off), so not `MessageEvent`s."""

    #: The code that proves a staff member holds the mobile number they gave (`rapidly.staff.reach`).
    SMS_NUMBER_CODE = "sms_number_code"


class OutboundMessage(Model):
    """One message to send, bound to one event and one contact (and, for staff, one staff member).

    No address is stored while it waits: it is read from the contact's own saved value (or the
    staff member's account) when it is sent, so a message can only ever reach that address. Once
    sent, only the masked address is kept and the links are dropped.
    """

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="outbound_messages", on_delete=fields.CASCADE)
    contact_id = fields.UUIDField(null=True, db_index=True)
    #: Set for messages to staff.
    staff_id = fields.UUIDField(null=True)
    event = fields.CharField(max_length=30)
    channel = fields.CharField(max_length=10)
    locale = fields.CharField(max_length=5)
    #: What the template needs besides the tenant: the event's link and the self-service link.
    payload = fields.JSONField(default=dict)
    #: One message per key (e.g. one self-service link per contact and channel).
    dedupe_key = fields.CharField(max_length=120, null=True)
    status = fields.CharEnumField(MessageStatus, max_length=10, default=MessageStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    #: A short code ("smtp_451", "timeout", "limit_recipient"), never a server's message.
    last_error = fields.CharField(max_length=40, null=True)
    #: After sending: "m•••@example.com".
    masked_recipient = fields.CharField(max_length=80, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbound_message"
        unique_together = (("tenant", "dedupe_key"),)
        indexes = (("status", "next_attempt_at"),)


class MessageWording(Model):
    """A company's own wording of one message (event, channel, language), written by its admins in the
    console: above its plugin's wording, which stays the default beneath it ("reset to default" deletes
    the row). Checked as a plugin's template is, and rendered by the same sandbox."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="message_wordings", on_delete=fields.CASCADE)
    event = fields.CharField(max_length=40)
    channel = fields.CharField(max_length=10)
    locale = fields.CharField(max_length=5)
    subject = fields.CharField(max_length=200, null=True)
    body = fields.TextField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "message_wording"
        unique_together = (("tenant", "event", "channel", "locale"),)
