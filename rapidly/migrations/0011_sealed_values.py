from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.contrib.postgres.fields import ArrayField
from tortoise import fields

class Migration(migrations.Migration):
    """Saved answers sealed under their contact's data key, with a digest and blind-index terms
    (rapidly/keys/blind.py); `value` stays for answers saved before, until they are sealed."""

    dependencies = [('rapidly', '0010_keys')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='FieldValue',
            options={'table': 'field_value', 'app': 'rapidly', 'unique_together': (('tenant', 'contact', 'key'),), 'pk_attr': 'id', 'table_description': "One saved answer: the normalised JSON value (see contacts.values), sealed under the contact's"},
        ),
        ops.AlterField(
            model_name='FieldValue',
            name='value',
            field=fields.JSONField(null=True, description='A value saved before encryption, until `rapidly keys encrypt-existing` seals it.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='FieldValue',
            name='digest',
            field=fields.BinaryField(null=True),
        ),
        ops.AddField(
            model_name='FieldValue',
            name='sealed',
            field=fields.BinaryField(null=True),
        ),
        ops.AddField(
            model_name='FieldValue',
            name='terms',
            field=ArrayField(null=True, element_type='INT'),
        ),
        ops.AddField(
            model_name="Media",
            name="sealed",
            field=fields.BooleanField(
                null=True,
                description="True: its object is sealed under the contact's key. NULL: stored before encryption, until",
            ),
        ),
    ]
