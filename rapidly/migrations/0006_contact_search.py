from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Staff search their contacts by any text typed (`contacts(search:)`): a trigram index over each
    saved value as text, so a substring is found without reading the tenant's every value. It indexes
    `field_value` itself, so erasing a contact's values empties it with them; pg_trgm is a trusted
    extension, which the database owner may create."""

    dependencies = [('rapidly', '0005_tenant_origins')]

    initial = False

    operations = [
        ops.RunSQL(
            [
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                "CREATE INDEX IF NOT EXISTS field_value_search ON field_value USING gin "
                "(lower(value #>> '{}') gin_trgm_ops)",
            ],
            reverse_sql=["DROP INDEX IF EXISTS field_value_search"],
        ),
    ]
