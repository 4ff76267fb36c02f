from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
import importlib

_rls = importlib.import_module("rapidly.migrations.0008_row_level_security")

class Migration(migrations.Migration):
    """A company's own wording of its messages (issue 29), isolated by tenant like every tenant table."""
    dependencies = [('rapidly', '0016_passkeys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MessageWording',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='message_wordings', on_delete=OnDelete.CASCADE)),
                ('event', fields.CharField(max_length=40)),
                ('channel', fields.CharField(max_length=10)),
                ('locale', fields.CharField(max_length=5)),
                ('subject', fields.CharField(null=True, max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'message_wording', 'app': 'rapidly', 'unique_together': (('tenant', 'event', 'channel', 'locale'),), 'pk_attr': 'id', 'table_description': "A company's own wording of one message (event, channel, language), written by its admins in the"},
            bases=['Model'],
        ),
        ops.RunSQL(_rls._isolate("message_wording"), reverse_sql=[]),
    ]
