"""Tenant isolation enforced by PostgreSQL: row-level security on every table with `tenant_id`.

The tables are found in the catalog, so a table added later is covered without editing these
tests. Rows are made through the app's own flows for two tenants, then read and written as the
app's role, with no tenant, with the other tenant, and with settings that are not a tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from rapidly import db, tenancy
from rapidly.contacts import service as contacts
from rapidly.errors import AnotherTenant
from rapidly.staff import service as staff_service
from rapidly.tenancy import ScopedClient
from tests.contacts.test_contacts_api import CONTACT, save, staff_token, start
from tests.media import images
from tests.media.test_upload_api import upload
from tests.messaging.test_wording import SET as SET_WORDING
from tests.messaging.test_wording import SMS as SMS_WORDING
from tests.staff.test_passkeys import REGISTRATION_OPTIONS, add_passkey, authenticator_for
from tests.staff.test_reach import START as SMS_NUMBER_CHECK
from tests.support.live import until
from tests.support.proxy import FreezableProxy

#: Tables of the app that hold no tenant's rows.
NOT_A_TENANTS = {"tenant", "tortoise_migrations"}
CHAT = "mutation R($body: String!, $id: ID) { sendChatMessage(body: $body, contactId: $id) { __typename } }"
ERASE = "mutation E($id: ID!) { deleteContact(id: $id) { __typename } }"
CONTINUE = "mutation { sendContinueLink(channel: EMAIL) { __typename } }"
INVITE = "mutation I($email: String!, $role: StaffRole!) { inviteStaff(email: $email, role: $role) { __typename } }"


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    return [
        row["relname"]
        for row in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
            "AND a.attname = 'tenant_id' AND NOT a.attisdropped ORDER BY 1"
        )
    ]


@pytest.fixture
async def owner(database_url: str, server) -> asyncpg.Connection:  # type: ignore[no-untyped-def]
    conn = await db.Credentials.from_url(database_url).connect()
    yield conn
    await conn.close()


@pytest.fixture
async def app_role(settings, server) -> asyncpg.Connection:  # type: ignore[no-untyped-def]
    """A connection as the app's role, outside the app's pool."""
    conn = await db.app_credentials(settings, db.owner_credentials(settings)).connect()
    yield conn
    await conn.close()


@pytest.fixture
async def two_tenants(gql, http, world, settings) -> dict[str, uuid.UUID]:  # type: ignore[no-untyped-def]
    """Rows in every tenant table for two tenants, made as users make them."""
    ids = {}
    for slug in ("alpha", "beta"):
        tenant = await world.tenant(slug, plugin="every_kind", privacy_policy_url=f"https://{slug}.example/p")
        await world.staff(slug, f"staff@{slug}.example")
        staff = await staff_token(gql, f"staff@{slug}.example")  # staff_session
        token = await start(gql, slug)  # contact, contact_token
        for key, value in (("name", f"Name {slug}"), ("email", f"someone@{slug}.example")):
            assert (await save(gql, token, key, value))["__typename"] == "FieldSaved"  # field_value, ...
        contact = await contacts.contact_for_token(token)
        photo = images.jpeg(32, 24)
        assert (await upload(http, token, photo, field="photos")).json()["data"]["uploadMedia"]["__typename"] == (
            "MediaUploaded"
        )
        assert (await gql(CHAT, {"body": "hello", "id": str(contact.id)}, token=staff))["sendChatMessage"]
        assert (await gql(CONTACT, {"id": str(contact.id)}, token=staff))["contact"]  # audit_event
        assert (await gql(CONTINUE, token=token))["sendContinueLink"]["__typename"] == "LinkSent"  # outbox
        invite = {"email": f"new@{slug}.example", "role": "STAFF"}
        assert (await gql(INVITE, invite, token=staff))["inviteStaff"]["__typename"] == "StaffInvited"  # invitation
        assert (await add_passkey(gql, staff, authenticator_for(settings)))["__typename"] == "PasskeyAdded"
        asked = (await gql(REGISTRATION_OPTIONS, token=staff))["passkeyRegistrationOptions"]  # passkey_challenge
        assert asked["__typename"] == "PasskeyOptions", asked
        wording = {**SMS_WORDING, "body": f"{slug}: {{{{ link }}}}"}
        worded = (await gql(SET_WORDING, wording, token=staff))["setMessageWording"]  # message_wording
        assert worded["__typename"] == "CompanySettingsChanged", worded
        number = {"number": "+358 40 111 2233" if slug == "alpha" else "+358 40 111 2244"}
        checked = (await gql(SMS_NUMBER_CHECK, number, token=staff))["startSmsNumberCheck"]  # sms_number_check
        assert checked["__typename"] == "SmsCodeSent", checked
        gone = await start(gql, slug)
        await save(gql, gone, "name", "Gone")
        gone_id = (await contacts.contact_for_token(gone)).id
        assert (await gql(ERASE, {"id": str(gone_id)}, token=staff))["deleteContact"]  # erasure
        ids[slug] = tenant.id
    return ids


async def test_every_table_with_tenant_id_has_row_level_security_enabled_forced_and_the_policy(owner):
    tables = await tenant_tables(owner)
    assert len(tables) >= 13, tables
    for table in tables:
        row = await owner.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass", table
        )
        assert row["relrowsecurity"] and row["relforcerowsecurity"], table
        policies = {
            p["policyname"]: p
            for p in await owner.fetch(
                "SELECT policyname, permissive, roles::text[] AS roles, cmd, qual, with_check FROM pg_policies "
                "WHERE schemaname = 'public' AND tablename = $1",
                table,
            )
        }
        assert set(policies) == {"tenant_isolation", "database_owner"}, (table, policies)
        isolation = policies["tenant_isolation"]
        assert isolation["cmd"] == "ALL" and isolation["roles"] == ["public"], table
        assert isolation["qual"] == isolation["with_check"] == "(tenant_id = rapidly_tenant())", table
        assert policies["database_owner"]["roles"] == ["pg_database_owner"], table
    assert await owner.fetchval("SELECT relforcerowsecurity FROM pg_class WHERE oid = 'tenant'::regclass")
    others = await owner.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm')"
    )
    assert {r["relname"] for r in others} - set(tables) == NOT_A_TENANTS, "a table without tenant_id, or a view"


async def test_the_app_role_may_not_bypass_row_level_security_nor_own_anything(app_role, settings):
    role = await app_role.fetchrow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    assert not role["rolsuper"] and not role["rolbypassrls"]
    assert not await app_role.fetchval(
        "SELECT pg_has_role(current_user, 'pg_database_owner', 'USAGE') OR EXISTS "
        "(SELECT 1 FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))"
    )


async def test_without_a_tenant_every_table_reads_empty_and_refuses_writes(two_tenants, owner, app_role):
    for table in await tenant_tables(owner):
        assert await owner.fetchval(f"SELECT count(*) FROM {table}") > 0, f"no rows in {table}: fill it above"  # noqa: S608
        assert await app_role.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
        assert await app_role.execute(f"UPDATE {table} SET tenant_id = tenant_id") == "UPDATE 0"  # noqa: S608
        assert await app_role.execute(f"DELETE FROM {table}") == "DELETE 0"  # noqa: S608
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await app_role.execute(f"INSERT INTO {table} (tenant_id) VALUES ($1)", two_tenants["alpha"])  # noqa: S608
        for empty in ("''",):  # set, but empty: the same as unset
            async with app_role.transaction():
                await app_role.execute(f"SELECT set_config('rapidly.tenant', {empty}, true)")
                assert await app_role.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608


async def test_as_one_tenant_the_others_rows_are_invisible_and_unwritable(two_tenants, owner, app_role):
    alpha, beta = two_tenants["alpha"], two_tenants["beta"]
    for table in await tenant_tables(owner):
        theirs = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", beta)  # noqa: S608
        ours = await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", alpha)  # noqa: S608
        assert theirs > 0 and ours > 0, table
        async with app_role.transaction():
            await app_role.execute("SELECT set_config('rapidly.tenant', $1, true)", str(alpha))
            assert await app_role.fetchval(f"SELECT count(*) FROM {table}") == ours, table  # noqa: S608
            assert await app_role.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", beta) == 0  # noqa: S608
            assert await app_role.execute(f"DELETE FROM {table} WHERE tenant_id = $1", beta) == "DELETE 0"  # noqa: S608
            assert await app_role.execute(f"UPDATE {table} SET tenant_id = $1 WHERE tenant_id = $1", beta) == (  # noqa: S608
                "UPDATE 0"
            )
        for sql in (
            f"INSERT INTO {table} (tenant_id) VALUES ($1)",  # noqa: S608
            f"UPDATE {table} SET tenant_id = $1",  # noqa: S608 -- moving our rows into their tenant
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                async with app_role.transaction():
                    await app_role.execute("SELECT set_config('rapidly.tenant', $1, true)", str(alpha))
                    await app_role.execute(sql, beta)
        assert await owner.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", beta) == theirs  # noqa: S608


async def test_a_setting_that_is_not_a_uuid_is_refused_and_a_nonexistent_tenant_sees_nothing(
    two_tenants, owner, app_role
):
    for bad in ("not-a-uuid", "' OR true --", f"{two_tenants['alpha']},{two_tenants['beta']}", "x" * 10_000):
        with pytest.raises(asyncpg.InvalidTextRepresentationError):
            async with app_role.transaction():
                await app_role.execute("SELECT set_config('rapidly.tenant', $1, true)", bad)
                await app_role.fetchval("SELECT count(*) FROM contact")
    nobody = uuid.uuid4()
    async with app_role.transaction():
        await app_role.execute("SELECT set_config('rapidly.tenant', $1, true)", str(nobody))
        for table in await tenant_tables(owner):
            assert await app_role.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # the policy admits it; no tenant has it
        async with app_role.transaction():
            await app_role.execute("SELECT set_config('rapidly.tenant', $1, true)", str(nobody))
            await app_role.execute(
                "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at) "
                "VALUES (gen_random_uuid(), $1, 'fi', now(), now())",
                nobody,
            )
    with pytest.raises(ValueError), tenancy.as_tenant("not-a-uuid"):  # type: ignore[arg-type]
        await connections.get("default").execute_query("SELECT 1")  # the app's own path: refused before it


async def test_no_view_or_function_of_the_app_roles_own_reaches_around_the_policy(two_tenants, app_role, owner):
    for statement in (
        "CREATE VIEW public.everyone AS SELECT * FROM contact",
        "CREATE FUNCTION public.everyone() RETURNS bigint LANGUAGE sql AS 'SELECT 1'",
        "CREATE TEMP VIEW everyone AS SELECT * FROM contact",
        "CREATE FUNCTION pg_temp.everyone() RETURNS bigint LANGUAGE sql AS 'SELECT 1'",
        "CREATE TEMP TABLE contact_token (tenant_id uuid, token_hash text, expires_at timestamptz)",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_role.execute(statement)
    assert await app_role.fetchval("SELECT count(*) FROM contact WHERE (SELECT true)") == 0


async def test_a_temporary_object_cannot_stand_in_for_a_table_inside_the_cross_tenant_functions(
    two_tenants, owner, database_url, settings
):
    """Were temporary objects allowed (a database where TEMPORARY was granted again), a temporary
    view named like a table must still not be what the owner's functions read."""
    app = db.app_role(settings, db.owner_credentials(settings))
    database = db.quote_ident(db.Credentials.from_url(database_url).database)
    await owner.execute(f"GRANT TEMPORARY ON DATABASE {database} TO {db.quote_ident(app)}")
    conn = await db.app_credentials(settings, db.owner_credentials(settings)).connect()
    try:
        await conn.execute(
            "CREATE FUNCTION pg_temp.who() RETURNS uuid LANGUAGE sql "
            "AS $$ SELECT set_config('rapidly.who', current_user::text, false); SELECT NULL::uuid $$"
        )
        await conn.execute(
            "CREATE TEMP VIEW contact_token AS SELECT pg_temp.who() AS tenant_id, 'x'::text AS token_hash, "
            "now() + interval '1 day' AS expires_at"
        )
        assert await conn.fetchval("SELECT rapidly_contact_token_tenant('x')") is None
        assert await conn.fetchval("SELECT current_setting('rapidly.who', true)") in (None, "")
    finally:
        await conn.close()
        await owner.execute(f"REVOKE TEMPORARY ON DATABASE {database} FROM {db.quote_ident(app)}")


async def test_the_tenant_table_is_read_by_all_changed_only_as_its_tenant_and_deleted_by_no_one(
    two_tenants, app_role, owner
):
    alpha, beta = two_tenants["alpha"], two_tenants["beta"]
    assert await app_role.fetchval("SELECT count(*) FROM tenant") == 2
    assert await app_role.execute("UPDATE tenant SET retention_days = 1") == "UPDATE 0"
    async with app_role.transaction():
        await app_role.execute("SELECT set_config('rapidly.tenant', $1, true)", str(alpha))
        assert await app_role.execute("UPDATE tenant SET retention_days = 1 WHERE id = $1", beta) == "UPDATE 0"
        assert await app_role.execute("UPDATE tenant SET retention_days = 2 WHERE id = $1", alpha) == "UPDATE 1"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # no DELETE: it would cascade past the policies
            await app_role.execute("DELETE FROM tenant WHERE id = $1", alpha)
    assert await owner.fetchval("SELECT count(*) FROM contact WHERE tenant_id = $1", alpha) > 0
    assert await owner.fetchval("SELECT retention_days FROM tenant WHERE id = $1", beta) is None


async def test_the_cross_tenant_functions_return_ids_only_and_are_the_app_roles_alone(owner, app_role, settings):
    functions = await owner.fetch(
        "SELECT p.oid::regprocedure::text AS signature, p.proname, pg_get_function_result(p.oid) AS result, "
        "p.proconfig FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef"
    )
    assert {f["proname"] for f in functions} >= {"rapidly_contact_token_tenant", "rapidly_events_since"}
    app = db.app_role(settings, db.owner_credentials(settings))
    for function in functions:
        # Only IDs, counts, event kinds and times: nothing a person typed.
        assert "jsonb" not in function["result"] and "bytea" not in function["result"], function
        assert function["result"].replace("text", "") == function["result"] or "kind text" in function["result"]
        assert "search_path=pg_catalog, public, pg_temp" in function["proconfig"], function  # none of the caller's
        grantees = await owner.fetch(
            "SELECT grantee::regrole::text AS who FROM pg_proc, aclexplode(proacl) WHERE oid = $1::regprocedure "
            "AND privilege_type = 'EXECUTE'",
            function["signature"],
        )
        assert grantees and {g["who"] for g in grantees} <= {app, owner_name(owner)}, function  # not PUBLIC ("-")
    assert await app_role.fetchval("SELECT rapidly_contact_token_tenant('no such hash')") is None


def owner_name(conn: asyncpg.Connection) -> str:
    return conn._params.user  # type: ignore[attr-defined]


async def test_a_request_with_one_tenants_credential_and_the_others_ids_finds_and_changes_nothing(
    two_tenants, gql, owner
):
    staff = await staff_token(gql, "staff@alpha.example")
    theirs = await owner.fetchval(
        "SELECT id FROM contact WHERE tenant_id = $1 AND first_saved_at IS NOT NULL LIMIT 1", two_tenants["beta"]
    )
    before = await owner.fetchval("SELECT count(*) FROM chat_message WHERE tenant_id = $1", two_tenants["beta"])
    assert (await gql(CONTACT, {"id": str(theirs)}, token=staff))["contact"] is None
    sent = await gql(CHAT, {"body": "hi", "id": str(theirs)}, token=staff, expect_errors=True)
    assert sent["data"]["sendChatMessage"]["__typename"] == "NotFoundError", sent
    erased = await gql(ERASE, {"id": str(theirs)}, token=staff, expect_errors=True)
    assert erased["data"]["deleteContact"]["__typename"] == "NotFoundError", erased
    assert await owner.fetchval("SELECT count(*) FROM contact WHERE id = $1", theirs) == 1
    assert await owner.fetchval("SELECT count(*) FROM chat_message WHERE tenant_id = $1", two_tenants["beta"]) == before


async def test_a_binding_is_for_one_tenant_and_never_outlives_its_block():
    alpha, beta = uuid.uuid4(), uuid.uuid4()
    assert tenancy.current() is None
    with tenancy.as_tenant(alpha):
        assert tenancy.current() == alpha
        with tenancy.scoped(alpha):
            assert tenancy.current() == alpha
        with pytest.raises(tenancy.TenantMismatch), tenancy.scoped(beta):
            pass
    assert tenancy.current() is None

    async def request(first: uuid.UUID, second: uuid.UUID) -> None:
        tenancy.begin_request()
        with tenancy.scoped(first):
            pass
        assert tenancy.current() == first  # the request stays bound to it
        await asyncio.gather(asyncio.sleep(0))
        with tenancy.scoped(second):
            pass

    await asyncio.create_task(request(alpha, alpha))
    with pytest.raises(AnotherTenant):  # a typed answer for a request, not an internal error
        await asyncio.create_task(request(alpha, beta))
    assert tenancy.current() is None  # a request's binding stays in its own task


async def test_a_token_of_another_tenant_is_refused_to_a_request_bound_to_one_and_found_in_a_transaction(gql, world):
    """A token is looked up in one round trip that finds its tenant and reads its row as it; the
    request is bound to that tenant afterwards, so a request of another gets the typed refusal. In a
    transaction (whose tenant was set when it began), the lookup reads as that tenant only."""
    # given: a customer and a staff member of each of two companies
    tokens, staff = {}, {}
    for slug in ("alpha", "beta"):
        await world.tenant(slug, plugin="every_kind")
        await world.staff(slug, f"staff@{slug}.example")
        staff[slug] = await staff_token(gql, f"staff@{slug}.example")
        tokens[slug] = await start(gql, slug)
    alpha = await contacts.contact_for_token(tokens["alpha"])

    async def request_as_alpha_then(lookup) -> object:  # type: ignore[no-untyped-def]
        tenancy.begin_request()
        assert (await contacts.contact_for_token(tokens["alpha"])).id == alpha.id
        return await lookup()

    # when / then: beta's tokens, in a request bound to alpha, are refused; alpha's are found
    for lookup in (
        lambda: contacts.contact_for_token(tokens["beta"]),
        lambda: staff_service.staff_for_token(staff["beta"]),
    ):
        with pytest.raises(AnotherTenant):
            await asyncio.create_task(request_as_alpha_then(lookup))
    found = await asyncio.create_task(request_as_alpha_then(lambda: staff_service.staff_for_token(staff["alpha"])))
    assert found.tenant.slug == "alpha"  # type: ignore[attr-defined]

    # and in alpha's transaction: alpha's token is found there, beta's refused
    with tenancy.as_tenant(alpha.tenant_id):
        async with in_transaction():
            assert (await contacts.contact_for_token(tokens["alpha"])).id == alpha.id
            with pytest.raises(tenancy.TenantMismatch):
                await contacts.contact_for_token(tokens["beta"])
    assert await contacts.contact_for_token("rpc_" + "x" * 40) is None


async def test_a_routine_refuses_a_transaction_begun_as_another_tenant_or_as_none(two_tenants):
    """A routine sets its tenant itself: inside a transaction, that would switch the transaction's."""
    nobody = [uuid.uuid4()]
    with tenancy.as_tenant(two_tenants["alpha"]):
        async with in_transaction():
            assert await contacts.values_by_contact(two_tenants["alpha"], nobody) == [[]]
            with pytest.raises(tenancy.TenantMismatch):
                await contacts.values_by_contact(two_tenants["beta"], nobody)
    async with in_transaction():
        with pytest.raises(tenancy.TenantMismatch):
            await contacts.values_by_contact(two_tenants["beta"], nobody)


START_TWO = """
mutation { a: startContact(tenant: "alpha") { __typename } b: startContact(tenant: "beta") { __typename } }
"""


async def test_one_request_acting_for_two_tenants_gets_a_clear_refusal_and_the_second_changes_nothing(
    two_tenants, http, owner
):
    before = await owner.fetchval("SELECT count(*) FROM contact WHERE tenant_id = $1", two_tenants["beta"])

    response = await http.post("/graphql", json={"query": START_TWO})

    body = response.json()
    assert response.status_code == 200, body
    assert "Unexpected" not in str(body) and "another company" in str(body), body
    assert await owner.fetchval("SELECT count(*) FROM contact WHERE tenant_id = $1", two_tenants["beta"]) == before


async def test_a_transaction_that_never_began_leaves_the_task_free_to_work_again(two_tenants, server):
    """A cancellation that lands in BEGIN (or a connection lost there) must not leave the task
    pointed at the transaction, nor the connection out of the pool."""
    from rapidly.tenancy import TransactionWrapper

    for delay in (0, 0, 0.0001, 0.0005, 0.001, 0.002):
        with tenancy.as_tenant(two_tenants["alpha"]):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay), db.transaction() as tx:
                    await tx.execute_query_dict("SELECT pg_sleep(0.01)")
            assert not isinstance(connections.get("default"), TransactionWrapper)
            rows = await connections.get("default").execute_query_dict("SELECT count(*) AS n FROM contact")
            assert rows[0]["n"] > 0
        with tenancy.as_tenant(two_tenants["beta"]):  # and may work for another tenant at once
            async with db.transaction() as tx:
                assert (await tx.execute_query_dict("SELECT count(*) AS n FROM contact"))[0]["n"] > 0


async def test_work_for_another_tenant_cannot_join_a_transaction_begun_as_one(two_tenants, server):
    with tenancy.as_tenant(two_tenants["alpha"]):
        async with db.transaction():
            with pytest.raises(tenancy.TenantMismatch), tenancy.as_tenant(two_tenants["beta"]):
                pass
    async with db.transaction():  # begun with no tenant: no tenant may join it either
        with pytest.raises(tenancy.TenantMismatch), tenancy.scoped(two_tenants["alpha"]):
            pass


async def pool_of(credentials: db.Credentials, name: str, size: int) -> ScopedClient:
    """The app's own pool client (the ORM's `ScopedClient`), of up to `size` connections, opened."""
    client = ScopedClient(
        connection_name=name,
        user=credentials.user,
        password=credentials.password,
        database=credentials.database,
        host=credentials.host,
        port=credentials.port,
        minsize=1,
        maxsize=size,
        reset=db._release_as_is,
    )
    await client.create_connection(with_db=True)
    return client


async def test_no_setting_leaks_through_the_pool_between_tenants_errors_and_cancellations(
    two_tenants, owner, settings, caplog
):
    """One pooled connection, used by alternating tenants with failures in between: after each use,
    a statement without a tenant sees no row and no setting."""
    client = await pool_of(db.app_credentials(settings, db.owner_credentials(settings)), "poisoning", 1)
    counts = {
        name: await owner.fetchval("SELECT count(*) FROM contact WHERE tenant_id = $1", tid)
        for name, tid in two_tenants.items()
    }
    pids = set()
    cancelled_statements = 0

    async def unscoped_sees_nothing() -> None:
        rows = await client.execute_query_dict(
            "SELECT current_setting('rapidly.tenant', true) AS setting, (SELECT count(*) FROM contact) AS n, "
            "pg_backend_pid() AS pid"
        )
        assert rows[0]["setting"] in (None, "") and rows[0]["n"] == 0, rows
        pids.add(rows[0]["pid"])

    try:
        for round_ in range(30):
            name = ("alpha", "beta")[round_ % 2]
            with tenancy.as_tenant(two_tenants[name]):
                rows = await client.execute_query_dict("SELECT count(*) AS n FROM contact")
                assert rows[0]["n"] == counts[name]
                what = round_ % 5
                if what == 1:  # an error in a statement
                    with pytest.raises(Exception, match="division by zero"):
                        await client.execute_query_dict("SELECT 1 / (count(*) - count(*)) FROM contact")
                elif what == 2:  # a statement cancelled (a client gone, a timeout)
                    cancelled_statements += 1
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(client.execute_query_dict("SELECT pg_sleep(5) FROM contact"), 0.05)
                elif what == 3:  # an error inside a transaction
                    with pytest.raises(RuntimeError):
                        async with client._in_transaction() as tx:
                            await tx.execute_query_dict("SELECT count(*) FROM contact")
                            raise RuntimeError("the request failed")
                elif what == 4:  # a transaction cancelled mid-statement
                    cancelled_statements += 1

                    async def cancelled() -> None:
                        async with client._in_transaction() as tx:
                            await tx.execute_query_dict("SELECT pg_sleep(5)")

                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(cancelled(), 0.05)
            await unscoped_sees_nothing()
            with tenancy.as_tenant(two_tenants[("beta", "alpha")[round_ % 2]]):  # the other one, at once
                rows = await client.execute_query_dict("SELECT count(*) AS n FROM contact")
                assert rows[0]["n"] == counts[("beta", "alpha")[round_ % 2]]
    finally:
        await client.close()
    # The one connection throughout, but for a new one after each cancelled statement: that one was
    # closed, not pooled, as it may have been left inside the transaction.
    assert 1 <= len(pids) <= cancelled_statements + 1
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_requests_cancelled_while_the_pool_connects_leave_it_the_connection(settings, server):
    """The pool opens connections lazily, in the request that needs one. A client that cancels its
    requests as fast as it makes them (subscribe, then complete) once made every request open and
    abandon a connection; the pool then never grew. Connects run to their end and are kept."""
    # given: a pool of five behind a proxy that counts the connections made through it
    proxy = FreezableProxy(db.app_credentials(settings, db.owner_credentials(settings)))
    client = await pool_of(await proxy.start(), "churn", 5)

    async def one() -> int:
        async with client.acquire_unscoped() as conn:
            return await conn.fetchval("SELECT 1")

    async def cancelled() -> None:
        """A request holding its connection a moment, cancelled by then (a query cancelled in flight
        would count too: PostgreSQL's cancel request comes on a connection of its own)."""
        async with client.acquire_unscoped():
            await asyncio.sleep(1)

    try:
        # when: 200 times, five requests are cancelled while the pool connects for four of them
        for round_ in range(200):
            requests = [asyncio.create_task(cancelled()) for _ in range(5)]
            await asyncio.sleep(0.0005 * (round_ % 7))
            for request in requests:
                request.cancel()
            await asyncio.gather(*requests, return_exceptions=True)

        # then: the pool connected no more often than it has room for, and serves five at once
        assert proxy.accepted <= 5, proxy.accepted
        assert await asyncio.gather(*(one() for _ in range(5))) == [1] * 5
        assert proxy.accepted <= 5, proxy.accepted
    finally:
        await client.close()
    try:
        # and closing the pool closes every connection, those no request took too
        assert await until(lambda: proxy.open == 0, 5), proxy.open
    finally:
        await proxy.close()


async def test_a_purge_batch_under_the_policy_deletes_at_most_its_size(two_tenants, owner, server):
    """An `id IN (SELECT ... LIMIT n)` subquery may run again for every row under the policy: a
    batch then deleted all of a tenant's expired rows in one transaction. Picked once, it is n."""
    from rapidly.contacts.service import _PURGE_EXPIRED_TOKENS

    alpha = two_tenants["alpha"]
    await owner.execute(
        "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
        "SELECT gen_random_uuid(), $1, (SELECT id FROM contact WHERE tenant_id = $1 LIMIT 1), md5(i::text), "
        "now(), now() - interval '1 day' FROM generate_series(1, 250) AS i",
        alpha,
    )
    with tenancy.as_tenant(alpha):
        deleted, _ = await connections.get("default").execute_query(_PURGE_EXPIRED_TOKENS, [100])
    assert deleted == 100
    assert await owner.fetchval("SELECT count(*) FROM contact_token WHERE expires_at < now()") == 150
    assert await db.delete_in_batches(_PURGE_EXPIRED_TOKENS, [], batch=100) == 150
