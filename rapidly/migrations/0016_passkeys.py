from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise.fields.db_defaults import SqlDefault
from uuid import uuid4
from tortoise import fields
import importlib

_rls = importlib.import_module("rapidly.migrations.0008_row_level_security")
#: The tenant of a passkey, found by its credential's ID before a passkey sign-in knows its tenant
#: (as a session's is by its token): an ID only.
_PASSKEY_TENANT = "rapidly_passkey_tenant(presented text)"

class Migration(migrations.Migration):
    """Passkeys for staff (issue 29): credentials and their challenges, isolated by tenant; sessions
    that may only add a passkey; the company's requirement of one."""
    dependencies = [('rapidly', '0015_staff_invitations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PasskeyChallenge',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant_id', fields.UUIDField()),
                ('challenge_hash', fields.CharField(unique=True, max_length=64)),
                ('staff_id', fields.UUIDField(null=True, description='Set for a registration: whose passkey it will be.')),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'passkey_challenge', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': 'A WebAuthn challenge waiting for its answer: used once (deleted as it is checked), within'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffPasskey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='staff_passkeys', on_delete=OnDelete.CASCADE)),
                ('staff', fields.ForeignKeyField('rapidly.StaffUser', source_field='staff_id', db_constraint=True, to_field='id', related_name='passkeys', on_delete=OnDelete.CASCADE)),
                ('credential_id', fields.CharField(unique=True, description='base64url, as the browser names it (at most 1,023 bytes by the specification).', max_length=1400)),
                ('public_key', fields.BinaryField()),
                ('sign_count', fields.BigIntField(default=0)),
                ('name', fields.CharField(description='The staff member\'s own name for it ("Work laptop").', max_length=100)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_passkey', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': "A staff member's passkey (a discoverable WebAuthn credential): its public key and signature"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='StaffSession',
            name='enrolling',
            field=fields.BooleanField(default=False, description='Signed in by password where the company requires a passkey and the staff member has none:', db_default=SqlDefault('false')),
        ),
        ops.AddField(
            model_name='Tenant',
            name='require_passkey',
            field=fields.BooleanField(default=False, description='Staff sign in with a passkey; a password alone only lets someone without one add one.', db_default=SqlDefault('false')),
        ),
        ops.RunSQL(
            [
                *_rls._isolate("staff_passkey"),
                *_rls._isolate("passkey_challenge"),
                "CREATE INDEX IF NOT EXISTS staff_passkey_tenant ON staff_passkey (tenant_id, staff_id)",
                "CREATE INDEX IF NOT EXISTS staff_passkey_staff ON staff_passkey (staff_id)",
                _rls._cross_tenant(
                    _PASSKEY_TENANT, "uuid", "SELECT tenant_id FROM public.staff_passkey WHERE credential_id = presented"
                ),
            ],
            reverse_sql=[f"DROP FUNCTION IF EXISTS {_PASSKEY_TENANT}", "DROP INDEX IF EXISTS staff_passkey_staff", "DROP INDEX IF EXISTS staff_passkey_tenant"],
        ),
    ]
