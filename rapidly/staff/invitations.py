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

from tortoise.exceptions import IntegrityError

from rapidly import db, security, tenancy
from rapidly.audit import service as audit
from rapidly.config import Settings
from rapidly.errors import AuthFailed, InputInvalid, NotFound
from rapidly.messaging import outbox
from rapidly.plugins import Channel, MessageEvent
from rapidly.ratelimit import service as ratelimit
from rapidly.staff import service
from rapidly.staff.admin import require_admin
from rapidly.staff.models import StaffInvitation, StaffRole, StaffUser
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
    staff, `RateLimited` past the company's daily budget."""
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
            await StaffInvitation.filter(tenant_id=tenant.id, email=email, accepted_at=None).using_db(tx).delete()
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
            )
            await audit.record_change(tx, tenant.id, admin.id, audit.STAFF_INVITED, invitation.id, role.value)
    return Invited(email, role, expires_at)


async def pending(admin: StaffUser) -> list[StaffInvitation]:
    """The company's invitations still waiting to be accepted, the oldest first."""
    require_admin(admin)
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        waiting = StaffInvitation.filter(tenant_id=tenant_id, accepted_at=None, expires_at__gt=datetime.now(UTC))
        return await waiting.order_by("created_at", "id")


async def cancel(admin: StaffUser, invitation_id: str) -> uuid.UUID:
    """Withdraw a waiting invitation: its link stops working, and an email not yet sent is not sent."""
    require_admin(admin)
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    found = parse_id(invitation_id)
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            waiting = StaffInvitation.filter(id=found, tenant_id=tenant_id, accepted_at=None) if found else None
            if waiting is None or not await waiting.using_db(tx).delete():
                raise NotFound("There is no such invitation.")
            await audit.record_change(tx, tenant_id, admin.id, audit.INVITATION_CANCELLED, found)
    return found  # type: ignore[return-value]


async def link_for_sending(settings: Settings, tenant_id: uuid.UUID, invitation_id: object) -> tuple[str, str] | None:
    """(the invitee's address, the link with a token made now) for the dispatcher; None when the
    invitation is no longer waiting (accepted, expired, replaced). Each call makes a new token: a
    message sent again carries a link that works, and the one before stops working."""
    token = security.generate_token(security.INVITATION_TOKEN_PREFIX)
    try:
        invitation_id = uuid.UUID(str(invitation_id))
    except ValueError:
        return None
    with tenancy.scoped(tenant_id):
        changed = await StaffInvitation.filter(
            id=invitation_id, tenant_id=tenant_id, accepted_at=None, expires_at__gt=datetime.now(UTC)
        ).update(token_hash=security.hash_token(token))
        if not changed:
            return None
        email = await StaffInvitation.get(id=invitation_id).values_list("email", flat=True)
    return str(email), f"{settings.base_url}{INVITATION_PATH}{token}"


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
    """The invitee's account, created with their password, and a session for it. A token that is
    not a live invitation's is `AuthFailed` (counted against the client's network, as failed
    sign-ins are); a password too short or too long, or an address with an account already,
    `InputInvalid`, and the invitation stays usable."""
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
            live = StaffInvitation.filter(id=invitation.id, accepted_at=None, token_hash=invitation.token_hash)
            used = await live.using_db(tx).update(accepted_at=datetime.now(UTC), token_hash=None)
            if not used:  # accepted a moment ago, by another request with the same link
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
            token = await service.start_session(tx, settings, staff)
    return service.LoginResult(token=token, staff=staff)


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
            token_hash=token_hash, accepted_at=None, expires_at__gt=datetime.now(UTC)
        ).select_related("tenant")
    return None if invitation is None else (invitation, invitation.tenant)
