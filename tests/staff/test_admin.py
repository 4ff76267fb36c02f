"""Roles, the staff list, role changes and removals (issue 29) over HTTP, against the real database."""

from __future__ import annotations

import asyncio
import time

import pytest

from rapidly import tenancy
from rapidly.audit.models import AuditEvent
from rapidly.schema.permissions import SESSION_ENDED
from rapidly.staff.models import StaffRole, StaffSession, StaffUser
from tests.contacts.test_contacts_api import staff_token
from tests.realtime.test_fanout import EVENTS, connected, until_members
from tests.staff.conftest import ANNA, PEKKA, VILLE

STAFF = "query { viewer { __typename role tenant { staff { __typename id email role lastSignInAt } } } }"
REMOVE = """
mutation Remove($id: ID!) {
  removeStaff(id: $id) {
    __typename
    ... on StaffRemoved { id }
    ... on Error { message }
    ... on InputInvalidError { errors { field code } }
  }
}
"""
CHANGE_ROLE = """
mutation Change($id: ID!, $role: StaffRole!) {
  changeStaffRole(id: $id, role: $role) {
    __typename
    ... on StaffRoleChanged { staff { id email role } }
    ... on Error { message }
    ... on InputInvalidError { errors { field code } }
  }
}
"""
VIEWER = "query { viewer { __typename id } }"


async def roles(tenant_id) -> dict[str, str]:
    with tenancy.as_tenant(tenant_id):
        return {s.email: s.role.value for s in await StaffUser.filter(tenant_id=tenant_id)}


async def admin_changes(tenant_id) -> list[AuditEvent]:
    with tenancy.as_tenant(tenant_id):
        return await AuditEvent.filter(tenant_id=tenant_id, contact_id__isnull=True).order_by("created_at")


async def test_a_companys_first_staff_member_is_its_admin_and_the_next_are_staff(company):
    # given
    roofing, plumbing, *_ = company

    # then
    assert await roles(roofing.id) == {ANNA: "ADMIN", VILLE: "STAFF"}
    assert await roles(plumbing.id) == {PEKKA: "ADMIN"}


async def test_an_admin_sees_the_companys_staff_and_no_one_elses(gql, company):
    # given
    token = await staff_token(gql, ANNA)
    await staff_token(gql, VILLE)

    # when
    viewer = (await gql(STAFF, token=token))["viewer"]

    # then
    assert viewer["role"] == "ADMIN"
    listed = viewer["tenant"]["staff"]
    assert [(s["email"], s["role"]) for s in listed] == [(ANNA, "ADMIN"), (VILLE, "STAFF")]
    assert all(s["lastSignInAt"] for s in listed)
    assert PEKKA not in str(listed)


async def test_staff_who_are_not_admins_are_refused_every_admin_operation_and_nothing_changes(gql, company):
    # given
    roofing, _, anna, _, _ = company
    token = await staff_token(gql, VILLE)

    # when
    listed = await gql(STAFF, token=token, expect_errors=True)
    removed = (await gql(REMOVE, {"id": str(anna.id)}, token=token))["removeStaff"]
    promoted = (await gql(CHANGE_ROLE, {"id": str(anna.id), "role": "STAFF"}, token=token))["changeStaffRole"]
    promoted_self = await gql(CHANGE_ROLE, {"id": "me", "role": "ADMIN"}, token=token)

    # then: the list is null with a coded error, the viewer intact; each mutation a typed refusal
    assert listed["data"]["viewer"]["tenant"]["staff"] is None
    assert listed["data"]["viewer"]["role"] == "STAFF"
    assert [e["extensions"]["code"] for e in listed["errors"]] == ["AdminRequired"]
    assert removed == {"__typename": "AdminRequiredError", "message": "Only an admin of this company may do this."}
    assert promoted["__typename"] == promoted_self["changeStaffRole"]["__typename"] == "AdminRequiredError"
    assert await roles(roofing.id) == {ANNA: "ADMIN", VILLE: "STAFF"}
    assert await admin_changes(roofing.id) == []


async def test_without_a_session_admin_operations_are_refused(gql, company):
    # given
    _, _, anna, _, _ = company

    # when
    answers = [
        await gql(REMOVE, {"id": str(anna.id)}, expect_errors=True),
        await gql(CHANGE_ROLE, {"id": str(anna.id), "role": "STAFF"}, token="rst_forged", expect_errors=True),
    ]

    # then
    for answer in answers:
        assert answer["data"] is None
        assert answer["errors"][0]["message"] == "Staff sign-in required."


async def test_an_admin_removes_a_colleague_whose_sessions_and_live_stream_end_at_once(gql, server, company):
    # given: Ville signed in twice, one of them watching the live events
    roofing, _, anna, ville, _ = company
    admin_token = await staff_token(gql, ANNA)
    ville_token, other_token = await staff_token(gql, VILLE), await staff_token(gql, VILLE)
    async with connected(server, ville_token) as socket:
        await socket.subscribe("1", EVENTS)
        await until_members(server.app.state.fanout, 1)

        # when
        began = time.monotonic()
        removed = (await gql(REMOVE, {"id": str(ville.id)}, token=admin_token))["removeStaff"]
        ended = await socket.message(2)
        took = time.monotonic() - began

    # then: gone, every session with them, the stream ended within a second; the change audited
    assert removed == {"__typename": "StaffRemoved", "id": str(ville.id)}
    assert ended["payload"] == {"data": None, "errors": [{"message": SESSION_ENDED}]}
    assert took < 1.0, took
    for token in (ville_token, other_token):
        assert (await gql(VIEWER, token=token))["viewer"] is None
    assert await roles(roofing.id) == {ANNA: "ADMIN"}
    with tenancy.as_tenant(roofing.id):
        assert await StaffSession.filter(staff_id=ville.id).count() == 0
    [change] = await admin_changes(roofing.id)
    assert (change.staff_id, change.action, change.subject_id, change.detail) == (
        anna.id,
        "staff.removed",
        ville.id,
        None,
    )


async def test_the_last_admin_can_be_neither_removed_nor_demoted_until_there_is_another(gql, company):
    # given
    roofing, _, anna, ville, _ = company
    token = await staff_token(gql, ANNA)

    # when
    removed = (await gql(REMOVE, {"id": str(anna.id)}, token=token))["removeStaff"]
    demoted = (await gql(CHANGE_ROLE, {"id": str(anna.id), "role": "STAFF"}, token=token))["changeStaffRole"]
    promoted = (await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "ADMIN"}, token=token))["changeStaffRole"]
    demoted_after = (await gql(CHANGE_ROLE, {"id": str(anna.id), "role": "STAFF"}, token=token))["changeStaffRole"]
    again = (await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "ADMIN"}, token=token))["changeStaffRole"]

    # then: refused with the reason while she is the only one; allowed once Ville is an admin; and
    # having given away her role, Anna can no longer give one
    assert removed["__typename"] == demoted["__typename"] == "InputInvalidError"
    assert removed["errors"] == [{"field": "id", "code": "last_admin"}]
    assert demoted["errors"] == [{"field": "role", "code": "last_admin"}]
    assert promoted == {
        "__typename": "StaffRoleChanged",
        "staff": {"id": str(ville.id), "email": VILLE, "role": "ADMIN"},
    }
    assert demoted_after["staff"]["role"] == "STAFF"
    assert again["__typename"] == "AdminRequiredError"
    assert await roles(roofing.id) == {ANNA: "STAFF", VILLE: "ADMIN"}
    changes = [(c.action, c.subject_id, c.detail) for c in await admin_changes(roofing.id)]
    assert changes == [("staff.role_changed", ville.id, "ADMIN"), ("staff.role_changed", anna.id, "STAFF")]


async def test_giving_the_role_someone_has_changes_and_records_nothing(gql, company):
    # given
    roofing, _, _, ville, _ = company
    token = await staff_token(gql, ANNA)

    # when
    same = (await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "STAFF"}, token=token))["changeStaffRole"]

    # then
    assert same["staff"]["role"] == "STAFF"
    assert await admin_changes(roofing.id) == []


async def test_two_admins_demoting_each_other_at_once_leave_the_company_one_admin(gql, company):
    # given: two admins
    roofing, _, anna, ville, _ = company
    anna_token, ville_token = await staff_token(gql, ANNA), await staff_token(gql, VILLE)
    await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "ADMIN"}, token=anna_token)

    # when: each demotes the other at the same moment
    answers = await asyncio.gather(
        gql(CHANGE_ROLE, {"id": str(ville.id), "role": "STAFF"}, token=anna_token),
        gql(CHANGE_ROLE, {"id": str(anna.id), "role": "STAFF"}, token=ville_token),
    )

    # then: one of them wins; the other, no longer an admin, is refused
    kinds = sorted(answer["changeStaffRole"]["__typename"] for answer in answers)
    assert kinds == ["AdminRequiredError", "StaffRoleChanged"]
    assert sorted((await roles(roofing.id)).values()) == ["ADMIN", "STAFF"]


@pytest.mark.parametrize(
    "staff_id",
    ["pekka", "00000000-0000-0000-0000-000000000000", "not-an-id", "<script>alert(1)</script>", "9" * 100_000, ""],
)
async def test_another_companys_absent_malformed_or_oversized_ids_are_not_found(gql, company, staff_id):
    # given
    roofing, plumbing, _, _, pekka = company
    token = await staff_token(gql, ANNA)
    staff_id = str(pekka.id) if staff_id == "pekka" else staff_id

    # when
    removed = (await gql(REMOVE, {"id": staff_id}, token=token))["removeStaff"]
    changed = (await gql(CHANGE_ROLE, {"id": staff_id, "role": "ADMIN"}, token=token))["changeStaffRole"]

    # then: the same answer for each; nothing of either company changed, nothing recorded
    assert removed == changed == {"__typename": "NotFoundError", "message": "There is no such staff member."}
    assert await roles(plumbing.id) == {PEKKA: "ADMIN"}
    assert await roles(roofing.id) == {ANNA: "ADMIN", VILLE: "STAFF"}
    assert await admin_changes(roofing.id) == []


async def test_a_role_that_is_not_one_is_refused_by_the_schema(gql, company):
    # given
    _, _, _, ville, _ = company
    token = await staff_token(gql, ANNA)

    # when
    answer = await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "OWNER"}, token=token, expect_errors=True)

    # then
    assert answer.get("data") is None
    assert "StaffRole" in answer["errors"][0]["message"]


async def test_the_role_is_read_with_the_session_but_judged_afresh_by_each_change(gql, company):
    # given: Anna demoted by another admin while her session lives on
    roofing, _, anna, ville, _ = company
    anna_token = await staff_token(gql, ANNA)
    await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "ADMIN"}, token=anna_token)
    with tenancy.as_tenant(roofing.id):
        await StaffUser.filter(id=anna.id).update(role=StaffRole.STAFF)

    # when
    answer = (await gql(REMOVE, {"id": str(ville.id)}, token=anna_token))["removeStaff"]

    # then
    assert answer["__typename"] == "AdminRequiredError"
    assert await roles(roofing.id) == {ANNA: "STAFF", VILLE: "ADMIN"}
