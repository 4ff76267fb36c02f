"""Migrations on a database that holds data, as an operator's does: up from the release before,
back down, and up again, with every row kept and every key valid."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.migrations.api import migrate

from rapidly import db

_FILL = [
    "INSERT INTO tenant (id, slug, name, plugin, default_locale, created_at, updated_at, message_channels) "
    "VALUES ($1, 'kattohuolto', 'Kattohuolto', 'roofing_fi', 'fi', now(), now(), '[]')",
    "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
    "SELECT gen_random_uuid(), $1, 'fi', now(), now(), now() FROM generate_series(1, 500)",
    "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
    "SELECT gen_random_uuid(), tenant_id, id, 'name', '\"Maija\"', now() FROM contact WHERE tenant_id = $1",
    "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
    "SELECT gen_random_uuid(), tenant_id, id, md5(id::text) || md5(id::text || 'x'), now(), now() + interval '1 day' "
    "FROM contact WHERE tenant_id = $1",
    "INSERT INTO media (id, tenant_id, contact_id, field_key, content_type, width, height, size_bytes, created_at) "
    "SELECT gen_random_uuid(), tenant_id, id, 'photos', 'image/jpeg', 1, 1, 1, now() FROM contact WHERE tenant_id = $1",
    "INSERT INTO chat_message (id, tenant_id, contact_id, author, body, attachment_id, created_at) "
    "SELECT gen_random_uuid(), tenant_id, contact_id, 'CONTACT', 'hei', id, now() FROM media WHERE tenant_id = $1",
]
_CONTACT_KEYS = (
    "SELECT conrelid::regclass::text, array_length(conkey, 1) FROM pg_constraint "
    "WHERE contype = 'f' AND conname LIKE '%contact_id_fkey' ORDER BY 1"
)


@pytest.fixture
async def scratch(database_url: str):  # type: ignore[no-untyped-def]
    """An empty database of its own on the test server, dropped afterwards."""
    name = f"rapidly_migrations_{uuid.uuid4().hex[:8]}"
    admin = await db.Credentials.from_url(database_url).connect()
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        yield db.Credentials.from_url(url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def migrate_to(credentials: db.Credentials, target: str | None) -> None:
    try:
        await migrate(config=db.tortoise_config(credentials, 2), target=target)
    finally:
        await Tortoise.close_connections()


async def filled(credentials: db.Credentials, target: str) -> asyncpg.Connection:
    """The database migrated to `target` and filled (`_FILL`); a connection to it as the owner."""
    await migrate_to(credentials, target)
    conn = await credentials.connect()
    tenant = uuid.uuid4()
    for statement in _FILL:
        await conn.execute(statement, tenant)
    return conn


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    tables = ("contact", "field_value", "contact_token", "media", "chat_message")
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}  # noqa: S608


async def test_0007_upgrades_a_filled_database_and_goes_back_down(scratch):
    # given: a database at 0006 with contacts, values, tokens, photos and chat
    conn = await filled(scratch, "rapidly.0006_contact_search")
    try:
        before = await counts(conn)

        # when: up to the latest, down to 0006, up again
        await migrate_to(scratch, None)
        up = await conn.fetch(_CONTACT_KEYS)
        await migrate_to(scratch, "rapidly.0006_contact_search")
        down = await conn.fetch(_CONTACT_KEYS)
        await migrate_to(scratch, None)

        # then: the same rows, every foreign key valid, the contact's keys with its tenant
        assert await counts(conn) == before
        assert await conn.fetchval("SELECT bool_and(convalidated) FROM pg_constraint WHERE contype = 'f'")
        children = ("chat_message", "contact_key", "contact_token", "field_value", "media")
        assert [tuple(r) for r in up] == [(t, 2) for t in children]
        assert [tuple(r) for r in down] == [(t, 1) for t in ("chat_message", "contact_token", "field_value", "media")]
        assert [tuple(r) for r in await conn.fetch(_CONTACT_KEYS)] == [tuple(r) for r in up]
        invalid = await conn.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        assert invalid == 0
    finally:
        await conn.close()


async def test_0008_and_0009_bring_row_level_security_to_a_filled_database_and_take_it_away(scratch):
    # given: a database at 0007 with contacts, values, tokens, photos and chat
    conn = await filled(scratch, "rapidly.0007_contact_scale")
    try:
        before = await counts(conn)
        forced = "SELECT count(*) FROM pg_class WHERE relforcerowsecurity AND relnamespace = 'public'::regnamespace"
        policies = "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'"

        # when: up to the latest, down to 0007, up again
        await migrate_to(scratch, None)
        up = (await conn.fetchval(forced), await conn.fetchval(policies))
        await migrate_to(scratch, "rapidly.0007_contact_scale")
        down = (await conn.fetchval(forced), await conn.fetchval(policies))
        await migrate_to(scratch, None)

        # then: every row kept (read here by the owner, a superuser), policies on the way up only
        assert await counts(conn) == before
        # 13 tenant tables of 0008, the key tables of 0010 (tenant_key, contact_key), staff_invitation
        # of 0015, staff_passkey and passkey_challenge of 0016, message_wording of 0017, sms_number_check of
        # 0018, and the tenant table
        assert up[0] == 21 and up[1] == 2 * 20 + 4, up
        assert down == (0, 0)
        assert (await conn.fetchval(forced), await conn.fetchval(policies)) == up
        assert await conn.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
        assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname = 'contact_unsaved_tenant'") == 1
    finally:
        await conn.close()


async def test_0014_makes_each_companys_first_staff_member_its_admin(scratch):
    # given: a database at 0013 with two companies' staff, and audit events of reads
    conn = await filled(scratch, "rapidly.0013_credential_changes")
    try:
        tenant = await conn.fetchval("SELECT id FROM tenant")
        other = uuid.uuid4()
        await conn.execute(
            "INSERT INTO tenant (id, slug, name, plugin, default_locale, created_at, updated_at, message_channels) "
            "VALUES ($1, 'putkimies', 'Putkimies', 'roofing_fi', 'fi', now(), now(), '[]')",
            other,
        )
        staff = [
            (tenant, "b@x.example", "2026-01-02"),
            (tenant, "a@x.example", "2026-01-01"),
            (other, "c@x.example", "2026-03-01"),
        ]
        for tenant_id, email, created in staff:
            await conn.execute(
                "INSERT INTO staff_user (id, tenant_id, email, password_hash, locale, created_at) "
                "VALUES (gen_random_uuid(), $1, $2, 'x', 'fi', $3::text::timestamptz)",
                tenant_id,
                email,
                created,
            )
        await conn.execute(
            "INSERT INTO audit_event (id, tenant_id, staff_id, contact_id, action, created_at) "
            "SELECT gen_random_uuid(), tenant_id, tenant_id, id, 'contact.read', now() FROM contact"
        )

        # when: up, down to 0013, up again
        await migrate_to(scratch, None)
        roles = dict(await conn.fetch("SELECT email, role FROM staff_user"))
        await migrate_to(scratch, "rapidly.0013_credential_changes")
        columns = {
            r[0] for r in await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid = 'staff_user'::regclass")
        }
        await migrate_to(scratch, None)

        # then: the earliest account of each company is its admin; nothing else changed
        assert roles == {"a@x.example": "ADMIN", "b@x.example": "STAFF", "c@x.example": "ADMIN"}
        assert "role" not in columns
        assert await conn.fetchval("SELECT count(*) FROM audit_event WHERE contact_id IS NOT NULL") == 500
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE staff_user SET role = 'OWNER'")
    finally:
        await conn.close()
