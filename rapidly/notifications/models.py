from tortoise import fields
from tortoise.models import Model


class Notification(Model):
    """One staff member's notice about a contact. Holds IDs and a kind, never text: the text is
    rendered when read, so an erased contact reads "(deleted)" (hence no foreign key to contact)."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="notifications", on_delete=fields.CASCADE)
    staff = fields.ForeignKeyField("rapidly.StaffUser", related_name="notifications", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=30)
    contact_id = fields.UUIDField()
    created_at = fields.DatetimeField(auto_now_add=True)
    read_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notification"
        indexes = (("staff_id", "created_at", "id"),)
