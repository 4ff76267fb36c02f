"""Messages through a real SMTP server (STARTTLS, AUTH) and an SMS gateway on loopback: wording,
the mandatory self-service link, retries, limits, and only ever the contact's own address."""

from __future__ import annotations

import re
import uuid

import pytest
from tortoise import connections

from rapidly import db, hookimpl, tenancy
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact
from rapidly.messaging import outbox
from rapidly.messaging.models import MessageStatus, OutboundMessage
from rapidly.plugins import Channel, MessageEvent, MessageTemplate
from rapidly.tenants.models import Tenant
from tests.contacts.test_contacts_api import save, staff_token, start

SEND = """
mutation Send($channel: Channel!) { sendContinueLink(channel: $channel) { __typename
  ... on LinkSent { maskedRecipient } ... on InputInvalidError { errors { code } }
  ... on RateLimitedError { retryAfterSeconds } } }
"""
REQUEST_PHOTO = """
mutation R($id: ID!, $channel: Channel!) { requestPhoto(contactId: $id, channel: $channel) { __typename
  ... on PhotoRequested { channel } ... on Error { message } ... on InputInvalidError { errors { code } } } }
"""
MESSAGES = "query C($id: ID!) { contact(id: $id) { messages { event channel status maskedRecipient error } } }"


async def contact(gql, email="maija@example.com", phone="040 123 4567") -> str:
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija Meikäläinen")
    if phone:
        await save(gql, token, "phone", phone)
    if email:
        await save(gql, token, "email", email)
    return token


async def ours(slug: str = "kattohuolto") -> uuid.UUID:
    """The tenant whose rows the test's own statements read (row-level security: `tenancy.as_tenant`)."""
    return (await Tenant.get(slug=slug)).id


async def due() -> None:
    for tenant_id in await db.tenant_ids():  # every tenant's outbox
        with tenancy.as_tenant(tenant_id):
            await connections.get("default").execute_query("UPDATE outbound_message SET next_attempt_at = now()")


async def only(event: str) -> None:
    """Leave only messages of this event in the outbox (saving an address also queues others)."""
    for tenant_id in await db.tenant_ids():  # every tenant's outbox
        with tenancy.as_tenant(tenant_id):
            await OutboundMessage.exclude(event=event).delete()


async def the_message(slug: str = "kattohuolto") -> OutboundMessage:
    """The one message left in the tenant's outbox."""
    with tenancy.as_tenant(await ours(slug)):
        return await OutboundMessage.get()


async def test_the_continue_link_by_email_carries_the_self_service_link_and_button(
    gql, http, roofing, dispatcher, smtp
):
    # given
    _, mailbox, _ = smtp
    token = await contact(gql)
    sent = (await gql(SEND, {"channel": "EMAIL"}, token=token))["sendContinueLink"]
    await only("continue_link")

    # when
    await dispatcher.run_once()

    # then
    assert sent == {"__typename": "LinkSent", "maskedRecipient": "m•••@example.com"}
    [mail] = mailbox.messages
    assert mail["X-Envelope-To"] == "maija@example.com" and mail["To"] == "maija@example.com"
    assert mail["From"] == "Kattohuolto Oy <noreply@rapidly.example>"
    assert mail["Auto-Submitted"] == "auto-generated"
    row = await the_message()
    assert mail["Message-ID"] == f"<{row.id.hex}@rapidly.example>" and mail["Date"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    continue_link = re.search(r"http://\S+/continue/rpc_\S+", text).group(0)
    my_link = re.search(r"http://\S+/my/rpc_\S+", text).group(0)
    assert "Hei Maija Meikäläinen" in text
    assert f'<a href="{my_link}"' in html and "Poista kaikki tietoni</a>" in html
    assert (await http.get(continue_link.split("127.0.0.1", 1)[1].split("/", 1)[1].join(["/", ""]))).status_code == 200
    assert (row.status, row.masked_recipient, row.payload) == (MessageStatus.SENT, "m•••@example.com", {})


async def test_the_continue_link_by_sms_goes_to_the_gateway(gql, roofing, dispatcher, gateway):
    # given
    token = await contact(gql)
    await gql(SEND, {"channel": "SMS"}, token=token)
    await only("continue_link")

    # when
    await dispatcher.run_once()

    # then
    [request] = gateway.requests
    body = request["body"]
    assert body["recipients"] == [{"msisdn": 358401234567}] and body["sender"] == "Kattohuolto"
    assert "/continue/rpc_" in body["message"] and "/my/rpc_" in body["message"]
    assert body["userref"] == str((await the_message()).id)
    assert request["auth"].startswith("Basic ")


async def test_the_address_is_the_one_saved_when_the_message_is_sent(gql, roofing, dispatcher, smtp):
    # given: the self-service link waits a little after the address is typed
    _, mailbox, _ = smtp
    token = await contact(gql, email="maija@exam.com", phone=None)
    await save(gql, token, "email", "maija@example.com")  # still typing
    with tenancy.as_tenant(await ours()):
        queued = await OutboundMessage.filter(event="self_service_link").count()
    assert await dispatcher.run_once() == 1  # only the staff's new-contact email is due yet

    # when
    await due()
    await dispatcher.run_once()

    # then
    assert queued == 1
    to = [m["X-Envelope-To"] for m in mailbox.messages]
    assert sorted(to) == ["anna@kattohuolto.example", "maija@example.com"]


async def test_staff_get_an_email_that_names_no_one(gql, roofing, dispatcher, smtp):
    # given
    _, mailbox, _ = smtp
    await contact(gql, email=None, phone=None)

    # when
    await dispatcher.run_once()

    # then
    [mail] = mailbox.messages
    assert mail["X-Envelope-To"] == "anna@kattohuolto.example"
    body = mail.get_body(("plain",)).get_content()
    assert "Maija" not in body and "Meikäläinen" not in str(mail) and "/staff/contacts/" in body
    assert "/my/" not in body  # staff messages carry no end-user link


async def test_a_451_and_a_dropped_connection_are_retried_without_loss(gql, roofing, dispatcher, smtp):
    # given
    _, mailbox, _ = smtp
    token = await contact(gql)
    await gql(SEND, {"channel": "EMAIL"}, token=token)
    await only("continue_link")
    mailbox.answers.append("451 4.3.0 try again later")
    mailbox.drops = 1

    # when
    await dispatcher.run_once()
    first = await the_message()
    await due()
    await dispatcher.run_once()
    second = await the_message()
    await due()
    await dispatcher.run_once()

    # then
    assert (first.status, first.last_error) == (MessageStatus.PENDING, "smtp_451")
    assert second.status == MessageStatus.PENDING and second.last_error.startswith("smtp_")
    final = await the_message()
    assert (final.status, final.attempts) == (MessageStatus.SENT, 3)
    assert len(mailbox.messages) == 1


async def test_bad_credentials_are_retried_then_the_message_fails_visibly(gql, roofing, settings, plugins, smtp):
    # given
    from rapidly.messaging.channels import EmailChannel
    from rapidly.messaging.dispatcher import Dispatcher

    url, mailbox, client_context = smtp
    wrong = EmailChannel(url.replace("smtp-secret", "wrong"), "noreply@rapidly.example", tls_context=client_context)
    dispatcher = Dispatcher(settings.model_copy(update={"message_attempts": 2}), plugins, {"email": wrong})
    token = await contact(gql)
    await gql(SEND, {"channel": "EMAIL"}, token=token)
    await only("continue_link")
    contact_id = str((await the_message()).contact_id)

    # when
    await dispatcher.run_once()
    await due()
    await dispatcher.run_once()

    # then
    row = await the_message()
    assert (row.status, row.last_error, row.attempts) == (MessageStatus.FAILED, "smtp_auth", 2)
    assert mailbox.messages == []
    shown = (await gql(MESSAGES, {"id": contact_id}, token=await staff_token(gql)))["contact"]["messages"]
    assert shown == [
        {
            "event": "CONTINUE_LINK",
            "channel": "EMAIL",
            "status": "FAILED",
            "maskedRecipient": None,
            "error": "smtp_auth",
        }
    ]


@pytest.mark.parametrize(("status", "outcome"), [(503, MessageStatus.PENDING), (400, MessageStatus.FAILED)])
async def test_gateway_errors_are_retried_unless_permanent(gql, roofing, dispatcher, gateway, status, outcome):
    # given
    token = await contact(gql)
    await gql(SEND, {"channel": "SMS"}, token=token)
    await only("continue_link")
    gateway.statuses.append(status)

    # when
    await dispatcher.run_once()

    # then
    row = await the_message()
    assert (row.status, row.last_error) == (outcome, f"sms_http_{status}")
    if outcome == MessageStatus.PENDING:
        await due()
        await dispatcher.run_once()
        assert (await the_message()).status == MessageStatus.SENT and len(gateway.requests) == 1


async def test_a_gateway_timeout_is_retried(gql, roofing, dispatcher, gateway):
    # given
    token = await contact(gql)
    await gql(SEND, {"channel": "SMS"}, token=token)
    await only("continue_link")
    gateway.stalls.append(2.0)

    # when
    await dispatcher.run_once()

    # then
    row = await the_message()
    assert (row.status, row.last_error) == (MessageStatus.PENDING, "timeout")


async def test_limits_that_protect_the_recipient_are_silent_to_the_requester(gql, roofing, dispatcher, smtp):
    # given: many contacts naming the same address (someone else's, say)
    _, mailbox, _ = smtp
    answers = []
    for _ in range(12):
        token = await contact(gql, email="victim@example.com", phone=None)
        answers.append((await gql(SEND, {"channel": "EMAIL"}, token=token))["sendContinueLink"]["__typename"])
    await only("continue_link")

    # when
    while await dispatcher.run_once():  # ten at a time
        pass

    # then
    assert answers == ["LinkSent"] * 12
    with tenancy.as_tenant(await ours()):
        statuses = sorted(m.status for m in await OutboundMessage.all())
        suppressed = {m.last_error for m in await OutboundMessage.filter(status=MessageStatus.SUPPRESSED)}
    assert statuses.count(MessageStatus.SENT) == 10 and statuses.count(MessageStatus.SUPPRESSED) == 2
    assert suppressed == {"limit_recipient"}
    assert len(mailbox.messages) == 10


async def test_the_limit_on_one_number_counts_that_number_alone(gql, roofing, dispatcher, gateway):
    # given: eleven texts queued to one customer's number, and one to another customer's
    one = await contacts.contact_for_token(await contact(gql, email=None, phone="040 123 4567"))
    other = await contacts.contact_for_token(await contact(gql, email=None, phone="050 765 4321"))
    await only("nothing")
    with tenancy.as_tenant(one.tenant_id):  # type: ignore[attr-defined]
        async with db.transaction() as tx:
            for target in [one] * 11 + [other]:
                await outbox.enqueue(
                    tx,
                    tenant_id=target.tenant_id,  # type: ignore[attr-defined]
                    contact_id=target.id,
                    event=MessageEvent.CONTINUE_LINK,
                    channel=Channel.SMS,
                    locale="fi",
                )

    # when
    while await dispatcher.run_once():  # ten at a time
        pass

    # then: ten to the first number, the eleventh held back; the other number is not held back by it
    sent = [r["body"]["recipients"][0]["msisdn"] for r in gateway.requests]
    assert sent.count(358401234567) == 10 and sent.count(358507654321) == 1
    with tenancy.as_tenant(await ours()):
        suppressed = await OutboundMessage.filter(status=MessageStatus.SUPPRESSED).values_list(
            "contact_id", "last_error"
        )
    assert suppressed == [(one.id, "limit_recipient")]


async def test_a_switched_off_event_is_not_sent(gql, roofing, dispatcher, smtp, env):
    # given
    from tests.conftest import run_cli

    _, mailbox, _ = smtp
    switched = run_cli(env, "tenant", "messages", "kattohuolto", "continue_link", "--sms")
    token = await contact(gql)
    await gql(SEND, {"channel": "EMAIL"}, token=token)
    await only("continue_link")

    # when
    await dispatcher.run_once()

    # then
    assert switched.returncode == 0, switched.stderr
    row = await the_message()
    assert (row.status, row.last_error) == (MessageStatus.SUPPRESSED, "switched_off")
    assert mailbox.messages == []


async def test_staff_ask_their_own_contact_for_a_photo(gql, roofing, dispatcher, gateway):
    # given
    token = await contact(gql)
    contact_id = str((await contacts.contact_for_token(token)).id)
    anna, erik = await staff_token(gql), await staff_token(gql, "erik@verstas.example")

    # when
    foreign = (await gql(REQUEST_PHOTO, {"id": contact_id, "channel": "SMS"}, token=erik))["requestPhoto"]
    absent = (await gql(REQUEST_PHOTO, {"id": str(uuid.uuid4()), "channel": "SMS"}, token=erik))["requestPhoto"]
    asked = (await gql(REQUEST_PHOTO, {"id": contact_id, "channel": "SMS"}, token=anna))["requestPhoto"]
    as_contact = await gql(REQUEST_PHOTO, {"id": contact_id, "channel": "SMS"}, token=token, expect_errors=True)
    await only("photo_request")
    await dispatcher.run_once()

    # then
    assert foreign == absent == {"__typename": "NotFoundError", "message": "No such contact."}
    assert asked == {"__typename": "PhotoRequested", "channel": "SMS"}
    assert as_contact["errors"]
    [request] = gateway.requests
    assert "/continue/rpc_" in request["body"]["message"] and "/my/rpc_" in request["body"]["message"]


async def test_no_operation_takes_an_address_or_a_list_of_recipients(gql):
    # given
    introspection = "{ __schema { mutationType { fields { name args { name } } } } }"

    # when
    fields = (await gql(introspection))["__schema"]["mutationType"]["fields"]

    # then
    args = {f["name"]: {a["name"] for a in f["args"]} for f in fields}
    assert args["sendContinueLink"] == {"channel"} and args["requestPhoto"] == {"contactId", "channel"}
    suspicious = {(m, a) for m, names in args.items() for a in names if re.search("recipient|address|phone|to$", a)}
    assert suspicious == set()


@pytest.mark.parametrize("phone", ["0600 123456", "+44 7911 123456"], ids=["premium-rate", "outside-eea"])
async def test_no_text_to_premium_rate_or_non_eea_numbers_reaches_the_gateway(
    gql, roofing, dispatcher, gateway, world, phone
):
    # given: refused when asked; and a message queued otherwise (a photo request) is stopped at sending
    token = await contact(gql, email=None, phone=phone)
    refused = (await gql(SEND, {"channel": "SMS"}, token=token))["sendContinueLink"]
    found = await contacts.contact_for_token(token)
    with tenancy.as_tenant(found.tenant_id):
        await outbox.enqueue(
            connections.get("default"),
            tenant_id=found.tenant_id,
            contact_id=found.id,
            event=MessageEvent.PHOTO_REQUEST,
            channel=Channel.SMS,
            locale="fi",
        )
    await only("photo_request")

    # when
    await dispatcher.run_once()

    # then
    assert [e["code"] for e in refused["errors"]] == ["not_a_mobile_number"]
    row = await the_message()
    assert (row.status, row.last_error) == (MessageStatus.SUPPRESSED, "not_an_eea_mobile")
    assert gateway.requests == []


async def test_email_over_implicit_tls(gql, roofing, settings, plugins, certificate_authority):
    # given: an SMTPS relay (TLS from the first byte, port 465 style)
    import ssl

    from aiosmtpd.controller import Controller

    from rapidly.messaging.channels import EmailChannel
    from rapidly.messaging.dispatcher import Dispatcher
    from tests.conftest import free_port
    from tests.messaging.servers import Mailbox

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), ssl_context=server_context)
    controller.start()
    try:
        channel = EmailChannel(
            f"smtps://127.0.0.1:{controller.port}", "noreply@rapidly.example", tls_context=client_context
        )
        token = await contact(gql)
        await gql(SEND, {"channel": "EMAIL"}, token=token)
        await only("continue_link")

        # when
        await Dispatcher(settings, plugins, {"email": channel}).run_once()
    finally:
        controller.stop()

    # then
    assert [m["X-Envelope-To"] for m in mailbox.messages] == ["maija@example.com"]


class FormGateway:
    """Another provider's API, as a deployment would plug it in with RAPIDLY_SMS_PROVIDER: a form
    POST with the number and text, and a bearer token."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.url, self.token = settings.sms_url, settings.sms_token

    async def send(self, item) -> None:  # type: ignore[no-untyped-def]
        import httpx

        from rapidly.messaging.channels import SendFailed

        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(
                self.url,
                json={"to": item.recipient, "text": item.composed.text, "ref": str(item.message_id)},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        if response.status_code >= 300:
            raise SendFailed(f"sms_http_{response.status_code}")


async def test_another_sms_provider_plugs_in_by_setting(gql, roofing, settings, plugins, gateway):
    # given
    from rapidly.messaging.channels import channels_for
    from rapidly.messaging.dispatcher import Dispatcher

    configured = settings.model_copy(
        update={
            "sms_url": gateway.url,
            "sms_token": "t0ken",
            "sms_provider": "tests.messaging.test_dispatch:FormGateway",
        }
    )
    channels = channels_for(configured)
    token = await contact(gql)
    await gql(SEND, {"channel": "SMS"}, token=token)
    await only("continue_link")

    # when
    await Dispatcher(configured, plugins, channels).run_once()

    # then
    assert type(channels["sms"]).__name__ == "FormGateway"
    [request] = gateway.requests
    assert request["auth"] == "Bearer t0ken" and request["body"]["to"] == "+358401234567"
    assert "/my/rpc_" in request["body"]["text"]


class SplitLink:
    """A tenant plugin whose wording assembles a look-alike link when rendered."""

    @hookimpl
    def message_template(self, tenant, event, channel, locale):  # type: ignore[no-untyped-def]
        body = 'Delete here: http{{""}}s://rapidly-delete.example/my/{{ tenant_name|lower }}'
        return MessageTemplate(subject=None if channel == "sms" else "Hi", body=body)


async def test_a_misbehaving_wording_falls_back_to_the_core_wording_and_the_message_goes(
    gql, settings, smtp, certificate_authority
):
    # given
    from rapidly.messaging.channels import EmailChannel
    from rapidly.messaging.dispatcher import Dispatcher
    from rapidly.plugins import PluginRegistry

    _, mailbox, client_context = smtp
    registry = PluginRegistry(load_entrypoints=False)
    registry.register(SplitLink(), "split_link")
    tenant = await Tenant.create(slug="sneaky", name="Sneaky Oy", plugin="split_link")
    with tenancy.as_tenant(tenant.id):
        contact_row = await Contact.create(tenant=tenant, locale="en")
        await connections.get("default").execute_query(  # the ORM cannot store a bare JSON string
            "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) "
            "VALUES (gen_random_uuid(), $1, $2, 'email', '\"maija@example.com\"', now())",
            [tenant.id, contact_row.id],
        )
        await outbox.enqueue(
            connections.get("default"),
            tenant_id=tenant.id,
            contact_id=contact_row.id,
            event=MessageEvent.CONTINUE_LINK,
            channel=Channel.EMAIL,
            locale="en",
        )
    url = smtp[0]
    channel = EmailChannel(url, "noreply@rapidly.example", tls_context=client_context)

    # when
    await Dispatcher(settings, registry, {"email": channel}).run_once()

    # then
    [mail] = mailbox.messages
    text = mail.get_body(("plain",)).get_content()
    assert "rapidly-delete.example" not in text and "/my/rpc_" in text and "/continue/rpc_" in text
    assert (await the_message("sneaky")).status == MessageStatus.SENT


@pytest.mark.parametrize(
    ("answer", "outcome"), [("450 4.2.0 greylisted", "PENDING"), ("550 5.1.1 no such user", "FAILED")]
)
async def test_a_refused_recipient_is_retried_only_when_the_refusal_is_temporary(
    gql, roofing, dispatcher, smtp, answer, outcome
):
    # given
    _, mailbox, _ = smtp
    token = await contact(gql)
    await gql(SEND, {"channel": "EMAIL"}, token=token)
    await only("continue_link")
    mailbox.rcpt_answers.append(answer)

    # when
    await dispatcher.run_once()

    # then
    row = await the_message()
    assert (row.status, row.last_error) == (outcome, f"smtp_rcpt_{answer[:3]}")
    if outcome == "PENDING":
        await due()
        await dispatcher.run_once()
        assert (await the_message()).status == MessageStatus.SENT and len(mailbox.messages) == 1


async def test_the_demos_text_files_are_erased_with_the_contact(gql, roofing, settings, plugins, server, tmp_path):
    # given: texts written to files (RAPIDLY_SMS_URL=file:), as the demo does
    from rapidly.erasure.models import Requester
    from rapidly.erasure.stores import erasure_service
    from rapidly.messaging.channels import channels_for
    from rapidly.messaging.dispatcher import Dispatcher

    demo = settings.model_copy(update={"sms_url": "file:", "data_dir": tmp_path})
    token = await contact(gql)
    await gql(SEND, {"channel": "SMS"}, token=token)
    await only("continue_link")
    await Dispatcher(demo, plugins, channels_for(demo)).run_once()
    found = await contacts.contact_for_token(token)
    texts = list((tmp_path / "sms-outbox").rglob("*.txt"))
    assert len(texts) == 1 and "+358401234567" in texts[0].read_text()
    assert texts[0].stat().st_mode & 0o077 == 0

    # when
    receipt = await erasure_service(server.app.state.storage, demo).erase(found.tenant_id, found.id, Requester.END_USER)

    # then
    assert receipt.removed["demo_texts"] == 1 and receipt.complete
    assert list((tmp_path / "sms-outbox").rglob("*.txt")) == []


async def test_the_demos_texts_to_staff_are_theirs_not_the_customers(gql, roofing, settings, plugins, tmp_path):
    # given: the demo's texts, and Anna who confirms her number and gets new contacts by SMS
    from rapidly.messaging.channels import channels_for
    from rapidly.messaging.dispatcher import Dispatcher
    from tests.staff.test_reach import CHOOSE, START, VERIFY, code_in

    demo = settings.model_copy(update={"sms_url": "file:", "data_dir": tmp_path})
    dispatcher = Dispatcher(demo, plugins, channels_for(demo))
    anna = await staff_token(gql)
    await gql(START, {"number": "+358401112233"}, token=anna)
    await dispatcher.run_once()
    [code_text] = list((tmp_path / "sms-outbox").rglob("*.txt"))
    verified = await gql(VERIFY, {"code": code_in(code_text.read_text())}, token=anna)
    assert verified["verifySmsNumber"]["__typename"] == "SmsNumberVerified"
    await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["SMS"]}, token=anna)

    # when: a customer writes
    token = await contact(gql, email=None, phone=None)
    await only("new_contact")
    await dispatcher.run_once()

    # then: both of Anna's texts are in her own folder, none in the customer's
    found = await contacts.contact_for_token(token)
    folders = {p.parent.name for p in (tmp_path / "sms-outbox").rglob("*.txt")}
    assert folders == {f"staff-{(await the_message()).staff_id}"}
    assert not (tmp_path / "sms-outbox" / str(found.tenant_id) / str(found.id)).exists()
