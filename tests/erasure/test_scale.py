"""Erasing a contact, and a staff page of contacts, cost what they show, whatever else the database holds.

PostgreSQL does not index foreign keys by itself: without an index, the cascade behind a contact's
deletion reads the whole of every table that points at it. The catalog test covers every foreign
key there is, so a table added later is held to it without editing the test; the second erases a
contact among thousands and fails on any sequential scan of a table holding contact data.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TypeVar

import asyncpg
import pytest

from rapidly import db, tenancy
from rapidly.contacts import service as contacts
from rapidly.erasure.models import Requester
from rapidly.erasure.service import ErasureService
from rapidly.media import service as media
from rapidly.messaging import outbox
from rapidly.tenants.models import Tenant
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


T = TypeVar("T")
CONTACTS_PER_TENANT = 10_000


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
            table: ["tenant_id", "contact_id"]
            for table in ("chat_message", "contact_key", "contact_token", "field_value", "media")
        }
        ours, theirs = [r["id"] for r in await conn.fetch("SELECT id FROM tenant ORDER BY slug")]
    with tenancy.as_tenant(ours):
        async with db.connection() as conn:
            contact = await conn.fetchval(
                "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at) "
                "VALUES (gen_random_uuid(), $1, 'fi', now(), now()) RETURNING id",
                ours,
            )
    # as the other tenant, whose rows row-level security lets it write: the foreign key refuses it
    refused = pytest.raises(asyncpg.ForeignKeyViolationError, match="field_value_contact_id_fkey")
    with tenancy.as_tenant(theirs), refused:
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
                "VALUES (gen_random_uuid(), $1, $2, 'name', '\"x\"', now())",
                theirs,
                contact,
            )


@dataclass
class Populated:
    tenant_id: uuid.UUID
    #: A contact with values, a token, photos and chat, as each of the thousands beside it has.
    contact_id: uuid.UUID
    #: Every table that holds contact data.
    tables: set[str]


@pytest.fixture
async def populated(gql, world, server) -> Populated:
    """Two tenants with 10,000 contacts each, every table that holds contact data filled for each:
    enough that reading a tenant's rows whole costs the planner more than looking up 50 contacts'
    (with 2,000, reading a tenant's photos in index order was rightly the cheaper plan)."""
    for slug, email in (("kattohuolto", "anna@kattohuolto.example"), ("verstas", "erik@verstas.example")):
        await world.tenant(slug)
        await world.staff(slug, email)
    owner = await db.Credentials.from_url(server.app.state.settings.database_url).connect()
    try:
        for statement in _POPULATE:
            await owner.execute(statement, *([CONTACTS_PER_TENANT] if "$1" in statement else []))
        tables = {r[0] for r in await owner.fetch(_CONTACT_TABLES)}
        token = await start(gql, "kattohuolto")
        await save(gql, token, "name", "Maija Meikäläinen")
        newest = "SELECT tenant_id, id FROM contact ORDER BY created_at DESC LIMIT 1"
        tenant_id, contact_id = await owner.fetchrow(newest)
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
    return Populated(tenant_id, contact_id, tables)


_READS = "SELECT relname, seq_scan, idx_scan, idx_tup_fetch FROM pg_stat_xact_user_tables"


async def reads_of(work: Callable[[], Awaitable[T]]) -> tuple[T, list[dict]]:
    """What `work` returned, and each table it read with how (scans, rows), from PostgreSQL's own
    counts for the connection, before and after; the transaction is then rolled back, leaving nothing
    changed. (The "xact" counts also hold the connection's earlier transactions not yet flushed.)
    It runs as the tenant the caller set (`tenancy.as_tenant`): the transaction's tenant is set as it begins.

    Sequential scans are priced out (`enable_seqscan = off`), so that one is made only where no
    index can serve the statement: on tables of a few thousand rows the planner would rightly
    prefer reading a small table whole, and the test would say nothing of a large one."""
    outcome: list = []
    with pytest.raises(_RolledBack):
        async with db.transaction() as conn:
            await conn.execute_script("SET LOCAL enable_seqscan = off")
            before = {r["relname"]: r for r in await conn.execute_query_dict(_READS)}
            outcome.append(await work())
            after = await conn.execute_query_dict(_READS)
            raise _RolledBack
    zero = dict.fromkeys(("seq_scan", "idx_scan", "idx_tup_fetch"), 0)
    reads = [{k: v if k == "relname" else v - before.get(r["relname"], zero)[k] for k, v in r.items()} for r in after]
    return outcome[0], [r for r in reads if r["seq_scan"] or r["idx_scan"]]


def assert_read_only_what_is_needed(reads: list[dict], tables: set[str], most: int) -> None:
    """No table of contact data read whole, by a sequential scan or by an index scan over a whole
    tenant: at most `most` rows of each."""
    read_whole = sorted(r["relname"] for r in reads if r["relname"] in tables and r["seq_scan"])
    assert read_whole == [], f"sequential scans of {read_whole}: {reads}"
    read_many = sorted(r["relname"] for r in reads if r["relname"] in tables and r["idx_tup_fetch"] > most)
    assert read_many == [], f"more than {most} rows read in {read_many}: {reads}"


async def test_erasing_a_contact_among_thousands_reads_no_table_of_contact_data_whole(server, populated):
    erasure: ErasureService = server.app.state.erasure

    with tenancy.as_tenant(populated.tenant_id):
        receipt, reads = await reads_of(
            lambda: erasure.erase(populated.tenant_id, populated.contact_id, Requester.STAFF)
        )

    removed = receipt.removed
    assert (removed["field_values"], removed["media"], removed["chat_messages"], removed["contact"]) == (1, 3, 5, 1)
    assert_read_only_what_is_needed(reads, populated.tables, most=20)  # the contact holds a handful in each
    assert {r["relname"] for r in reads} >= {"contact", "field_value", "media", "chat_message"}  # they were read
    with tenancy.as_tenant(populated.tenant_id):
        async with db.connection() as conn:  # and nothing was left erased
            assert await conn.fetchval("SELECT count(*) FROM contact WHERE id = $1", populated.contact_id) == 1


@pytest.mark.parametrize("depth", [0, 7_500])
async def test_a_staff_page_of_contacts_reads_that_page_only_however_deep(server, populated, depth):
    """contacts(first: 50) with each contact's values, photos and messages, as the console shows it."""
    tenant = await Tenant.get(id=populated.tenant_id)
    after = None
    if depth:
        with tenancy.as_tenant(tenant.id):
            async with db.connection() as conn:
                row = await conn.fetchrow(
                    "SELECT id, updated_at FROM contact WHERE tenant_id = $1 ORDER BY updated_at DESC, id DESC "
                    "OFFSET $2 LIMIT 1",
                    tenant.id,
                    depth,
                )
        after = contacts.encode_cursor(SimpleNamespace(**row))

    async def page() -> list[list]:
        found = (await contacts.list_contacts(tenant, 50, after)).contacts
        ids = [c.id for c in found]
        return [
            found,
            await contacts.values_by_contact(tenant.id, ids),
            await media.media_by_contact(tenant.id, ids),
            await outbox.messages_by_contact(ids),
        ]

    with tenancy.as_tenant(tenant.id):
        (found, values, photos, messages), reads = await reads_of(page)

    assert len(found) == 50 and all(values) and sum(map(len, values)) >= 49 * 3
    assert sum(map(len, photos)) >= 49 and sum(map(len, messages)) >= 49
    assert_read_only_what_is_needed(reads, populated.tables, most=200)  # 50 contacts, 150 values, ...
