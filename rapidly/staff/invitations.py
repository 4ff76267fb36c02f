"""Invitations: an admin asks a colleague by email to join the company as staff.

The email goes through the outbox like every message; its link (`/console/invite/{token}`) is made
when it is sent, so no token waits in the outbox, and only the token's SHA-256 is kept. The link
works once, for `INVITATION_HOURS`; a new invitation to the same address replaces the one before.
Accepting it sets the invitee's password, creates the account with the role the admin chose, and
signs them in. An address that has an account already (in any company: an email is one account
platform-wide) is told so when the link is used, and only there: the admin who invited learns
nothing about other companies' staff.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from rapidly import db, security, tenancy
from rapidly.audit import service as audit
from rapidly.config import Settings
from rapidly.errors import AuthFailed, InputInvalid, NotFound
from rapidly.messaging import outbox
from rapidly.plugins import Channel, MessageEvent
from rapidly.ratelimit import service as ratelimit
from rapidly.staff import service
from rapidly.staff.models import StaffInvitation, StaffRole, StaffUser
from rapidly.staff.roles import locked_admins, require_admin
from rapidly.tenants import origins
from rapidly.tenants.models import Tenant
from rapidly.validation import clean_email, clean_locale, parse_id

INVITATION_HOURS = 72
#: Invitations one company may send in a day: enough for a company taking on its staff, not a mailer.
INVITATIONS_PER_TENANT = ratelimit.Limit("staff-invitation-tenant", 50, 86_400)
INVITATION_PATH = "/console/invite/"

_DEAD = "This invitation has been used, has expired or was replaced by a newer one."


@dataclass(frozen=True, slots=True)
class Invited:
    email: str
    role: StaffRole
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    """A live invitation, as its link shows it to the invitee."""

    email: str
    role: StaffRole
    company: str
    expires_at: datetime


async def invite(admin: StaffUser, email: str, role: StaffRole) -> Invited:
    """Queue the invitation's email; `InputInvalid` for a bad address or one of the company's own
    staff, `RateLimited` past the company's daily budget. Judged with the company's admins locked,
    as every admin change is (`rapidly.staff.admin`): an admin demoted or removed a moment ago
    invites no one, and two invitations to one address follow one another."""
    require_admin(admin)
    tenant: Tenant = admin.tenant
    email = clean_email(email)
    with tenancy.scoped(tenant.id):
        if await StaffUser.filter(tenant_id=tenant.id, email=email).exists():
            raise InputInvalid.one("email", "already_staff", "They are staff of this company already.")
    await ratelimit.hit(INVITATIONS_PER_TENANT, str(tenant.id), tenant.id)
    expires_at = datetime.now(UTC) + timedelta(hours=INVITATION_HOURS)
    with tenancy.scoped(tenant.id):
        async with db.transaction() as tx:
            await locked_admins(tx, admin)
            await StaffInvitation.filter(tenant_id=tenant.id, email=email).using_db(tx).delete()
            invitation = await StaffInvitation.create(
                tenant_id=tenant.id, email=email, role=role, invited_by=admin.id, expires_at=expires_at, using_db=tx
            )
            await outbox.enqueue(
                tx,
                tenant_id=tenant.id,
                event=MessageEvent.STAFF_INVITATION,
                channel=Channel.EMAIL,
                locale=admin.locale,
                payload={"invitation": str(invitation.id)},
                dedupe_key=_message_key(invitation.id),
            )
            await audit.record_change(tx, tenant.id, admin.id, audit.STAFF_INVITED, invitation.id, role.value)
    return Invited(email, role, expires_at)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A waiting invitation, and how its email fared (`MessageStatus`, and the short code of why it
    was not sent: say, no email channel set up, or a limit)."""

    invitation: StaffInvitation
    sent: str
    problem: str | None


async def pending(admin: StaffUser) -> list[Waiting]:
    """The company's invitations still waiting to be accepted, the oldest first."""
    require_admin(admin)
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        waiting = await StaffInvitation.filter(tenant_id=tenant_id, expires_at__gt=datetime.now(UTC)).order_by(
            "created_at", "id"
        )
        messages = await outbox.outcomes(tenant_id, [_message_key(i.id) for i in waiting])
    return [Waiting(i, *messages.get(_message_key(i.id), ("PENDING", None))) for i in waiting]


async def cancel(admin: StaffUser, invitation_id: str) -> uuid.UUID:
    """Withdraw a waiting invitation: its link stops working, and an email not yet sent is not sent."""
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    found = parse_id(invitation_id)
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            await locked_admins(tx, admin)
            waiting = StaffInvitation.filter(id=found, tenant_id=tenant_id) if found else None
            if waiting is None or not await waiting.using_db(tx).delete():
                raise NotFound("There is no such invitation.")
            await audit.record_change(tx, tenant_id, admin.id, audit.INVITATION_CANCELLED, found)
    return found  # type: ignore[return-value]


async def withdraw_from(tx: BaseDBAsyncClient, tenant_id: uuid.UUID, inviter_id: uuid.UUID) -> None:
    """The invitations an admin made, gone with their removal or demotion (in its transaction): an
    admin on the way out cannot leave a way back in. Their emails not yet sent are not sent."""
    await StaffInvitation.filter(tenant_id=tenant_id, invited_by=inviter_id).using_db(tx).delete()


async def link_for_sending(settings: Settings, tenant_id: uuid.UUID, invitation_id: object) -> tuple[str, str] | None:
    """(the invitee's address, the link with a token made now) for the dispatcher; None when the
    invitation is no longer waiting (accepted, expired, withdrawn, replaced). Each call makes a new
    token: a message sent again carries a link that works, and the one before stops working."""
    token = security.generate_token(security.INVITATION_TOKEN_PREFIX)
    try:
        invitation_id = uuid.UUID(str(invitation_id))
    except ValueError:
        return None
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            rows = await tx.execute_query_dict(_NEW_LINK, [security.hash_token(token), invitation_id, tenant_id])
    return (rows[0]["email"], f"{settings.base_url}{INVITATION_PATH}{token}") if rows else None


_NEW_LINK = """
UPDATE staff_invitation SET token_hash = $1 WHERE id = $2 AND tenant_id = $3 AND expires_at > now() RETURNING email
"""


async def purge_expired() -> int:
    """Invitations past their time, in batches: their addresses are not kept."""
    return await db.delete_expired("staff_invitation")


def _message_key(invitation_id: uuid.UUID) -> str:
    """The invitation's email in the outbox (its payload is cleared once handled; this key stays)."""
    return f"staff-invitation:{invitation_id}"


async def find(token: str) -> Invitation | None:
    """The live invitation behind a link's token; None for any other token."""
    found = await _live(token)
    if found is None:
        return None
    invitation, tenant = found
    return Invitation(invitation.email, invitation.role, tenant.name, invitation.expires_at)


async def accept(
    settings: Settings,
    token: str,
    password: str,
    *,
    client_ip: str,
    origin: str | None = None,
    locale: str | None = None,
) -> service.LoginResult:
    """The invitee's account, created with their password, and a session for it; the invitation is
    then deleted. A token that is not a live invitation's is `AuthFailed` (counted against the
    client's network, as failed sign-ins are); a password too short or too long, or an address with
    an account already, `InputInvalid`, and the invitation stays usable."""
    network = ratelimit.network_of(client_ip)
    network_limit = (service.ip_limit(settings), security.keyed_digest(settings.signing_key, "login-ip", network))
    await ratelimit.check(*network_limit)
    found = await _live(token)
    if found is None or not origins.allows(found[1], origin):
        await ratelimit.hit(*network_limit)
        raise AuthFailed(_DEAD)
    service.check_password(password)
    invitation, tenant = found
    locale = clean_locale(locale or tenant.default_locale)
    if await db.tenant_of("rapidly_staff_email_tenant", invitation.email) is not None:
        raise _email_taken()
    password_hash = await service.argon2(security.hash_password, password)
    with tenancy.scoped(tenant.id):
        async with db.transaction() as tx:
            live = StaffInvitation.filter(
                id=invitation.id, token_hash=invitation.token_hash, expires_at__gt=datetime.now(UTC)
            )
            if not await live.using_db(tx).delete():  # used a moment ago (the same link twice), or withdrawn
                raise AuthFailed(_DEAD)
            try:
                staff = await StaffUser.create(
                    tenant_id=tenant.id,
                    email=invitation.email,
                    password_hash=password_hash,
                    locale=locale,
                    role=invitation.role,
                    using_db=tx,
                )
            except IntegrityError:  # an account with this address was made meanwhile
                raise _email_taken() from None
            staff.tenant = tenant
            # Where the company requires passkeys, the newcomer's first act is adding one.
            enrolling = tenant.require_passkey
            token = await service.start_session(tx, settings, staff, enrolling=enrolling)
            detail = invitation.role.value
            await audit.record_change(tx, tenant.id, staff.id, audit.STAFF_JOINED, invitation.invited_by, detail)
    return service.LoginResult(token=token, staff=staff, enrolling=enrolling)


def _email_taken() -> InputInvalid:
    return InputInvalid.one(
        "token", "email_taken", "This email address has a Rapidly account already: ask to be invited at another one."
    )


async def _live(token: str) -> tuple[StaffInvitation, Tenant] | None:
    token_hash = security.hash_presented_token(token, security.INVITATION_TOKEN_PREFIX)
    if token_hash is None:
        return None
    tenant_id = await db.tenant_of("rapidly_staff_invitation_tenant", token_hash)
    if tenant_id is None:
        return None
    with tenancy.scoped(tenant_id):
        invitation = await StaffInvitation.get_or_none(
            token_hash=token_hash, expires_at__gt=datetime.now(UTC)
        ).select_related("tenant")
    return None if invitation is None else (invitation, invitation.tenant)
