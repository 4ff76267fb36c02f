"""A database owner as a managed provider gives one: no superuser, no BYPASSRLS. Row-level security is
forced on the owner too; it reads every row through its own policy (`database_owner`, migration
0008), which the cross-tenant functions it owns and its backups rely on."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from tests.backup.conftest import _run, scratch_env
from tests.conftest import run_cli

PASSWORD = "owner-password-of-the-tests"


async def test_an_owner_that_is_no_superuser_migrates_finds_staff_across_tenants_and_backs_up(
    env, scratch, tmp_path, database_url
):
    # given: the database owned by a plain role
    role = f"{scratch.name}_owner"
    await _run(
        database_url,
        f"CREATE ROLE \"{role}\" LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS PASSWORD '{PASSWORD}'",
        f'ALTER DATABASE "{scratch.name}" OWNER TO "{role}"',
    )
    await _run(scratch.url, f'ALTER SCHEMA public OWNER TO "{role}"')  # as PostgreSQL 15's pg_database_owner
    parts = urlsplit(scratch.url)
    host = parts.netloc.rpartition("@")[2]
    cli_env = scratch_env(env, scratch, tmp_path / "data")
    cli_env["RAPIDLY_DATABASE_URL"] = urlunsplit(parts._replace(netloc=f"{role}:{PASSWORD}@{host}"))
    try:
        assert not await scratch.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", role)

        # when
        migrated = run_cli(cli_env, "migrate")
        for slug in ("alpha", "beta"):
            made = run_cli(cli_env, "tenant", "create", "--slug", slug, "--name", slug, "--plugin", "roofing_fi")
            assert made.returncode == 0, made.stderr
        first = run_cli(
            cli_env, "staff", "create", "--tenant", "alpha", "--email", "anna@example.fi", stdin="x" * 20 + "\n"
        )
        again = run_cli(
            cli_env, "staff", "create", "--tenant", "beta", "--email", "anna@example.fi", stdin="y" * 20 + "\n"
        )
        backed_up = run_cli(cli_env, "backup", "create")
        restored = run_cli(cli_env, "backup", "restore", backed_up.stdout.splitlines()[-1], "--overwrite")

        # then
        assert migrated.returncode == 0, migrated.stderr
        assert first.returncode == 0, first.stderr
        assert again.returncode == 1 and "exists already" in again.stderr  # seen in the other tenant
        assert backed_up.returncode == 0, backed_up.stderr
        assert restored.returncode == 0, restored.stderr
        assert await scratch.fetchval("SELECT count(*) FROM staff_user") == 1  # as the superuser: every row
        assert await scratch.fetchval(
            "SELECT bool_and(relforcerowsecurity AND relrowsecurity) FROM pg_class WHERE relname = 'staff_user'"
        )
        assert (
            await scratch.fetchval(  # the restore did not hand the cross-tenant functions to PUBLIC
                "SELECT count(*) FROM pg_proc WHERE prosecdef AND pronamespace = 'public'::regnamespace AND "
                "(proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(proacl) a WHERE a.grantee = 0))"
            )
            == 0
        )
        listed = run_cli(cli_env, "tenant", "list")
        assert listed.returncode == 0 and "alpha" in listed.stdout, listed.stderr
    finally:
        await scratch.drop()  # with everything the role owns or granted in it
        await _run(database_url, f'DROP ROLE IF EXISTS "{scratch.name}_app"', f'DROP ROLE IF EXISTS "{role}"')
