from tortoise import migrations
from tortoise.migrations import operations as ops

#: Index name -> what it indexes. Each serves a foreign key's action or a per-contact statement, so
#: that what one contact costs does not grow with everyone else's rows.
INDEXES = {
    # The target of the contact's children's foreign keys (below).
    "contact_tenant_id_key": "UNIQUE INDEX {name} ON contact (tenant_id, id)",
    # The abandoned-contact purge (contacts.purge_abandoned) reads only the few never saved.
    "contact_unsaved": "INDEX {name} ON contact (created_at) WHERE first_saved_at IS NULL",
    # Erasing a contact's tokens; purging expired links.
    "contact_token_contact": "INDEX {name} ON contact_token (tenant_id, contact_id)",
    "contact_token_expiry": "INDEX {name} ON contact_token (expires_at)",
    # Deleting a photo sets its chat attachments to NULL: find them without reading every message.
    "chat_message_attachment": "INDEX {name} ON chat_message (attachment_id) WHERE attachment_id IS NOT NULL",
    # Erasing a contact's events (the log is pruned by time through its own index) and its counters
    # (migration 0002 declared one on rate_limit.contact_id, but the ORM's AddField did not create it).
    "contact_event_contact": "INDEX {name} ON contact_event (tenant_id, contact_id)",
    "rate_limit_contact": "INDEX {name} ON rate_limit (tenant_id, contact_id) WHERE contact_id IS NOT NULL",
    # Deleting a tenant, or a staff member (their sessions, their notifications).
    "audit_event_tenant": "INDEX {name} ON audit_event (tenant_id, contact_id)",
    "notification_tenant": "INDEX {name} ON notification (tenant_id, contact_id)",
    "staff_user_tenant": "INDEX {name} ON staff_user (tenant_id)",
    "staff_session_staff": "INDEX {name} ON staff_session (staff_id)",
}

#: Tables whose rows belong to a contact, and the foreign key each has to it.
CONTACT_CHILDREN = ("contact_token", "field_value", "media", "chat_message")


def _build(name: str, definition: str) -> list[str]:
    """Built CONCURRENTLY, so saves go on while a large table is indexed; a build that was cut off
    leaves an invalid index behind, which is dropped first."""
    return [
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE c.relname = '{name}' AND NOT i.indisvalid) THEN DROP INDEX {name}; END IF; END $$",
        "CREATE " + definition.format(name=name).replace("INDEX", "INDEX CONCURRENTLY IF NOT EXISTS", 1),
    ]


def _contact_key(table: str, columns: str, target: str) -> list[str]:
    """Swap the foreign key to the contact under the same name. The swap locks the table for a
    moment: it gives up after 5 s rather than queue every save behind a long transaction (run the
    migration again; each step is idempotent). Added NOT VALID, the key is then validated without
    blocking writes."""
    name = f"{table}_contact_id_fkey"
    return [
        f"BEGIN; SET LOCAL lock_timeout = '5s'; ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, "
        f"ADD CONSTRAINT {name} FOREIGN KEY ({columns}) REFERENCES contact ({target}) ON DELETE CASCADE NOT VALID; "
        "COMMIT",
        f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}",
    ]


class Migration(migrations.Migration):
    """Erasure, retention and staff lists that cost what one contact holds, at any table size.

    PostgreSQL does not index foreign keys by itself, so deleting a contact made the database read
    every table that refers to it, to cascade: an erasure took 30 ms in an empty database and
    1.5 s beside 300,000 other contacts. Every foreign key now has an index led by its columns
    (tests/erasure/test_scale.py checks the catalog, so a table added later is covered too).

    A contact's rows point at it by (tenant_id, contact_id) -> contact (tenant_id, id) instead of
    contact_id alone: the indexes each table already has for its tenant's queries then serve the
    cascade as well (no second index on the busiest table, field_value), a row can never point at
    another tenant's contact, and the key carries the tenant, as a database distributed by tenant
    requires (docs/scaling.md). The ORM's models still declare the one-column relation they join by.
    """

    dependencies = [("rapidly", "0006_contact_search")]

    initial = False
    atomic = False

    operations = [
        ops.RunSQL(
            [
                *(sql for name, definition in INDEXES.items() for sql in _build(name, definition)),
                *(sql for table in CONTACT_CHILDREN for sql in _contact_key(table, "tenant_id, contact_id", "tenant_id, id")),
            ],
            reverse_sql=[
                *(sql for table in CONTACT_CHILDREN for sql in _contact_key(table, "contact_id", "id")),
                *(f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in reversed(INDEXES)),
            ],
        ),
    ]
