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
                ('event', fields.CharField(max_length=30)),
                ('channel', fields.CharField(max_length=10)),
                ('locale', fields.CharField(max_length=5)),
                ('recipient', fields.CharField(max_length=320)),
                ('payload', fields.JSONField(default=dict, description="What the template needs besides the tenant: the event's link and the self-service link.", encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=MessageStatus.PENDING, description='PENDING: PENDING\nSENT: SENT\nFAILED: FAILED', enum_type=MessageStatus, max_length=10)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'outbound_message', 'app': 'rapidly', 'indexes': [Index(fields=['status', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One message to send, bound to one contact and one event. It holds the recipient and the links'},
            bases=['Model'],
        ),
    ]
