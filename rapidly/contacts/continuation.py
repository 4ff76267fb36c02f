"""Continue on another device: a short-lived link, sent to the contact's own saved address, that
opens the same contact on the phone (`/continue/{token}`) to add photos."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import phonenumbers
import segno

from rapidly import db, security
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.errors import InputInvalid
from rapidly.messaging import outbox
from rapidly.plugins import Channel, FieldRole, MessageEvent, PluginRegistry
from rapidly.ratelimit import service as ratelimit
from rapidly.residency import EEA_COUNTRIES

#: Links one contact may ask for, and one client network (the requester's own limits: answered
#: with RateLimitedError). Limits that protect the recipient apply when the message is sent.
PER_CONTACT = ratelimit.Limit("continue-link-contact", 5, 3600)
PER_IP = ratelimit.Limit("continue-link-ip", 20, 3600)
#: Links one contact may have shown on screen (each is a token row until it expires).
SHOWN_PER_CONTACT = ratelimit.Limit("continue-link-shown", 20, 3600)
_MOBILE = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def continue_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/continue/{token}"


@dataclass(frozen=True, slots=True)
class ContinueLink:
    url: str
    expires_at: datetime


async def continue_link(settings: Settings, contact: Contact) -> ContinueLink:
    """A short-lived link that opens this contact on another device, for the screen to show (as a QR
    code): nothing is sent anywhere. Its token is the contact's like any other and dies with it."""
    await ratelimit.hit(SHOWN_PER_CONTACT, str(contact.id), contact.tenant_id, contact_id=contact.id)
    lifetime = timedelta(minutes=settings.continue_link_minutes)
    expires_at = datetime.now(UTC) + lifetime
    async with db.transaction() as conn:
        token = await contacts.issue_token(conn, contact.tenant_id, contact.id, lifetime)
    return ContinueLink(continue_url(settings, token), expires_at)


def qr_svg(text: str, title: str) -> str:
    """`text` as a QR code: a standalone SVG document (dark modules on white, with the quiet zone the
    standard asks for), scaled by its viewBox to whatever size it is shown at."""
    out = io.BytesIO()
    segno.make(text, error="m").save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        omitsize=True,
        border=4,
        dark="#000",
        light="#fff",
        title=title,
        svgclass=None,
        lineclass=None,
    )
    return out.getvalue().decode("utf-8")


def own_address(values: list, fields: list, channel: Channel) -> str | None:
    """The contact's saved email (EMAIL) or phone (SMS), from the fields with those roles."""
    return contacts.role_value(values, fields, FieldRole.EMAIL if channel == Channel.EMAIL else FieldRole.PHONE)


async def send_continue_link(
    settings: Settings, plugins: PluginRegistry, contact: Contact, channel: Channel, client_ip: str
) -> str:
    """Queue the link to the contact's own saved email or phone; returns the address masked.

    There is no recipient argument on purpose: the message is addressed, when it is sent, to the
    address saved in this contact. Its tokens are made then too, so none waits in the outbox.
    """
    recipient = await check_address(plugins, contact, channel)
    await ratelimit.hit(PER_CONTACT, str(contact.id), contact.tenant_id, contact_id=contact.id)
    await ratelimit.hit(
        PER_IP, security.keyed_digest(settings.signing_key, "continue-ip", ratelimit.network_of(client_ip))
    )
    async with db.transaction() as conn:
        await outbox.enqueue(
            conn,
            tenant_id=contact.tenant_id,
            contact_id=contact.id,
            event=MessageEvent.CONTINUE_LINK,
            channel=channel,
            locale=contact.locale,
        )
    return mask(recipient, channel)


async def check_address(plugins: PluginRegistry, contact: Contact, channel: Channel) -> str:
    """The contact's own address for the channel; `InputInvalid` when there is none to use."""
    values = await contacts.values_of(contact)
    address = own_address(values, contacts.fields_of(plugins, contact.tenant), channel)
    if not address:
        what = "email address" if channel == Channel.EMAIL else "phone number"
        raise InputInvalid.one("channel", "no_address", f"Save your {what} first.")
    if channel == Channel.SMS and not eea_mobile(address):
        raise InputInvalid.one(
            "channel", "not_a_mobile_number", "Text messages go to mobile numbers in the EU/EEA only."
        )
    return address


def eea_mobile(e164: str) -> bool:
    """A mobile number in an EEA country: premium-rate, landline and non-EEA numbers are not."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return False
    region = phonenumbers.region_code_for_number(number)
    return region in EEA_COUNTRIES and phonenumbers.number_type(number) in _MOBILE


def mask(address: str, channel: Channel) -> str:
    """Enough to recognise one's own address, not enough to learn someone else's."""
    if channel == Channel.EMAIL:
        local, _, domain = address.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"{address[:4]}•••••{address[-2:]}"
