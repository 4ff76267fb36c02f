"""Staff search their contacts by any text typed: `contacts(search:)`."""

from __future__ import annotations

import pytest

from tests.contacts.test_contacts_api import save, staff_token, start

SEARCH = """
query Search($search: String, $first: Int, $after: String) {
  contacts(search: $search, first: $first, after: $after) {
    edges { node { displayName } } pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.fixture
async def customers(gql, world):
    """Three roofing customers and one of another company, each with a few answers."""
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto")
    await world.tenant("bilverkstad", plugin="carrepair_se", default_locale="sv")
    people = [
        {"name": "Maija Meikäläinen", "phone": "040 123 4567", "email": "maija@example.fi"},
        {"name": "Matti Virtanen", "phone": "050 765 4321", "damage_description": "Pelti irti 50% harjalta"},
        {"name": "Liisa Virtanen", "email": "liisa.v@example.com", "street_address": "Kattokatu 1, Helsinki"},
    ]
    for person in people:
        token = await start(gql, "kattohuolto")
        for key, value in person.items():
            assert (await save(gql, token, key, value))["__typename"] == "FieldSaved"
    other = await start(gql, "bilverkstad")
    await save(gql, other, "name", "Maija Virtanen")
    return await staff_token(gql)


async def names(gql, token, search, **variables) -> list[str]:  # type: ignore[no-untyped-def]
    found = await gql(SEARCH, {"search": search, **variables}, token=token)
    return [edge["node"]["displayName"] for edge in found["contacts"]["edges"]]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("virtanen", ["Liisa Virtanen", "Matti Virtanen"]),  # most recently active first; not the other company's
        ("MEIKÄ", ["Maija Meikäläinen"]),
        ("maija@ex", ["Maija Meikäläinen"]),
        ("040 123 4567", ["Maija Meikäläinen"]),  # stored as +358401234567
        ("0401234567", ["Maija Meikäläinen"]),
        ("+358 50 765", ["Matti Virtanen"]),
        ("00358 40 123", ["Maija Meikäläinen"]),
        ("4567", ["Maija Meikäläinen"]),
        ("kattokatu", ["Liisa Virtanen"]),
        ("irti 50%", ["Matti Virtanen"]),
        ("50%", ["Matti Virtanen"]),  # % is a character here, not "anything"
        ("a_a", []),
        ("nobody at all", []),
        ("  matti   virtanen  ", ["Matti Virtanen"]),
    ],
)
async def test_search_finds_contacts_by_any_text_typed(gql, customers, search, expected):
    assert await names(gql, customers, search) == expected


async def test_search_pages_like_the_list(gql, customers):
    # when
    first = await gql(SEARCH, {"search": "example", "first": 1}, token=customers)
    rest = await gql(
        SEARCH, {"search": "example", "first": 1, "after": first["contacts"]["pageInfo"]["endCursor"]}, token=customers
    )

    # then
    assert [e["node"]["displayName"] for e in first["contacts"]["edges"]] == ["Liisa Virtanen"]
    assert first["contacts"]["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["displayName"] for e in rest["contacts"]["edges"]] == ["Maija Meikäläinen"]
    assert rest["contacts"]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("search", "code"),
    [
        ("ab", "too_short"),
        ("   a  ", "too_short"),
        ("1 2", "too_short"),  # too few digits, once the spaces are gone
        ("1 - 2", "too_short"),
        ("x" * 101, "too_long"),
        ("x" * 100_000, "too_long"),
    ],
)
async def test_a_search_too_short_or_too_long_is_refused_with_a_reason(gql, customers, search, code):
    # when
    answer = await gql(SEARCH, {"search": search}, token=customers, expect_errors=True)

    # then
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "InputInvalid"
    assert error["extensions"]["errors"] == [{"field": "search", "code": code, "message": error["message"]}]


async def test_an_empty_search_is_the_whole_list_and_anonymous_gets_nothing(gql, customers):
    # when
    everyone = await names(gql, customers, "")
    anonymous = await gql(SEARCH, {"search": "maija"}, expect_errors=True)

    # then
    assert len(everyone) == 3
    assert anonymous["data"] is None and anonymous["errors"][0]["message"] == "Staff sign-in required."


async def test_what_a_search_found_is_audited_as_read(gql, customers):
    # given
    from rapidly import tenancy
    from rapidly.audit.models import AuditEvent
    from rapidly.tenants.models import Tenant

    roofer = (await Tenant.get(slug="kattohuolto")).id
    with tenancy.as_tenant(roofer):
        before = await AuditEvent.all().count()

    # when: only IDs asked for, but a match tells what the values hold
    found = await gql('query { contacts(search: "virtanen") { edges { node { id } } } }', token=customers)

    # then
    ids = {edge["node"]["id"] for edge in found["contacts"]["edges"]}
    with tenancy.as_tenant(roofer):
        audited = await AuditEvent.all().order_by("created_at").offset(before)
    assert len(ids) == 2 and {str(a.contact_id) for a in audited} == ids
