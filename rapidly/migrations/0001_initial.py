from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='RateLimit',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ('tenant_id', fields.UUIDField(db_index=True)),
                ('hits', fields.IntField()),
                ('reset_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'rate_limit', 'app': 'rapidly', 'pk_attr': 'key', 'table_description': 'One counter per key. Keys are scope plus an HMAC, never an address or a name.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Tenant',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('slug', fields.CharField(unique=True, max_length=63)),
                ('name', fields.CharField(max_length=200)),
                ('plugin', fields.CharField(max_length=100)),
                ('default_locale', fields.CharField(default='fi', max_length=5)),
                ('privacy_policy_url', fields.CharField(null=True, max_length=500)),
                ('retention_days', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'tenant', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': 'A company using Rapidly. The only table without `tenant_id`: it is the tenant.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffUser',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='staff', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(db_index=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=200)),
                ('locale', fields.CharField(default='fi', max_length=5)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_user', 'app': 'rapidly', 'unique_together': (('tenant', 'email'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffSession',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='staff_sessions', on_delete=OnDelete.CASCADE)),
                ('staff', fields.ForeignKeyField('rapidly.StaffUser', source_field='staff_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(db_index=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_session', 'app': 'rapidly', 'unique_together': (('tenant', 'token_hash'),), 'pk_attr': 'id', 'table_description': "A login. Only the token's SHA-256 is kept."},
            bases=['Model'],
        ),
        # Counters are disposable: no WAL, no replication, lost on a crash, which is fine.
        ops.RunSQL("ALTER TABLE rate_limit SET UNLOGGED", reverse_sql="ALTER TABLE rate_limit SET LOGGED"),
    ]
