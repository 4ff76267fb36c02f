"""The drill an operator would run, on real PostgreSQL and S3 (moto's server, a versioned bucket):
fill contacts with markers, back up, erase one, lose the database, restore the backup, serve again.
The erased person must not come back anywhere, and an expired backup must leave no version behind."""

from __future__ import annotations

import json
import shutil

import httpx

from tests.backup.conftest import (
    ERASE,
    ME,
    METRICS_TOKEN,
    Serving,
    every_object,
    fill,
    needles,
    person,
    s3_client,
    s3_env,
    scratch_env,
    versions,
)
from tests.conftest import GraphQLClient, run_cli
from tests.contacts.test_contacts_api import save
from tests.erasure.test_canary import scan


async def test_a_restored_backup_never_brings_back_an_erased_person(env, scratch, bucket, s3_endpoint, tmp_path):
    # given: a company with two contacts, one of whom will be erased
    data_dir = tmp_path / "data"
    cli_env = scratch_env(
        env,
        scratch,
        data_dir,
        **s3_env(s3_endpoint, bucket),
        RAPIDLY_LOG_FORMAT="json",
        RAPIDLY_METRICS_TOKEN=METRICS_TOKEN,
    )
    outputs = []

    def rapidly(*args: str) -> str:
        done = run_cli(cli_env, *args, timeout=120)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    rapidly("migrate")
    rapidly("tenant", "create", "--slug", "drill", "--name", "Drill Oy", "--plugin", "roofing_fi")
    serving = await Serving(cli_env, tmp_path / "serve.log").start()
    erased, kept = person(), person()
    async with httpx.AsyncClient(timeout=10) as http:
        gql = GraphQLClient(http, f"{serving.url}/graphql")
        erased_token = await fill(gql, erased)
        kept_token = await fill(gql, kept)
        kept_id = (await gql(ME, token=kept_token))["me"]["contactId"]
        # Stored sealed (rapidly/keys): no marker in the database, while the person sees every one.
        assert await scan(scratch.url, needles(erased)) == {}
        exported = await http.get(f"{serving.url}/my/{erased_token}/export.json")
        assert all(n in exported.text for n in needles(erased)), "positive control: the sealed markers open"

        # when: a backup is made, then the person erases themselves
        backup_id = rapidly("backup", "create").splitlines()[-1]
        receipt = (await gql(ERASE, token=erased_token))["deleteMyData"]
        assert receipt == {"__typename": "ErasureReceipt", "complete": True}
        serving.stop()

        # ... the database is lost, and the backup restored into a new, empty one
        await scratch.recreate()
        restored = rapidly("backup", "restore", backup_id)

        # ... and serve starts again
        serving = await serving.start()
        assert (await save(gql, erased_token, "name", "again"))["__typename"] == "AuthError"
        assert (await save(gql, kept_token, "name", kept["name"]))["__typename"] == "FieldSaved"
        shown = (await http.get(f"{serving.url}/my/{kept_token}/export.json")).text
        scraped = await http.get(f"{serving.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        serving.stop()

    # then: restored, and the erased person erased again at once
    assert f"restored backup {backup_id}" in restored and "erased again 1 contacts" in restored
    assert [str(c) for c in await scratch.fetchval("SELECT array_agg(id) FROM contact")] == [kept_id]
    assert await scan(scratch.url, needles(erased)) == {}
    assert all(n in shown for n in needles(kept)), "positive control: restored, readable"
    s3 = s3_client(s3_endpoint)
    objects = every_object(s3, bucket)
    assert any(key.startswith(f"backups/{backup_id}.backup@") for key in objects)
    assert any(key.startswith("erasures/") for key in objects)
    everything = needles(erased) + needles(kept)
    assert [(n, key) for key, data in objects.items() for n in everything if n.encode() in data] == []
    log = serving.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(line["message"].startswith("rapidly") and line["message"].endswith("ready") for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert "erased 1 contacts again" not in log  # the restore did it, before serve
    texts = log + "\n".join(outputs) + scraped.text
    assert [n for n in [*everything, erased_token, kept_token] if n in texts] == []
    assert scraped.status_code == 200 and "rapidly_saves_total" in scraped.text
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="backups/manifest.json")["Body"].read())
    assert [b["id"] for b in manifest["backups"]] == [backup_id]
    assert set(manifest["backups"][0]) == {"id", "created", "bytes"}


async def test_prune_deletes_expired_backups_with_every_version_and_keeps_the_rest(
    env, scratch, bucket, s3_endpoint, tmp_path
):
    # given: a fresh backup, and one 31 days old that was overwritten once and then deleted (a
    # delete marker hides it from listings, but its versions still hold the data)
    cli_env = scratch_env(env, scratch, tmp_path / "data", **s3_env(s3_endpoint, bucket))
    assert run_cli(cli_env, "migrate").returncode == 0
    made = run_cli(cli_env, "backup", "create")
    fresh = made.stdout.splitlines()[-1]
    s3 = s3_client(s3_endpoint)
    old = "20200101T000000Z-abcdef"
    for _ in range(2):
        s3.copy_object(Bucket=bucket, Key=f"backups/{old}.backup", CopySource=f"{bucket}/backups/{fresh}.backup")
    s3.delete_object(Bucket=bucket, Key=f"backups/{old}.backup")
    assert len(versions(s3, bucket, f"backups/{old}")) == 3

    # when
    pruned = run_cli(cli_env, "backup", "prune")
    listed = run_cli(cli_env, "backup", "list")

    # then
    assert pruned.returncode == 0, pruned.stderr
    assert f"deleted {old}" in pruned.stdout and fresh not in pruned.stdout
    assert versions(s3, bucket, f"backups/{old}") == []
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [fresh]
    manifest_versions = versions(s3, bucket, "backups/manifest.json")
    assert len(manifest_versions) == 1, "the manifest keeps no old version either"


async def test_local_storage_keeps_backups_beside_the_media_readable_by_the_service_alone(env, scratch, tmp_path):
    # given
    data_dir = tmp_path / "data"
    cli_env = scratch_env(env, scratch, data_dir)
    assert run_cli(cli_env, "migrate").returncode == 0

    # when
    first = run_cli(cli_env, "backup", "create").stdout.splitlines()[-1]
    second = run_cli(cli_env, "backup", "create").stdout.splitlines()[-1]
    listed = run_cli(cli_env, "backup", "list").stdout.splitlines()

    # then: newest last, ID first
    assert [line.split()[0] for line in listed] == [first, second]
    files = {p.name: p.stat().st_mode & 0o777 for p in (data_dir / "backups").iterdir()}
    assert files == {
        f"{first}.backup": 0o600,
        f"{first}.keys": 0o600,
        f"{second}.backup": 0o600,
        f"{second}.keys": 0o600,
        "manifest.json": 0o600,
    }
    shutil.rmtree(data_dir / "backups")
    assert run_cli(cli_env, "backup", "list").stdout == ""
