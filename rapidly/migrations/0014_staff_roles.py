from tortoise import fields, migrations
from tortoise.fields.db_defaults import SqlDefault
from tortoise.migrations import operations as ops

from rapidly.staff.models import StaffRole

#: A company that had staff before roles keeps one admin: its first account (then by ID), the one
#: its operator created first. The others are staff until an admin says otherwise.
_FIRST_ADMINS = """
UPDATE staff_user SET role = 'ADMIN' WHERE id IN (
    SELECT DISTINCT ON (tenant_id) id FROM staff_user ORDER BY tenant_id, created_at, id
)
"""


class Migration(migrations.Migration):
    """Staff roles (issue 29), and audit events of an admin's changes (no contact; a subject and a name)."""

    dependencies = [("rapidly", "0013_credential_changes")]

    initial = False

    operations = [
        ops.AddField(
            model_name="StaffUser",
            name="role",
            field=fields.CharEnumField(
                StaffRole,
                max_length=10,
                default=StaffRole.STAFF,
                db_default=SqlDefault("'STAFF'"),
                description="ADMIN: ADMIN\nSTAFF: STAFF",
            ),
        ),
        ops.RunSQL(
            [
                "ALTER TABLE staff_user ADD CONSTRAINT staff_user_role_known CHECK (role IN ('ADMIN', 'STAFF'))",
                _FIRST_ADMINS,
            ],
            reverse_sql=["ALTER TABLE staff_user DROP CONSTRAINT IF EXISTS staff_user_role_known"],
        ),
        ops.AlterField(
            model_name="AuditEvent",
            name="contact_id",
            field=fields.UUIDField(null=True, db_index=True),
        ),
        ops.AlterModelOptions(
            name="AuditEvent",
            options={
                "table": "audit_event",
                "app": "rapidly",
                "pk_attr": "id",
                "table_description": "A staff member's access to a contact, or an admin's change to the company's "
                "account. IDs and",
            },
        ),
        ops.AddField(
            model_name="AuditEvent",
            name="subject_id",
            field=fields.UUIDField(
                null=True, description="The staff member an admin's change was about (removed, given a role)."
            ),
        ),
        ops.AddField(
            model_name="AuditEvent",
            name="detail",
            field=fields.CharField(
                null=True,
                max_length=60,
                description="What changed, as a name: the setting, or the role given; never a value anyone typed.",
            ),
        ),
    ]
