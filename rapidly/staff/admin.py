"""A company runs its own account: its admins see its staff, give them roles and remove them, and
change the company's settings (its websites' origins, how long contacts are kept, which messages go
out and how, and in what words, whether staff must sign in with a passkey), and remove a colleague's lost passkeys.

Every change is made as the tenant, in one transaction that first locks the company's admins
(`rapidly.staff.roles`), and is written to the audit trail in that transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, security, tenancy
from rapidly.audit import service as audit
from rapidly.errors import InputInvalid, NotFound
from rapidly.messaging import service as messaging
from rapidly.messaging import wording
from rapidly.messaging.templates import Composed
from rapidly.plugins import MessageEvent
from rapidly.staff import invitations, passkeys
from rapidly.staff.models import StaffPasskey, StaffRole, StaffSession, StaffUser
from rapidly.staff.roles import locked_admins, require_admin
from rapidly.tenants import service as tenants
from rapidly.tenants.models import Tenant
from rapidly.validation import parse_id

_LAST_ADMIN = "A company keeps at least one admin: make someone else an admin first."


async def list_staff(admin: StaffUser) -> list[StaffUser]:
    """The company's staff, the longest-standing first."""
    require_admin(admin)
    with tenancy.scoped(admin.tenant_id):  # type: ignore[attr-defined]
        return await StaffUser.filter(tenant_id=admin.tenant_id).order_by("created_at", "id")  # type: ignore[attr-defined]


async def remove_staff(admin: StaffUser, staff_id: str) -> uuid.UUID:
    """Delete a staff member's account; their sessions go with it, and their open consoles and
    live streams end at once (migration 0013 announces the sessions' deletion)."""
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            admins = await locked_admins(tx, admin)
            target = await target_of(tx, tenant_id, staff_id)
            if target.id in admins and len(admins) == 1:
                raise InputInvalid.one("id", "last_admin", _LAST_ADMIN)
            await invitations.withdraw_from(tx, tenant_id, target.id)
            await target.delete(using_db=tx)
            await audit.record_change(tx, tenant_id, admin.id, audit.STAFF_REMOVED, target.id)
    return target.id


async def change_role(admin: StaffUser, staff_id: str, role: StaffRole) -> StaffUser:
    """Give a staff member a role; giving the one they have changes (and records) nothing."""
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            admins = await locked_admins(tx, admin)
            target = await target_of(tx, tenant_id, staff_id)
            if target.role == role:
                return target
            if target.id in admins and len(admins) == 1:
                raise InputInvalid.one("role", "last_admin", _LAST_ADMIN)
            if role != StaffRole.ADMIN:
                await invitations.withdraw_from(tx, tenant_id, target.id)
            target.role = role
            await target.save(update_fields=["role"], using_db=tx)
            await audit.record_change(tx, tenant_id, admin.id, audit.STAFF_ROLE_CHANGED, target.id, role.value)
    return target


async def target_of(tx: BaseDBAsyncClient, tenant_id: uuid.UUID, staff_id: str) -> StaffUser:
    """A staff member of this company; `NotFound` for an absent, malformed or another company's ID alike."""
    sid = parse_id(staff_id)
    target = await StaffUser.get_or_none(id=sid, tenant_id=tenant_id).using_db(tx) if sid else None
    if target is None:
        raise NotFound("There is no such staff member.")
    return target


# -- the company's settings ----------------------------------------------------------------------------


async def add_origin(admin: StaffUser, origin: str) -> Tenant:
    """List a website's origin, checked exactly as `rapidly tenant origins --add` checks it."""
    return await _setting(admin, "allowed_origins", lambda slug: tenants.change_origins(slug, add=[origin]))


async def remove_origin(admin: StaffUser, origin: str) -> Tenant:
    return await _setting(admin, "allowed_origins", lambda slug: tenants.change_origins(slug, remove=[origin]))


async def set_retention(admin: StaffUser, days: int | None) -> Tenant:
    return await _setting(admin, "retention_days", lambda slug: tenants.set_retention(slug, days))


async def set_channels(admin: StaffUser, event: str, channels: list[str]) -> Tenant:
    """An event's channels; the event is named in the audit trail by its name, as the enum spells it."""
    known = MessageEvent.coerce(event)
    name = known.name if known is not None else "unknown"
    return await _setting(admin, f"message_channels:{name}", lambda slug: messaging.set_channels(slug, event, channels))


async def set_require_passkey(admin: StaffUser, required: bool, session_token: str | None) -> Tenant:
    """Staff sign in with a passkey (`rapidly.staff.passkeys`). An admin turns it on with a passkey
    of their own, so that they do not lock themselves into adding one; turned on, it ends every
    session but this admin's own (`session_token`), also those opened with a password alone: everyone
    signs in again, with a passkey, or with their password to add one."""

    async def change(slug: str) -> Tenant:
        if required and not await passkeys.has_any(admin.tenant_id, admin.id):  # type: ignore[attr-defined]
            raise InputInvalid.one("required", "no_passkey", "Add a passkey of your own first (My account).")
        tenant = await tenants.get_by_slug(slug)
        if required and not tenant.require_passkey:
            mine = security.hash_presented_token(session_token, security.STAFF_TOKEN_PREFIX)
            await StaffSession.filter(tenant_id=tenant.id).exclude(token_hash=mine or "").delete()
        tenant.require_passkey = required
        await tenant.save(update_fields=["require_passkey", "updated_at"])
        return tenant

    return await _setting(admin, "require_passkey", change)


async def preview_wording(
    admin: StaffUser, base_url: str, event: str, channel: str, locale: str, subject: str | None, body: str
) -> Composed:
    """A message in this wording, with sample values, as the sandbox that sends renders it."""
    require_admin(admin)
    ev, ch, loc = wording.checked_key(event, channel, locale)
    return wording.checked(base_url, admin.tenant, ev, ch, loc, subject, body)[1]


async def set_wording(
    admin: StaffUser, base_url: str, event: str, channel: str, locale: str, subject: str | None, body: str
) -> Tenant:
    """The company's own wording of one message in one language; refused with the reason when it
    breaks a template's rules or would not render."""
    require_admin(admin)
    ev, ch, loc = wording.checked_key(event, channel, locale)
    words, _ = wording.checked(base_url, admin.tenant, ev, ch, loc, subject, body)

    async def change(slug: str) -> Tenant:
        await wording.save(admin.tenant, ev, ch, loc, words)
        return admin.tenant

    return await _setting(admin, f"message_wording:{ev.name}:{ch.value}:{loc}", change)


async def reset_wording(admin: StaffUser, event: str, channel: str, locale: str) -> Tenant:
    """Back to the plugin's (or the core's) wording."""
    require_admin(admin)
    ev, ch, loc = wording.checked_key(event, channel, locale)

    async def change(slug: str) -> Tenant:
        await wording.reset(admin.tenant, ev, ch, loc)
        return admin.tenant

    return await _setting(admin, f"message_wording:{ev.name}:{ch.value}:{loc}", change)


async def reset_passkeys(admin: StaffUser, staff_id: str) -> StaffUser:
    """Remove a colleague's passkeys (one was lost) and end their sessions: the colleague signs in
    with their password and adds a new one. The only way back from a lost passkey."""
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            await locked_admins(tx, admin)
            target = await target_of(tx, tenant_id, staff_id)
            await StaffPasskey.filter(staff_id=target.id).using_db(tx).delete()
            await StaffSession.filter(staff_id=target.id).using_db(tx).delete()
            await audit.record_change(tx, tenant_id, admin.id, audit.PASSKEYS_RESET, target.id)
    return target


async def _setting(admin: StaffUser, setting: str, change: Callable[[str], Awaitable[Tenant]]) -> Tenant:
    """One setting changed by `change(slug)` and written to the audit trail, in one transaction."""
    tenant_id = admin.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            await locked_admins(tx, admin)
            tenant = await change(admin.tenant.slug)
            await audit.record_change(tx, tenant_id, admin.id, audit.SETTING_CHANGED, tenant_id, setting)
    return tenant
