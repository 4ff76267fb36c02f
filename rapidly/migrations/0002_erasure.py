from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from rapidly.erasure.models import Requester
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('rapidly', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Erasure',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='erasures', on_delete=OnDelete.CASCADE)),
                ('contact_id', fields.UUIDField()),
                ('requested_by', fields.CharEnumField(description='END_USER: END_USER\nSTAFF: STAFF\nRETENTION: RETENTION', enum_type=Requester, max_length=20)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, description='Null while a store (object storage, say) still holds data; set when every store is empty.', auto_now=False, auto_now_add=False)),
                ('removed', fields.JSONField(default=dict, description='{store: items removed}, summed over the attempts.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('pending', fields.JSONField(default=list, description='Stores still to be erased, retried with backoff until they succeed.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'erasure', 'app': 'rapidly', 'unique_together': (('tenant', 'contact_id'),), 'indexes': [Index(fields=['completed_at', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'The ledger: one row per erased contact. IDs, times and counts only, never personal data.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='RateLimit',
            name='contact_id',
            field=fields.UUIDField(null=True, db_index=True, description="Set for limits that count one contact's actions, so that erasure removes them with it."),
        ),
    ]
