"""Staff: `login` and `viewer`; passkeys; an admin's staff list, roles and removals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from rapidly.errors import AuthFailed
from rapidly.messaging import service as messaging
from rapidly.messaging import wording
from rapidly.messaging.models import MessageStatus
from rapidly.notifications import service as notifications
from rapidly.plugins import Channel, MessageEvent
from rapidly.schema.errors import (
    AdminRequiredError,
    AuthError,
    InputInvalidError,
    NotFoundError,
    PasskeyRequiredError,
    RateLimitedError,
    returns_errors,
)
from rapidly.schema.media import ChannelType
from rapidly.schema.messaging import MessageStatusType
from rapidly.schema.permissions import IsStaff
from rapidly.staff import admin, invitations, passkeys, reach, service
from rapidly.staff.models import StaffPasskey, StaffRole, StaffUser
from rapidly.tenants import origins
from rapidly.tenants.models import Tenant

StaffRoleType = strawberry.enum(StaffRole, name="StaffRole", description="ADMIN also runs the company's account.")


@strawberry.type
class MessageChannels:
    event: str = strawberry.field(description='A message event, e.g. "SELF_SERVICE_LINK".')
    channels: list[ChannelType] = strawberry.field(description="How it is sent; none: not at all.")

    @classmethod
    def all_of(cls, tenant: Tenant) -> list[MessageChannels]:
        return [
            cls(event=event.name, channels=[c for c in Channel if messaging.enabled(tenant, event, c)])  # type: ignore[misc]
            for event in MessageEvent
        ]


@strawberry.type(name="Tenant")
class TenantType:
    id: strawberry.ID
    slug: str
    name: str
    retention_days: int | None = strawberry.field(
        description="Contacts inactive for longer are erased; null keeps them until erased."
    )
    message_channels: list[MessageChannels] = strawberry.field(
        description="Which messages go out, and how (`rapidly tenant messages`)."
    )
    allowed_origins: list[str] = strawberry.field(
        description="Websites whose pages may use the form and the API from a browser, e.g. "
        '"https://www.example.fi" (`rapidly tenant origins`); Rapidly\'s own pages always may.'
    )
    require_passkey: bool = strawberry.field(
        description="Staff sign in with a passkey; a password alone only lets someone without one add one."
    )

    @classmethod
    def of(cls, tenant: Tenant) -> TenantType:
        return cls(
            id=strawberry.ID(str(tenant.id)),
            slug=tenant.slug,
            name=tenant.name,
            retention_days=tenant.retention_days,
            allowed_origins=list(tenant.allowed_origins or []),
            message_channels=MessageChannels.all_of(tenant),
            require_passkey=tenant.require_passkey,
        )

    @strawberry.field(
        description="Admins: the company's staff, the longest-standing first. Null, with an error whose code is "
        "`AdminRequired`, for anyone else."
    )
    async def staff(self, info: strawberry.Info) -> list[StaffMember] | None:
        viewer = await info.context.staff()
        members = await admin.list_staff(viewer)
        counts = await passkeys.count_by_staff(viewer.tenant_id)
        return [StaffMember.from_model(member, counts.get(member.id, 0)) for member in members]

    @strawberry.field(
        description="The words of every message, per event, channel and language: the company's own where its "
        "admins wrote them (`custom`), else the default beneath (its plugin's, or Rapidly's)."
    )
    async def message_wordings(self, info: strawberry.Info) -> list[MessageWordingType]:
        staff = await info.context.staff()
        return [MessageWordingType.of(w) for w in await wording.all_of(info.context.plugins, staff.tenant)]

    @strawberry.field(
        description="Admins: invitations still waiting to be accepted, the oldest first. Null, with an error whose "
        "code is `AdminRequired`, for anyone else."
    )
    async def invitations(self, info: strawberry.Info) -> list[PendingInvitation] | None:
        waiting = await invitations.pending(await info.context.staff())
        return [PendingInvitation.of(w) for w in waiting]


@strawberry.type(name="MessageWording", description="The words of one message on one channel in one language.")
class MessageWordingType:
    event: str = strawberry.field(description='A message event, e.g. "SELF_SERVICE_LINK".')
    channel: ChannelType  # type: ignore[valid-type]
    locale: str
    subject: str | None = strawberry.field(description="Email only.")
    body: str
    custom: bool = strawberry.field(description="The company's own; false: the default beneath.")

    @classmethod
    def of(cls, w: wording.Wording) -> MessageWordingType:
        return cls(
            event=w.event.name,
            channel=w.channel,
            locale=w.locale,
            subject=w.template.subject,
            body=w.template.body,
            custom=w.custom,
        )


@strawberry.type(
    description="A message as it would go out in a wording, with sample values: the core's own part (the link "
    "to the person's page, the delete button) included, as it is sent."
)
class MessagePreview:
    subject: str | None
    text: str = strawberry.field(description="The plain text, as an SMS or the text part of an email.")
    delete_button: str | None = strawberry.field(
        description="The label of the delete button under an email to an end user (its HTML part)."
    )


MessagePreviewResult = Annotated[
    MessagePreview | AdminRequiredError | InputInvalidError, strawberry.union("MessagePreviewResult")
]


@strawberry.type(description="An invitation still waiting to be accepted, as an admin sees it.")
class PendingInvitation:
    id: strawberry.ID
    email: str
    role: StaffRoleType  # type: ignore[valid-type]
    expires_at: datetime
    sent: MessageStatusType = strawberry.field(  # type: ignore[valid-type]
        description="How its email fared: PENDING (waiting or retrying), SENT, FAILED or SUPPRESSED."
    )
    problem: str | None = strawberry.field(
        description='Why it was not sent, as a short code: "channel_not_configured" (no email set up), a limit, ...'
    )

    @classmethod
    def of(cls, waiting: invitations.Waiting) -> PendingInvitation:
        i = waiting.invitation
        return cls(
            id=strawberry.ID(str(i.id)),
            email=i.email,
            role=i.role,
            expires_at=i.expires_at,
            sent=MessageStatus(waiting.sent),
            problem=waiting.problem,
        )


@strawberry.type(description="A colleague, as an admin sees them.")
class StaffMember:
    id: strawberry.ID
    email: str
    role: StaffRoleType  # type: ignore[valid-type]
    last_sign_in_at: datetime | None
    passkeys: int = strawberry.field(description="How many passkeys they have.")

    @classmethod
    def from_model(cls, staff: StaffUser, passkeys: int = 0) -> StaffMember:
        return cls(
            id=strawberry.ID(str(staff.id)),
            email=staff.email,
            role=staff.role,
            last_sign_in_at=staff.last_login_at,
            passkeys=passkeys,
        )


@strawberry.type(description="One of my passkeys.")
class Passkey:
    id: strawberry.ID
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, passkey: StaffPasskey) -> Passkey:
        return cls(
            id=strawberry.ID(str(passkey.id)),
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
        )


@strawberry.type(description="A mobile number of mine waiting for the code sent to it (`verifySmsNumber`).")
class SmsNumberWaiting:
    number: str
    code_expires_at: datetime | None = strawberry.field(
        description="Null until the text message is sent; then the code works until this time."
    )
    sent: MessageStatusType = strawberry.field(  # type: ignore[valid-type]
        description="How the text with the code fared: PENDING (waiting or retrying), SENT, FAILED or SUPPRESSED."
    )
    problem: str | None = strawberry.field(
        description='Why it was not sent, as a short code: "channel_not_configured" (no SMS set up), a limit, ...'
    )


@strawberry.type(description="How a message to staff reaches me.")
class MyMessageChannels:
    event: str = strawberry.field(description='"NEW_CONTACT", "MEDIA_ADDED" or "CHAT_MESSAGE".')
    channels: list[ChannelType] = strawberry.field(description="SMS only to my verified number; none: not at all.")
    own: bool = strawberry.field(description="My own choice; false: the company's, which I follow until I choose.")


@strawberry.type
class Staff:
    id: strawberry.ID
    email: str
    locale: str
    role: StaffRoleType  # type: ignore[valid-type]
    tenant: TenantType
    sms_number: str | None = strawberry.field(
        description="My mobile number for text messages (E.164), once I confirmed it with its code."
    )
    passkey_only: bool = strawberry.field(
        description="While I have a passkey, my password alone does not sign me in (`setPasskeyOnly`)."
    )
    model: strawberry.Private[StaffUser]

    @strawberry.field(description="How many of my notifications are unread (counted up to 1,000).")
    async def unread_notifications(self) -> int:
        return await notifications.unread_count(self.id)  # type: ignore[arg-type]

    @strawberry.field(description="My passkeys, the oldest first.")
    async def passkeys(self, info: strawberry.Info) -> list[Passkey]:
        return [Passkey.of(p) for p in await passkeys.list_own(await info.context.staff())]

    @strawberry.field(description="A number I gave that waits for its code; null when none does.")
    async def sms_number_waiting(self) -> SmsNumberWaiting | None:
        found = await reach.waiting(self.model)
        if found is None:
            return None
        return SmsNumberWaiting(
            number=found.number,
            code_expires_at=found.code_expires_at,
            sent=MessageStatus(found.sent),
            problem=found.problem,
        )

    @strawberry.field(description="For each message to staff, how it reaches me (`setMyMessageChannels`).")
    def message_channels(self) -> list[MyMessageChannels]:
        return [
            MyMessageChannels(event=event.name, channels=list(channels), own=own)  # type: ignore[arg-type]
            for event, channels, own in reach.my_channels(self.model)
        ]

    @classmethod
    def from_model(cls, staff: StaffUser) -> Staff:
        tenant = staff.tenant
        return cls(
            id=strawberry.ID(str(staff.id)),
            email=staff.email,
            locale=staff.locale,
            role=staff.role,
            tenant=TenantType.of(tenant),
            sms_number=staff.sms_number,
            passkey_only=staff.passkey_only,
            model=staff,
        )


@strawberry.type
class LoginSuccess:
    token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    staff: Staff
    must_add_passkey: bool = strawberry.field(
        default=False,
        description="The company requires a passkey and I have none: until I add one (`registerPasskey`), the "
        "token does nothing else.",
    )


LoginResult = Annotated[
    LoginSuccess | AuthError | PasskeyRequiredError | RateLimitedError, strawberry.union("LoginResult")
]
PasskeySignInResult = Annotated[LoginSuccess | AuthError | RateLimitedError, strawberry.union("PasskeySignInResult")]


@strawberry.type(
    description="Options for the browser's WebAuthn call, as JSON: pass them to "
    "`PublicKeyCredential.parseCreationOptionsFromJSON` (or `...RequestOptionsFromJSON`)."
)
class PasskeyOptions:
    options: str


@strawberry.type
class PasskeyAdded:
    passkey: Passkey


@strawberry.type
class PasskeyRemoved:
    id: strawberry.ID


@strawberry.type(description="A colleague's passkeys are removed and their sessions ended.")
class PasskeysReset:
    staff: StaffMember


PasskeyOptionsResult = Annotated[
    PasskeyOptions | AuthError | InputInvalidError | RateLimitedError, strawberry.union("PasskeyOptionsResult")
]
RegisterPasskeyResult = Annotated[
    PasskeyAdded | AuthError | InputInvalidError, strawberry.union("RegisterPasskeyResult")
]


@strawberry.type
class PasskeyOnlyChanged:
    staff: Staff


SetPasskeyOnlyResult = Annotated[PasskeyOnlyChanged | InputInvalidError, strawberry.union("SetPasskeyOnlyResult")]
RemovePasskeyResult = Annotated[PasskeyRemoved | NotFoundError, strawberry.union("RemovePasskeyResult")]
ResetPasskeysResult = Annotated[
    PasskeysReset | AdminRequiredError | NotFoundError, strawberry.union("ResetPasskeysResult")
]


@strawberry.type
class StaffRemoved:
    id: strawberry.ID


@strawberry.type
class StaffRoleChanged:
    staff: StaffMember


@strawberry.type
class StaffInvited:
    email: str
    role: StaffRoleType  # type: ignore[valid-type]
    expires_at: datetime = strawberry.field(description="The link works once, until then.")


@strawberry.type(name="StaffInvitation", description="A live invitation, as its link shows it to the invitee.")
class StaffInvitationType:
    email: str
    role: StaffRoleType  # type: ignore[valid-type]
    company_name: str
    expires_at: datetime


InviteStaffResult = Annotated[
    StaffInvited | AdminRequiredError | InputInvalidError | RateLimitedError, strawberry.union("InviteStaffResult")
]
AcceptInvitationResult = Annotated[
    LoginSuccess | AuthError | InputInvalidError | RateLimitedError, strawberry.union("AcceptInvitationResult")
]


@strawberry.type(description="The company's settings as they are now.")
class CompanySettingsChanged:
    tenant: TenantType


@strawberry.type
class InvitationCancelled:
    id: strawberry.ID


CancelInvitationResult = Annotated[
    InvitationCancelled | AdminRequiredError | NotFoundError, strawberry.union("CancelInvitationResult")
]
ChangeSettingsResult = Annotated[
    CompanySettingsChanged | AdminRequiredError | InputInvalidError, strawberry.union("ChangeSettingsResult")
]
RemoveStaffResult = Annotated[
    StaffRemoved | AdminRequiredError | NotFoundError | InputInvalidError, strawberry.union("RemoveStaffResult")
]
ChangeStaffRoleResult = Annotated[
    StaffRoleChanged | AdminRequiredError | NotFoundError | InputInvalidError, strawberry.union("ChangeStaffRoleResult")
]


@strawberry.type
class StaffQuery:
    @strawberry.field(description="The signed-in staff member; null without a valid staff token.")
    async def viewer(self, info: strawberry.Info) -> Staff | None:
        staff = await info.context.staff()
        return Staff.from_model(staff) if staff else None

    @strawberry.field(
        permission_classes=[IsStaff],
        description="Admins: a message in this wording, with sample values, rendered by the sandbox that sends; "
        "a wording that breaks a rule or fails to render is `InputInvalidError` with the reason.",
    )
    @returns_errors
    async def message_preview(
        self,
        info: strawberry.Info,
        event: str,
        channel: ChannelType,  # type: ignore[valid-type]
        locale: str,
        body: str,
        subject: str | None = None,
    ) -> MessagePreviewResult:
        ctx = info.context
        ch = channel.value
        composed = await admin.preview_wording(
            await ctx.staff(), ctx.settings.base_url, event, ch, locale, subject, body
        )
        ev = MessageEvent.coerce(event)
        return MessagePreview(
            subject=composed.subject, text=composed.text, delete_button=wording.button_label(ev, channel, locale)
        )

    @strawberry.field(description="Public: the invitation behind a link's token; null once used, expired or replaced.")
    async def staff_invitation(self, token: str) -> StaffInvitationType | None:
        found = await invitations.find(token)
        if found is None:
            return None
        return StaffInvitationType(
            email=found.email, role=found.role, company_name=found.company, expires_at=found.expires_at
        )


@strawberry.type
class StaffMutation:
    @strawberry.mutation(description="Same `AuthError` for an unknown email and a wrong password.")
    @returns_errors
    async def login(self, info: strawberry.Info, email: str, password: str) -> LoginResult:
        ctx = info.context
        result = await service.login(
            ctx.settings, email=email, password=password, client_ip=ctx.client_ip, origin=ctx.origin
        )
        return LoginSuccess(token=result.token, staff=Staff.from_model(result.staff), must_add_passkey=result.enrolling)

    @strawberry.mutation(
        description="Public: start signing in with a passkey; answer with `signInWithPasskey` within 5 minutes."
    )
    @returns_errors
    async def passkey_sign_in_options(self, info: strawberry.Info) -> PasskeyOptionsResult:
        return PasskeyOptions(
            options=await passkeys.sign_in_options(info.context.settings, client_ip=info.context.client_ip)
        )

    @strawberry.mutation(
        description="Public: sign in with a passkey: `credential` is the browser's answer (`credential.toJSON()`, "
        "as JSON). The same `AuthError` whatever went wrong."
    )
    @returns_errors
    async def sign_in_with_passkey(self, info: strawberry.Info, credential: str) -> PasskeySignInResult:
        ctx = info.context
        result = await passkeys.sign_in(ctx.settings, credential, client_ip=ctx.client_ip, origin=ctx.origin)
        return LoginSuccess(token=result.token, staff=Staff.from_model(result.staff))

    @strawberry.mutation(
        description="Staff token (also one that must add a passkey): start adding a passkey; answer with "
        "`registerPasskey` within 5 minutes."
    )
    @returns_errors
    async def passkey_registration_options(self, info: strawberry.Info) -> PasskeyOptionsResult:
        staff = await _enrolling_or_signed_in(info)
        return PasskeyOptions(options=await passkeys.registration_options(info.context.settings, staff))

    @strawberry.mutation(
        description="Staff token (also one that must add a passkey): keep the passkey the browser made "
        "(`credential.toJSON()`, as JSON) under my `name` for it (1 to 100 characters)."
    )
    @returns_errors
    async def register_passkey(self, info: strawberry.Info, credential: str, name: str) -> RegisterPasskeyResult:
        ctx = info.context
        staff = await _enrolling_or_signed_in(info)
        added = await passkeys.register(ctx.settings, staff, ctx.bearer, credential, name)
        return PasskeyAdded(passkey=Passkey.of(added))

    @strawberry.mutation(permission_classes=[IsStaff], description="Remove one of my passkeys.")
    @returns_errors
    async def remove_passkey(self, info: strawberry.Info, id: strawberry.ID) -> RemovePasskeyResult:
        removed = await passkeys.remove_own(await info.context.staff(), id)
        return PasskeyRemoved(id=strawberry.ID(str(removed)))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: remove a colleague's passkeys (one was lost) and end their sessions; they sign in "
        "with their password and add a new one.",
    )
    @returns_errors
    async def reset_staff_passkeys(self, info: strawberry.Info, id: strawberry.ID) -> ResetPasskeysResult:
        target = await admin.reset_passkeys(await info.context.staff(), id)
        return PasskeysReset(staff=StaffMember.from_model(target))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: whether staff must sign in with a passkey. Turning it on needs a passkey of my own, and "
        "ends every other session of the company.",
    )
    @returns_errors
    async def set_passkey_required(self, info: strawberry.Info, required: bool) -> ChangeSettingsResult:
        tenant = await admin.set_require_passkey(await info.context.staff(), required, info.context.bearer)
        return CompanySettingsChanged(tenant=TenantType.of(tenant))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="A passkey as my second factor: while I have one, my password alone does not sign me in. "
        "Turning it on needs a passkey of my own, and ends my other sessions.",
    )
    @returns_errors
    async def set_passkey_only(self, info: strawberry.Info, on: bool) -> SetPasskeyOnlyResult:
        staff = await passkeys.set_passkey_only(await info.context.staff(), on, info.context.bearer)
        return PasskeyOnlyChanged(staff=Staff.from_model(staff))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: the company's own words for one message on one channel in one language (the subject: "
        "email only); refused with the reason when they break a rule or fail to render.",
    )
    @returns_errors
    async def set_message_wording(
        self,
        info: strawberry.Info,
        event: str,
        channel: ChannelType,  # type: ignore[valid-type]
        locale: str,
        body: str,
        subject: str | None = None,
    ) -> ChangeSettingsResult:
        ctx = info.context
        tenant = await admin.set_wording(
            await ctx.staff(), ctx.settings.base_url, event, channel.value, locale, subject, body
        )
        return CompanySettingsChanged(tenant=TenantType.of(tenant))

    @strawberry.mutation(
        permission_classes=[IsStaff], description="Admins: back to the default wording of one message (reset)."
    )
    @returns_errors
    async def reset_message_wording(
        self,
        info: strawberry.Info,
        event: str,
        channel: ChannelType,  # type: ignore[valid-type]
        locale: str,
    ) -> ChangeSettingsResult:
        tenant = await admin.reset_wording(await info.context.staff(), event, channel.value, locale)
        return CompanySettingsChanged(tenant=TenantType.of(tenant))

    @strawberry.mutation(description="Staff token: end this session; true when it was live.")
    async def logout(self, info: strawberry.Info) -> bool:
        return await service.logout(info.context.bearer)

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: delete a colleague's account; their sessions end at once. The last admin stays.",
    )
    @returns_errors
    async def remove_staff(self, info: strawberry.Info, id: strawberry.ID) -> RemoveStaffResult:
        removed = await admin.remove_staff(await info.context.staff(), id)
        return StaffRemoved(id=strawberry.ID(str(removed)))

    @strawberry.mutation(
        permission_classes=[IsStaff], description="Admins: give a colleague a role. The last admin stays one."
    )
    @returns_errors
    async def change_staff_role(
        self,
        info: strawberry.Info,
        id: strawberry.ID,
        role: StaffRoleType,  # type: ignore[valid-type]
    ) -> ChangeStaffRoleResult:
        changed = await admin.change_role(await info.context.staff(), id, role)
        return StaffRoleChanged(staff=StaffMember.from_model(changed))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: email someone a link to join the company with this role (once, within 72 hours).",
    )
    @returns_errors
    async def invite_staff(
        self,
        info: strawberry.Info,
        email: str,
        role: StaffRoleType,  # type: ignore[valid-type]
    ) -> InviteStaffResult:
        invited = await invitations.invite(await info.context.staff(), email, role)
        return StaffInvited(email=invited.email, role=invited.role, expires_at=invited.expires_at)

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: withdraw a waiting invitation; its link stops working at once.",
    )
    @returns_errors
    async def cancel_staff_invitation(self, info: strawberry.Info, id: strawberry.ID) -> CancelInvitationResult:
        cancelled = await invitations.cancel(await info.context.staff(), id)
        return InvitationCancelled(id=strawberry.ID(str(cancelled)))

    @strawberry.mutation(
        description="Public: accept an invitation's link with a password; signed in at once. `locale`: the "
        "language of the new account's console and notifications (default: the company's)."
    )
    @returns_errors
    async def accept_staff_invitation(
        self, info: strawberry.Info, token: str, password: str, locale: str | None = None
    ) -> AcceptInvitationResult:
        ctx = info.context
        result = await invitations.accept(
            ctx.settings, token, password, client_ip=ctx.client_ip, origin=ctx.origin, locale=locale
        )
        return LoginSuccess(token=result.token, staff=Staff.from_model(result.staff), must_add_passkey=result.enrolling)

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description='Admins: let a website use the form, e.g. "https://www.example.fi" (checked as the CLI checks it).',
    )
    @returns_errors
    async def add_allowed_origin(self, info: strawberry.Info, origin: str) -> ChangeSettingsResult:
        return CompanySettingsChanged(tenant=TenantType.of(await admin.add_origin(await info.context.staff(), origin)))

    @strawberry.mutation(permission_classes=[IsStaff], description="Admins: a website may no longer use the form.")
    @returns_errors
    async def remove_allowed_origin(self, info: strawberry.Info, origin: str) -> ChangeSettingsResult:
        tenant = await admin.remove_origin(await info.context.staff(), origin)
        return CompanySettingsChanged(tenant=TenantType.of(tenant))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Admins: erase contacts inactive for longer than `days` (1 to 3650); null keeps them until erased.",
    )
    @returns_errors
    async def set_retention_days(self, info: strawberry.Info, days: int | None) -> ChangeSettingsResult:
        tenant = await admin.set_retention(await info.context.staff(), days)
        return CompanySettingsChanged(tenant=TenantType.of(tenant))

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description='Admins: how a message event (e.g. "NEW_CONTACT") is sent; no channels: not at all.',
    )
    @returns_errors
    async def set_message_channels(
        self,
        info: strawberry.Info,
        event: str,
        channels: list[ChannelType],  # type: ignore[valid-type]
    ) -> ChangeSettingsResult:
        values = [channel.value for channel in channels]
        tenant = await admin.set_channels(await info.context.staff(), event, values)
        return CompanySettingsChanged(tenant=TenantType.of(tenant))


async def _enrolling_or_signed_in(info: strawberry.Info) -> StaffUser:
    """The staff member of the request's session, also one that may only add a passkey; from their
    own company's sites only, as any staff request."""
    staff = await service.enrolling_staff(info.context.bearer)
    if staff is None:
        raise AuthFailed()
    origins.require(staff.tenant, info.context.origin)
    return staff
