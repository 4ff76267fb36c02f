from tortoise import migrations
from tortoise.migrations import operations as ops

#: Every table with `tenant_id` (tests/test_tenancy.py checks the catalog: a table added later
#: without its policy fails there).
TENANT_TABLES = (
    "audit_event",
    "chat_message",
    "contact",
    "contact_event",
    "contact_token",
    "erasure",
    "field_value",
    "media",
    "notification",
    "outbound_message",
    "rate_limit",
    "staff_session",
    "staff_user",
)

#: The tenant of the current transaction; NULL when unset or empty, and then no policy admits a
#: row. A setting that is not a UUID is an error, not "no tenant". Inlined into each policy, it is
#: evaluated once per statement and used as an index condition like any parameter.
_CURRENT_TENANT = """
CREATE OR REPLACE FUNCTION rapidly_tenant() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('rapidly.tenant', true), '')::uuid $$
"""


def _isolate(table: str) -> list[str]:
    """RLS enabled and forced (the owner too is held to it), one policy for every command; the
    database's owner (`pg_database_owner`: whoever owns it, under any name, after any restore)
    sees every row, for migrations, backups and the cross-tenant functions below, which it owns."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"CREATE POLICY tenant_isolation ON {table} USING (tenant_id = rapidly_tenant()) "
        "WITH CHECK (tenant_id = rapidly_tenant())",
        f"DROP POLICY IF EXISTS database_owner ON {table}",
        f"CREATE POLICY database_owner ON {table} TO pg_database_owner USING (true) WITH CHECK (true)",
    ]


def _cross_tenant(signature: str, returns: str, body: str) -> str:
    """A function that reads across tenants as its owner and returns IDs only: the one narrow way
    for a statement without a tenant (a token not yet resolved, a job's list of tenants with work).
    Its search_path is fixed, so that no object of the caller's can stand in for a table."""
    return (
        f"CREATE OR REPLACE FUNCTION {signature} RETURNS {returns} LANGUAGE sql STABLE SECURITY DEFINER "
        f"SET search_path = pg_catalog, public AS $$ {body} $$"
    )


CROSS_TENANT = {
    # The tenant of a live contact token (every request of an end user starts here).
    "rapidly_contact_token_tenant(presented text)": (
        "uuid",
        "SELECT tenant_id FROM contact_token WHERE token_hash = presented AND expires_at > now()",
    ),
    # The tenant of a live staff session.
    "rapidly_staff_session_tenant(presented text)": (
        "uuid",
        "SELECT tenant_id FROM staff_session WHERE token_hash = presented AND expires_at > now()",
    ),
    # The tenant of a staff account by its email, unique platform-wide (signing in names no tenant).
    "rapidly_staff_email_tenant(address text)": (
        "uuid",
        "SELECT tenant_id FROM staff_user WHERE email = address",
    ),
    # Tenants with messages due (the dispatcher's claim then goes tenant by tenant).
    "rapidly_tenants_with_due_messages()": (
        "SETOF uuid",
        "SELECT DISTINCT tenant_id FROM outbound_message WHERE status = 'PENDING' AND next_attempt_at <= now()",
    ),
    # Tenants with erasures whose outside stores are due for a retry.
    "rapidly_tenants_with_due_erasures()": (
        "SETOF uuid",
        "SELECT DISTINCT tenant_id FROM erasure WHERE completed_at IS NULL AND next_attempt_at <= clock_timestamp()",
    ),
    # For /metrics: how many of each, all tenants together.
    "rapidly_pending_counts()": (
        "TABLE (erasures bigint, messages bigint)",
        "SELECT (SELECT count(*) FROM erasure WHERE completed_at IS NULL), "
        "(SELECT count(*) FROM outbound_message WHERE status = 'PENDING')",
    ),
    # The realtime hub's resync and sweep of the event log (IDs, kinds and times only).
    "rapidly_events_since(since timestamptz, after bigint)": (
        "TABLE (id bigint, tenant_id uuid, contact_id uuid, kind text, created_at timestamptz)",
        "SELECT e.id, e.tenant_id, e.contact_id, e.kind, e.created_at FROM contact_event e "
        "WHERE e.created_at >= since OR e.id > after ORDER BY e.id",
    ),
    "rapidly_events_settled(after bigint, missing bigint[], max_rows int, settle interval)": (
        "TABLE (id bigint, tenant_id uuid, contact_id uuid, kind text, created_at timestamptz)",
        "(SELECT e.id, e.tenant_id, e.contact_id, e.kind, e.created_at FROM contact_event e "
        " WHERE e.id > after AND e.created_at < clock_timestamp() - settle ORDER BY e.id LIMIT max_rows) "
        "UNION ALL (SELECT e.id, e.tenant_id, e.contact_id, e.kind, e.created_at FROM contact_event e "
        " WHERE e.id = ANY(missing)) ORDER BY id",
    ),
}


def _functions() -> list[str]:
    statements = [_CURRENT_TENANT]
    for signature, (returns, body) in CROSS_TENANT.items():
        statements.append(_cross_tenant(signature, returns, body))
        statements.append(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    return statements


class Migration(migrations.Migration):
    """Tenant isolation enforced by PostgreSQL: row-level security on every table with `tenant_id`
    (see rapidly/tenancy.py for how the app sets the tenant, and the functions it may call to
    work across tenants; `rapidly.db.migrate` grants the app role EXECUTE on those)."""

    dependencies = [("rapidly", "0007_contact_scale")]

    initial = False

    operations = [
        ops.RunSQL(
            [*_functions(), *(sql for table in TENANT_TABLES for sql in _isolate(table))],
            reverse_sql=[
                *(
                    sql
                    for table in TENANT_TABLES
                    for sql in (
                        f"DROP POLICY IF EXISTS database_owner ON {table}",
                        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
                        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
                        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
                    )
                ),
                *(f"DROP FUNCTION IF EXISTS {signature}" for signature in CROSS_TENANT),
                "DROP FUNCTION IF EXISTS rapidly_tenant()",
            ],
        ),
    ]
