"""Fixtures for everything that sends messages: real SMTP and SMS gateway servers on loopback, and a
dispatcher wired to them (shared by the messaging and media tests through tests/conftest.py)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from rapidly.messaging.channels import EmailChannel, GatewayApiSms
from rapidly.messaging.dispatcher import Dispatcher
from tests.messaging.servers import SMTP_PASSWORD, SMTP_USER, Gateway, Mailbox, start_gateway, start_smtp


@pytest.fixture(scope="session")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp(certificate_authority) -> Iterator[tuple[str, Mailbox, ssl.SSLContext]]:  # type: ignore[no-untyped-def]
    """An SMTP server requiring STARTTLS and AUTH; yields (url, mailbox, client TLS context)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    controller, mailbox = start_smtp(server_context)
    yield f"smtp+starttls://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{controller.port}", mailbox, client_context
    controller.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server, gateway = start_gateway()
    yield gateway
    server.shutdown()


@pytest.fixture
def dispatcher(settings, plugins, smtp, gateway) -> Dispatcher:  # type: ignore[no-untyped-def]
    url, _, client_context = smtp
    channels = {
        "email": EmailChannel(url, "noreply@rapidly.example", tls_context=client_context, timeout=5),
        "sms": GatewayApiSms(gateway.url, "gateway-token", "Kattohuolto", timeout=1),
    }
    return Dispatcher(settings, plugins, channels)


@pytest.fixture
async def roofing(world):  # type: ignore[no-untyped-def]
    """Kattohuolto Oy (roofing, Finnish) with Anna, its admin; Verstas (car repair, Swedish) with Erik."""
    await world.tenant("kattohuolto", name="Kattohuolto Oy")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    await world.tenant("verstas", plugin="carrepair_se")
    await world.staff("verstas", "erik@verstas.example")
