"""The operator's `rapidly` command, run as a separate process against the test database."""

from __future__ import annotations

import asyncio

import pytest

from rapidly import tenancy
from rapidly.staff.models import StaffUser
from rapidly.tenants.models import Tenant
from tests.conftest import run_cli


async def test_tenant_create_and_list_show_metadata_and_counts(env, server):
    # when
    created = run_cli(
        env, "tenant", "create", "--slug", "kattohuolto", "--name", "Kattohuolto Oy", "--plugin", "roofing_fi"
    )
    staff = run_cli(
        env,
        "staff",
        "create",
        "--tenant",
        "kattohuolto",
        "--email",
        "anna@kattohuolto.example",
        stdin="a long enough password\n",
    )
    listed = run_cli(env, "tenant", "list")

    # then
    assert created.returncode == 0, created.stderr
    assert "created tenant kattohuolto" in created.stdout
    assert staff.returncode == 0, staff.stderr
    assert "anna@" not in staff.stdout  # operator output carries IDs, not addresses
    header, row = listed.stdout.strip().splitlines()
    assert header.split() == ["slug", "name", "plugin", "locale", "created", "staff", "contacts", "retention"]
    assert row.split()[0] == "kattohuolto" and row.split()[-3:] == ["1", "0", "-"]
    assert "anna@" not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slug", "acme", "--name", "Acme", "--plugin", "no_such_plugin"], "plugin: No plugin of that name"),
        (["--slug", "Not A Slug", "--name", "Acme", "--plugin", "roofing_fi"], "slug: Use 3-63 lower-case"),
        (["--slug", "acme", "--name", "x" * 500, "--plugin", "roofing_fi"], "name: At most 200 characters"),
        (["--slug", "acme", "--name", "Acme", "--plugin", "roofing_fi", "--locale", "de"], "default_locale:"),
        (
            ["--slug", "acme", "--name", "Acme", "--plugin", "roofing_fi", "--privacy-policy-url", "javascript:x"],
            "privacy_policy_url:",
        ),
        (["--slug", "acme", "--name", "Acme", "--plugin", "roofing_fi", "--retention-days", "0"], "retention_days:"),
    ],
)
async def test_tenant_create_with_bad_input_says_why_and_creates_nothing(env, server, args, message):
    # when
    result = run_cli(env, "tenant", "create", *args)

    # then
    assert result.returncode == 1
    assert message in result.stderr
    assert await Tenant.all().count() == 0


async def test_duplicate_slug_is_refused(env, world):
    # given
    await world.tenant("acme")

    # when
    result = run_cli(env, "tenant", "create", "--slug", "acme", "--name", "Other", "--plugin", "roofing_fi")

    # then
    assert result.returncode == 1
    assert "slug: A tenant with this slug exists already." in result.stderr
    assert await Tenant.filter(slug="acme").count() == 1


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", "a long enough password", "email: This is not a valid email address."),
        ("anna@kattohuolto.example", "short", "password: Use at least 12 characters."),
        ("anna@kattohuolto.example", "p" * 2000, "password: Use at most 1024 characters."),
    ],
)
async def test_staff_create_with_bad_input_creates_nothing(env, world, email, password, message):
    # given
    tenant = await world.tenant()

    # when
    result = run_cli(env, "staff", "create", "--tenant", "kattohuolto", "--email", email, stdin=password + "\n")

    # then
    assert result.returncode == 1
    assert message in result.stderr
    with tenancy.as_tenant(tenant.id):
        assert await StaffUser.all().count() == 0


async def test_staff_create_makes_the_first_an_admin_unless_told_and_takes_a_role(env, world):
    # given
    tenant = await world.tenant()

    def create(email: str, *role: str):  # type: ignore[no-untyped-def]
        args = ("staff", "create", "--tenant", "kattohuolto", "--email", email, *role)
        return run_cli(env, *args, stdin="a long password!\n")

    # when
    first = create("anna@kattohuolto.example")
    second = create("ville@kattohuolto.example")
    third = create("aino@kattohuolto.example", "--role", "ADMIN")
    unknown = create("eero@kattohuolto.example", "--role", "owner")

    # then
    assert first.returncode == second.returncode == third.returncode == 0
    assert first.stdout.startswith("created admin ") and second.stdout.startswith("created staff ")
    assert unknown.returncode == 2 and "admin or staff" in unknown.stderr
    with tenancy.as_tenant(tenant.id):
        roles = {s.email: s.role.value for s in await StaffUser.all()}
    assert roles == {
        "anna@kattohuolto.example": "ADMIN",
        "ville@kattohuolto.example": "STAFF",
        "aino@kattohuolto.example": "ADMIN",
    }


async def test_staff_create_for_unknown_tenant_or_taken_email_is_refused(env, world):
    # given
    tenant = await world.tenant()
    await world.staff(email="anna@kattohuolto.example")

    # when
    unknown = run_cli(env, "staff", "create", "--tenant", "nope", "--email", "b@x.example", stdin="a long password!\n")
    taken = run_cli(
        env,
        "staff",
        "create",
        "--tenant",
        "kattohuolto",
        "--email",
        "ANNA@kattohuolto.example",
        stdin="a long password!\n",
    )

    # then
    assert unknown.returncode == 1 and "No such tenant." in unknown.stderr
    assert taken.returncode == 1 and "email: A staff account with this email exists already." in taken.stderr
    with tenancy.as_tenant(tenant.id):
        assert await StaffUser.all().count() == 1


def test_malformed_settings_name_the_variable(env):
    # when
    result = run_cli({**env, "RAPIDLY_DATABASE_POOL_SIZE": "many", "RAPIDLY_STORAGE_COUNTRY": "Finland"}, "check")

    # then
    assert result.returncode == 2
    assert "RAPIDLY_DATABASE_POOL_SIZE" in result.stderr
    assert "RAPIDLY_STORAGE_COUNTRY: must be an ISO 3166 alpha-2 country code" in result.stderr


def test_plugins_lists_the_installed_plugins_and_their_hooks(env):
    # when
    result = run_cli(env, "plugins")

    # then
    assert result.returncode == 0, result.stderr
    for name in ("roofing_fi", "carrepair_se", "contact_fields", "message_template"):
        assert name in result.stdout


def test_schema_command_prints_the_committed_sdl(env):
    # when
    result = run_cli(env, "schema")

    # then
    assert result.returncode == 0
    assert "login(email: String!, password: String!): LoginResult!" in result.stdout


async def test_tenant_retention_is_set_shown_and_switched_off(env, world):
    # given
    await world.tenant("kattohuolto")

    # when
    set_days = run_cli(env, "tenant", "retention", "kattohuolto", "--days", "90")
    listed = run_cli(env, "tenant", "list")
    too_long = run_cli(env, "tenant", "retention", "kattohuolto", "--days", "99999")
    neither = run_cli(env, "tenant", "retention", "kattohuolto")
    unknown = run_cli(env, "tenant", "retention", "no-such-tenant", "--days", "5")
    off = run_cli(env, "tenant", "retention", "kattohuolto", "--off")

    # then
    assert set_days.returncode == 0 and "90 days after last activity" in set_days.stdout
    assert listed.stdout.strip().splitlines()[1].endswith("90 d")
    assert too_long.returncode == 1 and "retention_days:" in too_long.stderr
    assert neither.returncode == 2 and "--days N or --off" in neither.stderr
    assert unknown.returncode == 1 and "No such tenant" in unknown.stderr
    assert off.returncode == 0 and "until erased" in off.stdout
    assert (await Tenant.get(slug="kattohuolto")).retention_days is None


async def test_retention_run_erases_what_the_tenant_no_longer_keeps(env, world, gql, server):
    # given
    from tortoise import connections

    from rapidly.contacts.models import Contact
    from rapidly.erasure.models import Erasure
    from rapidly.realtime import EventKind, announcer
    from tests.contacts.test_contacts_api import save, start

    tenant = await world.tenant("kattohuolto", retention_days=30)
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Vanha Asiakas")
    with tenancy.as_tenant(tenant.id):
        await connections.get("default").execute_query("UPDATE contact SET updated_at = now() - interval '40 days'")
    await announcer.drain()  # the save's events are out before the command freezes this loop
    hub = server.app.state.hub
    swept_before = hub.swept

    # when
    async with hub.subscribe(tenant.id) as events:
        result = run_cli(env, "retention", "run")
        async with asyncio.timeout(2):
            kinds = [(await anext(events)).kind]
            while kinds[-1] is not EventKind.DELETED:
                kinds.append((await anext(events)).kind)

    # then: staff watching saw the erasure at once (announced by the command before it exited)
    assert result.returncode == 0, result.stderr
    assert "erased 1 contacts past retention" in result.stdout
    with tenancy.as_tenant(tenant.id):
        assert await Contact.all().count() == 0
        assert (await Erasure.get()).requested_by == "RETENTION"
    assert "Vanha" not in result.stdout + result.stderr
    assert hub.swept == swept_before
