from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='ContactEventLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant_id', fields.UUIDField(db_index=True)),
                ('contact_id', fields.UUIDField()),
                ('kind', fields.CharField(max_length=20)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'contact_event', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': 'One published contact event: IDs, kind and time only, never a value.'},
            bases=['Model'],
        ),
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
            name='AuditEvent',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='audit_events', on_delete=OnDelete.CASCADE)),
                ('staff_id', fields.UUIDField()),
                ('contact_id', fields.UUIDField(db_index=True)),
                ('action', fields.CharField(max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_event', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': "A staff member's access to a contact. IDs only; kept after erasure (no foreign key to contact)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Contact',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='contacts', on_delete=OnDelete.CASCADE)),
                ('locale', fields.CharField(max_length=5)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(description='Last activity; staff lists are ordered by it.', auto_now=False, auto_now_add=True)),
                ('first_saved_at', fields.DatetimeField(null=True, description='Set by the first saved value: until then the contact is invisible to staff and purged after a day.', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'contact', 'app': 'rapidly', 'indexes': [Index(fields=['tenant_id', 'updated_at', 'id'])], 'pk_attr': 'id', 'table_description': 'An end user of a tenant; everything stored about them hangs off this row.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ContactToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='contact_tokens', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('rapidly.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(db_index=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'contact_token', 'app': 'rapidly', 'unique_together': (('tenant', 'token_hash'),), 'pk_attr': 'id', 'table_description': 'A bearer credential of a contact. Only the SHA-256 of the token is kept.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FieldValue',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='field_values', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('rapidly.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='values', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=63)),
                ('value', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'field_value', 'app': 'rapidly', 'unique_together': (('tenant', 'contact', 'key'),), 'pk_attr': 'id', 'table_description': 'One saved answer. `value` is the normalised JSON value (see contacts.values).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffUser',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='staff', on_delete=OnDelete.CASCADE)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=200)),
                ('locale', fields.CharField(default='fi', max_length=5)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_user', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': "A tenant's employee. The email is unique platform-wide, the one unique key without tenant_id:"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('staff', fields.ForeignKeyField('rapidly.StaffUser', source_field='staff_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=30)),
                ('contact_id', fields.UUIDField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification', 'app': 'rapidly', 'indexes': [Index(fields=['staff_id', 'created_at', 'id'])], 'pk_attr': 'id', 'table_description': "One staff member's notice about a contact. Holds IDs and a kind, never text: the text is"},
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
