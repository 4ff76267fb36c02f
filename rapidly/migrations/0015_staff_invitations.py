from tortoise import migrations
from tortoise.migrations import operations as ops
from rapidly.staff.models import StaffRole
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
import importlib

_rls = importlib.import_module("rapidly.migrations.0008_row_level_security")
#: The tenant of a live invitation's token, found before the request knows its tenant (as a
#: session's or a contact token's is): an ID only.
_INVITATION_TENANT = "rapidly_staff_invitation_tenant(presented text)"

class Migration(migrations.Migration):
    """Invitations to join a company as staff (issue 29), isolated by tenant like every tenant table."""

    dependencies = [('rapidly', '0014_staff_roles')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StaffInvitation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='staff_invitations', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(max_length=254)),
                ('role', fields.CharEnumField(description='ADMIN: ADMIN\nSTAFF: STAFF', enum_type=StaffRole, max_length=10)),
                ('invited_by', fields.UUIDField(description='The admin who invited (no foreign key: the invitation goes with their removal or demotion).')),
                ('token_hash', fields.CharField(null=True, unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_invitation', 'app': 'rapidly', 'unique_together': (('tenant', 'email'),), 'pk_attr': 'id', 'table_description': "An admin's invitation to join the company as staff, by email: one per address and company"},
            bases=['Model'],
        ),
        ops.RunSQL(
            [
                *_rls._isolate("staff_invitation"),
                _rls._cross_tenant(
                    _INVITATION_TENANT,
                    "uuid",
                    "SELECT tenant_id FROM public.staff_invitation WHERE token_hash = presented AND expires_at > now()",
                ),
            ],
            reverse_sql=[f"DROP FUNCTION IF EXISTS {_INVITATION_TENANT}"],
        ),
    ]
