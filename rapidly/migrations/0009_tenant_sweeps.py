from tortoise import migrations
from tortoise.migrations import operations as ops

#: Index name -> what it indexes. Under row-level security (0008) the purges, the dispatcher's
#: claim and the erasure retries go tenant by tenant: each tenant's statement reads that tenant's
#: expired or due rows, not every tenant's (an index led by the time alone made each tenant's pass
#: walk all the others' rows, so a purge cost tenants x expired rows).
INDEXES = {
    "contact_token_tenant_expiry": "INDEX {name} ON contact_token (tenant_id, expires_at)",
    "staff_session_tenant_expiry": "INDEX {name} ON staff_session (tenant_id, expires_at)",
    "rate_limit_tenant_reset": "INDEX {name} ON rate_limit (tenant_id, reset_at)",
    "contact_event_tenant_created": "INDEX {name} ON contact_event (tenant_id, created_at)",
    "contact_unsaved_tenant": "INDEX {name} ON contact (tenant_id, created_at) WHERE first_saved_at IS NULL",
    "outbound_message_tenant_due": "INDEX {name} ON outbound_message (tenant_id, next_attempt_at) "
    "WHERE status = 'PENDING'",
    "erasure_tenant_due": "INDEX {name} ON erasure (tenant_id, next_attempt_at) WHERE completed_at IS NULL",
}
#: Served now by the ones above (0007's); every statement that used them runs as one tenant.
REPLACED = {
    "contact_token_expiry": "INDEX {name} ON contact_token (expires_at)",
    "contact_unsaved": "INDEX {name} ON contact (created_at) WHERE first_saved_at IS NULL",
}


def _build(name: str, definition: str) -> list[str]:
    """Built CONCURRENTLY, so saves go on while a large table is indexed; a build that was cut off
    leaves an invalid index behind, which is dropped first."""
    return [
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE c.relname = '{name}' AND NOT i.indisvalid) THEN DROP INDEX {name}; END IF; END $$",
        "CREATE " + definition.format(name=name).replace("INDEX", "INDEX CONCURRENTLY IF NOT EXISTS", 1),
    ]


class Migration(migrations.Migration):
    """Indexes led by the tenant for the work that goes tenant by tenant since 0008."""

    dependencies = [("rapidly", "0008_row_level_security")]

    initial = False
    atomic = False

    operations = [
        ops.RunSQL(
            [
                *(sql for name, definition in INDEXES.items() for sql in _build(name, definition)),
                *(f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in REPLACED),
            ],
            reverse_sql=[
                *(sql for name, definition in REPLACED.items() for sql in _build(name, definition)),
                *(f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in reversed(INDEXES)),
            ],
        ),
    ]
