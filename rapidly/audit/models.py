from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    """A staff member's access to a contact. IDs only; kept after erasure (no foreign key to contact)."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="audit_events", on_delete=fields.CASCADE)
    staff_id = fields.UUIDField()
    contact_id = fields.UUIDField(db_index=True)
    action = fields.CharField(max_length=40)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_event"
