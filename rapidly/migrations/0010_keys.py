from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index
import importlib

#: Row-level security as every tenant table has it (0008).
_isolate = importlib.import_module("rapidly.migrations.0008_row_level_security")._isolate
#: The foreign key to the contact with its tenant, as every child of the contact has it (0007): a key
#: row can never point at another tenant's contact.
_contact_key = importlib.import_module("rapidly.migrations.0007_contact_scale")._contact_key


class Migration(migrations.Migration):
    """The key hierarchy's tables (rapidly/keys): each tenant's key, sealed by the root key, and each
    contact's data key, sealed by its tenant's."""

    dependencies = [('rapidly', '0009_tenant_sweeps')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ContactKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='contact_keys', on_delete=OnDelete.CASCADE)),
                ('contact', fields.OneToOneField('rapidly.Contact', source_field='contact_id', db_constraint=True, to_field='id', related_name='key', on_delete=OnDelete.CASCADE)),
                ('wrapped', fields.BinaryField()),
            ],
            options={'table': 'contact_key', "indexes": [Index(fields=["tenant_id", "contact_id"])], 'app': 'rapidly', 'pk_attr': 'id', 'table_description': "A contact's data key, sealed by its tenant's key. Deleting the row shreds the contact: every"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TenantKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.OneToOneField('rapidly.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='key', on_delete=OnDelete.CASCADE)),
                ('wrapped', fields.BinaryField()),
                ('wrapped_by', fields.CharField(max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'tenant_key', 'app': 'rapidly', 'pk_attr': 'id', 'table_description': "A tenant's key, sealed by the root key. `wrapped_by` names that root key (never its material):"},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name="ChatMessage",
            name="body",
            field=fields.TextField(
                null=True,
                description="The text of a message written before encryption, until `rapidly keys encrypt-existing` seals it.",
                unique=False,
            ),
        ),
        ops.AddField(
            model_name="ChatMessage",
            name="sealed_body",
            field=fields.BinaryField(null=True, description="The text, sealed under the contact's data key."),
        ),
        ops.RunSQL(
            [
                *_contact_key("contact_key", "tenant_id, contact_id", "tenant_id, id"),
                *_isolate("tenant_key"),
                *_isolate("contact_key"),
            ],
            reverse_sql=["SELECT 1"],
        ),
    ]
