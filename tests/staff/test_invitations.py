"""Invitations (issue 29): the email at a real SMTP server, the link's token, accepting it once."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from rapidly import security, tenancy
from rapidly.audit.models import AuditEvent
from rapidly.messaging.models import OutboundMessage
from rapidly.staff.models import StaffInvitation, StaffUser
from tests.contacts.test_contacts_api import staff_token
from tests.staff.conftest import ANNA, PEKKA, VILLE
from tests.staff.test_admin import CHANGE_ROLE

INVITE = """
mutation Invite($email: String!, $role: StaffRole!) {
  inviteStaff(email: $email, role: $role) {
    __typename
    ... on StaffInvited { email role expiresAt }
    ... on Error { message }
    ... on InputInvalidError { errors { field code } }
  }
}
"""
INVITATION = "query Invitation($token: String!) { staffInvitation(token: $token) { email role companyName expiresAt } }"
ACCEPT = """
mutation Accept($token: String!, $password: String!) {
  acceptStaffInvitation(token: $token, password: $password) {
    __typename
    ... on LoginSuccess { token staff { email role tenant { slug } } }
    ... on Error { message }
    ... on InputInvalidError { errors { field code } }
  }
}
"""
VIEWER = "query { viewer { email role } }"
AINO = "aino@kattohuolto.example"
PASSWORD = "a long and new password"
LINK = re.compile(r"http://[^\s/]+/console/invite/(rpi_[\w-]+)")


async def invited(gql, dispatcher, smtp, email: str = AINO, role: str = "STAFF", token: str | None = None) -> str:
    """Anna invites `email`; the dispatcher sends the email; the link's token in it."""
    token = token or await staff_token(gql, ANNA)
    answer = (await gql(INVITE, {"email": email, "role": role}, token=token))["inviteStaff"]
    assert answer["__typename"] == "StaffInvited", answer
    await dispatcher.run_once()
    _, mailbox, _ = smtp
    mail = mailbox.messages[-1]
    assert mail["X-Envelope-To"] == email
    return LINK.search(mail.get_body(("plain",)).get_content()).group(1)


async def test_an_invitee_gets_an_email_whose_link_makes_their_account_once(gql, server, company, dispatcher, smtp):
    # given
    roofing, *_ = company

    # when
    link = await invited(gql, dispatcher, smtp, role="ADMIN")
    shown = (await gql(INVITATION, {"token": link}))["staffInvitation"]
    accepted = (await gql(ACCEPT, {"token": link, "password": PASSWORD}))["acceptStaffInvitation"]
    again = (await gql(ACCEPT, {"token": link, "password": PASSWORD}))["acceptStaffInvitation"]
    shown_after = (await gql(INVITATION, {"token": link}))["staffInvitation"]

    # then: the link shows whose invitation it is; accepted, the account is theirs, signed in, with
    # the role chosen; the same link then works no more
    assert shown["email"] == AINO and shown["role"] == "ADMIN" and shown["companyName"] == "Kattohuolto"
    assert accepted["__typename"] == "LoginSuccess"
    assert accepted["staff"] == {"email": AINO, "role": "ADMIN", "tenant": {"slug": "kattohuolto"}}
    assert (await gql(VIEWER, token=accepted["token"]))["viewer"] == {"email": AINO, "role": "ADMIN"}
    assert again["__typename"] == "AuthError" and shown_after is None
    with tenancy.as_tenant(roofing.id):
        aino = await StaffUser.get(email=AINO)
        kept = await StaffInvitation.all().count()
        changes = (
            await AuditEvent.filter(contact_id=None)
            .order_by("created_at")
            .values_list("action", "staff_id", "subject_id", "detail")
        )
    assert kept == 0  # the address is not kept in an invitation once it is over
    anna_id = changes[0][1]
    assert changes[1:] == [("staff.joined", aino.id, anna_id, "ADMIN")]
    assert changes[0][0] == "staff.invited" and changes[0][3] == "ADMIN"


async def test_the_email_names_the_company_and_keeps_no_token_in_the_outbox(gql, company, dispatcher, smtp):
    # given
    roofing, *_ = company

    # when
    link = await invited(gql, dispatcher, smtp)

    # then: a staff message (no end user's link or button); only the token's hash is kept
    _, mailbox, _ = smtp
    [mail] = mailbox.messages
    body = mail.get_body(("plain",)).get_content()
    assert "Kattohuolto" in mail["Subject"] and "/my/" not in body
    with tenancy.as_tenant(roofing.id):
        [message] = await OutboundMessage.filter(event="staff_invitation")
        invitation = await StaffInvitation.get(email=AINO)
    assert message.status == "SENT" and message.payload == {} and message.contact_id is None
    assert invitation.token_hash == security.hash_token(link) and link not in str(await invitation_row(invitation))


async def invitation_row(invitation: StaffInvitation) -> dict:
    return {field: getattr(invitation, field) for field in invitation._meta.fields_map}


async def test_a_new_invitation_replaces_the_one_before_and_an_expired_one_is_dead(gql, company, dispatcher, smtp):
    # given
    roofing, *_ = company
    first = await invited(gql, dispatcher, smtp)
    second = await invited(gql, dispatcher, smtp)
    expiring = await invited(gql, dispatcher, smtp, email="eero@kattohuolto.example")
    with tenancy.as_tenant(roofing.id):
        await StaffInvitation.filter(email="eero@kattohuolto.example").update(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )

    # when
    answers = [
        (await gql(ACCEPT, {"token": t, "password": PASSWORD}))["acceptStaffInvitation"] for t in (first, expiring)
    ]
    accepted = (await gql(ACCEPT, {"token": second, "password": PASSWORD}))["acceptStaffInvitation"]

    # then
    for answer in answers:
        assert answer == {
            "__typename": "AuthError",
            "message": "This invitation has been used, has expired or was replaced by a newer one.",
        }
    assert accepted["__typename"] == "LoginSuccess"
    with tenancy.as_tenant(roofing.id):
        assert await StaffUser.filter(email="eero@kattohuolto.example").count() == 0


async def test_an_address_with_an_account_elsewhere_is_told_only_to_the_invitee(gql, company, dispatcher, smtp):
    # given: Pekka works for Putkimies; Anna of Kattohuolto invites his address
    roofing, plumbing, *_ = company

    # when
    invited_answer = await gql(INVITE, {"email": PEKKA, "role": "STAFF"}, token=await staff_token(gql, ANNA))
    link = await invited(gql, dispatcher, smtp, email=PEKKA)
    accepted = (await gql(ACCEPT, {"token": link, "password": PASSWORD}))["acceptStaffInvitation"]

    # then: Anna's answer is the same as for anyone; the invitee learns it at the link; nothing moved
    assert invited_answer["inviteStaff"]["__typename"] == "StaffInvited"
    assert accepted["__typename"] == "InputInvalidError"
    assert accepted["errors"] == [{"field": "token", "code": "email_taken"}]
    with tenancy.as_tenant(plumbing.id):
        assert await StaffUser.filter(email=PEKKA).count() == 1
    with tenancy.as_tenant(roofing.id):
        assert await StaffUser.filter(email=PEKKA).count() == 0


async def test_a_weak_password_is_refused_and_the_link_still_works(gql, company, dispatcher, smtp):
    # given
    link = await invited(gql, dispatcher, smtp)

    # when
    short = (await gql(ACCEPT, {"token": link, "password": "short"}))["acceptStaffInvitation"]
    huge = (await gql(ACCEPT, {"token": link, "password": "x" * 5000}))["acceptStaffInvitation"]
    accepted = (await gql(ACCEPT, {"token": link, "password": PASSWORD}))["acceptStaffInvitation"]

    # then
    assert short["errors"] == [{"field": "password", "code": "too_short"}]
    assert huge["errors"] == [{"field": "password", "code": "too_long"}]
    assert accepted["__typename"] == "LoginSuccess"


async def test_the_same_link_used_twice_at_once_makes_one_account(gql, company, dispatcher, smtp):
    # given
    roofing, *_ = company
    link = await invited(gql, dispatcher, smtp)

    # when
    answers = await asyncio.gather(*(gql(ACCEPT, {"token": link, "password": PASSWORD}) for _ in range(3)))

    # then
    kinds = sorted(answer["acceptStaffInvitation"]["__typename"] for answer in answers)
    assert kinds.count("LoginSuccess") == 1, kinds
    with tenancy.as_tenant(roofing.id):
        assert await StaffUser.filter(email=AINO).count() == 1


@pytest.mark.parametrize(
    "token", ["", "rpi_forged", "rps_" + "a" * 43, "x" * 100_000, "<script>alert(1)</script>", "rpi_" + "a" * 43]
)
async def test_forged_malformed_or_oversized_tokens_find_nothing(gql, company, token):
    # when
    shown = (await gql(INVITATION, {"token": token}))["staffInvitation"]
    accepted = (await gql(ACCEPT, {"token": token, "password": PASSWORD}))["acceptStaffInvitation"]

    # then
    assert shown is None
    assert accepted["__typename"] == "AuthError"


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("not an address", "invalid"),
        ("a" * 400 + "@x.example", "too_long"),
        (ANNA, "already_staff"),
        (VILLE, "already_staff"),
    ],
)
async def test_bad_addresses_and_the_companys_own_staff_are_refused(gql, company, email, code):
    # given
    roofing, *_ = company

    # when
    answer = (await gql(INVITE, {"email": email, "role": "STAFF"}, token=await staff_token(gql, ANNA)))["inviteStaff"]

    # then
    assert answer["__typename"] == "InputInvalidError"
    assert answer["errors"][0]["field"] == "email" and answer["errors"][0]["code"].startswith(code)
    with tenancy.as_tenant(roofing.id):
        assert await StaffInvitation.all().count() == 0


async def test_only_admins_invite(gql, company):
    # given
    roofing, *_ = company

    # when
    answer = (await gql(INVITE, {"email": AINO, "role": "ADMIN"}, token=await staff_token(gql, VILLE)))["inviteStaff"]
    unsigned = await gql(INVITE, {"email": AINO, "role": "ADMIN"}, expect_errors=True)

    # then
    assert answer["__typename"] == "AdminRequiredError"
    assert unsigned["errors"][0]["message"] == "Staff sign-in required."
    with tenancy.as_tenant(roofing.id):
        assert await StaffInvitation.all().count() == 0


PENDING = "query { viewer { tenant { invitations { id email role expiresAt } } } }"
PENDING_STATUS = "query { viewer { tenant { invitations { email sent problem } } } }"
CANCEL = """
mutation Cancel($id: ID!) {
  cancelStaffInvitation(id: $id) { __typename ... on InvitationCancelled { id } ... on Error { message } }
}
"""


async def test_an_admin_sees_waiting_invitations_and_withdraws_one_before_and_after_it_is_sent(
    gql, company, dispatcher, smtp
):
    # given: one invitation sent, another still in the outbox
    roofing, *_ = company
    token = await staff_token(gql, ANNA)
    link = await invited(gql, dispatcher, smtp, token=token)
    await gql(INVITE, {"email": "eero@kattohuolto.example", "role": "ADMIN"}, token=token)

    # when: both withdrawn
    waiting = (await gql(PENDING, token=token))["viewer"]["tenant"]["invitations"]
    cancelled = [(await gql(CANCEL, {"id": i["id"]}, token=token))["cancelStaffInvitation"] for i in waiting]
    sent = await dispatcher.run_once()
    accepted = (await gql(ACCEPT, {"token": link, "password": PASSWORD}))["acceptStaffInvitation"]

    # then: the link works no more, the other email is never sent; nothing waits; audited
    assert [(i["email"], i["role"]) for i in waiting] == [(AINO, "STAFF"), ("eero@kattohuolto.example", "ADMIN")]
    assert [c["__typename"] for c in cancelled] == ["InvitationCancelled"] * 2
    assert sent == 1 and len(smtp[1].messages) == 1
    assert accepted["__typename"] == "AuthError"
    assert (await gql(PENDING, token=token))["viewer"]["tenant"]["invitations"] == []
    with tenancy.as_tenant(roofing.id):
        [suppressed] = await OutboundMessage.filter(event="staff_invitation", status="SUPPRESSED")
        assert suppressed.last_error == "no_invitation"
        assert await AuditEvent.filter(action="staff.invitation_cancelled").count() == 2


@pytest.mark.parametrize("invitation_id", ["theirs", "00000000-0000-0000-0000-000000000000", "nope", "9" * 10_000])
async def test_another_companys_or_no_invitation_cannot_be_withdrawn(gql, company, invitation_id):
    # given: Putkimies invites someone
    _, plumbing, *_ = company
    pekka = await staff_token(gql, PEKKA)
    await gql(INVITE, {"email": "uusi@putkimies.example", "role": "STAFF"}, token=pekka)
    with tenancy.as_tenant(plumbing.id):
        theirs = await StaffInvitation.get(email="uusi@putkimies.example")
    invitation_id = str(theirs.id) if invitation_id == "theirs" else invitation_id

    # when
    answer = (await gql(CANCEL, {"id": invitation_id}, token=await staff_token(gql, ANNA)))["cancelStaffInvitation"]
    ville = (await gql(CANCEL, {"id": invitation_id}, token=await staff_token(gql, VILLE)))["cancelStaffInvitation"]
    listed = await gql(PENDING, token=await staff_token(gql, VILLE), expect_errors=True)

    # then
    assert answer == {"__typename": "NotFoundError", "message": "There is no such invitation."}
    assert ville["__typename"] == "AdminRequiredError"
    assert listed["data"]["viewer"]["tenant"]["invitations"] is None
    with tenancy.as_tenant(plumbing.id):
        assert await StaffInvitation.filter(id=theirs.id).exists()


async def test_an_admins_invitations_go_with_their_removal_or_demotion(gql, company, dispatcher, smtp):
    # given: Ville made an admin; he invites two people, one email sent, one still waiting
    roofing, _, _, ville, _ = company
    anna = await staff_token(gql, ANNA)
    await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "ADMIN"}, token=anna)
    link = await invited(gql, dispatcher, smtp, token=await staff_token(gql, VILLE), role="ADMIN")
    await gql(INVITE, {"email": "eero@kattohuolto.example", "role": "ADMIN"}, token=await staff_token(gql, VILLE))

    # when: Anna demotes him
    await gql(CHANGE_ROLE, {"id": str(ville.id), "role": "STAFF"}, token=anna)
    sent = await dispatcher.run_once()
    accepted = (await gql(ACCEPT, {"token": link, "password": PASSWORD}))["acceptStaffInvitation"]

    # then: no way back in through them
    assert accepted["__typename"] == "AuthError"
    assert sent == 1 and len(smtp[1].messages) == 1
    assert (await gql(PENDING, token=anna))["viewer"]["tenant"]["invitations"] == []
    with tenancy.as_tenant(roofing.id):
        assert await StaffInvitation.all().count() == 0


async def test_waiting_invitations_say_how_their_email_fared(gql, settings, plugins, company):
    # given: a Rapidly with no email set up
    from rapidly.messaging.dispatcher import Dispatcher

    token = await staff_token(gql, ANNA)
    await gql(INVITE, {"email": AINO, "role": "STAFF"}, token=token)
    before = (await gql(PENDING_STATUS, token=token))["viewer"]["tenant"]["invitations"]

    # when
    await Dispatcher(settings, plugins, channels={}).run_once()
    after = (await gql(PENDING_STATUS, token=token))["viewer"]["tenant"]["invitations"]

    # then
    assert [(i["sent"], i["problem"]) for i in before] == [("PENDING", None)]
    assert [(i["sent"], i["problem"]) for i in after] == [("SUPPRESSED", "channel_not_configured")]


async def test_expired_invitations_are_swept_with_their_addresses(gql, company):
    # given
    from rapidly.staff import invitations

    roofing, *_ = company
    token = await staff_token(gql, ANNA)
    for email in (AINO, "eero@kattohuolto.example"):
        await gql(INVITE, {"email": email, "role": "STAFF"}, token=token)
    with tenancy.as_tenant(roofing.id):
        await StaffInvitation.filter(email=AINO).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    # when
    swept = await invitations.purge_expired()

    # then
    assert swept == 1
    with tenancy.as_tenant(roofing.id):
        assert await StaffInvitation.all().values_list("email", flat=True) == ["eero@kattohuolto.example"]
