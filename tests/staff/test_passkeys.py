"""Passkeys (issue 29) over HTTP, against the real database, answered by a software authenticator
with real keys (tests/support/authenticator.py): what a browser cannot be made to send."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rapidly import tenancy
from rapidly.audit.models import AuditEvent
from rapidly.staff import passkeys
from rapidly.staff.models import PasskeyChallenge, StaffPasskey, StaffSession
from tests.conftest import STAFF_PASSWORD
from tests.contacts.test_contacts_api import staff_token
from tests.staff.conftest import ANNA, PEKKA, VILLE
from tests.support.authenticator import UP, Authenticator

REGISTRATION_OPTIONS = """
mutation { passkeyRegistrationOptions {
  __typename ... on PasskeyOptions { options } ... on Error { message } ... on InputInvalidError { errors { code } }
} }
"""
REGISTER = """
mutation Register($credential: String!, $name: String!) {
  registerPasskey(credential: $credential, name: $name) {
    __typename
    ... on PasskeyAdded { passkey { id name createdAt lastUsedAt } }
    ... on Error { message }
    ... on InputInvalidError { errors { field code } }
  }
}
"""
SIGN_IN_OPTIONS = "mutation { passkeySignInOptions { __typename ... on PasskeyOptions { options } } }"
SIGN_IN = """
mutation SignIn($credential: String!) {
  signInWithPasskey(credential: $credential) {
    __typename
    ... on LoginSuccess { token staff { email } }
    ... on Error { message }
  }
}
"""
LOGIN_FULL = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename
    ... on LoginSuccess { token mustAddPasskey }
    ... on Error { message }
  }
}
"""
MY_PASSKEYS = "query { viewer { passkeys { id name lastUsedAt } } }"
REMOVE = """
mutation Remove($id: ID!) { removePasskey(id: $id) { __typename ... on PasskeyRemoved { id } } }
"""
RESET = """
mutation Reset($id: ID!) {
  resetStaffPasskeys(id: $id) { __typename ... on PasskeysReset { staff { email passkeys } } }
}
"""
REQUIRE = """
mutation Require($required: Boolean!) {
  setPasskeyRequired(required: $required) {
    __typename
    ... on CompanySettingsChanged { tenant { requirePasskey } }
    ... on InputInvalidError { errors { field code } }
  }
}
"""
STAFF_LIST = "query { viewer { tenant { staff { email passkeys } } } }"
VIEWER = "query { viewer { email } }"


def authenticator_for(settings) -> Authenticator:
    rp_id, origin = passkeys.relying_party(settings)
    return Authenticator(origin=origin, rp_id=rp_id)


async def add_passkey(gql, token: str, device: Authenticator, name: str = "Work laptop") -> dict:
    options = (await gql(REGISTRATION_OPTIONS, token=token))["passkeyRegistrationOptions"]["options"]
    return (await gql(REGISTER, {"credential": device.create(options), "name": name}, token=token))["registerPasskey"]


async def sign_in(gql, device: Authenticator, **tampering) -> dict:
    options = (await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]
    return (await gql(SIGN_IN, {"credential": device.get(options, **tampering)}))["signInWithPasskey"]


async def test_a_staff_member_adds_a_passkey_and_signs_in_with_it_naming_no_one(gql, settings, company):
    # given
    _, _, anna, _, _ = company
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)

    # when
    added = await add_passkey(gql, token, device)
    options = json.loads((await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"])
    signed_in = await sign_in(gql, device)

    # then: the options name no credential and ask the device to verify its user; a new session
    assert added["__typename"] == "PasskeyAdded" and added["passkey"]["name"] == "Work laptop"
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    assert signed_in["__typename"] == "LoginSuccess" and signed_in["staff"]["email"] == ANNA
    assert (await gql(VIEWER, token=signed_in["token"]))["viewer"]["email"] == ANNA
    [listed] = (await gql(MY_PASSKEYS, token=signed_in["token"]))["viewer"]["passkeys"]
    assert listed["name"] == "Work laptop" and listed["lastUsedAt"]
    with tenancy.as_tenant(anna.tenant_id):
        actions = await AuditEvent.filter(staff_id=anna.id, action="passkey.added").count()
    assert actions == 1


@pytest.mark.parametrize(
    "tampering",
    [
        pytest.param({"origin": "https://evil.example"}, id="another origin"),
        pytest.param({"rp_id": "evil.example"}, id="another RP ID"),
        pytest.param({"key": ec.generate_private_key(ec.SECP256R1())}, id="another key's signature"),
        pytest.param({"flags": UP}, id="user not verified"),
    ],
)
async def test_a_forged_assertion_is_refused_like_any_failure(gql, settings, company, tampering):
    # given
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)

    # when
    answer = await sign_in(gql, device, **tampering)

    # then
    assert answer == {"__typename": "AuthError", "message": "Authentication failed."}


async def test_a_replayed_assertion_and_a_counter_that_goes_backwards_are_refused(gql, settings, company):
    # given: one good sign-in, counter 5
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)
    options = (await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]
    used = device.get(options, counter=5)
    assert (await gql(SIGN_IN, {"credential": used}))["signInWithPasskey"]["__typename"] == "LoginSuccess"

    # when: the same answer again; a fresh challenge answered with an older counter (a cloned device)
    replayed = (await gql(SIGN_IN, {"credential": used}))["signInWithPasskey"]
    cloned = await sign_in(gql, device, counter=3)
    same = await sign_in(gql, device, counter=5)

    # then
    assert replayed["__typename"] == cloned["__typename"] == same["__typename"] == "AuthError"
    assert (await sign_in(gql, device, counter=6))["__typename"] == "LoginSuccess"


async def test_an_answer_to_a_challenge_never_given_or_expired_is_refused(gql, settings, company):
    # given
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)
    options = (await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]
    with tenancy.as_tenant(tenancy.PLATFORM):
        await PasskeyChallenge.filter(tenant_id=tenancy.PLATFORM).update(expires_at=datetime(2020, 1, 1, tzinfo=UTC))

    # when
    invented = device.get(json.dumps({"challenge": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))
    answers = [
        (await gql(SIGN_IN, {"credential": invented}))["signInWithPasskey"],
        (await gql(SIGN_IN, {"credential": device.get(options)}))["signInWithPasskey"],
    ]

    # then: and the expired challenges are swept
    assert [a["__typename"] for a in answers] == ["AuthError", "AuthError"]
    assert await passkeys.purge_expired_challenges() >= 1


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="garbage"),
        pytest.param('{"id": "x"}', id="partial"),
        pytest.param(json.dumps({"id": "A" * 70_000, "rawId": "A", "type": "public-key", "response": {}}), id="huge"),
        pytest.param("<script>alert(1)</script>", id="hostile"),
    ],
)
async def test_what_is_not_a_credential_is_refused_with_a_typed_error(gql, settings, company, credential):
    # given
    _, _, anna, _, _ = company
    token = await staff_token(gql, ANNA)
    await gql(REGISTRATION_OPTIONS, token=token)

    # when
    signed_in = (await gql(SIGN_IN, {"credential": credential}))["signInWithPasskey"]
    registered = (await gql(REGISTER, {"credential": credential, "name": "x"}, token=token))["registerPasskey"]

    # then: nothing kept, nothing of the input echoed
    assert signed_in["__typename"] == "AuthError"
    assert registered["__typename"] == "InputInvalidError"
    assert registered["errors"][0]["field"] == "credential"
    assert "script" not in json.dumps(registered)
    with tenancy.as_tenant(anna.tenant_id):
        assert await StaffPasskey.filter(staff_id=anna.id).count() == 0


async def test_a_registration_answers_only_its_own_staff_members_challenge(gql, settings, company):
    # given: Anna asked to add a passkey; Ville answers her challenge with his session
    anna_token, ville_token = await staff_token(gql, ANNA), await staff_token(gql, VILLE)
    options = (await gql(REGISTRATION_OPTIONS, token=anna_token))["passkeyRegistrationOptions"]["options"]
    device = authenticator_for(settings)

    # when
    answer = await gql(REGISTER, {"credential": device.create(options), "name": "x"}, token=ville_token)

    # then
    assert answer["registerPasskey"]["errors"] == [{"field": "credential", "code": "expired"}]


@pytest.mark.parametrize(("name", "code"), [("   ", "required"), ("x" * 101, "too_long")])
async def test_a_passkeys_name_is_required_and_bounded(gql, settings, company, name, code):
    token = await staff_token(gql, ANNA)
    answer = await add_passkey(gql, token, authenticator_for(settings), name=name)
    assert answer["errors"] == [{"field": "name", "code": code}]


async def test_without_a_session_there_are_no_registration_options(gql, company):
    answer = (await gql(REGISTRATION_OPTIONS, token="rst_forged"))["passkeyRegistrationOptions"]
    assert answer["__typename"] == "AuthError"


async def test_a_required_passkey_refuses_a_password_alone_and_lets_someone_without_one_only_add_one(
    gql, settings, company
):
    # given: Anna (admin) has a passkey and requires them; Ville has none yet
    roofing, _, _, ville, _ = company
    anna_token = await staff_token(gql, ANNA)
    refused = (await gql(REQUIRE, {"required": True}, token=anna_token))["setPasskeyRequired"]
    await add_passkey(gql, anna_token, authenticator_for(settings))
    required = (await gql(REQUIRE, {"required": True}, token=anna_token))["setPasskeyRequired"]

    # when
    anna_password = (await gql(LOGIN_FULL, {"email": ANNA, "password": STAFF_PASSWORD}))["login"]
    ville_password = (await gql(LOGIN_FULL, {"email": VILLE, "password": STAFF_PASSWORD}))["login"]
    enrolling = ville_password["token"]
    before = await gql(VIEWER, token=enrolling)
    ville_device = authenticator_for(settings)
    added = await add_passkey(gql, enrolling, ville_device)
    after = await gql(VIEWER, token=enrolling)

    # then: an admin without a passkey cannot require them; with one, she can
    assert refused["errors"] == [{"field": "required", "code": "no_passkey"}]
    assert required == {"__typename": "CompanySettingsChanged", "tenant": {"requirePasskey": True}}
    # Anna, who has a passkey, must use it; Ville may sign in only to add one, and then is in
    assert anna_password["__typename"] == "PasskeyRequiredError"
    assert ville_password["__typename"] == "LoginSuccess" and ville_password["mustAddPasskey"] is True
    assert before["viewer"] is None
    assert added["__typename"] == "PasskeyAdded"
    assert after["viewer"]["email"] == VILLE
    assert (await sign_in(gql, ville_device))["__typename"] == "LoginSuccess"
    with tenancy.as_tenant(roofing.id):
        assert not await StaffSession.filter(staff_id=ville.id, enrolling=True).exists()


async def test_a_lost_passkey_is_recovered_through_an_admin_only(gql, settings, company):
    # given: Ville has a passkey, the company requires them
    roofing, _, _, ville, _ = company
    anna_token, ville_token = await staff_token(gql, ANNA), await staff_token(gql, VILLE)
    await add_passkey(gql, anna_token, authenticator_for(settings))
    ville_device = authenticator_for(settings)
    await add_passkey(gql, ville_token, ville_device)
    await gql(REQUIRE, {"required": True}, token=anna_token)
    ville_token = (await sign_in(gql, ville_device))["token"]  # the requirement ended his other sessions

    # when: Ville lost it; he cannot reset it himself, Anna can
    by_himself = (await gql(RESET, {"id": str(ville.id)}, token=ville_token))["resetStaffPasskeys"]
    listed = (await gql(STAFF_LIST, token=anna_token))["viewer"]["tenant"]["staff"]
    reset = (await gql(RESET, {"id": str(ville.id)}, token=anna_token))["resetStaffPasskeys"]
    again = (await gql(LOGIN_FULL, {"email": VILLE, "password": STAFF_PASSWORD}))["login"]

    # then: his sessions ended with his passkeys; his password lets him add a new one
    assert by_himself["__typename"] == "AdminRequiredError"
    assert {s["email"]: s["passkeys"] for s in listed} == {ANNA: 1, VILLE: 1}
    assert reset == {"__typename": "PasskeysReset", "staff": {"email": VILLE, "passkeys": 0}}
    assert (await gql(VIEWER, token=ville_token))["viewer"] is None
    assert again["mustAddPasskey"] is True
    with tenancy.as_tenant(roofing.id):
        [change] = await AuditEvent.filter(action="passkey.reset")
    assert (change.subject_id, change.detail) == (ville.id, None)


async def test_another_companys_ids_are_not_found_and_its_passkeys_untouched(gql, settings, company):
    # given: Pekka of another company has a passkey
    _, plumbing, _, _, pekka = company
    anna_token, pekka_token = await staff_token(gql, ANNA), await staff_token(gql, PEKKA)
    await add_passkey(gql, pekka_token, authenticator_for(settings))
    with tenancy.as_tenant(plumbing.id):
        pekka_key = await StaffPasskey.get(staff_id=pekka.id)

    # when
    reset = (await gql(RESET, {"id": str(pekka.id)}, token=anna_token))["resetStaffPasskeys"]
    removed = [
        (await gql(REMOVE, {"id": key}, token=anna_token))["removePasskey"]
        for key in (str(pekka_key.id), "not-an-id", "x" * 100_000)
    ]

    # then
    assert reset["__typename"] == "NotFoundError"
    assert {r["__typename"] for r in removed} == {"NotFoundError"}
    with tenancy.as_tenant(plumbing.id):
        assert await StaffPasskey.filter(staff_id=pekka.id).count() == 1


async def test_a_staff_member_removes_their_own_passkey_and_it_no_longer_signs_in(gql, settings, company):
    # given
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    added = await add_passkey(gql, token, device)

    # when
    removed = (await gql(REMOVE, {"id": added["passkey"]["id"]}, token=token))["removePasskey"]

    # then
    assert removed == {"__typename": "PasskeyRemoved", "id": added["passkey"]["id"]}
    assert (await sign_in(gql, device))["__typename"] == "AuthError"


async def test_the_same_passkey_cannot_be_registered_twice(gql, settings, company):
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)
    again = await add_passkey(gql, token, device)
    assert again["errors"] == [{"field": "credential", "code": "taken"}]


async def test_two_sign_ins_racing_with_one_answer_make_one_session(gql, settings, company):
    # given
    _, _, anna, _, _ = company
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)
    options = (await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]
    answer = device.get(options)
    with tenancy.as_tenant(anna.tenant_id):
        sessions = await StaffSession.filter(staff_id=anna.id).count()

    # when
    both = await asyncio.gather(*(gql(SIGN_IN, {"credential": answer}) for _ in range(2)))

    # then
    assert sorted(b["signInWithPasskey"]["__typename"] for b in both) == ["AuthError", "LoginSuccess"]
    with tenancy.as_tenant(anna.tenant_id):
        assert await StaffSession.filter(staff_id=anna.id).count() == sessions + 1


async def test_requiring_passkeys_ends_every_other_session_of_the_company_and_no_other_companys(gql, settings, company):
    # given: Anna (admin, with a passkey) and Ville signed in with passwords; Pekka in another company
    anna_token, ville_token = await staff_token(gql, ANNA), await staff_token(gql, VILLE)
    pekka_token = await staff_token(gql, PEKKA)
    await add_passkey(gql, anna_token, authenticator_for(settings))

    # when
    await gql(REQUIRE, {"required": True}, token=anna_token)

    # then
    assert (await gql(VIEWER, token=ville_token))["viewer"] is None
    assert (await gql(VIEWER, token=anna_token))["viewer"]["email"] == ANNA
    assert (await gql(VIEWER, token=pekka_token))["viewer"]["email"] == PEKKA


async def test_a_challenge_answers_only_its_own_ceremony(gql, settings, company):
    # given: a passkey of Anna's, and one challenge of each kind
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)
    registration = (await gql(REGISTRATION_OPTIONS, token=token))["passkeyRegistrationOptions"]["options"]
    signing_in = (await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]

    # when: each answered in the other ceremony
    signed_in = (await gql(SIGN_IN, {"credential": device.get(registration)}))["signInWithPasskey"]
    made = device.create(json.dumps({**json.loads(registration), "challenge": json.loads(signing_in)["challenge"]}))
    registered = (await gql(REGISTER, {"credential": made, "name": "x"}, token=token))["registerPasskey"]

    # then
    assert signed_in["__typename"] == "AuthError"
    assert registered["errors"] == [{"field": "credential", "code": "expired"}]


async def test_a_refused_registration_uses_up_its_challenge(gql, settings, company):
    # given: an answer from another origin, refused
    token = await staff_token(gql, ANNA)
    options = (await gql(REGISTRATION_OPTIONS, token=token))["passkeyRegistrationOptions"]["options"]
    device = authenticator_for(settings)
    wrong = await gql(
        REGISTER, {"credential": device.create(options, origin="https://evil.example"), "name": "x"}, token=token
    )

    # when: the same challenge answered properly
    again = (await gql(REGISTER, {"credential": device.create(options), "name": "x"}, token=token))["registerPasskey"]

    # then
    assert wrong["registerPasskey"]["errors"] == [{"field": "credential", "code": "invalid"}]
    assert again["errors"] == [{"field": "credential", "code": "expired"}]


async def test_an_assertion_without_its_user_is_refused(gql, settings, company):
    token = await staff_token(gql, ANNA)
    device = authenticator_for(settings)
    await add_passkey(gql, token, device)
    options = (await gql(SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]
    answer = json.loads(device.get(options))
    del answer["response"]["userHandle"]
    assert (await gql(SIGN_IN, {"credential": json.dumps(answer)}))["signInWithPasskey"]["__typename"] == "AuthError"


async def test_a_session_that_may_only_add_a_passkey_does_nothing_else_is_short_and_ends_with_the_others(
    gql, settings, company
):
    # given: passkeys required; Ville, without one, signs in with his password twice (once by a thief)
    roofing, _, _, ville, _ = company
    anna_token = await staff_token(gql, ANNA)
    await add_passkey(gql, anna_token, authenticator_for(settings))
    await gql(REQUIRE, {"required": True}, token=anna_token)
    login = {"email": VILLE, "password": STAFF_PASSWORD}
    his, thiefs = [(await gql(LOGIN_FULL, login))["login"]["token"] for _ in range(2)]

    # when: the enrolling token tries what only a session may do; then Ville adds his passkey
    tried = [
        await gql(REMOVE, {"id": str(ville.id)}, token=his, expect_errors=True),
        await gql(REQUIRE, {"required": False}, token=his, expect_errors=True),
        await gql(STAFF_LIST, token=his, expect_errors=True),
    ]
    with tenancy.as_tenant(roofing.id):
        lifetime = [s.expires_at - s.created_at for s in await StaffSession.filter(staff_id=ville.id)]
    await add_passkey(gql, his, authenticator_for(settings))

    # then: refused as without a session; at most 15 minutes; the thief's session is gone, his is whole
    assert [t["data"] for t in tried] == [None, None, {"viewer": None}]
    assert all(t.total_seconds() <= 15 * 60 + 5 for t in lifetime), lifetime
    assert (await gql(VIEWER, token=his))["viewer"]["email"] == VILLE
    assert (await gql(REGISTRATION_OPTIONS, token=thiefs))["passkeyRegistrationOptions"]["__typename"] == "AuthError"
    with tenancy.as_tenant(roofing.id):
        [session] = await StaffSession.filter(staff_id=ville.id)
    assert (session.expires_at - session.created_at).days >= 1


PASSKEY_ONLY = """
mutation Only($on: Boolean!) { setPasskeyOnly(on: $on) { __typename
  ... on PasskeyOnlyChanged { staff { passkeyOnly } } ... on InputInvalidError { errors { field code } } } }
"""


async def test_a_staff_member_makes_a_passkey_their_second_factor_and_their_password_alone_is_refused(
    gql, settings, company
):
    # given: Ville, in a company that does not require passkeys, signed in twice with his password
    roofing, _, _, ville, _ = company
    here, elsewhere = await staff_token(gql, VILLE), await staff_token(gql, VILLE)

    # when: without a passkey, then with one
    refused = (await gql(PASSKEY_ONLY, {"on": True}, token=here))["setPasskeyOnly"]
    device = authenticator_for(settings)
    await add_passkey(gql, here, device)
    turned_on = (await gql(PASSKEY_ONLY, {"on": True}, token=here))["setPasskeyOnly"]
    password_alone = (await gql(LOGIN_FULL, {"email": VILLE, "password": STAFF_PASSWORD}))["login"]
    colleague = (await gql(LOGIN_FULL, {"email": ANNA, "password": STAFF_PASSWORD}))["login"]

    # then: refused until he has a passkey; then his other session ends, his password alone is refused
    # (counted as a failure), his passkey signs him in, and his colleagues are untouched
    assert refused == {"__typename": "InputInvalidError", "errors": [{"field": "on", "code": "no_passkey"}]}
    assert turned_on == {"__typename": "PasskeyOnlyChanged", "staff": {"passkeyOnly": True}}
    assert (await gql(VIEWER, token=here))["viewer"]["email"] == VILLE
    assert (await gql(VIEWER, token=elsewhere))["viewer"] is None
    assert password_alone["__typename"] == "PasskeyRequiredError"
    assert colleague["__typename"] == "LoginSuccess"
    assert (await sign_in(gql, device))["__typename"] == "LoginSuccess"

    # when: an admin removes his lost passkey (the recovery), then he turns it off
    await gql(RESET, {"id": str(ville.id)}, token=await staff_token(gql, ANNA))
    recovered = (await gql(LOGIN_FULL, {"email": VILLE, "password": STAFF_PASSWORD}))["login"]
    turned_off = (await gql(PASSKEY_ONLY, {"on": False}, token=recovered["token"]))["setPasskeyOnly"]

    # then: without a passkey his password signs him in again; each change is in the audit trail
    assert recovered["__typename"] == "LoginSuccess" and recovered["mustAddPasskey"] is False
    assert turned_off == {"__typename": "PasskeyOnlyChanged", "staff": {"passkeyOnly": False}}
    with tenancy.as_tenant(roofing.id):
        changes = await AuditEvent.filter(action="passkey.only").order_by("created_at").values_list("detail", flat=True)
    assert changes == ["on", "off"]


async def test_without_a_session_no_one_changes_a_second_factor(gql, company):
    answer = await gql(PASSKEY_ONLY, {"on": False}, expect_errors=True)
    assert answer["errors"][0]["message"] == "Staff sign-in required."
