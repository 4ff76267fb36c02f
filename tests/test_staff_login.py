"""`login` and `viewer` over HTTP against the real database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rapidly import db, security, tenancy
from rapidly.errors import AuthFailed, InputInvalid, RateLimited
from rapidly.ratelimit.service import network_of
from rapidly.staff import service
from rapidly.staff.models import StaffSession
from tests.conftest import STAFF_PASSWORD

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename
    ... on LoginSuccess { token staff { id email locale tenant { slug name } } }
    ... on AuthError { message }
    ... on RateLimitedError { message retryAfterSeconds }
  }
}
"""

VIEWER = "query { viewer { __typename id email tenant { slug } } }"


async def test_login_returns_a_token_that_answers_viewer(gql, world):
    # given
    await world.tenant()
    await world.staff(email="Anna@Kattohuolto.example")

    # when
    data = await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD})

    # then
    result = data["login"]
    assert result["__typename"] == "LoginSuccess"
    assert result["staff"]["email"] == "anna@kattohuolto.example"
    assert result["staff"]["tenant"] == {"slug": "kattohuolto", "name": "Kattohuolto"}
    viewer = (await gql(VIEWER, token=result["token"]))["viewer"]
    assert viewer["email"] == "anna@kattohuolto.example"
    assert viewer["tenant"]["slug"] == "kattohuolto"


async def test_token_is_opaque_long_and_stored_only_as_a_hash(gql, world):
    # given
    tenant = await world.tenant()
    await world.staff()

    # when
    token = (await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD}))["login"]["token"]

    # then
    assert token.startswith(security.STAFF_TOKEN_PREFIX)
    assert len(token.removeprefix(security.STAFF_TOKEN_PREFIX)) >= 43  # 256 bits, base64url
    with tenancy.as_tenant(tenant.id):
        sessions = await StaffSession.all().values_list("token_hash", flat=True)
    assert sessions == [security.hash_token(token)]
    assert token not in sessions


async def test_wrong_password_and_unknown_email_get_the_same_answer(gql, world):
    # given
    await world.tenant()
    await world.staff()

    # when
    wrong = await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": "not the password!"})
    unknown = await gql(LOGIN, {"email": "nobody@kattohuolto.example", "password": STAFF_PASSWORD})

    # then
    assert wrong == unknown == {"login": {"__typename": "AuthError", "message": "Authentication failed."}}


async def test_wrong_password_and_unknown_email_take_the_same_time(gql, world):
    # given
    await world.tenant()
    await world.staff()

    async def timed(email: str, password: str) -> float:
        started = time.perf_counter()
        await gql(LOGIN, {"email": email, "password": password})
        return time.perf_counter() - started

    # when: alternate, 4 of each (the account limit is 5 per window, so use two accounts' keys)
    wrong, unknown = [], []
    for i in range(4):
        wrong.append(await timed("anna@kattohuolto.example", f"wrong password {i}"))
        unknown.append(await timed(f"nobody{i}@kattohuolto.example", "whatever password"))

    # then: both paths do one argon2 verification; fastest runs within 40% of each other
    ratio = min(wrong) / min(unknown)  # the minimum is the least disturbed by other load
    assert 0.6 < ratio < 1.6, (wrong, unknown)


async def test_a_flood_of_logins_is_rate_limited_even_with_the_right_password(gql, world):
    # given: the test settings allow 5 attempts per account per window
    await world.tenant()
    await world.staff()
    for _ in range(5):
        await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": "guess guess guess"})

    # when
    result = (await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD}))["login"]

    # then
    assert result["__typename"] == "RateLimitedError"
    assert 1 <= result["retryAfterSeconds"] <= 900


async def test_unknown_emails_are_limited_the_same_way(gql, world):
    # given
    for _ in range(5):
        await gql(LOGIN, {"email": "ghost@nowhere.example", "password": "guess guess guess"})

    # when
    result = (await gql(LOGIN, {"email": "ghost@nowhere.example", "password": "guess guess guess"}))["login"]

    # then
    assert result["__typename"] == "RateLimitedError"


async def test_many_addresses_from_one_client_hit_the_per_ip_limit(gql, world):
    # given: 20 attempts per IP in the test settings, spread over many accounts
    results = await asyncio.gather(
        *(gql(LOGIN, {"email": f"user{i}@spray.example", "password": "guess guess guess"}) for i in range(25))
    )

    # then
    kinds = [r["login"]["__typename"] for r in results]
    assert kinds.count("RateLimitedError") == 5
    assert kinds.count("AuthError") == 20


async def test_oversized_and_hostile_login_input_is_refused_cleanly(gql, world):
    # given
    tenant = await world.tenant()
    await world.staff()

    # when
    huge = await gql(LOGIN, {"email": "a" * 300_000 + "@x.example", "password": STAFF_PASSWORD})
    long_password = await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": "p" * 5000})
    injection = await gql(LOGIN, {"email": "' OR 1=1 --", "password": "' OR 1=1 --"})
    nul = await gql(LOGIN, {"email": "anna@kattohuolto.example\x00", "password": STAFF_PASSWORD})

    # then
    for result in (huge, long_password, injection, nul):
        assert result["login"]["__typename"] == "AuthError"
    with tenancy.as_tenant(tenant.id):
        assert await StaffSession.all().count() == 0


async def test_viewer_is_null_without_or_with_a_bad_token(gql, world):
    # given
    await world.tenant()
    await world.staff()

    # when / then
    assert (await gql(VIEWER))["viewer"] is None
    assert (await gql(VIEWER, token="rps_forged"))["viewer"] is None
    assert (await gql(VIEWER, token="rpc_" + "a" * 43))["viewer"] is None
    assert (await gql(VIEWER, token="x" * 10_000))["viewer"] is None


async def test_an_expired_session_no_longer_answers(gql, world):
    # given
    tenant = await world.tenant()
    await world.staff()
    token = (await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD}))["login"]["token"]

    # when
    with tenancy.as_tenant(tenant.id):
        await StaffSession.all().update(expires_at=datetime(2020, 1, 1, tzinfo=UTC))

    # then: and the maintenance job sweeps it, leaving live sessions
    assert (await gql(VIEWER, token=token))["viewer"] is None
    live = (await gql(LOGIN, {"email": "anna@kattohuolto.example", "password": STAFF_PASSWORD}))["login"]["token"]
    assert await service.purge_expired_sessions() == 1
    assert (await gql(VIEWER, token=live))["viewer"] is not None


async def test_staff_of_one_tenant_see_only_their_own_tenant(gql, world):
    # given
    await world.tenant("kattohuolto")
    await world.tenant("bilverkstad", plugin="carrepair_se")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    await world.staff("bilverkstad", "erik@bilverkstad.example")

    # when
    token = (await gql(LOGIN, {"email": "erik@bilverkstad.example", "password": STAFF_PASSWORD}))["login"]["token"]

    # then
    assert (await gql(VIEWER, token=token))["viewer"]["tenant"]["slug"] == "bilverkstad"


async def test_guesses_from_elsewhere_do_not_lock_the_staff_member_out(server, world, settings):
    # given: the account's budget (5 in the tests) is spent from one network
    await world.tenant()
    await world.staff()
    for _ in range(5):
        with pytest.raises(AuthFailed):
            await service.login(settings, email="anna@kattohuolto.example", password="guess!", client_ip="203.0.113.5")

    # when
    from_there = service.login(
        settings, email="anna@kattohuolto.example", password=STAFF_PASSWORD, client_ip="203.0.113.5"
    )
    from_office = await service.login(
        settings, email="anna@kattohuolto.example", password=STAFF_PASSWORD, client_ip="198.51.100.7"
    )

    # then
    with pytest.raises(RateLimited):
        await from_there
    assert from_office.staff.email == "anna@kattohuolto.example"


async def test_a_success_clears_the_failures(server, world, settings):
    # given
    await world.tenant()
    await world.staff()
    for _ in range(4):
        with pytest.raises(AuthFailed):
            await service.login(settings, email="anna@kattohuolto.example", password="guess!", client_ip="10.1.1.1")
    await service.login(settings, email="anna@kattohuolto.example", password=STAFF_PASSWORD, client_ip="10.1.1.1")

    # when: four more mistakes are allowed again
    for _ in range(4):
        with pytest.raises(AuthFailed):
            await service.login(settings, email="anna@kattohuolto.example", password="guess!", client_ip="10.1.1.1")

    # then
    result = await service.login(
        settings, email="ANNA@kattohuolto.example", password=STAFF_PASSWORD, client_ip="10.1.1.1"
    )
    assert result.token


def test_ipv6_clients_are_counted_per_64_network():
    # when / then
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("192.0.2.1") == "192.0.2.1"


async def test_one_email_cannot_become_two_accounts_even_concurrently(server, world, settings):
    # given
    await world.tenant("kattohuolto")
    await world.tenant("bilverkstad", plugin="carrepair_se")

    # when
    results = await asyncio.gather(
        world.staff("kattohuolto", "shared@example.fi"),
        world.staff("bilverkstad", "Shared@Example.fi"),
        return_exceptions=True,
    )

    # then
    errors = [r for r in results if isinstance(r, InputInvalid)]
    assert len(errors) == 1 and errors[0].problems[0].code == "taken"
    owner = await db.Credentials.from_url(settings.database_url).connect()  # across both tenants
    try:
        assert await owner.fetchval("SELECT count(*) FROM staff_user WHERE email = 'shared@example.fi'") == 1
    finally:
        await owner.close()
    # the constraint violation's DETAIL, which quotes the address, stays out of the server log
    server_log = Path(settings.database_url.partition("host=")[2]) / "log"
    if server_log.exists():  # embedded PostgreSQL; an external server's log is its operator's to configure
        assert "shared@example.fi" not in server_log.read_text(errors="replace").lower()
