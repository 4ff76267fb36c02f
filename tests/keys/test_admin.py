"""`rapidly keys status` and `rapidly keys rotate`, run as an operator runs them, against real PostgreSQL:
counts and key IDs, never a key; a rotation from one root key to another after which every contact reads
with the new key alone; a rotation stopped by Ctrl-C or killed half-way, then run again; two at once; a
tampered tenant key.

The rotations run in databases of their own (`Deployment`), with root keys of their own, so that no
other test's tenant keys are touched."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from rapidly import db
from rapidly.keys.admin import ROTATION_LOCK_ID
from rapidly.keys.root import PassphraseProvider
from rapidly.keys.sealing import new_key
from rapidly.keys.service import tenant_place
from tests.conftest import TEST_ROOT_KEY, free_port, run_cli
from tests.support.databases import scratch_database
from tests.support.served import Served

KEY_A = "the first root key of the rotation tests, " + "a" * 16
KEY_B = "the second root key of the rotation tests, " + "b" * 16

START = "mutation S($t: String!) { startContact(tenant: $t) { __typename ... on ContactSession { token } } }"
SAVE = "mutation Save($key: String!, $value: JSON) { saveField(key: $key, value: $value) { __typename } }"
SEND = "mutation Send($body: String!) { sendChatMessage(body: $body) { __typename } }"
MINE = "query { me { values { key value } chatMessages { edges { node { body } } } } }"


@functools.cache
def root(passphrase: str) -> PassphraseProvider:
    return PassphraseProvider(passphrase)


def spellings(data: bytes) -> list[str]:
    """How bytes could show in a command's output: hex, base64 (both alphabets), and PostgreSQL's bytea."""
    return [
        data.hex(),
        "\\x" + data.hex(),
        base64.b64encode(data).decode().rstrip("="),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
    ]


async def owner_fetch(url: str, query: str, *args: object) -> list:
    conn = await db.Credentials.from_url(url).connect()
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


KEY_ROWS = "SELECT t.slug, k.tenant_id, k.wrapped, k.wrapped_by FROM tenant_key k JOIN tenant t ON t.id = k.tenant_id"


@dataclass
class Deployment:
    """Rapidly on a database of its own (migrated), with a data directory of its own; root key A unless told."""

    base: dict[str, str]
    url: str
    tmp: Path

    def env(self, root_key: str = KEY_A, previous: str | None = None) -> dict[str, str]:
        env = {**self.base, "RAPIDLY_ROOT_KEY": root_key}
        if previous:
            env["RAPIDLY_PREVIOUS_ROOT_KEY"] = previous
        return env

    def rapidly(self, *args: str, root_key: str = KEY_A, previous: str | None = None) -> subprocess.CompletedProcess:
        return run_cli(self.env(root_key, previous), *args, timeout=120)

    def start(self, *args: str, root_key: str = KEY_A, previous: str | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "rapidly", *args],
            env=self.env(root_key, previous),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def serve(self, root_key: str = KEY_A, previous: str | None = None) -> Served:
        return Served(self.env(root_key, previous), self.tmp / f"serve-{uuid.uuid4().hex[:6]}.log", timeout=90)

    def tenants(self, *slugs: str) -> None:
        for slug in slugs:
            made = self.rapidly("tenant", "create", "--slug", slug, "--name", f"{slug} Oy", "--plugin", "roofing_fi")
            assert made.returncode == 0, made.stderr

    async def tenant_key(self, slug: str, root_key: str = KEY_A) -> bytes:
        """The tenant's key, made and stored wrapped as the key ring does on the tenant's first need."""
        [tenant] = await owner_fetch(self.url, "SELECT id FROM tenant WHERE slug = $1", slug)
        key = new_key()
        wrapped = root(root_key).wrap(key, tenant_place(tenant["id"]))
        await owner_fetch(
            self.url,
            "INSERT INTO tenant_key (id, tenant_id, wrapped, wrapped_by, created_at) VALUES ($1, $2, $3, $4, now())",
            uuid.uuid4(),
            tenant["id"],
            wrapped,
            root(root_key).key_id,
        )
        return key

    async def keys(self) -> dict[str, tuple[uuid.UUID, bytes, str]]:
        """Each tenant's key row, read as the owner: slug -> (tenant ID, wrapped, wrapped_by)."""
        rows = await owner_fetch(self.url, KEY_ROWS)
        return {row["slug"]: (row["tenant_id"], bytes(row["wrapped"]), row["wrapped_by"]) for row in rows}

    async def opened(self, slug: str) -> tuple[str, bytes]:
        """Which of the two root keys opens the tenant's key, and the key."""
        tenant_id, wrapped, wrapped_by = (await self.keys())[slug]
        for passphrase in (KEY_A, KEY_B):
            if root(passphrase).key_id == wrapped_by:
                return passphrase, root(passphrase).unwrap(wrapped, tenant_place(tenant_id))
        raise AssertionError(f"tenant {slug}: wrapped by neither root key")


@pytest.fixture
async def deployment(env, database_url, tmp_path) -> AsyncIterator[Deployment]:
    async with scratch_database(database_url, "rapidly_keys") as url:
        base = {**env, "RAPIDLY_DATABASE_URL": url, "RAPIDLY_DATA_DIR": str(tmp_path / "data")}
        made = Deployment(base, url, tmp_path)
        migrated = made.rapidly("migrate")
        assert migrated.returncode == 0, migrated.stderr
        yield made


def contact_with_a_message(served: Served, slug: str, text: str) -> str:
    """A contact of the tenant who saved their name and wrote a chat message: their token."""
    started = served.gql(START, {"t": slug})["data"]["startContact"]
    token = started["token"]
    assert served.gql(SAVE, {"key": "name", "value": f"{text} (name)"}, token)["data"]["saveField"]["__typename"] == (
        "FieldSaved"
    )
    assert served.gql(SEND, {"body": text}, token)["data"]["sendChatMessage"]["__typename"] == "ChatMessageSent"
    return token


def what_they_see(served: Served, token: str) -> tuple[list[str], list[str]]:
    """Their saved values and their chat, as the `me` query shows them."""
    me = served.gql(MINE, token=token)["data"]["me"]
    return [v["value"] for v in me["values"]], [e["node"]["body"] for e in me["chatMessages"]["edges"]]


# -- status -----------------------------------------------------------------------------------------


async def test_status_counts_the_keys_by_root_key_and_shows_no_key(env, world, gql, database_url):
    # given: a tenant with a contact (its tenant key and the contact's key made), and one without any
    await world.tenant("status-one")
    await world.tenant("status-two")
    token = (await gql(START, {"t": "status-one"}))["startContact"]["token"]
    assert (await gql(SAVE, {"key": "name", "value": "Maija"}, token=token))["saveField"]["__typename"] == "FieldSaved"
    wrapped = [bytes(r["wrapped"]) for r in await owner_fetch(database_url, "SELECT wrapped FROM tenant_key")]
    wrapped += [bytes(r["wrapped"]) for r in await owner_fetch(database_url, "SELECT wrapped FROM contact_key")]
    assert len(wrapped) == 2

    # when
    shown = run_cli(env, "keys", "status")
    machine = run_cli(env, "keys", "status", "--json", "--tenants")

    # then: counts and the root key's ID
    key_id = root(TEST_ROOT_KEY).key_id
    assert shown.returncode == 0, shown.stderr
    assert f"root key:      {key_id} (RAPIDLY_ROOT_KEY)" in shown.stdout
    assert "tenant keys:   1 (1 of 2 tenants have none yet" in shown.stdout
    assert f"       1  under {key_id} (the root key)" in shown.stdout
    assert "contact keys:  1" in shown.stdout
    assert "every tenant key opens with the configured root keys" in shown.stdout
    assert machine.returncode == 0, machine.stderr
    status = json.loads(machine.stdout)
    assert status["root_keys"] == [{"key_id": key_id, "source": "RAPIDLY_ROOT_KEY", "current": True}]
    assert status["tenants"] == 2
    assert status["tenant_keys"] == {"total": 1, "by_root_key": {key_id: 1}, "not_opening": 0}
    assert status["contact_keys"] == {"total": 1, "by_tenant": {"status-one": 1, "status-two": 0}}
    assert status["by_tenant"] == [
        {"tenant": "status-one", "root_key": key_id, "opens": True, "contact_keys": 1},
        {"tenant": "status-two", "root_key": None, "opens": None, "contact_keys": 0},
    ]
    # ... and neither the passphrase nor any key, wrapped or not, in any spelling
    for output in (shown.stdout, shown.stderr, machine.stdout, machine.stderr):
        assert TEST_ROOT_KEY not in output
        for data in wrapped:
            assert not any(spelled in output for spelled in spellings(data))


# -- rotate -----------------------------------------------------------------------------------------


async def test_a_rotation_rewraps_every_tenant_key_and_the_new_root_key_alone_reads_everything(deployment):
    # given: two tenants, each with a contact who wrote, under root key A
    deployment.tenants("north", "south")
    served = deployment.serve(KEY_A)
    try:
        tokens = {slug: contact_with_a_message(served, slug, f"Hello from {slug}") for slug in ("north", "south")}
    finally:
        assert served.stop() == 0, served.log()
    before = await deployment.keys()
    assert {wrapped_by for _, _, wrapped_by in before.values()} == {root(KEY_A).key_id}
    keys_before = {slug: (await deployment.opened(slug))[1] for slug in before}

    # when: B is the root key, A the previous one
    rotated = deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A)

    # then: every tenant key is under B, the same key in a new envelope
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert f"2 of 2 tenant keys to re-wrap under {root(KEY_B).key_id}" in rotated.stdout
    assert f"tenant keys re-wrapped under {root(KEY_B).key_id}: 2" in rotated.stdout
    after = await deployment.keys()
    for slug in ("north", "south"):
        assert after[slug][2] == root(KEY_B).key_id
        assert after[slug][1] != before[slug][1]
        assert await deployment.opened(slug) == (KEY_B, keys_before[slug])
    assert KEY_A not in rotated.stdout + rotated.stderr and KEY_B not in rotated.stdout + rotated.stderr
    # ... status with B alone says so
    status = deployment.rapidly("keys", "status", "--json", root_key=KEY_B)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["tenant_keys"]["by_root_key"] == {root(KEY_B).key_id: 2}
    # ... `serve` with B alone starts, and each contact reads what they saved and wrote
    served = deployment.serve(KEY_B)
    try:
        for slug, token in tokens.items():
            assert what_they_see(served, token) == ([f"Hello from {slug} (name)"], [f"Hello from {slug}"])
    finally:
        assert served.stop() == 0, served.log()
    # ... and with A alone it refuses to start, once, naming how many tenants
    refused = deployment.rapidly("serve", "--port", str(free_port()), root_key=KEY_A)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the root key does not open the keys of 2 of 2 tenants" in refused.stderr
    # ... and a rotation again has nothing to do
    again = deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A)
    assert again.returncode == 0, again.stderr
    assert f"every tenant key (2) is under {root(KEY_B).key_id} already" in again.stdout
    assert await deployment.keys() == after


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def rotation_held_at(deployment: Deployment, slug: str) -> tuple[subprocess.Popen, asyncpg.Connection]:
    """`rapidly keys rotate` (B, previous A) started with the tenant's key row locked by the test, so
    that the rotation waits there, having done the tenants before it: the process and the lock's
    connection (its transaction open)."""
    tenant_id = (await deployment.keys())[slug][0]
    holder = await db.Credentials.from_url(deployment.url).connect()
    await holder.execute("BEGIN")
    await holder.execute("SELECT 1 FROM tenant_key WHERE tenant_id = $1 FOR UPDATE", tenant_id)
    process = deployment.start("keys", "rotate", root_key=KEY_B, previous=KEY_A)

    async def waiting() -> bool:  # asked on a connection of its own: a transaction sees one snapshot of the activity
        assert process.poll() is None, process.communicate()
        query = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return bool(await owner_fetch(deployment.url, query))

    await until(waiting)
    return process, holder


async def test_ctrl_c_finishes_the_tenant_under_way_and_a_rotation_again_goes_on(deployment):
    # given: three tenants with contacts under A, and a rotation to B under way at the second
    deployment.tenants("first", "second", "third")
    served = deployment.serve(KEY_A)
    try:
        tokens = {
            slug: contact_with_a_message(served, slug, f"Written to {slug}") for slug in ("first", "second", "third")
        }
    finally:
        assert served.stop() == 0, served.log()
    process, holder = await rotation_held_at(deployment, "second")
    assert (await deployment.keys())["first"][2] == root(KEY_B).key_id

    # when: Ctrl-C, then the tenant under way can go on
    process.send_signal(signal.SIGINT)
    await holder.execute("ROLLBACK")
    await holder.close()
    stdout, stderr = process.communicate(timeout=60)

    # then: the tenant under way was finished, the one after it left for the next run
    assert process.returncode == 130, stdout + stderr
    assert stderr.strip().splitlines() == [
        "error: stopped after 2 of 3 tenant keys (2 re-wrapped), each either as it was or re-wrapped: "
        "run `rapidly keys rotate` again to finish"
    ]
    keys = await deployment.keys()
    assert [keys[slug][2] for slug in ("first", "second", "third")] == [root(KEY_B).key_id] * 2 + [root(KEY_A).key_id]
    # ... `serve` with both keys starts half-way, and every contact reads
    served = deployment.serve(KEY_B, previous=KEY_A)
    try:
        for slug, token in tokens.items():
            assert what_they_see(served, token)[1] == [f"Written to {slug}"]
    finally:
        assert served.stop() == 0, served.log()
    # ... and a rotation again re-wraps the one left
    again = deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 of 3 tenant keys to re-wrap" in again.stdout
    assert {wrapped_by for _, _, wrapped_by in (await deployment.keys()).values()} == {root(KEY_B).key_id}


async def test_a_rotation_killed_half_way_leaves_each_key_old_or_new_and_runs_again(deployment):
    # given: three tenants' keys under A, and a rotation to B under way at the second
    deployment.tenants("kilo", "lima", "mike")
    keys = {slug: await deployment.tenant_key(slug, KEY_A) for slug in ("kilo", "lima", "mike")}
    process, holder = await rotation_held_at(deployment, "lima")

    # when: the process dies (a crash, kill -9) in the middle of the second tenant
    process.kill()
    process.communicate(timeout=30)
    await holder.execute("ROLLBACK")
    await holder.close()

    async def its_sessions_ended() -> bool:  # the rotation lock's, and the one that waited
        query = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        return not await owner_fetch(deployment.url, query)

    await until(its_sessions_ended)

    # then: the first is under B, the others under A; each the same key
    assert [(await deployment.opened(slug)) for slug in ("kilo", "lima", "mike")] == [
        (KEY_B, keys["kilo"]),
        (KEY_A, keys["lima"]),
        (KEY_A, keys["mike"]),
    ]
    # ... and a rotation again does the rest
    again = deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 of 3 tenant keys to re-wrap" in again.stdout
    assert [(await deployment.opened(slug)) for slug in ("kilo", "lima", "mike")] == [(KEY_B, keys[s]) for s in keys]


async def test_a_second_rotation_at_once_is_refused_at_once(deployment):
    # given: a tenant key under A, and a rotation under way (its lock held)
    deployment.tenants("busy")
    await deployment.tenant_key("busy", KEY_A)
    holder = await db.Credentials.from_url(deployment.url).connect()
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", ROTATION_LOCK_ID)

        # when
        began = time.monotonic()
        refused = deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A)
        took = time.monotonic() - began
    finally:
        await holder.close()

    # then: one line, at once (the time a command takes to start), nothing changed
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: another `rapidly keys rotate` is under way on this database: let it finish (or stop it), "
        "then run it again if it did not"
    ]
    assert took < 30
    assert (await deployment.keys())["busy"][2] == root(KEY_A).key_id
    # ... and once it is over, a rotation runs
    assert deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A).returncode == 0
    assert (await deployment.keys())["busy"][2] == root(KEY_B).key_id


async def test_a_tampered_tenant_key_is_named_and_left_and_the_others_are_rotated(deployment):
    # given: three tenant keys under A, one of them altered in the database (a byte flipped)
    deployment.tenants("alpha", "beta", "gamma")
    keys = {slug: await deployment.tenant_key(slug, KEY_A) for slug in ("alpha", "beta", "gamma")}
    tenant_id, wrapped, _ = (await deployment.keys())["beta"]
    tampered = wrapped[:30] + bytes([wrapped[30] ^ 1]) + wrapped[31:]
    await owner_fetch(deployment.url, "UPDATE tenant_key SET wrapped = $2 WHERE tenant_id = $1", tenant_id, tampered)

    # when
    status = deployment.rapidly("keys", "status", root_key=KEY_B, previous=KEY_A)
    rotated = deployment.rapidly("keys", "rotate", root_key=KEY_B, previous=KEY_A)

    # then: status and rotate name it by its slug and end with status 1
    assert status.returncode == 1, status.stdout + status.stderr
    assert "tenant keys that do not open with the configured root keys: 1" in status.stdout
    assert f"  beta: its key does not open with the root key {root(KEY_A).key_id}" in status.stdout
    assert rotated.returncode == 1, rotated.stdout + rotated.stderr
    assert f"tenant beta: its key does not open with the root key {root(KEY_A).key_id}" in rotated.stderr
    assert rotated.stderr.strip().splitlines()[-1] == (
        "error: tenant keys that no configured root key opens, left as they are: 1 (beta)"
    )
    # ... the others are rotated, the altered row left as it was
    assert await deployment.opened("alpha") == (KEY_B, keys["alpha"])
    assert await deployment.opened("gamma") == (KEY_B, keys["gamma"])
    assert (await deployment.keys())["beta"][1:] == (tampered, root(KEY_A).key_id)
    for output in (status.stdout, status.stderr, rotated.stdout, rotated.stderr):
        assert not any(spelled in output for data in (wrapped, tampered) for spelled in spellings(data))


def test_a_previous_root_key_without_a_current_one_is_refused(env):
    # given: the old root key named as the previous one, and no new one (it would be taken for the current one)
    only_previous = {name: value for name, value in env.items() if name != "RAPIDLY_ROOT_KEY"}
    only_previous["RAPIDLY_PREVIOUS_ROOT_KEY"] = KEY_A

    for command in ("status", "rotate"):
        # when
        refused = run_cli(only_previous, "keys", command)

        # then: one line naming what to set, status 2, before anything is read or written
        assert refused.returncode == 2, refused.stdout + refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert "RAPIDLY_PREVIOUS_ROOT_KEY is set but no current root key is: set RAPIDLY_ROOT_KEY" in line, line
        assert KEY_A not in refused.stdout + refused.stderr
