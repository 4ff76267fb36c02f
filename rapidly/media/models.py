from tortoise import fields
from tortoise.models import Model


class Media(Model):
    """One cleaned image of a contact. The object lives in storage under `<tenant>/<contact>/<id>`:
    the key is made of IDs, so no name or filename is stored anywhere."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="media", on_delete=fields.CASCADE)
    contact = fields.ForeignKeyField("rapidly.Contact", related_name="media", on_delete=fields.CASCADE)
    field_key = fields.CharField(max_length=63)
    content_type = fields.CharField(max_length=20)
    width = fields.IntField()
    height = fields.IntField()
    size_bytes = fields.IntField()
    #: True: its object is sealed under the contact's key. NULL: stored before encryption, until
    #: `rapidly keys encrypt-existing` or serve's maintenance seals it.
    sealed = fields.BooleanField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "media"
        indexes = (("tenant_id", "contact_id", "created_at"),)
