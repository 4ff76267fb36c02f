"""A tenant's allowed origins: what counts as one, the service, the CLI and `viewer`."""

from __future__ import annotations

import pytest

from rapidly.errors import InputInvalid
from rapidly.tenants import service
from rapidly.tenants.models import Tenant
from rapidly.tenants.origins import MAX_ORIGINS, clean_origin
from tests.conftest import run_cli
from tests.contacts.test_contacts_api import staff_token

VIEWER = "query { viewer { __typename tenant { slug allowedOrigins } } }"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://www.example.fi", "https://www.example.fi"),
        ("  HTTPS://WWW.Example.FI:443/ ", "https://www.example.fi"),
        ("https://example.fi:8443", "https://example.fi:8443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("http://app.localhost", "http://app.localhost"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://[2001:DB8::1]", "https://[2001:db8::1]"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://faß.de", "https://xn--fa-hia.de"),  # as browsers map it (UTS #46), not fass.de
        ("https://XN--FA-HIA.DE", "https://xn--fa-hia.de"),
        ("https://www.example.fi.", "https://www.example.fi"),
    ],
)
def test_an_origin_is_stored_as_browsers_send_it(given, stored):
    assert clean_origin(given) == stored


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("https://www.example.fi/contact", "not_an_origin"),
        ("https://www.example.fi/?a=1", "not_an_origin"),
        ("https://www.example.fi#form", "not_an_origin"),
        ("https://www.example.fi?", "not_an_origin"),
        ("https://*.example.fi", "wildcard"),
        ("*", "wildcard"),
        ("null", "invalid_origin"),
        ("", "invalid_origin"),
        ("www.example.fi", "invalid_origin"),
        ("ftp://example.fi", "invalid_origin"),
        ("javascript:alert(1)", "invalid_origin"),
        ("file:///etc/passwd", "invalid_origin"),
        ("https://", "invalid_origin"),
        ("https://exa mple.fi", "invalid_origin"),
        ("https://-bad-.example.fi", "invalid_origin"),
        ("https://example.fi:99999", "invalid_origin"),
        ("https://user:secret@example.fi", "not_an_origin"),
        ("http://www.example.fi", "https_required"),
        ("http://192.168.1.10:8000", "https_required"),
        ("https://" + "a" * 300 + ".fi", "invalid_origin"),
        ("https://example.fi\r\nX-Evil: 1", "invalid_origin"),
        ("https://127.1", "invalid_origin"),  # browsers read it as 127.0.0.1
        ("https://0x7f000001", "invalid_origin"),
        ("https://example.123", "invalid_origin"),
        ("https://a_b.example", "invalid_origin"),
    ],
)
def test_what_is_not_an_origin_is_refused_with_a_reason(given, code):
    with pytest.raises(InputInvalid) as refused:
        clean_origin(given, "add")
    assert [(p.field, p.code) for p in refused.value.problems] == [("add", code)]


async def test_origins_are_added_once_removed_and_checked_first(world):
    # given
    await world.tenant("kattohuolto")

    # when
    added = await service.change_origins(
        "kattohuolto", add=["https://www.kattohuolto.fi", "https://WWW.kattohuolto.fi"]
    )
    again = await service.change_origins("kattohuolto", add=["https://www.kattohuolto.fi", "http://localhost:3000"])
    with pytest.raises(InputInvalid) as bad:
        await service.change_origins("kattohuolto", add=["https://ok.example"], remove=["https://nope.example/x"])
    with pytest.raises(InputInvalid) as unlisted:
        await service.change_origins("kattohuolto", remove=["https://never.example"])
    removed = await service.change_origins("kattohuolto", remove=["http://localhost:3000"])

    # then
    assert added.allowed_origins == ["https://www.kattohuolto.fi"]
    assert again.allowed_origins == ["https://www.kattohuolto.fi", "http://localhost:3000"]
    assert bad.value.problems[0].field == "remove"
    assert unlisted.value.problems[0].code == "not_listed"
    assert removed.allowed_origins == ["https://www.kattohuolto.fi"]
    assert (await Tenant.get(slug="kattohuolto")).allowed_origins == ["https://www.kattohuolto.fi"]


async def test_a_tenant_lists_a_bounded_number_of_origins(world):
    # given
    await world.tenant("kattohuolto")
    many = [f"https://site{i}.example" for i in range(MAX_ORIGINS + 1)]

    # when
    with pytest.raises(InputInvalid) as refused:
        await service.change_origins("kattohuolto", add=many)

    # then
    assert refused.value.problems[0].code == "too_many"
    assert (await Tenant.get(slug="kattohuolto")).allowed_origins == []


async def test_cli_lists_adds_and_removes_origins(env, world):
    # given
    await world.tenant("kattohuolto")

    # when
    empty = run_cli(env, "tenant", "origins", "kattohuolto")
    added = run_cli(
        env, "tenant", "origins", "kattohuolto", "--add", "https://www.kattohuolto.fi", "--add", "http://localhost:3000"
    )
    removed = run_cli(env, "tenant", "origins", "kattohuolto", "--remove", "http://localhost:3000")
    listed = run_cli(env, "tenant", "origins", "kattohuolto")
    wildcard = run_cli(env, "tenant", "origins", "kattohuolto", "--add", "https://*.kattohuolto.fi")
    plain_http = run_cli(env, "tenant", "origins", "kattohuolto", "--add", "http://www.kattohuolto.fi")
    unknown = run_cli(env, "tenant", "origins", "no-such-tenant")

    # then
    assert empty.returncode == 0 and "lists no origins" in empty.stdout
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == ["https://www.kattohuolto.fi", "http://localhost:3000"]
    assert removed.stdout.splitlines() == ["https://www.kattohuolto.fi"]
    assert listed.stdout.splitlines() == ["https://www.kattohuolto.fi"]
    assert wildcard.returncode == 1 and "add: List each website's origin; wildcards are not allowed." in wildcard.stderr
    assert plain_http.returncode == 1 and "https://" in plain_http.stderr
    assert unknown.returncode == 1 and "No such tenant" in unknown.stderr
    assert (await Tenant.get(slug="kattohuolto")).allowed_origins == ["https://www.kattohuolto.fi"]


async def test_staff_see_their_tenants_origins_on_viewer(gql, world):
    # given
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    await service.change_origins("kattohuolto", add=["https://www.kattohuolto.fi"])
    token = await staff_token(gql)

    # when
    viewer = (await gql(VIEWER, token=token))["viewer"]

    # then
    assert viewer["tenant"] == {"slug": "kattohuolto", "allowedOrigins": ["https://www.kattohuolto.fi"]}
