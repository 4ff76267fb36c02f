"""The dispatcher: claims due messages, addresses them, words them and sends them.

- Claims with `FOR UPDATE SKIP LOCKED` and a lease, so any number of dispatchers (inside `serve`,
  or `rapidly worker` processes) share the outbox; a dispatcher killed mid-batch loses nothing: its
  lease runs out and another one sends the message again (at least once; the message's ID travels
  as Message-ID or the gateway's reference, so a receiver can tell a repeat).
- A failure is retried with exponential backoff and jitter, up to `message_attempts`; then, or at
  once for a permanent refusal, the message is FAILED with a short code (visible to staff).
- The address is read when the message is sent: the contact's own saved email or phone, or the
  staff member's login email or verified mobile number. Limits that protect a recipient (per
  address, per number range, per tenant and day) suppress the message quietly: the requester is
  told nothing about them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from datetime import timedelta
from uuid import UUID

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, metrics, security, telemetry, tenancy
from rapidly.config import Settings
from rapidly.contacts import continuation
from rapidly.contacts import service as contacts
from rapidly.errors import RateLimited, for_the_log
from rapidly.messaging import service, wording
from rapidly.messaging.channels import Outgoing, SendFailed, channels_for
from rapidly.messaging.models import AccountMessage
from rapidly.messaging.templates import RenderError, compose
from rapidly.plugins import (
    Channel,
    FieldRole,
    MessageEvent,
    PluginError,
    PluginRegistry,
    template_context,
)
from rapidly.ratelimit import service as ratelimit
from rapidly.staff import invitations, reach
from rapidly.staff.models import StaffUser
from rapidly.tenants.models import Tenant
from rapidly.validation import parse_id

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
FIRST_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
#: Messages one dispatcher sends at once.
CONCURRENCY = 10
#: Limits that protect recipients (checked when sending; a hit suppresses the message quietly).
PER_RECIPIENT = ratelimit.Limit("msg-recipient", 10, 86_400)
PER_NUMBER_RANGE = ratelimit.Limit("msg-number-range", 200, 86_400)
PER_CONTACT = ratelimit.Limit("msg-contact", 30, 86_400)
PER_STAFF_SMS = ratelimit.Limit("msg-staff-sms", 100, 86_400)

# The due rows are picked once (MATERIALIZED): as a subquery of `id IN (...)`, the planner may run
# it again for every row of the tenant (a semi join under the row-level security policy), each run
# locking $1 more, and the claim took them all.
_CLAIM = """
WITH due AS MATERIALIZED (
    SELECT id FROM outbound_message WHERE status = 'PENDING' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE outbound_message m SET next_attempt_at = now() + $2::interval, attempts = m.attempts + 1
FROM due WHERE m.id = due.id
RETURNING m.id, m.tenant_id, m.contact_id, m.staff_id, m.event, m.channel, m.locale, m.payload, m.attempts
"""
# Every outcome is fenced on the attempt it belongs to: a dispatcher whose lease ran out (and whose
# message another one took over) cannot overwrite the newer attempt's outcome.
_FENCE = "WHERE id = $1 AND status = 'PENDING' AND attempts = $2"
_SENT = f"""
UPDATE outbound_message SET status = 'SENT', sent_at = now(), masked_recipient = $3, payload = '{{}}'::jsonb,
    last_error = NULL
{_FENCE}
"""  # noqa: S608 - constants; values are bind parameters
_SUPPRESSED = f"UPDATE outbound_message SET status = 'SUPPRESSED', last_error = $3, payload = '{{}}'::jsonb {_FENCE}"  # noqa: S608
_FAILED = f"UPDATE outbound_message SET status = 'FAILED', last_error = $3, payload = '{{}}'::jsonb {_FENCE}"  # noqa: S608
_RETRY = f"UPDATE outbound_message SET last_error = $3, next_attempt_at = now() + $4::interval {_FENCE}"  # noqa: S608


class Suppressed(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Dispatcher:
    def __init__(self, settings: Settings, plugins: PluginRegistry, channels: dict[str, object] | None = None) -> None:
        self.settings = settings
        self.plugins = plugins
        self.channels = channels_for(settings) if channels is None else channels
        self._wake = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        """Look at the outbox now (a message was queued in this process)."""
        self._wake.set()

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Until cancelled: send what is due, then wait for a wake-up or `idle_seconds`."""
        while True:
            try:
                handled = await self.run_once()
            except Exception as exc:
                log.error("dispatcher round failed: %s", for_the_log(exc))
                handled = 0
            if not handled:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), idle_seconds)

    async def run_once(self) -> int:
        """Claim as many due messages as are sent at once, and send them; returns how many.

        No more than that: a claimed message's lease runs from the claim, so one that waited behind
        others could outlive it and be sent twice.
        """
        conn = connections.get("default")
        rows: list[dict] = []
        for tenant in await conn.execute_query_dict("SELECT rapidly_tenants_with_due_messages() AS id"):
            if len(rows) >= CONCURRENCY:
                break
            with tenancy.as_tenant(tenant["id"]):  # the claim goes tenant by tenant
                rows += await conn.execute_query_dict(_CLAIM, [CONCURRENCY - len(rows), LEASE])
        await asyncio.gather(*(self._handle_as_tenant(row) for row in rows))
        return len(rows)

    async def _handle_as_tenant(self, row: dict) -> None:
        """One attempt at one message, its span named by the channel (never the address)."""
        attributes = {"rapidly.message.event": _event_label(row), "rapidly.message.attempt": row["attempts"]}
        with tenancy.as_tenant(row["tenant_id"]), telemetry.span(f"send {_channel_label(row)}", attributes):
            await self._handle(row)

    async def _handle(self, row: dict) -> None:
        conn = connections.get("default")
        fence = [row["id"], row["attempts"]]
        try:
            if row["attempts"] > self.settings.message_attempts:  # attempts lost to crashed dispatchers
                raise SendFailed("attempts", permanent=True)
            channel = Channel(row["channel"])
            sender = self.channels.get(channel.value)
            if sender is None:
                raise Suppressed("channel_not_configured")
            item, masked = await self._prepare(row, channel)
            await sender.send(item)  # type: ignore[attr-defined]
        except Suppressed as exc:
            await conn.execute_query(_SUPPRESSED, [*fence, exc.code])
            _outcome(row, "suppressed")
            return
        except Exception as exc:
            telemetry.failed(exc)
            if isinstance(exc, SendFailed):
                code, permanent = exc.code, exc.permanent
            elif isinstance(exc, RenderError):
                code, permanent = "template", True
            else:  # a plugin, a provider or the database: by type only (messages may quote addresses)
                code, permanent = f"internal_{type(exc).__name__}"[:40], False
                log.warning("message %s: %s while sending", row["id"], type(exc).__name__)
            if permanent or row["attempts"] >= self.settings.message_attempts:
                await conn.execute_query(_FAILED, [*fence, code])
                _outcome(row, "failed")
                log.warning("message %s failed for good (%s)", row["id"], code)
            else:
                backoff = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (row["attempts"] - 1))
                delay = timedelta(seconds=backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
                await conn.execute_query(_RETRY, [*fence, code, delay])
                _outcome(row, "retry")
                log.info("message %s: attempt %d failed (%s); retrying", row["id"], row["attempts"], code)
            return
        await conn.execute_query(_SENT, [*fence, masked])
        _outcome(row, "sent")
        self.sent += 1

    async def _prepare(self, row: dict, channel: Channel) -> tuple[Outgoing, str]:
        tenant = await Tenant.get(id=row["tenant_id"])
        first_attempt = row["attempts"] == 1  # limits count messages, not attempts
        payload = (json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]) or {}
        if row["event"] == AccountMessage.SMS_NUMBER_CODE:
            return await self._sms_number_code(row, tenant, payload, first_attempt)
        event = MessageEvent(row["event"])
        if not event.to_staff and not service.enabled(tenant, event, channel):
            raise Suppressed("switched_off")
        name = self_service = None
        if event == MessageEvent.STAFF_INVITATION:
            found = await invitations.link_for_sending(self.settings, tenant.id, payload.get("invitation"))
            if found is None:
                raise Suppressed("no_invitation")
            recipient, link = found
            if first_attempt:
                await self._recipient_limits(tenant.id, None, recipient, channel)
                await self._tenant_limit(tenant.id)
        elif event.to_staff:
            staff = await StaffUser.get_or_none(id=row["staff_id"], tenant_id=tenant.id)
            if staff is None:
                raise Suppressed("no_address")
            if channel not in service.staff_channels(tenant, staff.message_channels, event):
                raise Suppressed("switched_off")  # by the company or by them, since it was queued
            recipient = staff.email if channel == Channel.EMAIL else staff.sms_number
            if not recipient:
                raise Suppressed("no_address")
            link = f"{self.settings.base_url}/staff/contacts/{row['contact_id']}"
            if first_attempt:
                if channel == Channel.SMS:
                    await self._staff_sms_limit(tenant.id, staff.id)
                await self._tenant_limit(tenant.id)
        else:
            # The contact is held while its address is read and its links are made: an erasure waits,
            # or has already happened and nothing is sent.
            async with db.transaction() as conn:
                locked = await conn.execute_query_dict(
                    "SELECT id FROM contact WHERE id = $1 AND tenant_id = $2 FOR KEY SHARE",
                    [row["contact_id"], tenant.id],
                )
                if not locked:
                    raise Suppressed("no_contact")
                recipient, name = await self._contact_address(tenant, row["contact_id"], channel)
                link, self_service = await self._links(conn, tenant.id, row["contact_id"], event)
            # After the transaction: the limits on an address or a number range are platform-wide
            # rows, which no tenant's transaction may write. Limited, the links made go unsent.
            if first_attempt:
                await self._recipient_limits(tenant.id, row["contact_id"], recipient, channel)
                await self._tenant_limit(tenant.id)
        context = template_context(event, tenant_name=tenant.name, link=link, contact_name=name)
        words = {"event": event, "channel": channel, "locale": row["locale"], "context": context}
        composed = None
        for layer, wording_of in wording.layers(self.plugins, tenant, event, channel, row["locale"]):
            try:
                template = await wording_of()
                if template is not None:
                    composed = compose(template, **words, self_service_link=self_service)  # type: ignore[arg-type]
                    break
            except (RenderError, PluginError) as exc:
                # This wording misbehaved (a link of its own, too long, a failing hook): the message
                # still goes, in the wording beneath (at last the core's), with the core's link.
                log.warning(
                    "message %s: the %s wording of tenant plugin %s was refused (%s); the next is used",
                    row["id"],
                    layer,
                    tenant.plugin,
                    type(exc).__name__,
                )
        assert composed is not None  # the core's wording always renders
        item = Outgoing(row["id"], recipient, tenant.name, composed, tenant.id, row["contact_id"], row["staff_id"])
        return item, continuation.mask(recipient, channel)

    async def _sms_number_code(
        self, row: dict, tenant: Tenant, payload: dict, first_attempt: bool
    ) -> tuple[Outgoing, str]:
        """The code to a number a staff member gave: the recipient limits apply, as the number is
        nobody's proved one yet, and the code is made only once they passed."""
        check_id = parse_id(str(payload.get("check", "")))
        number = check_id and await reach.number_for_sending(tenant.id, row["staff_id"], check_id)
        if not number:
            raise Suppressed("no_check")
        if first_attempt:
            await self._recipient_limits(tenant.id, None, number, Channel.SMS)
            await self._tenant_limit(tenant.id)
        found = await reach.code_for_sending(self.settings, tenant, row["staff_id"], check_id)  # type: ignore[arg-type]
        if found is None:
            raise Suppressed("no_check")
        number, composed = found
        item = Outgoing(row["id"], number, tenant.name, composed, tenant.id, staff_id=row["staff_id"])
        return item, continuation.mask(number, Channel.SMS)

    async def _contact_address(self, tenant: Tenant, contact_id: UUID, channel: Channel) -> tuple[str, str | None]:
        values = (await contacts.values_by_contact(tenant.id, [contact_id]))[0]
        fields = contacts.fields_of(self.plugins, tenant)
        address = continuation.own_address(values, fields, channel)
        if not address:
            raise Suppressed("no_address")
        if channel == Channel.SMS and not continuation.eea_mobile(address):
            raise Suppressed("not_an_eea_mobile")
        return address, contacts.role_value(values, fields, FieldRole.NAME)

    async def _recipient_limits(
        self, tenant_id: UUID, contact_id: UUID | None, recipient: str, channel: Channel
    ) -> None:
        key = self.settings.signing_key
        try:
            if contact_id is not None:  # an invitation is bound to no contact
                await ratelimit.hit(PER_CONTACT, str(contact_id), tenant_id, contact_id=contact_id)
            await ratelimit.hit(PER_RECIPIENT, security.keyed_digest(key, "msg-recipient", _mailbox(recipient)))
            if channel == Channel.SMS:  # a number range: country code and the first digits
                await ratelimit.hit(PER_NUMBER_RANGE, security.keyed_digest(key, "msg-range", recipient[:7]))
        except RateLimited:
            raise Suppressed("limit_recipient") from None

    async def _staff_sms_limit(self, tenant_id: UUID, staff_id: UUID) -> None:
        """Texts are paid for: however busy the form (a customer uploading photo after photo), one
        staff member gets at most `PER_STAFF_SMS` a day."""
        try:
            await ratelimit.hit(PER_STAFF_SMS, str(staff_id), tenant_id)
        except RateLimited:
            raise Suppressed("limit_recipient") from None

    async def _tenant_limit(self, tenant_id: UUID) -> None:
        limit = ratelimit.Limit("msg-tenant-day", self.settings.messages_per_tenant_per_day, 86_400)
        try:
            await ratelimit.hit(limit, str(tenant_id), tenant_id)
        except RateLimited:
            raise Suppressed("limit_tenant") from None

    async def _links(
        self, conn: BaseDBAsyncClient, tenant_id: UUID, contact_id: UUID, event: MessageEvent
    ) -> tuple[str, str]:
        """(the event's link, the self-service link), with tokens made now: none waits in the outbox."""
        page = await contacts.issue_token(conn, tenant_id, contact_id, timedelta(days=self.settings.contact_token_days))
        self_service = contacts.self_service_url(self.settings, page)
        if event in (MessageEvent.CONTINUE_LINK, MessageEvent.PHOTO_REQUEST):
            lifetime = timedelta(minutes=self.settings.continue_link_minutes)
            token = await contacts.issue_token(conn, tenant_id, contact_id, lifetime)
            return continuation.continue_url(self.settings, token), self_service
        return self_service, self_service


def _mailbox(address: str) -> str:
    """One key per mailbox for the per-address limit: "Name+tag@Example.com" is name@example.com. A
    phone number (E.164, no "@") is its own key: cut at its "+", every number was one key."""
    local, at, domain = address.lower().partition("@")
    if not at:
        return local
    return f"{local.split('+')[0]}{at}{domain}"


def _channel_label(row: dict) -> str:
    """The row's channel as a metric label: one of a closed set, whatever the column holds."""
    return row["channel"] if row["channel"] in _CHANNELS else "other"


def _event_label(row: dict) -> str:
    return row["event"] if row["event"] in _EVENTS else "other"


def _outcome(row: dict, outcome: str) -> None:
    """An attempt's outcome, in /metrics and on its span."""
    metrics.MESSAGE_ATTEMPTS.labels(_channel_label(row), outcome).inc()
    telemetry.current().set_attribute("rapidly.message.outcome", outcome)


_CHANNELS = frozenset(channel.value for channel in Channel)
_EVENTS = frozenset([*(event.value for event in MessageEvent), *(message.value for message in AccountMessage)])
