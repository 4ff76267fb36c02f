"""Continue on another device: a short-lived link, sent to the contact's own saved address, that
opens the same contact on the phone (`/continue/{token}`) to add photos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import phonenumbers
from tortoise.transactions import in_transaction

from rapidly import security
from rapidly.config import Settings
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact, ContactToken, FieldValue
from rapidly.errors import InputInvalid
from rapidly.messaging import outbox
from rapidly.plugins import Channel, FieldRole, MessageEvent, PluginRegistry
from rapidly.ratelimit import service as ratelimit
from rapidly.residency import EEA_COUNTRIES

#: Links one contact may ask for, and links one address may receive (whichever contact asks).
PER_CONTACT = ratelimit.Limit("continue-link-contact", 5, 3600)
PER_RECIPIENT = ratelimit.Limit("continue-link-recipient", 10, 86_400)
_MOBILE = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def continue_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/continue/{token}"


async def send_continue_link(settings: Settings, plugins: PluginRegistry, contact: Contact, channel: Channel) -> str:
    """Queue the link to the contact's own saved email or phone; returns the address masked.

    There is no recipient argument on purpose: the link can only go to the address the end user
    saved in this contact.
    """
    recipient = await _own_address(plugins, contact, channel)
    await ratelimit.hit(PER_CONTACT, str(contact.id), contact.tenant_id, contact_id=contact.id)
    await ratelimit.hit(
        PER_RECIPIENT, security.keyed_digest(settings.signing_key, "recipient", recipient), contact.tenant_id
    )
    now = datetime.now(UTC)
    continue_token = security.generate_token(security.CONTACT_TOKEN_PREFIX)
    page_token = security.generate_token(security.CONTACT_TOKEN_PREFIX)
    async with in_transaction() as conn:
        for token, lifetime in (
            (continue_token, timedelta(minutes=settings.continue_link_minutes)),
            (page_token, timedelta(days=settings.contact_token_days)),
        ):
            await ContactToken.create(
                using_db=conn,
                tenant_id=contact.tenant_id,
                contact_id=contact.id,
                token_hash=security.hash_token(token),
                expires_at=now + lifetime,
            )
        await outbox.enqueue(
            conn,
            tenant_id=contact.tenant_id,
            contact_id=contact.id,
            event=MessageEvent.CONTINUE_LINK,
            channel=channel,
            locale=contact.locale,
            recipient=recipient,
            payload={
                "link": continue_url(settings, continue_token),
                "self_service_link": contacts.self_service_url(settings, page_token),
            },
        )
    return mask(recipient, channel)


async def _own_address(plugins: PluginRegistry, contact: Contact, channel: Channel) -> str:
    role = FieldRole.EMAIL if channel == Channel.EMAIL else FieldRole.PHONE
    values = await FieldValue.filter(contact_id=contact.id, tenant_id=contact.tenant_id)
    address = contacts.role_value(values, contacts.fields_of(plugins, contact.tenant), role)
    if not address:
        what = "email address" if channel == Channel.EMAIL else "phone number"
        raise InputInvalid.one("channel", "no_address", f"Save your {what} first.")
    if channel == Channel.SMS and not _eea_mobile(address):
        raise InputInvalid.one(
            "channel", "not_a_mobile_number", "Text messages go to mobile numbers in the EU/EEA only."
        )
    return address


def _eea_mobile(e164: str) -> bool:
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
