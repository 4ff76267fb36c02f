from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Staff search their contacts by any text typed (`contacts(search:)`): a trigram index over each
    saved value as text, so a substring is found without reading the tenant's every value. It indexes
    `field_value` itself, so erasing a contact's values empties it with them; pg_trgm is a trusted
    extension, which the database owner may create.

    Built CONCURRENTLY, outside a transaction (`atomic = False`): saves go on while it is built on a
    large table. A build that was cut off leaves an invalid index behind, which is dropped first."""

    dependencies = [('rapidly', '0005_tenant_origins')]

    initial = False
    atomic = False

    operations = [
        ops.RunSQL(
            [
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'field_value_search' AND NOT i.indisvalid) THEN DROP INDEX field_value_search; "
                "END IF; END $$",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS field_value_search ON field_value USING gin "
                "(lower(value #>> '{}') gin_trgm_ops)",
            ],
            reverse_sql=["DROP INDEX CONCURRENTLY IF EXISTS field_value_search"],
        ),
    ]
