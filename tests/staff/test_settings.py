"""An admin changes the company's settings over the API (issue 29): origins, retention, message channels."""

from __future__ import annotations

import pytest

from rapidly import tenancy
from rapidly.audit.models import AuditEvent
from rapidly.tenants.models import Tenant
from tests.contacts.test_contacts_api import staff_token
from tests.staff.conftest import ANNA, VILLE

SETTINGS = "tenant { allowedOrigins retentionDays messageChannels { event channels } }"
RESULT = f"""
    __typename
    ... on CompanySettingsChanged {{ {SETTINGS} }}
    ... on Error {{ message }}
    ... on InputInvalidError {{ errors {{ field code }} }}
"""
ADD = f"mutation A($origin: String!) {{ addAllowedOrigin(origin: $origin) {{ {RESULT} }} }}"
REMOVE = f"mutation R($origin: String!) {{ removeAllowedOrigin(origin: $origin) {{ {RESULT} }} }}"
RETENTION = f"mutation K($days: Int) {{ setRetentionDays(days: $days) {{ {RESULT} }} }}"
CHANNELS = f"""mutation C($event: String!, $channels: [Channel!]!) {{
  setMessageChannels(event: $event, channels: $channels) {{ {RESULT} }} }}"""
START = 'mutation { startContact(tenant: "kattohuolto") { __typename } }'
SITE = "https://www.kattohuolto.example"


async def settings_changes(tenant_id) -> list[tuple[str, str]]:
    with tenancy.as_tenant(tenant_id):
        return (
            await AuditEvent.filter(action="setting.changed").order_by("created_at").values_list("staff_id", "detail")
        )


async def test_an_origin_added_by_an_admin_lets_that_website_use_the_api_at_once(gql, http, company):
    # given
    roofing, _, anna, _, _ = company
    token = await staff_token(gql, ANNA)
    before = await http.post("/graphql", json={"query": START}, headers={"Origin": SITE})

    # when
    added = (await gql(ADD, {"origin": SITE + "/"}, token=token))["addAllowedOrigin"]
    after = await http.post("/graphql", json={"query": START}, headers={"Origin": SITE})
    removed = (await gql(REMOVE, {"origin": SITE}, token=token))["removeAllowedOrigin"]
    gone = await http.post("/graphql", json={"query": START}, headers={"Origin": SITE})

    # then: written as the browser writes it; allowed at once, refused again once removed; audited by name
    assert added["tenant"]["allowedOrigins"] == [SITE]
    assert before.json()["errors"][0]["extensions"]["code"] == "OriginNotAllowed"
    assert after.json()["data"]["startContact"]["__typename"] == "ContactSession"
    assert removed["tenant"]["allowedOrigins"] == []
    assert gone.json()["errors"][0]["extensions"]["code"] == "OriginNotAllowed"
    assert await settings_changes(roofing.id) == [(anna.id, "allowed_origins"), (anna.id, "allowed_origins")]


@pytest.mark.parametrize(
    ("origin", "code"),
    [
        ("https://*.example.fi", "wildcard"),
        ("https://www.example.fi/form", "not_an_origin"),
        ("http://www.example.fi", "https_required"),
        ("javascript:alert(1)", "invalid_origin"),
        ("https://" + "a" * 400 + ".fi", "invalid_origin"),
        ("", "invalid_origin"),
        ("<script>", "invalid_origin"),
    ],
)
async def test_what_is_not_an_origin_is_refused_with_the_reason_and_changes_nothing(gql, company, origin, code):
    # given
    roofing, *_ = company

    # when
    answer = (await gql(ADD, {"origin": origin}, token=await staff_token(gql, ANNA)))["addAllowedOrigin"]

    # then
    assert answer["__typename"] == "InputInvalidError" and answer["errors"][0]["code"] == code
    assert (await Tenant.get(id=roofing.id)).allowed_origins == []
    assert await settings_changes(roofing.id) == []


async def test_an_origin_not_listed_cannot_be_removed_and_a_company_lists_at_most_twenty(gql, company):
    # given
    token = await staff_token(gql, ANNA)
    for n in range(20):
        assert (await gql(ADD, {"origin": f"https://site{n}.example"}, token=token))["addAllowedOrigin"]["tenant"]

    # when
    missing = (await gql(REMOVE, {"origin": SITE}, token=token))["removeAllowedOrigin"]
    one_more = (await gql(ADD, {"origin": SITE}, token=token))["addAllowedOrigin"]

    # then
    assert missing["errors"] == [{"field": "remove", "code": "not_listed"}]
    assert one_more["errors"] == [{"field": "add", "code": "too_many"}]


@pytest.mark.parametrize("days", [0, -1, 3651, 2**31 - 1])
async def test_retention_out_of_range_is_refused(gql, company, days):
    # given
    roofing, *_ = company

    # when
    answer = (await gql(RETENTION, {"days": days}, token=await staff_token(gql, ANNA)))["setRetentionDays"]

    # then
    assert answer["errors"] == [{"field": "retention_days", "code": "out_of_range"}]
    assert (await Tenant.get(id=roofing.id)).retention_days is None


async def test_an_admin_sets_retention_and_the_channels_of_an_event(gql, company):
    # given
    roofing, _, anna, _, _ = company
    token = await staff_token(gql, ANNA)

    # when
    kept = (await gql(RETENTION, {"days": 90}, token=token))["setRetentionDays"]
    forever = (await gql(RETENTION, {"days": None}, token=token))["setRetentionDays"]
    channels = await gql(CHANNELS, {"event": "PHOTO_REQUEST", "channels": ["SMS"]}, token=token)
    off = (await gql(CHANNELS, {"event": "NEW_CONTACT", "channels": []}, token=token))["setMessageChannels"]

    # then
    assert kept["tenant"]["retentionDays"] == 90 and forever["tenant"]["retentionDays"] is None
    shown = {c["event"]: c["channels"] for c in off["tenant"]["messageChannels"]}
    assert shown["PHOTO_REQUEST"] == ["SMS"] and shown["NEW_CONTACT"] == []
    assert channels["setMessageChannels"]["__typename"] == "CompanySettingsChanged"
    assert await settings_changes(roofing.id) == [
        (anna.id, "retention_days"),
        (anna.id, "retention_days"),
        (anna.id, "message_channels:PHOTO_REQUEST"),
        (anna.id, "message_channels:NEW_CONTACT"),
    ]


@pytest.mark.parametrize(
    ("event", "channels", "code"),
    [
        ("STAFF_INVITATION", [], "always_on"),
        ("NO_SUCH_EVENT", ["EMAIL"], "unknown_event"),
        ("x" * 10_000, [], "unknown_event"),
    ],
)
async def test_channels_that_cannot_be_are_refused(gql, company, event, channels, code):
    # given
    roofing, *_ = company

    # when
    answer = await gql(CHANNELS, {"event": event, "channels": channels}, token=await staff_token(gql, ANNA))

    # then
    assert answer["setMessageChannels"]["errors"][0]["code"] == code
    assert (await Tenant.get(id=roofing.id)).message_channels == {}
    assert await settings_changes(roofing.id) == []


async def test_staff_who_are_not_admins_change_no_setting_and_another_company_is_untouched(gql, company):
    # given
    roofing, plumbing, *_ = company
    token = await staff_token(gql, VILLE)

    # when
    answers = [
        (await gql(ADD, {"origin": SITE}, token=token))["addAllowedOrigin"],
        (await gql(REMOVE, {"origin": SITE}, token=token))["removeAllowedOrigin"],
        (await gql(RETENTION, {"days": 1}, token=token))["setRetentionDays"],
        (await gql(CHANNELS, {"event": "NEW_CONTACT", "channels": []}, token=token))["setMessageChannels"],
    ]
    await gql(RETENTION, {"days": 30}, token=await staff_token(gql, ANNA))

    # then
    assert {answer["__typename"] for answer in answers} == {"AdminRequiredError"}
    ours, theirs = await Tenant.get(id=roofing.id), await Tenant.get(id=plumbing.id)
    assert ours.allowed_origins == [] and ours.message_channels == {} and ours.retention_days == 30
    assert theirs.retention_days is None
