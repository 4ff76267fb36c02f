from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from rapidly.messaging.models import MessageStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('rapidly', '0002_erasure')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Media',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='media', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('rapidly.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='media', on_delete=OnDelete.CASCADE)),
                ('field_key', fields.CharField(max_length=63)),
                ('content_type', fields.CharField(max_length=20)),
                ('width', fields.IntField()),
                ('height', fields.IntField()),
                ('size_bytes', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'media', 'app': 'rapidly', 'indexes': [Index(fields=['tenant_id', 'contact_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One cleaned image of a contact. The object lives in storage under `<tenant>/<contact>/<id>`:'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboundMessage',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='outbound_messages', on_delete=OnDelete.CASCADE)),
                ('contact_id', fields.UUIDField(null=True, db_index=True)),
                ('staff_id', fields.UUIDField(null=True, description='Set for messages to staff.')),
                ('event', fields.CharField(max_length=30)),
                ('channel', fields.CharField(max_length=10)),
                ('locale', fields.CharField(max_length=5)),
                ('payload', fields.JSONField(default=dict, description="What the template needs besides the tenant: the event's link and the self-service link.", encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('dedupe_key', fields.CharField(null=True, description='One message per key (e.g. one self-service link per contact and channel).', max_length=120)),
                ('status', fields.CharEnumField(default=MessageStatus.PENDING, description='PENDING: PENDING\nSENT: SENT\nFAILED: FAILED\nSUPPRESSED: SUPPRESSED', enum_type=MessageStatus, max_length=10)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(null=True, description='A short code ("smtp_451", "timeout", "limit_recipient"), never a server\'s message.', max_length=40)),
                ('masked_recipient', fields.CharField(null=True, description='After sending: "m•••@example.com".', max_length=80)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbound_message', 'app': 'rapidly', 'unique_together': (('tenant', 'dedupe_key'),), 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One message to send, bound to one event and one contact (and, for staff, one staff member).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Tenant',
            name='message_channels',
            field=fields.JSONField(default=dict, description='Which messages go out on which channel: {"SELF_SERVICE_LINK": ["email"], ...}; missing', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
