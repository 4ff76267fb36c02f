"""Passkeys: staff sign in with a discoverable WebAuthn credential instead of a password.

The relying party is Rapidly's own address (`RAPIDLY_BASE_URL`: its host is the RP ID, its origin
the only origin accepted), so a passkey works in Rapidly's console and nowhere else, and a page
elsewhere cannot ask for an assertion that counts here. Every ceremony answers a challenge made for
it, used once and within `CHALLENGE_SECONDS` (only its SHA-256 is kept); user verification (the
device's PIN or biometrics) is required, so a passkey is two factors in one. A signature counter
that does not move forward is refused, as a cloned authenticator's would be.

A company may require passkeys (`Tenant.require_passkey`): a password alone then signs in only
someone who has none yet, to a session that may do nothing but add one (`StaffSession.enrolling`).
A staff member may make a passkey their own second factor (`StaffUser.passkey_only`): while they
have one, their password alone is refused. Both ask for the passkey instead of after the password: a
user-verified passkey is already two factors (the device, and its PIN or biometrics), and a password
typed before it would add only what a phishing page can take.
A lost passkey is recovered through an admin, who removes a colleague's passkeys; the colleague
then signs in with their password and adds a new one.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from tortoise.exceptions import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from rapidly import db, security, tenancy
from rapidly.audit import service as audit
from rapidly.config import Settings
from rapidly.errors import AuthFailed, InputInvalid, NotFound
from rapidly.ratelimit import service as ratelimit
from rapidly.staff import service
from rapidly.staff.models import PasskeyChallenge, StaffPasskey, StaffSession, StaffUser
from rapidly.tenants import origins
from rapidly.validation import parse_id

CHALLENGE_SECONDS = 300
#: A credential's JSON as browsers send it is a few kB (an attestation with certificates is the
#: largest); anything much bigger is not one.
MAX_CREDENTIAL_CHARS = 64_000
MAX_NAME_LENGTH = 100
#: Passkeys one staff member may have: a phone, a laptop, a security key or two, with room to spare.
MAX_PASSKEYS = 20

#: Passkey sign-ins one client network may start in ten minutes.
SIGN_IN_OPTIONS = ratelimit.Limit("passkey-options", 120, 600)
#: Passkeys one staff member may start adding in ten minutes.
REGISTRATION_OPTIONS = ratelimit.Limit("passkey-registration", 30, 600)

PASSKEY_ADDED = "passkey.added"
PASSKEY_REMOVED = "passkey.removed"
PASSKEY_ONLY = "passkey.only"

_FAILED = "The passkey could not be used."


def relying_party(settings: Settings) -> tuple[str, str]:
    """The RP ID (Rapidly's host name) and the one origin that passkeys are used from."""
    parts = urlsplit(settings.base_url)
    return parts.hostname or "", f"{parts.scheme}://{parts.netloc}"


# -- registration (a signed-in staff member, or an enrolling session) -----------------------------------


async def registration_options(settings: Settings, staff: StaffUser) -> str:
    """The options for `navigator.credentials.create()`, as JSON; the challenge is this staff member's."""
    rp_id, _ = relying_party(settings)
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    limit = (REGISTRATION_OPTIONS, str(staff.id), tenant_id)
    await ratelimit.check(*limit)
    await ratelimit.hit(*limit)
    with tenancy.scoped(tenant_id):
        existing = await StaffPasskey.filter(staff_id=staff.id).values_list("credential_id", flat=True)
        if len(existing) >= MAX_PASSKEYS:
            raise InputInvalid.one(
                "passkey", "too_many_passkeys", f"Remove one first: at most {MAX_PASSKEYS} passkeys."
            )
        challenge = await _new_challenge(tenant_id, staff.id)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name="Rapidly",
        user_name=staff.email,
        user_id=staff.id.bytes,
        user_display_name=staff.email,
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in existing],
    )
    return options_to_json(options)


async def register(
    settings: Settings, staff: StaffUser, session_token: str, credential: str, name: str
) -> StaffPasskey:
    """Keep the passkey that answers this staff member's challenge. An enrolling session becomes a
    session like any other."""
    name = _clean_name(name)
    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise InputInvalid.one(
            "credential", "too_long", f"A passkey's answer is under {MAX_CREDENTIAL_CHARS} characters."
        )
    rp_id, origin = relying_party(settings)
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    try:
        parsed = parse_registration_credential_json(credential)  # its length is checked above
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise InputInvalid.one("credential", "invalid", _FAILED) from None
    with tenancy.scoped(tenant_id):
        # Taken in a statement of its own: used up even when what follows refuses the answer.
        if not await _take_challenge(tenant_id, challenge, staff.id):
            raise InputInvalid.one("credential", "expired", "This passkey request has expired; try again.")
        async with db.transaction() as tx:
            try:
                verified = verify_registration_response(
                    credential=parsed,
                    expected_challenge=challenge,
                    expected_rp_id=rp_id,
                    expected_origin=origin,
                    require_user_verification=True,
                )
            except WebAuthnException:
                raise InputInvalid.one("credential", "invalid", _FAILED) from None
            try:
                async with db.transaction():
                    passkey = await StaffPasskey.create(
                        tenant_id=tenant_id,
                        staff_id=staff.id,
                        credential_id=bytes_to_base64url(verified.credential_id),
                        public_key=verified.credential_public_key,
                        sign_count=verified.sign_count,
                        name=name,
                        using_db=tx,
                    )
            except IntegrityError:
                raise InputInvalid.one("credential", "taken", "This passkey is registered already.") from None
            # This session becomes one like any other, for as long as any; any other session that
            # could only add a passkey ends (one opened with a stolen password must not add its own).
            this = security.hash_token(session_token)
            await (
                StaffSession.filter(staff_id=staff.id, token_hash=this, enrolling=True)
                .using_db(tx)
                .update(enrolling=False, expires_at=datetime.now(UTC) + timedelta(days=settings.staff_session_days))
            )
            await StaffSession.filter(staff_id=staff.id, enrolling=True).using_db(tx).delete()
            await audit.record_change(tx, tenant_id, staff.id, PASSKEY_ADDED, passkey.id)
    return passkey


async def list_own(staff: StaffUser) -> list[StaffPasskey]:
    with tenancy.scoped(staff.tenant_id):  # type: ignore[attr-defined]
        return await StaffPasskey.filter(staff_id=staff.id).order_by("created_at")


async def remove_own(staff: StaffUser, passkey_id: str) -> uuid.UUID:
    """Remove one of my passkeys; `NotFound` alike for another's, a malformed and an absent ID."""
    pid = parse_id(passkey_id)
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            removed = pid and await StaffPasskey.filter(id=pid, staff_id=staff.id).using_db(tx).delete()
            if not removed:
                raise NotFound("There is no such passkey.")
            await audit.record_change(tx, tenant_id, staff.id, PASSKEY_REMOVED, pid)  # type: ignore[arg-type]
    return pid  # type: ignore[return-value]


async def set_passkey_only(staff: StaffUser, on: bool, session_token: str | None) -> StaffUser:
    """A passkey as my second factor: while I have one, my password alone no longer signs me in.
    Turned on with a passkey of my own (so I do not lock myself out), it ends my other sessions, so
    one opened elsewhere with my password alone ends too. Recorded in the audit trail."""
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    if on and not await has_any(tenant_id, staff.id):
        raise InputInvalid.one("on", "no_passkey", "Add a passkey of your own first.")
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            await StaffUser.filter(id=staff.id).using_db(tx).update(passkey_only=on)
            if on and not staff.passkey_only:
                mine = security.hash_presented_token(session_token, security.STAFF_TOKEN_PREFIX)
                await StaffSession.filter(staff_id=staff.id).exclude(token_hash=mine or "").using_db(tx).delete()
            if on != staff.passkey_only:
                await audit.record_change(tx, tenant_id, staff.id, PASSKEY_ONLY, staff.id, "on" if on else "off")
    staff.passkey_only = on
    return staff


async def count_by_staff(tenant_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """How many passkeys each of a company's staff has (for its admins' list)."""
    with tenancy.scoped(tenant_id):
        rows = await StaffPasskey.filter(tenant_id=tenant_id).values_list("staff_id", flat=True)
    counts: dict[uuid.UUID, int] = {}
    for staff_id in rows:
        counts[staff_id] = counts.get(staff_id, 0) + 1  # type: ignore[index]
    return counts


async def has_any(tenant_id: uuid.UUID, staff_id: uuid.UUID) -> bool:
    with tenancy.scoped(tenant_id):
        return await StaffPasskey.filter(staff_id=staff_id).exists()


# -- signing in -----------------------------------------------------------------------------------------


async def sign_in_options(settings: Settings, *, client_ip: str) -> str:
    """The options for `navigator.credentials.get()`, as JSON: no credentials listed (the device
    offers its own passkeys for Rapidly), so the request names no one. Each keeps a row for
    `CHALLENGE_SECONDS`, so a network may ask for only so many."""
    rp_id, _ = relying_party(settings)
    limit = (
        SIGN_IN_OPTIONS,
        security.keyed_digest(settings.signing_key, "passkey-options", ratelimit.network_of(client_ip)),
    )
    await ratelimit.check(*limit)
    await ratelimit.hit(*limit)
    with tenancy.as_tenant(tenancy.PLATFORM):
        challenge = await _new_challenge(tenancy.PLATFORM, None)
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, user_verification=UserVerificationRequirement.REQUIRED
    )
    return options_to_json(options)


async def sign_in(
    settings: Settings, credential: str, *, client_ip: str, origin: str | None = None
) -> service.LoginResult:
    """A session for the passkey's owner. The same `AuthFailed` for every failure (a forged,
    replayed or unknown assertion, a wrong origin or RP ID, a counter that went backwards);
    failures count against the client's network as a password's do."""
    key, network = settings.signing_key, ratelimit.network_of(client_ip)
    network_limit = (service.ip_limit(settings), security.keyed_digest(key, "login-ip", network))
    await ratelimit.check(*network_limit)
    rp_id, expected_origin = relying_party(settings)
    try:
        try:
            parsed = parse_authentication_credential_json(_bounded(credential))
            challenge = parse_client_data_json(parsed.response.client_data_json).challenge
        except (WebAuthnException, ValueError, TypeError, KeyError):
            raise AuthFailed() from None
        with tenancy.as_tenant(tenancy.PLATFORM):
            if not await _take_challenge(tenancy.PLATFORM, challenge, None):
                raise AuthFailed()
        credential_id = bytes_to_base64url(parsed.raw_id)
        tenant_id = await db.tenant_of("rapidly_passkey_tenant", credential_id)
        if tenant_id is None:
            raise AuthFailed()
        with tenancy.as_tenant(tenant_id):  # the request is bound only once the assertion holds
            passkey = await StaffPasskey.get_or_none(credential_id=credential_id).select_related("staff__tenant")
        if passkey is None:
            raise AuthFailed()
        staff = passkey.staff
        if parsed.response.user_handle != staff.id.bytes:  # a discoverable credential names its user
            raise AuthFailed()
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=expected_origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except WebAuthnException:
            raise AuthFailed() from None
        if not origins.allows(staff.tenant, origin):
            raise AuthFailed()
    except AuthFailed:
        await ratelimit.hit(*network_limit)
        raise
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            # The counter moves forward exactly once: a replay racing this one finds it moved.
            moved = (
                await StaffPasskey.filter(id=passkey.id, sign_count=passkey.sign_count)
                .using_db(tx)
                .update(sign_count=verified.new_sign_count, last_used_at=datetime.now(UTC))
            )
            if not moved:
                raise AuthFailed()
            token = await service.start_session(tx, settings, staff)
    return service.LoginResult(token=token, staff=staff)


# -- challenges -----------------------------------------------------------------------------------------


async def _new_challenge(tenant_id: uuid.UUID, staff_id: uuid.UUID | None) -> bytes:
    challenge = secrets.token_bytes(32)
    await PasskeyChallenge.create(
        tenant_id=tenant_id,
        challenge_hash=hashlib.sha256(challenge).hexdigest(),
        staff_id=staff_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=CHALLENGE_SECONDS),
    )
    return challenge


async def _take_challenge(tenant_id: uuid.UUID, challenge: bytes, staff_id: uuid.UUID | None) -> bool:
    """True once for a live challenge made for this ceremony (deleted as it is taken)."""
    taken = await PasskeyChallenge.filter(
        tenant_id=tenant_id,
        challenge_hash=hashlib.sha256(challenge).hexdigest(),
        staff_id=staff_id,
        expires_at__gt=datetime.now(UTC),
    ).delete()
    return bool(taken)


async def purge_expired_challenges() -> int:
    """Challenges never answered, in batches."""
    return await db.delete_expired("passkey_challenge")


def _bounded(credential: str) -> str:
    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise ValueError("oversized credential")
    return credential


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InputInvalid.one("name", "required", "Give the passkey a name, such as the device it is on.")
    if len(name) > MAX_NAME_LENGTH:
        raise InputInvalid.one("name", "too_long", f"Use at most {MAX_NAME_LENGTH} characters.")
    return name
