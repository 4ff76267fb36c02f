from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    """A staff member's access to a contact, or an admin's change to the company's account. IDs and
    names only, never a value; kept after erasure and removal (no foreign key to contact or staff)."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="audit_events", on_delete=fields.CASCADE)
    staff_id = fields.UUIDField()
    contact_id = fields.UUIDField(null=True, db_index=True)
    action = fields.CharField(max_length=40)
    #: The staff member an admin's change was about (removed, given a role).
    subject_id = fields.UUIDField(null=True)
    #: What changed, as a name: the setting, or the role given; never a value anyone typed.
    detail = fields.CharField(max_length=60, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_event"
