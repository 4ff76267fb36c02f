"""Real servers on loopback for the messaging tests: SMTP (aiosmtpd, STARTTLS and AUTH) and an HTTP
server that speaks GatewayAPI's SMS API."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER, SMTP_PASSWORD = "rapidly", "smtp-secret"


@dataclass
class Mailbox:
    """What the SMTP server received, and how it should answer the next DATA commands."""

    messages: list[EmailMessage] = field(default_factory=list)
    #: Answers for the next DATA commands, e.g. ["451 4.3.0 try later"]; then "250 OK".
    answers: list[str] = field(default_factory=list)
    #: Close the connection instead of answering the next N DATA commands.
    drops: int = 0
    delay: float = 0.0
    #: Answers for the next RCPT commands, e.g. ["450 4.2.0 greylisted"]; then accepted.
    rcpt_answers: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        if self.answers:
            return self.answers.pop(0)
        if self.drops:
            self.drops -= 1
            server.transport.close()
            return "421 closing"
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


def start_smtp(tls_context=None) -> tuple[Controller, Mailbox]:  # type: ignore[no-untyped-def]
    """An SMTP server on loopback; with `tls_context`, STARTTLS and AUTH are required."""
    mailbox = Mailbox()
    kwargs = {}
    if tls_context is not None:
        kwargs = {
            "tls_context": tls_context,
            "require_starttls": True,
            "authenticator": _authenticator,
            "auth_required": True,
            "auth_require_tls": True,
        }
    from tests.conftest import free_port

    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), server_hostname="localhost", **kwargs)
    controller.start()
    return controller, mailbox


@dataclass
class Gateway:
    """What the SMS gateway received, and how it should answer."""

    requests: list[dict] = field(default_factory=list)
    #: Status codes for the next requests, e.g. [503]; then 200.
    statuses: list[int] = field(default_factory=list)
    #: Seconds to stall the next request (a timeout on the client's side).
    stalls: list[float] = field(default_factory=list)
    url: str = ""


def start_gateway() -> tuple[ThreadingHTTPServer, Gateway]:
    gateway = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if gateway.stalls:
                time.sleep(gateway.stalls.pop(0))
            status = gateway.statuses.pop(0) if gateway.statuses else 200
            if status == 200:
                gateway.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            payload = json.dumps({"ids": [len(gateway.requests)]} if status == 200 else {"message": "no"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/rest/mtsms"
    return server, gateway
