"""Staff accounts, login and sessions."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from rapidly import db, security, tenancy
from rapidly.config import Settings
from rapidly.errors import AuthFailed, InputInvalid, PasskeyRequired
from rapidly.ratelimit import service as ratelimit
from rapidly.staff.models import StaffPasskey, StaffRole, StaffSession, StaffUser
from rapidly.tenants import origins
from rapidly.tenants import service as tenants
from rapidly.validation import clean_email, clean_locale

T = TypeVar("T")

MIN_PASSWORD_LENGTH = 12
#: How long a session that may only add a passkey lasts: long enough to add one now, and no longer.
ENROLMENT = timedelta(minutes=15)
#: argon2id takes ~50 ms of CPU and 64 MiB per call: run a few at a time, off the event loop.
_ARGON2_SLOTS = threading.BoundedSemaphore(4)
#: argon2 cost grows with input; a cap keeps a 1 MB "password" from becoming a CPU sink.
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    staff: StaffUser
    #: The company requires a passkey and this staff member has none: the session may only add one.
    enrolling: bool = False


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputInvalid.one("password", "too_short", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputInvalid.one("password", "too_long", f"Use at most {MAX_PASSWORD_LENGTH} characters.")


async def create_staff(
    *, tenant_slug: str, email: str, password: str, locale: str | None = None, role: StaffRole | None = None
) -> StaffUser:
    """An email belongs to one staff account platform-wide, so `login(email, password)` is unambiguous.
    Without a `role`, a company's first staff member is its admin and the others are staff."""
    tenant = await tenants.get_by_slug(tenant_slug)
    email = clean_email(email)
    check_password(password)
    locale = clean_locale(locale or tenant.default_locale)
    if await _tenant_of_email(email) is not None:
        raise InputInvalid.one("email", "taken", "A staff account with this email exists already.")
    password_hash = await argon2(security.hash_password, password)
    try:
        with tenancy.scoped(tenant.id):
            if role is None:
                role = StaffRole.STAFF if await StaffUser.filter(tenant_id=tenant.id).exists() else StaffRole.ADMIN
            return await StaffUser.create(
                tenant=tenant, email=email, password_hash=password_hash, locale=locale, role=role
            )
    except IntegrityError:  # created concurrently
        raise InputInvalid.one("email", "taken", "A staff account with this email exists already.") from None


async def _tenant_of_email(email: str) -> uuid.UUID | None:
    """The tenant of the staff account with this (cleaned) email, whichever tenant it is in: the
    email is unique platform-wide, and signing in names no tenant (migration 0008's function)."""
    return await db.tenant_of("rapidly_staff_email_tenant", email)


async def create_or_reset(*, tenant_slug: str, email: str, password: str) -> StaffUser:
    """Create the account, or give an existing one this password and sign out its sessions."""
    tenant_id = await _tenant_of_email(clean_email(email))
    if tenant_id is None:
        return await create_staff(tenant_slug=tenant_slug, email=email, password=password)
    check_password(password)
    password_hash = await argon2(security.hash_password, password)
    with tenancy.scoped(tenant_id):
        async with db.transaction():
            staff = await StaffUser.get(email=clean_email(email))
            staff.password_hash = password_hash
            await staff.save(update_fields=["password_hash"])
            await StaffSession.filter(staff_id=staff.id).delete()
    return staff


async def login(
    settings: Settings, *, email: str, password: str, client_ip: str, origin: str | None = None
) -> LoginResult:
    """Same error, and one argon2 verification, whether the email is unknown or the password wrong,
    or the request comes from a website (`origin`) that the staff member's tenant does not list: a
    page of one company's site learns nothing about another company's staff, not even whether a
    password is right.

    Only failures count. The per-account budget is kept per client network, so guessing from
    elsewhere cannot lock a staff member out; the per-network budget stops spraying many accounts.
    A success clears the account's counter for that network.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthFailed()
    try:
        normalised = clean_email(email)
    except InputInvalid:
        raise AuthFailed() from None
    key, network = settings.signing_key, ratelimit.network_of(client_ip)
    account = (_account_limit(settings), security.keyed_digest(key, "login", normalised, network))
    network_limit = (ip_limit(settings), security.keyed_digest(key, "login-ip", network))
    await ratelimit.check(*account)
    await ratelimit.check(*network_limit)
    tenant_id = await _tenant_of_email(normalised)
    staff = None
    if tenant_id is not None:
        with tenancy.as_tenant(tenant_id):  # the request is bound only once the password is right
            staff = await StaffUser.get_or_none(email=normalised).select_related("tenant")
    verified = await argon2(security.verify_password, staff.password_hash if staff else None, password)
    if staff is None or not verified or not origins.allows(staff.tenant, origin):
        await ratelimit.hit(*account)
        await ratelimit.hit(*network_limit)
        raise AuthFailed()
    passkey_first = staff.tenant.require_passkey or staff.passkey_only
    with tenancy.scoped(staff.tenant_id):  # type: ignore[attr-defined]
        has_passkey = passkey_first and await StaffPasskey.filter(staff_id=staff.id).exists()
    if has_passkey:
        # Counted as a failure: a password that cannot sign in gives a guesser no more tries.
        await ratelimit.hit(*account)
        await ratelimit.hit(*network_limit)
        raise PasskeyRequired()
    enrolling = staff.tenant.require_passkey
    await ratelimit.clear(*account)
    if security.password_needs_rehash(staff.password_hash):
        staff.password_hash = await argon2(security.hash_password, password)
    with tenancy.scoped(staff.tenant_id):  # type: ignore[attr-defined]
        async with db.transaction() as tx:
            token = await start_session(tx, settings, staff, enrolling=enrolling)
    return LoginResult(token=token, staff=staff, enrolling=enrolling)


async def start_session(tx: BaseDBAsyncClient, settings: Settings, staff: StaffUser, *, enrolling: bool = False) -> str:
    """A new session of a staff member who has just proved who they are; its token (only its hash is
    kept). An `enrolling` session may only add a passkey (`rapidly.staff.passkeys`)."""
    staff.last_login_at = datetime.now(UTC)
    token = security.generate_token(security.STAFF_TOKEN_PREFIX)
    await staff.save(update_fields=["password_hash", "last_login_at"], using_db=tx)
    await StaffSession.create(
        tenant_id=staff.tenant_id,  # type: ignore[attr-defined]
        staff=staff,
        token_hash=security.hash_token(token),
        expires_at=datetime.now(UTC) + (ENROLMENT if enrolling else timedelta(days=settings.staff_session_days)),
        enrolling=enrolling,
        using_db=tx,
    )
    return token


#: All but the password's hash, which only signing in reads.
_STAFF_COLUMNS = (
    "id",
    "tenant_id",
    "email",
    "locale",
    "role",
    "created_at",
    "last_login_at",
    "sms_number",
    "message_channels",
    "passkey_only",
)
_STAFF_FOR_TOKEN = db.Routine(
    "rapidly_staff_for_token",
    params=("text",),
    returns=(
        "TABLE (id uuid, tenant_id uuid, email varchar, locale varchar, role varchar, created_at timestamptz, "
        f"last_login_at timestamptz, sms_number varchar, message_channels jsonb, "
        f"passkey_only boolean, {tenants.TENANT_ROW})"
    ),
    body=f"""
SELECT {", ".join(f"u.{f}" for f in _STAFF_COLUMNS)}, {tenants.TENANT_SELECT}
FROM staff_session s JOIN staff_user u ON u.id = s.staff_id JOIN tenant t ON t.id = u.tenant_id
WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT s.enrolling
""",  # noqa: S608 - column names come from the models, the token hash is a parameter
    tenant_of="rapidly_staff_session_tenant",
)


async def staff_for_token(token: str) -> StaffUser | None:
    """The staff member behind a live session token, with their tenant loaded; None otherwise.

    One plain statement: every staff request starts here, and the ORM's query builder and its
    joined loading cost more than the query (a third of the CPU of a page of 50 contacts). The
    password's hash is not loaded: only signing in reads it, through the ORM."""
    token_hash = security.hash_presented_token(token, security.STAFF_TOKEN_PREFIX)
    if token_hash is None:
        return None
    return await tenants.fetch_with_tenant(StaffUser, _STAFF_COLUMNS, _STAFF_FOR_TOKEN, token_hash)


async def enrolling_staff(token: str | None) -> StaffUser | None:
    """The staff member behind a live session token, enrolling or not, with their tenant: for the
    one thing an enrolling session may do, adding a passkey."""
    token_hash = security.hash_presented_token(token, security.STAFF_TOKEN_PREFIX)
    tenant_id = await db.tenant_of("rapidly_staff_session_tenant", token_hash) if token_hash else None
    if tenant_id is None:
        return None
    with tenancy.scoped(tenant_id):
        session = await StaffSession.get_or_none(token_hash=token_hash, expires_at__gt=datetime.now(UTC))
        if session is None:
            return None
        return await StaffUser.get(id=session.staff_id).select_related("tenant")  # type: ignore[attr-defined]


async def argon2(function: Callable[..., T], *args: object) -> T:
    def limited() -> T:
        with _ARGON2_SLOTS:
            return function(*args)

    return await asyncio.to_thread(limited)


_LIVE_SESSION = """
SELECT s.expires_at, t.allowed_origins FROM staff_session s JOIN tenant t ON t.id = s.tenant_id
WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT s.enrolling
"""


@dataclass(frozen=True, slots=True)
class LiveSession:
    expires_at: datetime
    #: Its tenant's allowed origins.
    allowed_origins: list[str]


async def live_session(token: str | None) -> LiveSession | None:
    """The staff token's session while it is live (when it ends, and its tenant's allowed origins);
    None once it is not.

    One plain statement: a staff member's live stream checks its session again (see
    `rapidly.schema.contacts._events` and `rapidly.schema.fanout`), and the ORM's query builder cost
    more than the query."""
    token_hash = security.hash_presented_token(token, security.STAFF_TOKEN_PREFIX)
    if token_hash is None:
        return None
    async with db.connection() as conn:
        row = await conn.fetchrow(_LIVE_SESSION, token_hash)
    return None if row is None else LiveSession(row["expires_at"], json.loads(row["allowed_origins"]))


async def logout(token: str | None) -> bool:
    """End the session of this staff token; False when there was none (the answer is the same for
    any other token)."""
    token_hash = security.hash_presented_token(token, security.STAFF_TOKEN_PREFIX)
    if token_hash is None:
        return False
    tenant_id = await db.tenant_of("rapidly_staff_session_tenant", token_hash)
    if tenant_id is None:
        return False
    with tenancy.scoped(tenant_id):
        return bool(await StaffSession.filter(token_hash=token_hash).delete())


async def purge_expired_sessions() -> int:
    """Sessions past their end, in batches."""
    return await db.delete_expired("staff_session")


def _account_limit(settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit("login", settings.login_attempts_per_account, settings.login_window_seconds)


def ip_limit(settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit("login-ip", settings.login_attempts_per_ip, settings.login_window_seconds)
