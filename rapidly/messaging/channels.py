"""Delivery: email through SMTP (aiosmtplib) and SMS through an EU gateway's HTTPS API (httpx).

A failure is a `SendFailed` with a short code ("smtp_451", "sms_http_503", "timeout"); a server's
own message is never kept, as it may quote the address.
"""

from __future__ import annotations

import importlib
import os
import shutil
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from uuid import UUID

import httpx

from rapidly.config import SMS_TO_FILE, Settings
from rapidly.messaging.templates import Composed


class SendFailed(Exception):
    def __init__(self, code: str, *, permanent: bool = False) -> None:
        super().__init__(code)
        self.code = code
        #: Retrying cannot help (the recipient was refused): give up at once.
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_id: UUID
    recipient: str
    sender_name: str
    composed: Composed
    tenant_id: UUID | None = None
    contact_id: UUID | None = None
    #: Set for a message to a staff member (about `contact_id`, or about their own account).
    staff_id: UUID | None = None


class EmailChannel:
    """`RAPIDLY_SMTP_URL`: `smtp+starttls://user:pass@host:587`, `smtps://user:pass@host:465`, or
    `smtp://host:25` (no TLS: for a relay on the same host or network only)."""

    def __init__(
        self, url: str, sender: str, *, tls_context: ssl.SSLContext | None = None, timeout: float = 30
    ) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.tls_context = tls_context or ssl.create_default_context()
        self.timeout = timeout

    def build(self, item: Outgoing) -> EmailMessage:
        message = EmailMessage()
        domain = self.sender.rpartition("@")[2] or "localhost"
        message["From"] = Address(display_name=item.sender_name, addr_spec=self.sender)
        message["To"] = item.recipient
        message["Subject"] = item.composed.subject or ""
        message["Date"] = format_datetime(datetime.now(UTC))
        # The same ID on every attempt of this message: receivers can tell a retry from a new mail.
        message["Message-ID"] = f"<{item.message_id.hex}@{domain}>"
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message.set_content(item.composed.text)
        if item.composed.html:
            message.add_alternative(item.composed.html, subtype="html")
        return message

    async def send(self, item: Outgoing) -> None:
        import aiosmtplib

        try:
            await aiosmtplib.send(
                self.build(item),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.scheme == "smtps",
                start_tls=self.scheme == "smtp+starttls",
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # 4xx at RCPT is greylisting or a full mailbox: try again; 5xx is final.
            codes = [refusal.code for refusal in exc.recipients]
            permanent = bool(codes) and all(code >= 500 for code in codes)
            raise SendFailed(f"smtp_rcpt_{min(codes) if codes else 0}", permanent=permanent) from None
        except aiosmtplib.SMTPAuthenticationError:
            raise SendFailed("smtp_auth") from None  # a configuration to fix: retried meanwhile
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(f"smtp_{exc.code}", permanent=exc.code >= 500) from None
        except aiosmtplib.SMTPTimeoutError:
            raise SendFailed("timeout") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"smtp_{type(exc).__name__}"[:40]) from None


class GatewayApiSms:
    """GatewayAPI's EU API (`https://gatewayapi.eu/rest/mtsms`, servers in Denmark): JSON, token auth.

    `RAPIDLY_SMS_URL` is the endpoint; `RAPIDLY_SMS_TOKEN` the API token. The message's ID travels as
    `userref`, so a retry of the same message can be recognised on the gateway's side.
    """

    def __init__(self, url: str, token: str, sender: str, *, timeout: float = 15) -> None:
        self.url = url
        self.token = token
        self.sender = sender[:11]
        self.timeout = timeout

    async def send(self, item: Outgoing) -> None:
        body = {
            "sender": self.sender,
            "message": item.composed.text,
            "recipients": [{"msisdn": int(item.recipient.lstrip("+"))}],
            "userref": str(item.message_id),
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, json=body, auth=(self.token, ""))
        except httpx.TimeoutException:
            raise SendFailed("timeout") from None
        except httpx.HTTPError as exc:
            raise SendFailed(f"sms_{type(exc).__name__}"[:40]) from None
        if response.status_code >= 300:
            # A refused request is final, except credentials (a configuration to fix) and throttling.
            permanent = 400 <= response.status_code < 500 and response.status_code not in (401, 403, 408, 429)
            raise SendFailed(f"sms_http_{response.status_code}", permanent=permanent)


class FileSms:
    """For the demo: each text is written to `<data dir>/sms-outbox/<tenant>/<contact>/<message>.txt`
    instead of being sent (readable by the owner only; erasing the contact removes its texts). A
    staff member's go to `<tenant>/staff-<staff member>/`: they are not the customer's."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def send(self, item: Outgoing) -> None:
        if item.tenant_id is None or (item.contact_id is None and item.staff_id is None):
            raise SendFailed("sms_no_contact", permanent=True)
        whose = f"staff-{item.staff_id}" if item.staff_id is not None else str(item.contact_id)
        folder = self.root / str(item.tenant_id) / whose
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(folder / f"{item.message_id}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"SMS to {item.recipient}\n\n{item.composed.text}\n")


@dataclass(frozen=True, slots=True)
class FileSmsEraser:
    """The demo's texts of one contact (see `FileSms`)."""

    root: Path
    store: str = "demo_texts"
    transactional: bool = False

    async def erase(self, target: object, conn: object) -> int:
        folder = self.root / str(target.tenant_id) / str(target.contact_id)  # type: ignore[attr-defined]
        if not folder.is_dir():
            return 0
        count = sum(1 for _ in folder.iterdir())
        shutil.rmtree(folder)
        return count


def demo_texts(settings: Settings) -> Path:
    return settings.data_dir / "sms-outbox"


def channels_for(settings: Settings) -> dict[str, object]:
    """The configured channels by name ("email", "sms"); a channel without settings is absent."""
    found: dict[str, object] = {}
    if settings.smtp_url:
        found["email"] = EmailChannel(settings.smtp_url, settings.mail_from)
    if settings.sms_url == SMS_TO_FILE:
        found["sms"] = FileSms(demo_texts(settings))
    elif settings.sms_url and settings.sms_provider:
        module, _, name = settings.sms_provider.partition(":")
        found["sms"] = getattr(importlib.import_module(module), name)(settings)
    elif settings.sms_url:
        found["sms"] = GatewayApiSms(settings.sms_url, settings.sms_token or "", settings.sms_sender)
    return found
