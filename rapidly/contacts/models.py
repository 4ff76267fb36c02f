from tortoise import fields
from tortoise.contrib.postgres.fields import ArrayField
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
    """One saved answer: the normalised JSON value (see contacts.values), sealed under the contact's
    data key (`sealed`), with a keyed digest that tells an identical repeat (`digest`) and the blind
    index's terms (`terms`, rapidly/keys/blind.py)."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="field_values", on_delete=fields.CASCADE)
    contact = fields.ForeignKeyField("rapidly.Contact", related_name="values", on_delete=fields.CASCADE)
    key = fields.CharField(max_length=63)
    sealed = fields.BinaryField(null=True)
    digest = fields.BinaryField(null=True)
    terms = ArrayField("int", null=True)
    #: A value saved before encryption, until `rapidly keys encrypt-existing` seals it.
    value = fields.JSONField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "field_value"
        unique_together = (("tenant", "contact", "key"),)
