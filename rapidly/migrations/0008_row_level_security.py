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
AS $$ SELECT NULLIF(pg_catalog.current_setting('rapidly.tenant', true), '')::uuid $$
"""

#: The tenant table itself: every role reads it (a form is found by its slug, a token's tenant by
#: its ID) and may add a tenant, but a tenant's row changes only as that tenant, and no one but the
#: owner deletes one (its foreign keys would cascade to every row of the tenant, policies or not).
_TENANT_TABLE = [
    "ALTER TABLE tenant ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE tenant FORCE ROW LEVEL SECURITY",
    "DROP POLICY IF EXISTS tenant_read ON tenant",
    "CREATE POLICY tenant_read ON tenant FOR SELECT USING (true)",
    "DROP POLICY IF EXISTS tenant_create ON tenant",
    "CREATE POLICY tenant_create ON tenant FOR INSERT WITH CHECK (true)",
    "DROP POLICY IF EXISTS tenant_update ON tenant",
    "CREATE POLICY tenant_update ON tenant FOR UPDATE USING (id = rapidly_tenant()) WITH CHECK (id = rapidly_tenant())",
    "DROP POLICY IF EXISTS database_owner ON tenant",
    "CREATE POLICY database_owner ON tenant TO pg_database_owner USING (true) WITH CHECK (true)",
]


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
    Its tables are named with their schema and its search_path is fixed, `pg_temp` last (it would
    otherwise come first): no object of the caller's can stand in for a table or a function."""
    return (
        f"CREATE OR REPLACE FUNCTION {signature} RETURNS {returns} LANGUAGE sql STABLE SECURITY DEFINER "
        f"SET search_path = pg_catalog, public, pg_temp AS $$ {body} $$"
    )


CROSS_TENANT = {
    # The tenant of a live contact token (every request of an end user starts here).
    "rapidly_contact_token_tenant(presented text)": (
        "uuid",
        "SELECT tenant_id FROM public.contact_token WHERE token_hash = presented AND expires_at > now()",
    ),
    # The tenant of a live staff session.
    "rapidly_staff_session_tenant(presented text)": (
        "uuid",
        "SELECT tenant_id FROM public.staff_session WHERE token_hash = presented AND expires_at > now()",
    ),
    # The tenant of a staff account by its email, unique platform-wide (signing in names no tenant).
    "rapidly_staff_email_tenant(address text)": (
        "uuid",
        "SELECT tenant_id FROM public.staff_user WHERE email = address",
    ),
    # Tenants with messages due, the longest waiting first (the dispatcher's claim then goes tenant
    # by tenant).
    "rapidly_tenants_with_due_messages()": (
        "SETOF uuid",
        "SELECT tenant_id FROM public.outbound_message WHERE status = 'PENDING' AND next_attempt_at <= now() "
        "GROUP BY tenant_id ORDER BY min(next_attempt_at)",
    ),
    # Tenants with erasures whose outside stores are due for a retry.
    "rapidly_tenants_with_due_erasures()": (
        "SETOF uuid",
        "SELECT DISTINCT tenant_id FROM public.erasure WHERE completed_at IS NULL AND next_attempt_at <= clock_timestamp()",
    ),
    # For /metrics: how many of each, all tenants together.
    "rapidly_pending_counts()": (
        "TABLE (erasures bigint, messages bigint)",
        "SELECT (SELECT count(*) FROM public.erasure WHERE completed_at IS NULL), "
        "(SELECT count(*) FROM public.outbound_message WHERE status = 'PENDING')",
    ),
    # The realtime hub's resync and sweep of the event log (IDs, kinds and times only).
    "rapidly_events_since(since timestamptz, after bigint)": (
        "TABLE (id bigint, tenant_id uuid, contact_id uuid, kind text, created_at timestamptz)",
        "SELECT e.id, e.tenant_id, e.contact_id, e.kind, e.created_at FROM public.contact_event e "
        "WHERE e.created_at >= since OR e.id > after ORDER BY e.id",
    ),
    "rapidly_events_settled(after bigint, missing bigint[], max_rows int, settle interval)": (
        "TABLE (id bigint, tenant_id uuid, contact_id uuid, kind text, created_at timestamptz)",
        "(SELECT e.id, e.tenant_id, e.contact_id, e.kind, e.created_at FROM public.contact_event e "
        " WHERE e.id > after AND e.created_at < clock_timestamp() - settle ORDER BY e.id LIMIT max_rows) "
        "UNION ALL (SELECT e.id, e.tenant_id, e.contact_id, e.kind, e.created_at FROM public.contact_event e "
        " WHERE e.id = ANY(missing)) ORDER BY id",
    ),
}


#: The staff's search (`rapidly.contacts.service._page`): IDs of the current tenant's contacts with a
#: value matching one of `patterns`, most recently active first, after (`after_at`, `after_id`).
#: Under the policy, LIKE (not leakproof) may not run before it, so it could not use the values'
#: trigram index, and a rare word read all of a tenant's values; run as the owner, within the
#: caller's own tenant (`rapidly_tenant()`), it can. Planned anew for each search's words (EXECUTE).
_SEARCH = r"""
CREATE OR REPLACE FUNCTION rapidly_search_contacts(after_at timestamptz, after_id uuid, max_rows int, patterns text[])
RETURNS TABLE (id uuid) LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $search$
DECLARE
    matching text;
BEGIN
    SELECT string_agg(format('lower(v.value #>> ''{}'') LIKE $4[%s]', i), ' OR ') INTO matching
    FROM generate_subscripts(patterns, 1) AS i;
    IF matching IS NULL OR rapidly_tenant() IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT c.id FROM public.contact c WHERE c.tenant_id = public.rapidly_tenant() '
        'AND c.first_saved_at IS NOT NULL %s AND EXISTS (SELECT 1 FROM public.field_value v '
        'WHERE v.tenant_id = c.tenant_id AND v.contact_id = c.id AND (%s)) '
        'ORDER BY c.updated_at DESC, c.id DESC LIMIT $3',
        CASE WHEN after_at IS NULL THEN '' ELSE 'AND (c.updated_at, c.id) < ($1, $2)' END,
        matching
    ) USING after_at, after_id, max_rows, patterns;
END
$search$
"""


def _functions() -> list[str]:
    statements = [_CURRENT_TENANT]
    for signature, (returns, body) in CROSS_TENANT.items():
        statements.append(_cross_tenant(signature, returns, body))
        statements.append(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    statements.append(_SEARCH)
    statements.append("REVOKE ALL ON FUNCTION rapidly_search_contacts(timestamptz, uuid, int, text[]) FROM PUBLIC")
    return statements


class Migration(migrations.Migration):
    """Tenant isolation enforced by PostgreSQL: row-level security on every table with `tenant_id`
    (see rapidly/tenancy.py for how the app sets the tenant, and the functions it may call to
    work across tenants; `rapidly.db.migrate` grants the app role EXECUTE on those)."""

    dependencies = [("rapidly", "0007_contact_scale")]

    initial = False

    operations = [
        ops.RunSQL(
            [*_functions(), *(sql for table in TENANT_TABLES for sql in _isolate(table)), *_TENANT_TABLE],
            reverse_sql=[
                *(f"DROP POLICY IF EXISTS {name} ON tenant" for name in ("tenant_read", "tenant_create", "tenant_update")),
                "DROP POLICY IF EXISTS database_owner ON tenant",
                "ALTER TABLE tenant NO FORCE ROW LEVEL SECURITY",
                "ALTER TABLE tenant DISABLE ROW LEVEL SECURITY",
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
                "DROP FUNCTION IF EXISTS rapidly_search_contacts(timestamptz, uuid, int, text[])",
                "DROP FUNCTION IF EXISTS rapidly_tenant()",
            ],
        ),
    ]
