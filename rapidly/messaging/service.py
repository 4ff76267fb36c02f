"""Which messages go out, and the triggers that queue them. A closed set of events (plugins'
`MessageEvent`), each bound to one contact; never bulk, never free text, never a chosen address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, tenancy
from rapidly.contacts import continuation
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.errors import InputInvalid, NotFound
from rapidly.messaging import outbox
from rapidly.plugins import Channel, MessageEvent, PluginRegistry
from rapidly.ratelimit import service as ratelimit
from rapidly.staff.models import StaffUser
from rapidly.tenants.models import Tenant

E, S = Channel.EMAIL, Channel.SMS
#: Per event, the channels a tenant sends on unless it says otherwise (`rapidly tenant messages`).
#: For the events to staff, the company's choice is each staff member's until they make their own
#: (`staff_channels`); SMS reaches only those who verified a mobile number (`rapidly.staff.reach`).
DEFAULT_CHANNELS: dict[MessageEvent, tuple[Channel, ...]] = {
    MessageEvent.CONTINUE_LINK: (E, S),
    MessageEvent.SELF_SERVICE_LINK: (E,),
    MessageEvent.PHOTO_REQUEST: (E, S),
    MessageEvent.CHAT_REPLY: (E,),
    MessageEvent.NEW_CONTACT: (E,),
    MessageEvent.MEDIA_ADDED: (),
    MessageEvent.CHAT_MESSAGE: (E,),
    MessageEvent.STAFF_INVITATION: (E,),
}
#: Sent whatever a tenant chooses: the message is the invitation itself.
ALWAYS_ON = frozenset({MessageEvent.STAFF_INVITATION})
#: The self-service link waits this long after an address is saved: autosave stores an address
#: while it is being typed, and the message goes to the address as it is when sent.
SELF_SERVICE_LINK_DELAY = timedelta(minutes=2)
PHOTO_REQUESTS_PER_CONTACT = ratelimit.Limit("photo-request-contact", 5, 86_400)
#: At most one message (email/SMS) of an event per contact in this many seconds, for the events that
#: come in bursts (a lively chat, photo after photo): the rest is seen on the page or in the staff's view.
NUDGE_SECONDS = 15 * 60


def enabled(tenant: Tenant, event: MessageEvent, channel: Channel) -> bool:
    if event in ALWAYS_ON:
        return channel == Channel.EMAIL
    chosen = (tenant.message_channels or {}).get(event.name)
    channels = DEFAULT_CHANNELS[event] if chosen is None else tuple(Channel(c) for c in chosen)
    return channel in channels


def staff_channels(tenant: Tenant, own: dict[str, list[str]] | None, event: MessageEvent) -> tuple[Channel, ...]:
    """The channels a staff `event` reaches one staff member on: their own choice (`own`, their
    `message_channels`) where they made one, else the company's."""
    chosen = (own or {}).get(event.name)
    if chosen is None:
        return tuple(c for c in Channel if enabled(tenant, event, c))
    return tuple(c for c in Channel if c.value in chosen)


async def set_channels(slug: str, event: str, channels: list[str]) -> Tenant:
    """Switch an event's channels for a tenant (`rapidly tenant messages`)."""
    ev = MessageEvent.coerce(event)
    if ev is None:
        raise InputInvalid.one("event", "unknown_event", f"Events: {', '.join(e.name for e in MessageEvent)}.")
    chosen = [Channel.coerce(c) for c in channels]
    if None in chosen:
        raise InputInvalid.one("channel", "unknown_channel", "Channels: email, sms.")
    if ev in ALWAYS_ON:
        raise InputInvalid.one("event", "always_on", f"{ev.name} is always sent, by email.")
    tenant = await Tenant.get_or_none(slug=slug)
    if tenant is None:
        raise NotFound("No such tenant.")
    tenant.message_channels = {**(tenant.message_channels or {}), ev.name: sorted({c.value for c in chosen})}  # type: ignore[union-attr]
    with tenancy.as_tenant(tenant.id):  # the tenant row is written as its tenant (row-level security)
        await tenant.save(update_fields=["message_channels", "updated_at"])
    return tenant


def self_service_link(
    tenant: Tenant, contact: Contact, channel: Channel | None
) -> tuple[str, str, str, datetime] | None:
    """For the save of an email or phone (`channel`): the self-service link to queue with it, if the
    tenant wants that, as (channel, locale, dedupe key, send at). The dedupe key makes it once per
    contact and channel, whichever address comes first; `SELF_SERVICE_LINK_DELAY` lets typing finish."""
    if channel is None or not enabled(tenant, MessageEvent.SELF_SERVICE_LINK, channel):
        return None
    dedupe_key = f"self-service-link:{contact.id}:{channel.value}"
    return channel.value, contact.locale, dedupe_key, datetime.now(UTC) + SELF_SERVICE_LINK_DELAY


async def to_staff(conn: BaseDBAsyncClient, tenant: Tenant, event: MessageEvent, contact_id: UUID) -> None:
    """A message to each staff member of the tenant (NEW_CONTACT, MEDIA_ADDED, CHAT_MESSAGE) on each
    channel they are reached on for it; SMS only to a verified number. It names no one: the link
    leads to the contact in the staff's view."""
    staff = StaffUser.filter(tenant_id=tenant.id).using_db(conn)
    for staff_id, locale, own, number in await staff.values_list("id", "locale", "message_channels", "sms_number"):
        for channel in staff_channels(tenant, own, event):
            if channel == Channel.SMS and number is None:
                continue
            await outbox.enqueue(
                conn,
                tenant_id=tenant.id,
                contact_id=contact_id,
                staff_id=staff_id,
                event=event,
                channel=channel,
                locale=locale,
            )


async def queued_lately(conn: BaseDBAsyncClient, contact: Contact, event: MessageEvent) -> bool:
    """Whether a message of `event` about this contact was queued within `NUDGE_SECONDS` (to be asked
    with the contact locked, so two events at once cannot both send one)."""
    rows = await conn.execute_query_dict(
        "SELECT 1 FROM outbound_message WHERE tenant_id = $1 AND contact_id = $2 AND event = $3 "
        "AND created_at > clock_timestamp() - make_interval(secs => $4) LIMIT 1",
        [contact.tenant_id, contact.id, event.value, float(NUDGE_SECONDS)],  # type: ignore[attr-defined]
    )
    return bool(rows)


async def request_photo(plugins: PluginRegistry, staff: StaffUser, contact_id: str, channel: Channel) -> None:
    """A staff member asks one contact of their tenant for a photo: a continue link to the contact's
    own address. NotFound for an absent or another tenant's contact; InputInvalid without an address."""
    contact = await contacts.get_contact(staff.tenant_id, contact_id)
    if contact is None:
        raise NotFound("No such contact.")
    contact.tenant = staff.tenant
    await continuation.check_address(plugins, contact, channel)
    await ratelimit.hit(PHOTO_REQUESTS_PER_CONTACT, str(contact.id), staff.tenant_id, contact_id=contact.id)
    async with db.transaction() as conn:
        await outbox.enqueue(
            conn,
            tenant_id=staff.tenant_id,
            contact_id=contact.id,
            event=MessageEvent.PHOTO_REQUEST,
            channel=channel,
            locale=contact.locale,
            payload={"staff_id": str(staff.id)},
        )
