"""Contacts' keys and backups (issue 27, "Erasure shreds"): a database backup, kept 30 days, holds no
contact key; the keys go into a key snapshot beside it, kept 7 days. So once a week has passed, an
erased contact's ciphertext in any backup is unreadable for good, while a restore still brings back
every other contact, readable, with the keys of the newest snapshot."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from rapidly import db
from rapidly.chat.service import body_place
from tests.backup.conftest import (
    ERASE,
    ME,
    Scratch,
    Serving,
    archive_contents,
    days_pass,
    fill,
    load_archive,
    person,
    s3_client,
    s3_env,
    scratch_env,
    unsealed,
    versions,
)
from tests.conftest import GraphQLClient, run_cli
from tests.contacts.test_contacts_api import save
from tests.support.data_keys import data_keys, opened_by_any
from tests.support.databases import scratch_database

#: What a key snapshot's data key row holds in place of a real wrapped key, where a test needs only rows.
WRAPPED = os.urandom(73)


def cli(cli_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """`rapidly ...` that must succeed; its standard output."""

    def rapidly(*args: str) -> str:
        done = run_cli(cli_env, *args, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    return rapidly


async def owner(url: str) -> asyncpg.Connection:
    """A connection to the database at `url` as its owner (the suite's superuser: every row)."""
    return await db.Credentials.from_url(url).connect()


async def execute(scratch: Scratch, sql: str, *args: object) -> None:
    conn = await owner(scratch.url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def a_tenant(rapidly, scratch: Scratch, slug: str) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A tenant made by the CLI, with a tenant key row (its content is never opened in these tests)."""
    rapidly("tenant", "create", "--slug", slug, "--name", f"{slug} Oy", "--plugin", "roofing_fi")
    tenant_id = await scratch.fetchval("SELECT id FROM tenant WHERE slug = $1", slug)
    await execute(
        scratch,
        "INSERT INTO tenant_key (id, tenant_id, wrapped, wrapped_by, created_at) "
        "VALUES (gen_random_uuid(), $1, $2, 'passphrase:tests', now())",
        tenant_id,
        os.urandom(73),
    )
    return tenant_id  # type: ignore[return-value]


async def a_contact(
    scratch: Scratch, tenant_id: uuid.UUID, *, key: bool = True, sealed_chat: bool = False, plain_value: bool = False
) -> uuid.UUID:
    """A contact row as the service leaves one: with a data key, a sealed chat message, or a value
    saved before encryption (plain, no key)."""
    contact_id = uuid.uuid4()
    await execute(
        scratch,
        "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
        "VALUES ($1, $2, 'fi', now(), now(), now())",
        contact_id,
        tenant_id,
    )
    if key:
        await execute(
            scratch,
            "INSERT INTO contact_key (id, tenant_id, contact_id, wrapped) VALUES (gen_random_uuid(), $1, $2, $3)",
            tenant_id,
            contact_id,
            WRAPPED,
        )
    if sealed_chat:
        await execute(
            scratch,
            "INSERT INTO chat_message (id, tenant_id, contact_id, author, sealed_body, created_at) "
            "VALUES (gen_random_uuid(), $1, $2, 'CONTACT', $3, now())",
            tenant_id,
            contact_id,
            os.urandom(60),
        )
    if plain_value:
        await execute(
            scratch,
            "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
            "VALUES (gen_random_uuid(), $1, $2, 'name', '\"Vanha Asiakas\"', now())",
            tenant_id,
            contact_id,
        )
    return contact_id


async def contacts(scratch: Scratch) -> set[uuid.UUID]:
    conn = await owner(scratch.url)
    try:
        return {row["id"] for row in await conn.fetch("SELECT id FROM contact")}
    finally:
        await conn.close()


async def tables(scratch: Scratch) -> int:
    return await scratch.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")  # type: ignore[return-value]


def backup_id_of(made: str) -> str:
    return made.splitlines()[-1]


# -- the dump and its key snapshot ----------------------------------------------------------------------


async def test_a_backup_leaves_the_contacts_keys_out_of_its_dump_and_seals_them_beside_it(
    env, scratch, database_url, tmp_path
):
    # given: a contact with a data key
    data_dir = tmp_path / "data"
    rapidly = cli(scratch_env(env, scratch, data_dir))
    rapidly("migrate")
    tenant_id = await a_tenant(rapidly, scratch, "keyed")
    contact_id = await a_contact(scratch, tenant_id)

    # when
    backup_id = backup_id_of(rapidly("backup", "create"))

    # then: the dump has the key table's definition and no row of it; the contact's row is there
    store = data_dir / "backups"
    archive = tmp_path / "dump"
    archive.write_bytes(unsealed(store / f"{backup_id}.backup", backup_id))
    listed = [line + " " for line in await archive_contents(archive, scratch.url)]
    assert any(" TABLE public contact_key " in line for line in listed)
    assert not any(" TABLE DATA public contact_key " in line for line in listed)
    assert any(" TABLE DATA public contact " in line for line in listed)
    async with scratch_database(database_url, "rapidly_dump") as dumped_url:
        await load_archive(archive, dumped_url)
        dumped = await owner(dumped_url)
        try:
            counts = await dumped.fetchrow("SELECT (SELECT count(*) FROM contact_key), (SELECT count(*) FROM contact)")
        finally:
            await dumped.close()
    assert tuple(counts) == (0, 1)

    # ... the key snapshot beside it holds the key, sealed (the plain rows are COPY's binary format)
    assert (store / f"{backup_id}.keys").stat().st_mode & 0o777 == 0o600
    assert WRAPPED not in (store / f"{backup_id}.keys").read_bytes()
    snapshot = unsealed(store / f"{backup_id}.keys", f"{backup_id}.keys")
    assert contact_id.bytes in snapshot and WRAPPED in snapshot
    manifest = json.loads((store / "manifest.json").read_text())
    assert [s["id"] for s in manifest["keySnapshots"]] == [backup_id] and manifest["keySnapshotDays"] == 7
    assert [line.split()[0] for line in rapidly("backup", "list").splitlines()] == [backup_id]

    # ... and a restore puts the key back where it was
    await scratch.recreate()
    rapidly("backup", "restore", backup_id)
    assert await scratch.fetchval("SELECT wrapped FROM contact_key WHERE contact_id = $1", contact_id) == WRAPPED


# -- the shred drill -----------------------------------------------------------------------------------


async def test_shred_drill_an_erased_contact_in_an_old_backup_stays_unreadable_and_is_erased_again(
    env, scratch, database_url, tmp_path
):
    # given: a company with two contacts who filled in the form and wrote in the chat
    data_dir = tmp_path / "data"
    store = data_dir / "backups"
    cli_env = scratch_env(env, scratch, data_dir)
    rapidly = cli(cli_env)
    rapidly("migrate")
    rapidly("tenant", "create", "--slug", "drill", "--name", "Drill Oy", "--plugin", "roofing_fi")
    serving = await Serving(cli_env, tmp_path / "serve.log").start()
    erased, kept = person(), person()
    async with httpx.AsyncClient(timeout=10) as http:
        gql = GraphQLClient(http, f"{serving.url}/graphql")
        erased_token = await fill(gql, erased)
        kept_token = await fill(gql, kept)
        erased_id = uuid.UUID((await gql(ME, token=erased_token))["me"]["contactId"])
        kept_id = uuid.UUID((await gql(ME, token=kept_token))["me"]["contactId"])

        # when: a backup; then one of them erases themselves, and two days later another backup
        first = backup_id_of(rapidly("backup", "create"))
        receipt = (await gql(ERASE, token=erased_token))["deleteMyData"]
        assert receipt == {"__typename": "ErasureReceipt", "complete": True}
        days_pass(store, 2)
        second = backup_id_of(rapidly("backup", "create"))
        serving.stop()
    first_keys = unsealed(store / f"{first}.keys", f"{first}.keys")
    second_keys = unsealed(store / f"{second}.keys", f"{second}.keys")

    # ... six more days pass, and the backups are pruned: the first key snapshot is 8 days old
    days_pass(store, 6)
    rapidly("backup", "prune")
    left = {path.name for path in store.iterdir()}

    # ... then the database is lost, the erasure journal too (no replay), and the FIRST backup restored
    shutil.rmtree(data_dir / "media" / "erasures")
    await scratch.recreate()
    restored = run_cli(cli_env, "backup", "restore", first, timeout=120)

    # then: the first snapshot had the erased contact's key, the second not; only the first is gone
    assert erased_id.bytes in first_keys and kept_id.bytes in first_keys
    assert erased_id.bytes not in second_keys and kept_id.bytes in second_keys
    assert left == {f"{first}.backup", f"{second}.backup", f"{second}.keys", "manifest.json"}

    # ... the restore erased nobody from the journal, and the erased contact again as its key is gone
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "erased again 1 contacts erased since it was made (1 whose keys were gone, 0 from the journal)" in (
        restored.stdout
    )
    assert "with 1 contact keys; 1 contacts erased again as their keys are gone, 0 from the journal" in (
        restored.stderr
    )
    assert await contacts(scratch) == {kept_id}
    assert await scratch.fetchval("SELECT count(*) FROM chat_message WHERE contact_id = $1", erased_id) == 0

    # ... its rows are in the dump all the same, and no key the restored database holds opens them
    archive = tmp_path / "first.dump"
    archive.write_bytes(unsealed(store / f"{first}.backup", first))
    keys = await data_keys(scratch.url)
    assert set(keys) == {kept_id}
    async with scratch_database(database_url, "rapidly_dump") as dumped_url:
        await load_archive(archive, dumped_url)
        dumped = await owner(dumped_url)
        try:
            messages = await dumped.fetch("SELECT id, tenant_id, contact_id, sealed_body FROM chat_message")
        finally:
            await dumped.close()

    def opened(contact_id: uuid.UUID) -> list[bytes | None]:
        return [
            opened_by_any(keys.values(), bytes(m["sealed_body"]), body_place(m["tenant_id"], contact_id, m["id"]))
            for m in messages
            if m["contact_id"] == contact_id
        ]

    assert opened(erased_id) == [None]
    assert opened(kept_id) == [kept["chat"].encode()]  # positive control: the same check opens the kept one

    # ... and the service: the erased contact is gone, the kept one reads as before
    serving = await serving.start()
    async with httpx.AsyncClient(timeout=10) as http:
        gql = GraphQLClient(http, f"{serving.url}/graphql")
        me = (await gql(ME, token=kept_token))["me"]
        again = await save(gql, erased_token, "name", "again")
    serving.stop()
    assert [edge["node"]["body"] for edge in me["chatMessages"]["edges"]] == [kept["chat"]]
    assert {v["key"]: v["value"] for v in me["values"]}["name"] == kept["name"]
    assert again["__typename"] == "AuthError"


async def test_a_restore_takes_the_newest_key_snapshot_and_keeps_contacts_from_before_encryption(
    env, scratch, tmp_path
):
    # given: contacts with keys and sealed chats, and one from before encryption (a plain value, no key)
    rapidly = cli(scratch_env(env, scratch, tmp_path / "data"))
    rapidly("migrate")
    tenant_id = await a_tenant(rapidly, scratch, "newest")
    shredded = await a_contact(scratch, tenant_id, sealed_chat=True)
    kept = await a_contact(scratch, tenant_id, sealed_chat=True)
    older = await a_contact(scratch, tenant_id, key=False, plain_value=True)
    first = backup_id_of(rapidly("backup", "create"))

    # when: one contact's key and rows are deleted (as its erasure does), a contact is made, another
    # backup, and the first restored while both key snapshots are there
    await execute(scratch, "DELETE FROM contact_key WHERE contact_id = $1", shredded)
    await execute(scratch, "DELETE FROM contact WHERE id = $1", shredded)
    later = await a_contact(scratch, tenant_id, sealed_chat=True)
    rapidly("backup", "create")
    await scratch.recreate()
    restored = run_cli(scratch_env(env, scratch, tmp_path / "data"), "backup", "restore", first, timeout=120)

    # then: the newest snapshot's keys, of the contacts the backup holds; the shredded one erased again
    assert restored.returncode == 0, restored.stderr
    assert "with 1 contact keys; 1 contacts erased again as their keys are gone" in restored.stderr
    assert await contacts(scratch) == {kept, older}
    assert await scratch.fetchval("SELECT array_agg(contact_id) FROM contact_key") == [kept]
    assert later not in await contacts(scratch)  # made after the backup: its key is skipped
    assert await scratch.fetchval("SELECT value FROM field_value WHERE contact_id = $1", older) == '"Vanha Asiakas"'


# -- no key snapshot -----------------------------------------------------------------------------------


async def test_a_restore_without_any_key_snapshot_is_refused_before_the_database_is_touched(env, scratch, tmp_path):
    # given: a backup of a contact, and no key snapshot left in the store
    data_dir = tmp_path / "data"
    cli_env = scratch_env(env, scratch, data_dir)
    rapidly = cli(cli_env)
    rapidly("migrate")
    await a_contact(scratch, await a_tenant(rapidly, scratch, "lost"))
    backup_id = backup_id_of(rapidly("backup", "create"))
    (data_dir / "backups" / f"{backup_id}.keys").unlink()
    await scratch.recreate()

    # when
    done = run_cli(cli_env, "backup", "restore", backup_id)

    # then: one line that says what is missing and what it would cost
    assert done.returncode == 1, done.stdout + done.stderr
    assert "there is no key snapshot (*.keys, kept 7 days)" in done.stderr
    assert f"every contact of backup {backup_id} would be lost" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert await tables(scratch) == 0


async def test_a_backup_without_contacts_restores_without_a_key_snapshot(env, scratch, tmp_path):
    # given: a backup of a tenant without contacts, and no key snapshot left in the store
    data_dir = tmp_path / "data"
    cli_env = scratch_env(env, scratch, data_dir)
    rapidly = cli(cli_env)
    rapidly("migrate")
    await a_tenant(rapidly, scratch, "empty")
    backup_id = backup_id_of(rapidly("backup", "create"))
    (data_dir / "backups" / f"{backup_id}.keys").unlink()
    await scratch.recreate()

    # when
    done = run_cli(cli_env, "backup", "restore", backup_id)

    # then
    assert done.returncode == 0, done.stderr
    assert await scratch.fetchval("SELECT count(*) FROM tenant") == 1


# -- pruning -------------------------------------------------------------------------------------------


def an_id(age: timedelta) -> str:
    """A backup ID made `age` ago."""
    return f"{(datetime.now(UTC) - age):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


async def test_key_snapshots_go_after_7_days_with_every_version_while_backups_stay_30(
    env, scratch, bucket, s3_endpoint, tmp_path
):
    # given: a fresh backup; a key snapshot 8 days old, overwritten once and then deleted (a delete
    # marker hides it, its versions still hold the keys) beside its backup; and one 6 days old
    cli_env = scratch_env(env, scratch, tmp_path / "data", **s3_env(s3_endpoint, bucket))
    rapidly = cli(cli_env)
    rapidly("migrate")
    fresh = backup_id_of(rapidly("backup", "create"))
    s3 = s3_client(s3_endpoint)
    old, younger = an_id(timedelta(days=8)), an_id(timedelta(days=6))
    for _ in range(2):
        s3.copy_object(Bucket=bucket, Key=f"backups/{old}.keys", CopySource=f"{bucket}/backups/{fresh}.keys")
    s3.delete_object(Bucket=bucket, Key=f"backups/{old}.keys")
    s3.copy_object(Bucket=bucket, Key=f"backups/{old}.backup", CopySource=f"{bucket}/backups/{fresh}.backup")
    s3.copy_object(Bucket=bucket, Key=f"backups/{younger}.keys", CopySource=f"{bucket}/backups/{fresh}.keys")
    assert len(versions(s3, bucket, f"backups/{old}.keys")) == 3

    # when
    pruned = rapidly("backup", "prune")
    listed = rapidly("backup", "list")

    # then: the old snapshot is gone with every version; its backup, 8 days old, stays
    assert versions(s3, bucket, f"backups/{old}.keys") == []
    assert "0 backups older than 30 days deleted" in pruned
    assert [line.split()[0] for line in listed.splitlines()] == [old, fresh]
    kept = {v["Key"] for v in versions(s3, bucket, "backups/")}
    assert kept == {f"backups/{name}" for name in (f"{old}.backup", f"{younger}.keys", f"{fresh}.backup")} | {
        f"backups/{fresh}.keys",
        "backups/manifest.json",
    }
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="backups/manifest.json")["Body"].read())
    assert [b["id"] for b in manifest["backups"]] == [old, fresh]
    assert [s["id"] for s in manifest["keySnapshots"]] == [younger, fresh]
    assert len(versions(s3, bucket, "backups/manifest.json")) == 1
