from tortoise import fields
from tortoise.models import Model


class TenantKey(Model):
    """A tenant's key, sealed by the root key. `wrapped_by` names that root key (never its material):
    a rotation re-wraps the rows that another one wrapped."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.OneToOneField("rapidly.Tenant", related_name="key", on_delete=fields.CASCADE)
    wrapped = fields.BinaryField()
    wrapped_by = fields.CharField(max_length=300)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tenant_key"


class ContactKey(Model):
    """A contact's data key, sealed by its tenant's key. Deleting the row shreds the contact: every
    copy of what was sealed under it, wherever it is, stays sealed for good."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="contact_keys", on_delete=fields.CASCADE)
    contact = fields.OneToOneField("rapidly.Contact", related_name="key", on_delete=fields.CASCADE)
    wrapped = fields.BinaryField()

    class Meta:
        table = "contact_key"
        #: Deleting a tenant (its foreign key) and erasing a contact, one range each.
        indexes = (("tenant_id", "contact_id"),)
