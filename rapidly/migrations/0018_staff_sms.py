from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
import importlib

_rls = importlib.import_module("rapidly.migrations.0008_row_level_security")

class Migration(migrations.Migration):
    """Staff notifications by SMS (issue 29): a staff member's verified mobile number and own choice of
    channels, and the number waiting for its code (isolated by tenant like every tenant table); and a
    staff member's own choice that their password alone no longer signs them in."""
    dependencies = [('rapidly', '0017_message_wording')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsNumberCheck',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='sms_number_checks', on_delete=OnDelete.CASCADE)),
                ('staff', fields.OneToOneField('rapidly.StaffUser', source_field='staff_id', db_constraint=True, to_field='id', related_name='sms_number_check', on_delete=OnDelete.CASCADE)),
                ('number', fields.CharField(max_length=20)),
                ('code_digest', fields.CharField(null=True, description='Null until the message with the code is sent.', max_length=64)),
                ('code_expires_at', fields.DatetimeField(null=True, description='The code works until then (`CODE_MINUTES` after it was made).', auto_now=False, auto_now_add=False)),
                ('tries', fields.IntField(default=0, description='Wrong codes so far, whatever the number of codes sent for this number.')),
                ('expires_at', fields.DatetimeField(description='The number waits until then, also for a message the outbox is still retrying.', auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sms_number_check', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': 'A mobile number a staff member asked to be reached at, waiting for the code sent to it: one per'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='StaffUser',
            name='message_channels',
            field=fields.JSONField(null=True, description='Their own choice of channels per staff event ({"NEW_CONTACT": ["sms"]}); an event not in it', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='StaffUser',
            name='passkey_only',
            field=fields.BooleanField(default=False, description='Their password alone no longer signs them in while they have a passkey (a passkey as the', db_default=SqlDefault('false')),
        ),
        ops.AddField(
            model_name='StaffUser',
            name='sms_number',
            field=fields.CharField(null=True, description='A mobile number of their own for notifications (E.164), set once they proved they hold it', max_length=20),
        ),
        ops.RunSQL(
            [
                *_rls._isolate("sms_number_check"),
                "CREATE INDEX IF NOT EXISTS sms_number_check_tenant ON sms_number_check (tenant_id, staff_id)",
                "CREATE INDEX IF NOT EXISTS sms_number_check_expires ON sms_number_check (expires_at)",
            ],
            reverse_sql=["DROP INDEX IF EXISTS sms_number_check_expires", "DROP INDEX IF EXISTS sms_number_check_tenant"],
        ),
    ]
