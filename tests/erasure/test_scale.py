"""Erasing a contact costs what that contact holds, whatever else the database holds.

PostgreSQL does not index foreign keys by itself: without an index, the cascade behind a contact's
deletion reads the whole of every table that points at it. The catalog test covers every foreign
key there is, so a table added later is held to it without editing the test; the second erases a
contact among thousands and fails on any sequential scan of a table holding contact data.
"""

from __future__ import annotations

import asyncpg
import pytest

from rapidly import db
from rapidly.erasure.models import Requester
from rapidly.erasure.service import ErasureService
from tests.contacts.test_contacts_api import save, start

# Every foreign key, and whether a valid index is led by its columns (in any order). A partial
# index serves only when its predicate is the column being set, which every lookup implies.
_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS "table", c.conname AS name,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k (attnum, i) JOIN pg_attribute a
             ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.i)::text[] AS columns,
       EXISTS (
           SELECT 1 FROM pg_index i
           WHERE i.indrelid = c.conrelid AND i.indisvalid
             AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
             AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey
             AND (i.indpred IS NULL OR (cardinality(c.conkey) = 1 AND pg_get_expr(i.indpred, i.indrelid) =
                  format('(%s IS NOT NULL)', (SELECT attname FROM pg_attribute
                                              WHERE attrelid = c.conrelid AND attnum = c.conkey[1]))))
       ) AS indexed
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.contype = 'f' AND n.nspname = 'public'
ORDER BY 1, 2
"""

#: Every table that holds a contact's data: the contact and each table with a contact_id.
_CONTACT_TABLES = """
SELECT 'contact' UNION SELECT table_name FROM information_schema.columns
WHERE table_schema = 'public' AND column_name = 'contact_id'
"""

# Other contacts of both tenants, with rows in every table that holds contact data.
_POPULATE = [
    "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
    "SELECT gen_random_uuid(), t.id, 'fi', now(), now(), now() FROM tenant t, generate_series(1, $1)",
    "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
    "SELECT gen_random_uuid(), c.tenant_id, c.id, k, to_jsonb('v' || k), now() "
    "FROM contact c, unnest(ARRAY['name', 'email', 'phone']) k",
    "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
    "SELECT gen_random_uuid(), tenant_id, id, md5(id::text) || md5(id::text || 'x'), now(), now() + interval '1 day' "
    "FROM contact",
    "INSERT INTO media (id, tenant_id, contact_id, field_key, content_type, width, height, size_bytes, created_at) "
    "SELECT gen_random_uuid(), tenant_id, id, 'photos', 'image/jpeg', 1, 1, 1, now() FROM contact",
    "INSERT INTO chat_message (id, tenant_id, contact_id, author, body, attachment_id, created_at) "
    "SELECT gen_random_uuid(), m.tenant_id, m.contact_id, 'CONTACT', 'hei', CASE WHEN n = 1 THEN m.id END, now() "
    "FROM media m, generate_series(1, 3) n",
    "INSERT INTO contact_event (tenant_id, contact_id, kind, created_at) "
    "SELECT tenant_id, id, 'FIELD_SAVED', now() FROM contact, generate_series(1, 2)",
    "INSERT INTO rate_limit (key, tenant_id, hits, reset_at, contact_id) "
    "SELECT 'test:' || id, tenant_id, 1, now() + interval '1 hour', id FROM contact",
    "INSERT INTO outbound_message (id, tenant_id, contact_id, event, channel, locale, payload, status, attempts, "
    "next_attempt_at, created_at) SELECT gen_random_uuid(), tenant_id, id, 'SELF_SERVICE_LINK', 'EMAIL', 'fi', '{}', "
    "'SENT', 1, now(), now() FROM contact",
    "INSERT INTO audit_event (id, tenant_id, staff_id, contact_id, action, created_at) "
    "SELECT gen_random_uuid(), c.tenant_id, s.id, c.id, 'VIEW', now() "
    "FROM contact c JOIN staff_user s USING (tenant_id)",
    "INSERT INTO notification (id, tenant_id, staff_id, kind, contact_id, created_at) "
    "SELECT gen_random_uuid(), c.tenant_id, s.id, 'CONTACT_CREATED', c.id, now() "
    "FROM contact c JOIN staff_user s USING (tenant_id)",
    "INSERT INTO erasure (id, tenant_id, contact_id, requested_by, requested_at, completed_at, removed, pending, "
    "attempts) SELECT gen_random_uuid(), id, gen_random_uuid(), 'STAFF', now(), now(), '{}', '[]', 0 "
    "FROM tenant, generate_series(1, $1)",
    "ANALYZE",
]


class _RolledBack(Exception):
    """Ends the transaction the erasure ran in, so the test reads its statistics and leaves nothing."""


async def test_every_foreign_key_has_an_index_led_by_its_columns(server):
    async with db.connection() as conn:
        keys = await conn.fetch(_FOREIGN_KEYS)
    assert len(keys) >= 18  # the catalog query found the schema's foreign keys
    unindexed = [f"{k['table']}.{k['name']} ({', '.join(k['columns'])})" for k in keys if not k["indexed"]]
    assert unindexed == [], "foreign keys without an index led by their columns: " + "; ".join(unindexed)


async def test_the_contacts_children_point_at_it_with_their_tenant(world):
    """A row can never point at another tenant's contact, and the cascade uses each table's own index."""
    await world.tenant("kattohuolto")
    await world.tenant("verstas")
    async with db.connection() as conn:
        keys = await conn.fetch(_FOREIGN_KEYS)
        referencing = {k["table"]: k["columns"] for k in keys if k["name"].endswith("_contact_id_fkey")}
        assert referencing == {
            table: ["tenant_id", "contact_id"] for table in ("chat_message", "contact_token", "field_value", "media")
        }
        ours, theirs = [r["id"] for r in await conn.fetch("SELECT id FROM tenant ORDER BY slug")]
        contact = await conn.fetchval(
            "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at) "
            "VALUES (gen_random_uuid(), $1, 'fi', now(), now()) RETURNING id",
            ours,
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="field_value_contact_id_fkey"):
            await conn.execute(
                "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
                "VALUES (gen_random_uuid(), $1, $2, 'name', '\"x\"', now())",
                theirs,
                contact,
            )


async def test_erasing_a_contact_among_thousands_reads_no_table_of_contact_data_whole(gql, world, server):
    for slug, email in (("kattohuolto", "anna@kattohuolto.example"), ("verstas", "erik@verstas.example")):
        await world.tenant(slug)
        await world.staff(slug, email)
    owner = await db.Credentials.from_url(server.app.state.settings.database_url).connect()
    try:
        for statement in _POPULATE:
            await owner.execute(statement, *([2000] if "$1" in statement else []))
        tables = {r[0] for r in await owner.fetch(_CONTACT_TABLES)}
        token = await start(gql, "kattohuolto")
        await save(gql, token, "name", "Maija Meikäläinen")
        newest = "SELECT tenant_id, id FROM contact ORDER BY created_at DESC LIMIT 1"
        tenant_id, contact_id = await owner.fetchrow(newest)
        # The contact holds photos and chat too, as the others do.
        await owner.execute(
            "UPDATE media SET contact_id = $1 WHERE id IN (SELECT id FROM media WHERE tenant_id = $2 LIMIT 3)",
            contact_id,
            tenant_id,
        )
        await owner.execute(
            "UPDATE chat_message SET contact_id = $1 WHERE id IN (SELECT id FROM chat_message WHERE tenant_id = $2 "
            "AND attachment_id IS NULL LIMIT 5)",
            contact_id,
            tenant_id,
        )
    finally:
        await owner.close()
    assert {"contact", "field_value", "contact_token", "media", "chat_message", "contact_event"} <= tables

    erasure: ErasureService = server.app.state.erasure
    with pytest.raises(_RolledBack):
        async with db.transaction() as conn:
            receipt = await erasure.erase(tenant_id, contact_id, Requester.STAFF)
            scans = await conn.execute_query_dict(
                "SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch FROM pg_stat_xact_user_tables "
                "WHERE seq_scan + idx_scan > 0"
            )
            raise _RolledBack
    removed = receipt.removed
    assert (removed["field_values"], removed["media"], removed["chat_messages"], removed["contact"]) == (1, 3, 5, 1)
    read_whole = sorted(r["relname"] for r in scans if r["relname"] in tables and r["seq_scan"])
    assert read_whole == [], f"sequential scans of {read_whole}: {scans}"
    # An index scan may read a whole tenant too: the contact holds a handful of rows in each table.
    read_many = sorted(r["relname"] for r in scans if r["relname"] in tables and r["idx_tup_fetch"] > 20)
    assert read_many == [], f"more rows read than the contact holds in {read_many}: {scans}"
    assert {r["relname"] for r in scans} >= {"contact", "field_value", "media", "chat_message"}  # they were read
    async with db.connection() as conn:  # and nothing was left erased
        assert await conn.fetchval("SELECT count(*) FROM contact WHERE id = $1", contact_id) == 1
