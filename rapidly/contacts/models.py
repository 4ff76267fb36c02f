from tortoise import fields
from tortoise.models import Model


class Contact(Model):
    """An end user of a tenant; everything stored about them hangs off this row."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="contacts", on_delete=fields.CASCADE)
    locale = fields.CharField(max_length=5)
    created_at = fields.DatetimeField(auto_now_add=True)
    #: Last activity; staff lists are ordered by it.
    updated_at = fields.DatetimeField(auto_now_add=True)
    #: Set by the first saved value: until then the contact is invisible to staff and purged after a day.
    first_saved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "contact"
        indexes = (("tenant_id", "updated_at", "id"),)


class ContactToken(Model):
    """A bearer credential of a contact. Only the SHA-256 of the token is kept."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="contact_tokens", on_delete=fields.CASCADE)
    contact = fields.ForeignKeyField("rapidly.Contact", related_name="tokens", on_delete=fields.CASCADE)
    token_hash = fields.CharField(max_length=64, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "contact_token"
        unique_together = (("tenant", "token_hash"),)


class FieldValue(Model):
    """One saved answer. `value` is the normalised JSON value (see contacts.values)."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="field_values", on_delete=fields.CASCADE)
    contact = fields.ForeignKeyField("rapidly.Contact", related_name="values", on_delete=fields.CASCADE)
    key = fields.CharField(max_length=63)
    value = fields.JSONField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "field_value"
        unique_together = (("tenant", "contact", "key"),)
