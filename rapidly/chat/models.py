from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Author(StrEnum):
    CONTACT = "CONTACT"
    STAFF = "STAFF"


class ChatMessage(Model):
    """One message of a contact's conversation. `read_at` is set when the other side reads it."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="chat_messages", on_delete=fields.CASCADE)
    contact = fields.ForeignKeyField("rapidly.Contact", related_name="chat_messages", on_delete=fields.CASCADE)
    author = fields.CharEnumField(Author, max_length=10)
    #: The staff member who wrote it (STAFF messages); kept as an ID, no foreign key: a message
    #: outlives a removed staff account.
    staff_id = fields.UUIDField(null=True)
    #: The text, sealed under the contact's data key.
    sealed_body = fields.BinaryField(null=True)
    #: The text of a message written before encryption, until `rapidly keys encrypt-existing` seals it.
    body = fields.TextField(null=True)
    attachment = fields.ForeignKeyField(
        "rapidly.Media", related_name="chat_messages", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField()
    read_at = fields.DatetimeField(null=True)

    class Meta:
        table = "chat_message"
        indexes = (("tenant_id", "contact_id", "created_at", "id"),)
