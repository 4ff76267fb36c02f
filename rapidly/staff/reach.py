"""How a staff member is reached about their company's contacts: by email at their sign-in address
and by SMS at a mobile number of their own, per event as they choose.

- The number: `start_check` keeps it waiting and queues a text message to it. The code in that
  message is made when the message is sent, after the limits that protect the number passed
  (`code_for_sending`), so no code waits in the outbox, and only its keyed digest is kept. `verify`
  makes the number theirs; `MAX_TRIES` wrong codes for the number (however many codes were sent) or
  `CODE_MINUTES` after the code was made, and a new one must be asked for. Mobile numbers in the
  EU/EEA only, as for customers, and a handful of codes a day: the message goes to a number nobody
  has proved yet.
- The choice: for each event to staff (NEW_CONTACT, MEDIA_ADDED, CHAT_MESSAGE), email, SMS, both
  or none. An event they have not chosen for follows the company's choice (Settings). SMS goes
  only to a confirmed number; removing it gives an event chosen for SMS alone back to the company's
  choice. Each change is one statement, so two made at once both hold.
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from rapidly import db, security, tenancy
from rapidly.audit import service as audit
from rapidly.config import Settings
from rapidly.contacts.continuation import eea_mobile
from rapidly.contacts.service import phone_region
from rapidly.contacts.values import e164
from rapidly.errors import InputInvalid
from rapidly.messaging import outbox
from rapidly.messaging import service as messaging
from rapidly.messaging.models import AccountMessage
from rapidly.messaging.templates import Composed
from rapidly.plugins import Channel, MessageEvent, resolve_locale
from rapidly.ratelimit import service as ratelimit
from rapidly.staff.models import SmsNumberCheck, StaffUser
from rapidly.tenants.models import Tenant

#: The events that reach staff, each chosen for on its own.
STAFF_EVENTS = (MessageEvent.NEW_CONTACT, MessageEvent.MEDIA_ADDED, MessageEvent.CHAT_MESSAGE)
CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_TRIES = 5
#: How long a number waits, also for a message the outbox retries (its backoff, doubling from 30
#: seconds over `RAPIDLY_MESSAGE_ATTEMPTS`, spans about an hour).
UNSENT_HOURS = 2
#: Codes one staff member may ask for in a day: enough for typos, not a way to text someone.
CODES_PER_STAFF = ratelimit.Limit("sms-code-staff", 5, 86_400)
MAX_NUMBER_INPUT = 40

_CODE_TEXT = {
    "fi": "{code} on koodisi, jolla vahvistat tämän numeron Rapidlyn ilmoituksille ({tenant}). Se on voimassa "
    "{minutes} minuuttia. Jos et pyytänyt sitä, voit jättää viestin huomiotta.",
    "sv": "{code} är din kod för att bekräfta det här numret för aviseringar från Rapidly ({tenant}). Den gäller i "
    "{minutes} minuter. Om du inte bad om den kan du bortse från meddelandet.",
    "en": "{code} is your code to confirm this number for Rapidly notifications ({tenant}). It is valid for "
    "{minutes} minutes. If you did not ask for it, you can ignore this message.",
}


@dataclass(frozen=True, slots=True)
class Waiting:
    """A number waiting for its code, and how the text with the code fared (`MessageStatus`, and the
    short code of why it was not sent: say, no SMS set up here, or a limit)."""

    number: str
    #: Null until the code is sent; then the code works until this time.
    code_expires_at: datetime | None
    sent: str
    problem: str | None


def clean_number(raw: str, tenant: Tenant) -> str:
    """A mobile number in any common notation ("040 1234567" for a Finnish company) as E.164;
    `InputInvalid` for anything else."""
    text = raw.strip()
    if len(text) > MAX_NUMBER_INPUT:
        raise InputInvalid.one("number", "too_long", f"At most {MAX_NUMBER_INPUT} characters.")
    number = e164(text, phone_region(tenant))
    if number is None:
        raise InputInvalid.one("number", "invalid_phone", "This is not a valid phone number.")
    if not eea_mobile(number):
        raise InputInvalid.one(
            "number", "not_a_mobile_number", "Text messages go to mobile numbers in the EU/EEA only."
        )
    return number


async def start_check(staff: StaffUser, number: str) -> str:
    """Queue a code to `number` (replacing any number waiting before, and the code queued for it);
    the number as E.164. `RateLimited` past `CODES_PER_STAFF`."""
    tenant: Tenant = staff.tenant
    e164 = clean_number(number, tenant)
    if e164 == staff.sms_number:
        raise InputInvalid.one("number", "already_verified", "This number is yours already.")
    await ratelimit.hit(CODES_PER_STAFF, str(staff.id), tenant.id)
    with tenancy.scoped(tenant.id):
        async with db.transaction() as tx:
            # A new ID each time: a message queued for the number before finds nothing to send.
            rows = await tx.execute_query_dict(_WAIT, [tenant.id, staff.id, e164, timedelta(hours=UNSENT_HOURS)])
            await outbox.enqueue(
                tx,
                tenant_id=tenant.id,
                staff_id=staff.id,
                event=AccountMessage.SMS_NUMBER_CODE,
                channel=Channel.SMS,
                locale=staff.locale,
                payload={"check": str(rows[0]["id"])},
                dedupe_key=_message_key(rows[0]["id"]),
            )
    return e164


_WAIT = """
INSERT INTO sms_number_check (id, tenant_id, staff_id, number, tries, expires_at)
VALUES (gen_random_uuid(), $1, $2, $3, 0, now() + $4::interval)
ON CONFLICT (staff_id) DO UPDATE SET id = EXCLUDED.id, number = EXCLUDED.number, code_digest = NULL,
    code_expires_at = NULL, tries = 0, expires_at = EXCLUDED.expires_at
RETURNING id
"""


async def number_for_sending(tenant_id: uuid.UUID, staff_id: uuid.UUID, check_id: uuid.UUID) -> str | None:
    """The number a code is to go to, for the dispatcher's limits; None when it no longer waits."""
    with tenancy.scoped(tenant_id):
        found = await SmsNumberCheck.filter(
            id=check_id, staff_id=staff_id, tenant_id=tenant_id, expires_at__gt=datetime.now(UTC)
        ).values_list("number", flat=True)
    return found[0] if found else None  # type: ignore[return-value]


async def code_for_sending(
    settings: Settings, tenant: Tenant, staff_id: uuid.UUID, check_id: uuid.UUID
) -> tuple[str, Composed] | None:
    """(the number, the message with a code made now) for the dispatcher, once the limits passed;
    None when the number no longer waits (verified, replaced, removed, past its time). Each call
    makes a new code: a message sent again carries one that works, and the one before stops working
    (the wrong tries still count)."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    with tenancy.scoped(tenant.id):
        async with db.transaction() as tx:
            rows = await tx.execute_query_dict(
                _NEW_CODE,
                [_digest(settings, check_id, code), timedelta(minutes=CODE_MINUTES), check_id, staff_id, tenant.id],
            )
    if not rows:
        return None
    text = _CODE_TEXT[resolve_locale(rows[0]["locale"], tenant.default_locale)].format(
        code=code, tenant=tenant.name, minutes=CODE_MINUTES
    )
    # The line browsers read to offer the code (WebOTP): only on Rapidly's own site.
    text += f"\n\n@{urlsplit(settings.base_url).hostname} #{code}"
    return rows[0]["number"], Composed(subject=None, text=text, html=None)


_NEW_CODE = """
UPDATE sms_number_check c SET code_digest = $1, code_expires_at = now() + $2::interval FROM staff_user s
WHERE c.id = $3 AND c.staff_id = $4 AND c.tenant_id = $5 AND c.expires_at > now() AND s.id = c.staff_id
RETURNING c.number, s.locale
"""


async def verify(settings: Settings, staff: StaffUser, code: str) -> StaffUser:
    """The waiting number becomes the staff member's when `code` is the one sent to it (recorded in
    the audit trail); `InputInvalid` otherwise, and the number waits no more after `MAX_TRIES`."""
    typed = "".join(code.split())[:20]
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    outcome = "none"
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            rows = await tx.execute_query_dict(
                "SELECT id, number, code_digest, tries FROM sms_number_check "
                "WHERE staff_id = $1 AND code_expires_at > now() AND expires_at > now() FOR UPDATE",
                [staff.id],
            )
            if rows:
                check = rows[0]
                if hmac.compare_digest(check["code_digest"], _digest(settings, check["id"], typed)):
                    outcome = "verified"
                    await SmsNumberCheck.filter(id=check["id"]).using_db(tx).delete()
                    await StaffUser.filter(id=staff.id).using_db(tx).update(sms_number=check["number"])
                    await audit.record_change(tx, tenant_id, staff.id, audit.SMS_NUMBER_VERIFIED, staff.id)
                    staff.sms_number = check["number"]
                elif check["tries"] + 1 >= MAX_TRIES:
                    outcome = "used_up"
                    await SmsNumberCheck.filter(id=check["id"]).using_db(tx).delete()
                else:
                    outcome = "wrong"
                    await SmsNumberCheck.filter(id=check["id"]).using_db(tx).update(tries=check["tries"] + 1)
    if outcome == "none":
        raise InputInvalid.one("code", "no_code", "No code is waiting: ask for a new one.")
    if outcome == "used_up":
        raise InputInvalid.one("code", "too_many_tries", "Too many wrong codes: ask for a new one.")
    if outcome == "wrong":
        raise InputInvalid.one("code", "wrong_code", "This is not the code we sent.")
    return staff


async def waiting(staff: StaffUser) -> Waiting | None:
    """The number waiting for its code, if there is still a code to type or one on its way."""
    now = datetime.now(UTC)
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        check = await SmsNumberCheck.get_or_none(staff_id=staff.id, expires_at__gt=now)
        if check is None or (check.code_expires_at is not None and check.code_expires_at <= now):
            return None
        key = _message_key(check.id)
        sent, problem = (await outbox.outcomes(tenant_id, [key])).get(key, ("PENDING", None))
    return Waiting(check.number, check.code_expires_at, sent, problem)


async def remove_number(staff: StaffUser) -> StaffUser:
    """No text messages any more: the number (and one waiting) is forgotten, an event chosen for SMS
    alone follows the company's choice again, and the removal is recorded in the audit trail."""
    tenant_id = staff.tenant_id  # type: ignore[attr-defined]
    with tenancy.scoped(tenant_id):
        async with db.transaction() as tx:
            await SmsNumberCheck.filter(staff_id=staff.id).using_db(tx).delete()
            [row] = await tx.execute_query_dict(_REMOVE_NUMBER, [staff.id])
            if row["removed"] is not None:
                await audit.record_change(tx, tenant_id, staff.id, audit.SMS_NUMBER_REMOVED, staff.id)
    staff.sms_number = None
    staff.message_channels = _json(row["message_channels"])
    return staff


_REMOVE_NUMBER = """
WITH old AS (SELECT id, sms_number FROM staff_user WHERE id = $1 FOR UPDATE)
UPDATE staff_user u SET sms_number = NULL, message_channels = (
    SELECT jsonb_object_agg(e.key, e.value - 'sms') FROM jsonb_each(u.message_channels) e
    WHERE NOT (e.value ? 'sms' AND jsonb_array_length(e.value - 'sms') = 0)
)
FROM old WHERE u.id = old.id
RETURNING old.sms_number AS removed, u.message_channels
"""


def my_channels(staff: StaffUser) -> list[tuple[MessageEvent, tuple[Channel, ...], bool]]:
    """For each event to staff: the channels it reaches me on (SMS only with a confirmed number),
    and whether that is my own choice."""
    own = staff.message_channels or {}
    return [
        (
            e,
            tuple(c for c in messaging.staff_channels(staff.tenant, own, e) if c != Channel.SMS or staff.sms_number),
            e.name in own,
        )
        for e in STAFF_EVENTS
    ]


async def choose(staff: StaffUser, event: str, channels: list[str] | None) -> StaffUser:
    """My channels for `event`; None: the company's again. SMS needs a confirmed number."""
    ev = MessageEvent.coerce(event)
    if ev not in STAFF_EVENTS:
        raise InputInvalid.one("event", "unknown_event", f"Events: {', '.join(e.name for e in STAFF_EVENTS)}.")
    if channels is None:
        sql, params = _FOLLOW_COMPANY, [staff.id, ev.name]
    else:
        chosen = [Channel.coerce(c) for c in channels]
        if None in chosen:
            raise InputInvalid.one("channels", "unknown_channel", "Channels: EMAIL, SMS.")
        values = sorted({c.value for c in chosen})  # type: ignore[union-attr]
        sql, params = _CHOOSE, [staff.id, ev.name, json.dumps(values), Channel.SMS.value in values]
    with tenancy.scoped(staff.tenant_id):  # type: ignore[attr-defined]
        async with db.transaction() as tx:
            rows = await tx.execute_query_dict(sql, params)
    if not rows:
        raise InputInvalid.one("channels", "no_sms_number", "Confirm your mobile number first.")
    staff.message_channels = _json(rows[0]["message_channels"])
    return staff


# One statement each, on the row as it is: two choices made at once (two events, two tabs) both hold.
_CHOOSE = """
UPDATE staff_user
SET message_channels = COALESCE(message_channels, '{}'::jsonb) || jsonb_build_object($2::text, $3::jsonb)
WHERE id = $1 AND (NOT $4 OR sms_number IS NOT NULL) RETURNING message_channels
"""
_FOLLOW_COMPANY = """
UPDATE staff_user SET message_channels = NULLIF(COALESCE(message_channels, '{}'::jsonb) - $2::text, '{}'::jsonb)
WHERE id = $1 RETURNING message_channels
"""


def _json(value: object) -> dict | None:
    """A jsonb column as the driver gives it (text) or the ORM does (decoded)."""
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]


async def purge_expired() -> int:
    """Numbers that waited past their time, in batches."""
    return await db.delete_expired("sms_number_check")


def _message_key(check_id: uuid.UUID) -> str:
    """The text with the number's code, in the outbox (its payload is cleared once handled; this key stays)."""
    return f"sms-number-code:{check_id}"


def _digest(settings: Settings, check_id: uuid.UUID, code: str) -> str:
    """Keyed, and bound to its check: a dump does not give the code away (a million codes are
    quickly tried against a plain hash), nor does one check's digest fit another's."""
    return security.keyed_digest(settings.signing_key, "sms-number-code", str(check_id), code)
