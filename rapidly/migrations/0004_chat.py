from tortoise import migrations
from tortoise.migrations import operations as ops
from rapidly.chat.models import Author
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('rapidly', '0003_media_messaging')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ChatMessage',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='chat_messages', on_delete=OnDelete.CASCADE)),
                ('contact', fields.ForeignKeyField('rapidly.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='chat_messages', on_delete=OnDelete.CASCADE)),
                ('author', fields.CharEnumField(description='CONTACT: CONTACT\nSTAFF: STAFF', enum_type=Author, max_length=10)),
                ('staff_id', fields.UUIDField(null=True, description='The staff member who wrote it (STAFF messages); kept as an ID, no foreign key: a message')),
                ('body', fields.TextField(unique=False)),
                ('attachment', fields.ForeignKeyField('rapidly.Media', source_field='attachment_id', null=True, db_constraint=True, to_field='id', related_name='chat_messages', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'chat_message', 'app': 'rapidly', 'indexes': [Index(fields=['tenant_id', 'contact_id', 'created_at', 'id'])], 'pk_attr': 'id', 'table_description': "One message of a contact's conversation. `read_at` is set when the other side reads it."},
            bases=['Model'],
        ),
    ]
