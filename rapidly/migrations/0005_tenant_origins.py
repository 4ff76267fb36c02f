from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.db_defaults import SqlDefault
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('rapidly', '0004_chat')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Tenant',
            name='allowed_origins',
            field=fields.JSONField(default=list, db_default=SqlDefault("'[]'::jsonb"), encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
