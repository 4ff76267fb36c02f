"""Staff notifications by SMS (issue 29): a staff member confirms a mobile number of their own with a
code texted to it (the SMS gateway on loopback), and chooses per event how they are reached: email
(real SMTP), SMS, both or none, following the company's choice until they make their own."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from rapidly import security, tenancy
from rapidly.audit.models import AuditEvent
from rapidly.messaging import dispatcher as dispatching
from rapidly.messaging.dispatcher import Dispatcher
from rapidly.messaging.models import MessageStatus, OutboundMessage
from rapidly.ratelimit import service as ratelimit
from rapidly.staff import reach
from rapidly.staff.models import SmsNumberCheck, StaffUser
from rapidly.tenants.models import Tenant
from tests.contacts.test_contacts_api import staff_token, start
from tests.media import images
from tests.media.test_upload_api import upload
from tests.messaging.test_dispatch import contact, ours

ANNA, VILLE, ERIK = "anna@kattohuolto.example", "ville@kattohuolto.example", "erik@verstas.example"
ANNAS_NUMBER = "+358401112233"

START = """
mutation S($number: String!) { startSmsNumberCheck(number: $number) { __typename
  ... on SmsCodeSent { number } ... on InputInvalidError { errors { field code message } }
  ... on RateLimitedError { retryAfterSeconds } } }
"""
VERIFY = """
mutation V($code: String!) { verifySmsNumber(code: $code) { __typename
  ... on SmsNumberVerified { staff { smsNumber } } ... on InputInvalidError { errors { field code message } } } }
"""
CHOOSE = """
mutation C($event: String!, $channels: [Channel!]) { setMyMessageChannels(event: $event, channels: $channels) {
  __typename ... on MyMessageChannelsChanged { staff { messageChannels { event channels own } } }
  ... on InputInvalidError { errors { field code } } } }
"""
REMOVE = "mutation { removeSmsNumber { smsNumber smsNumberWaiting { number } } }"
ME = """
query { viewer {
  smsNumber smsNumberWaiting { number codeExpiresAt sent problem } messageChannels { event channels own } } }
"""
COMPANY_CHANNELS = """
mutation C($event: String!, $channels: [Channel!]!) { setMessageChannels(event: $event, channels: $channels) {
  __typename } }
"""


def code_in(text: str) -> str:
    return re.search(r"\b(\d{6})\b", text)[1]  # type: ignore[index]


async def confirmed(gql, dispatcher, gateway, token: str, number: str = ANNAS_NUMBER) -> None:
    """The staff member of `token` confirms `number` with the code texted to it."""
    assert (await gql(START, {"number": number}, token=token))["startSmsNumberCheck"]["__typename"] == "SmsCodeSent"
    await dispatcher.run_once()
    text = gateway.requests[-1]["body"]["message"]
    verified = (await gql(VERIFY, {"code": code_in(text)}, token=token))["verifySmsNumber"]
    assert verified["__typename"] == "SmsNumberVerified", verified


async def outbox(slug: str = "kattohuolto") -> list[OutboundMessage]:
    with tenancy.as_tenant(await ours(slug)):
        return await OutboundMessage.all().order_by("created_at")


async def test_a_number_is_confirmed_by_the_code_texted_to_it_and_new_contacts_then_reach_it_by_sms(
    gql, roofing, dispatcher, smtp, gateway
):
    # given
    _, mailbox, _ = smtp
    anna = await staff_token(gql)

    # when: Anna gives her number as she would type it, and the code comes by SMS
    sent = (await gql(START, {"number": "040 111 2233"}, token=anna))["startSmsNumberCheck"]
    waiting = (await gql(ME, token=anna))["viewer"]["smsNumberWaiting"]
    await dispatcher.run_once()
    [request] = gateway.requests
    text = request["body"]["message"]
    verified = await gql(VERIFY, {"code": f" {code_in(text)[:3]} {code_in(text)[3:]} "}, token=anna)

    # then: her number is hers, recorded in the audit trail
    assert sent == {"__typename": "SmsCodeSent", "number": ANNAS_NUMBER}
    # the code is made when the message goes
    assert waiting == {"number": ANNAS_NUMBER, "codeExpiresAt": None, "sent": "PENDING", "problem": None}
    assert request["body"]["recipients"] == [{"msisdn": 358401112233}]
    assert "voimassa 10 minuuttia" in text and "Kattohuolto Oy" in text
    assert text.endswith(f"#{code_in(text)}") and "\n\n@127.0.0.1 #" in text  # WebOTP: the browser offers it
    assert verified["verifySmsNumber"] == {"__typename": "SmsNumberVerified", "staff": {"smsNumber": ANNAS_NUMBER}}
    me = (await gql(ME, token=anna))["viewer"]
    assert me["smsNumber"] == ANNAS_NUMBER and me["smsNumberWaiting"] is None
    with tenancy.as_tenant(await ours()):
        assert [e.action for e in await AuditEvent.filter(action__startswith="staff.sms")] == [
            "staff.sms_number_verified"
        ]
        assert await SmsNumberCheck.all().count() == 0

    # when: she chooses SMS alone for new contacts, and a customer writes
    chosen = (await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["SMS"]}, token=anna))["setMyMessageChannels"]
    await contact(gql, email="maija@example.com", phone="040 123 4567")
    await dispatcher.run_once()

    # then: a text that carries no name, value or link of the customer's, and no email to her
    assert {"event": "NEW_CONTACT", "channels": ["SMS"], "own": True} in chosen["staff"]["messageChannels"]
    [notice] = [r["body"] for r in gateway.requests[1:] if r["body"]["recipients"] == [{"msisdn": 358401112233}]]
    assert "/staff/contacts/" in notice["message"]
    for value in ("Maija", "Meikäläinen", "maija@", "123 4567", "1234567", "/my/", "/continue/"):
        assert value not in notice["message"], value
    assert not [m for m in mailbox.messages if m["X-Envelope-To"] == ANNA]
    assert [m.status for m in await outbox() if m.staff_id] == [MessageStatus.SENT] * 2


async def test_each_staff_member_follows_the_company_until_they_choose_and_sms_needs_a_confirmed_number(
    gql, world, roofing, dispatcher, smtp, gateway
):
    # given: the company sends new contacts by email and SMS; Anna has a number and chose email only;
    # Ville has a number and no choice of his own; Veera has no number
    _, mailbox, _ = smtp
    await world.staff("kattohuolto", VILLE)
    await world.staff("kattohuolto", "veera@kattohuolto.example")
    anna, ville = await staff_token(gql), await staff_token(gql, VILLE)
    company = await gql(COMPANY_CHANNELS, {"event": "NEW_CONTACT", "channels": ["EMAIL", "SMS"]}, token=anna)
    assert company["setMessageChannels"]["__typename"] == "CompanySettingsChanged"
    await confirmed(gql, dispatcher, gateway, anna)
    await confirmed(gql, dispatcher, gateway, ville, "+358 50 222 3344")
    await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["EMAIL"]}, token=anna)
    gateway.requests.clear()

    # when
    await contact(gql, email=None, phone=None)
    await dispatcher.run_once()

    # then
    assert sorted(m["X-Envelope-To"] for m in mailbox.messages) == [
        ANNA,
        "veera@kattohuolto.example",
        VILLE,
    ]
    assert [r["body"]["recipients"] for r in gateway.requests] == [[{"msisdn": 358502223344}]]
    villes = {c["event"]: c for c in (await gql(ME, token=ville))["viewer"]["messageChannels"]}
    assert villes["NEW_CONTACT"] == {"event": "NEW_CONTACT", "channels": ["EMAIL", "SMS"], "own": False}
    assert villes["MEDIA_ADDED"] == {"event": "MEDIA_ADDED", "channels": [], "own": False}


async def test_back_to_the_company_choice_none_at_all_and_a_choice_changed_before_sending(
    gql, roofing, dispatcher, smtp, gateway
):
    # given
    _, mailbox, _ = smtp
    anna = await staff_token(gql)
    await confirmed(gql, dispatcher, gateway, anna)
    await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["SMS", "EMAIL"]}, token=anna)
    await contact(gql, email=None, phone=None)  # queued for both

    # when: she turns new contacts off before the dispatcher runs
    off = (await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": []}, token=anna))["setMyMessageChannels"]
    await dispatcher.run_once()
    back = (await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": None}, token=anna))["setMyMessageChannels"]

    # then: nothing went; back to the company's email
    mine = {c["event"]: c for c in off["staff"]["messageChannels"]}
    assert mine["NEW_CONTACT"] == {"event": "NEW_CONTACT", "channels": [], "own": True}
    assert mailbox.messages == [] and len(gateway.requests) == 1  # the code only
    notices = [m for m in await outbox() if m.event == "new_contact"]
    assert [(m.status, m.last_error) for m in notices] == [(MessageStatus.SUPPRESSED, "switched_off")] * 2
    mine = {c["event"]: c for c in back["staff"]["messageChannels"]}
    assert mine["NEW_CONTACT"] == {"event": "NEW_CONTACT", "channels": ["EMAIL"], "own": False}
    with tenancy.as_tenant(await ours()):
        assert (await StaffUser.get(email=ANNA)).message_channels is None


async def test_wrong_codes_run_out_and_an_expired_or_resent_code_does_not_work(
    gql, roofing, dispatcher, gateway, settings
):
    # given
    anna = await staff_token(gql)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    early = (await gql(VERIFY, {"code": "123456"}, token=anna))["verifySmsNumber"]  # before the message went
    await dispatcher.run_once()
    code = code_in(gateway.requests[-1]["body"]["message"])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    # when: four wrong codes, then a fifth
    answers = [(await gql(VERIFY, {"code": wrong}, token=anna))["verifySmsNumber"] for _ in range(5)]
    after = (await gql(VERIFY, {"code": code}, token=anna))["verifySmsNumber"]

    # then
    assert early["errors"][0]["code"] == "no_code"
    assert [a["errors"][0]["code"] for a in answers] == ["wrong_code"] * 4 + ["too_many_tries"]
    assert after["errors"][0]["code"] == "no_code"

    # when: a new code; it runs out of time
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    await dispatcher.run_once()
    code = code_in(gateway.requests[-1]["body"]["message"])
    with tenancy.as_tenant(await ours()):
        await SmsNumberCheck.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    expired = (await gql(VERIFY, {"code": code}, token=anna))["verifySmsNumber"]

    # then
    assert expired["errors"][0]["code"] == "no_code"

    # when: a code sent again (the dispatcher retries) replaces the one before
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    await dispatcher.run_once()
    first = code_in(gateway.requests[-1]["body"]["message"])
    tenant = await Tenant.get(slug="kattohuolto")
    with tenancy.as_tenant(tenant.id):
        check = await SmsNumberCheck.get()
    _, again = await reach.code_for_sending(settings, tenant, check.staff_id, check.id)  # type: ignore[misc]
    second = code_in(again.text)

    # then
    if first != second:  # one in a million they are the same
        stale = (await gql(VERIFY, {"code": first}, token=anna))["verifySmsNumber"]
        assert stale["errors"][0]["code"] == "wrong_code"
    assert (await gql(VERIFY, {"code": second}, token=anna))["verifySmsNumber"]["__typename"] == "SmsNumberVerified"


async def test_no_code_waits_in_the_outbox_and_only_a_keyed_digest_of_it_is_kept(gql, roofing, dispatcher, gateway):
    # given
    anna = await staff_token(gql)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    [queued] = await outbox()

    # when
    await dispatcher.run_once()

    # then
    code = code_in(gateway.requests[-1]["body"]["message"])
    assert queued.event == "sms_number_code" and set(queued.payload) == {"check"}
    [sent] = await outbox()
    assert sent.status == MessageStatus.SENT and sent.payload == {} and sent.masked_recipient == "+358•••••33"
    with tenancy.as_tenant(await ours()):
        [check] = await SmsNumberCheck.all().values("number", "code_digest")
    assert check["number"] == ANNAS_NUMBER and len(check["code_digest"]) == 64
    assert code not in check["code_digest"]
    import hashlib

    assert check["code_digest"] != hashlib.sha256(code.encode()).hexdigest()


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("", "invalid_phone"),
        ("not a number", "invalid_phone"),
        ("+358 40 123 4567 ext. 12", "invalid_phone"),
        ("+1 212 555 0100", "not_a_mobile_number"),  # outside the EEA
        ("+358 9 1234 5678", "not_a_mobile_number"),  # a landline
        ("+358 600 12345", "not_a_mobile_number"),  # premium rate
        ("<script>alert(1)</script>", "invalid_phone"),
        ("4" * 41, "too_long"),
        ("+358 40 " + "1" * 100_000, "too_long"),
    ],
)
async def test_what_is_not_an_eea_mobile_number_is_refused_and_nothing_is_sent(gql, roofing, number, code):
    # given
    anna = await staff_token(gql)

    # when
    answer = (await gql(START, {"number": number}, token=anna))["startSmsNumberCheck"]

    # then
    assert answer["__typename"] == "InputInvalidError"
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [("number", code)]
    assert number[:20] not in answer["errors"][0]["message"] or not number
    assert await outbox() == []


async def test_codes_are_limited_per_day_and_a_confirmed_number_is_not_texted_again(gql, roofing, dispatcher, gateway):
    # given
    anna = await staff_token(gql)
    await confirmed(gql, dispatcher, gateway, anna)

    # when
    again = (await gql(START, {"number": ANNAS_NUMBER}, token=anna))["startSmsNumberCheck"]
    numbers = [f"+3584011122{40 + i}" for i in range(5)]
    more = [(await gql(START, {"number": number}, token=anna))["startSmsNumberCheck"] for number in numbers]

    # then: one code was asked for already today; four more, then the limit
    assert again["errors"][0]["code"] == "already_verified"
    assert [m["__typename"] for m in more] == ["SmsCodeSent"] * 4 + ["RateLimitedError"]
    assert (await gql(ME, token=anna))["viewer"]["smsNumberWaiting"]["number"] == numbers[3]  # the last sent


@pytest.mark.parametrize(
    ("event", "channels", "code"),
    [
        ("NEW_CONTACT", ["SMS"], "no_sms_number"),
        ("STAFF_INVITATION", ["EMAIL"], "unknown_event"),
        ("CONTINUE_LINK", ["EMAIL"], "unknown_event"),
        ("x" * 10_000, [], "unknown_event"),
    ],
)
async def test_choices_that_cannot_be_are_refused_and_nothing_changes(gql, roofing, event, channels, code):
    # given
    anna = await staff_token(gql)

    # when
    answer = (await gql(CHOOSE, {"event": event, "channels": channels}, token=anna))["setMyMessageChannels"]

    # then
    assert answer["errors"][0]["code"] == code
    with tenancy.as_tenant(await ours()):
        assert (await StaffUser.get(email=ANNA)).message_channels is None


async def test_a_removed_number_gets_nothing_more_and_the_removal_is_recorded(gql, roofing, dispatcher, gateway):
    # given: a new contact queued for Anna's SMS
    anna = await staff_token(gql)
    await confirmed(gql, dispatcher, gateway, anna)
    await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["SMS"]}, token=anna)
    await contact(gql, email=None, phone=None)

    # when
    removed = (await gql(REMOVE, token=anna))["removeSmsNumber"]
    await dispatcher.run_once()

    # then
    assert removed == {"smsNumber": None, "smsNumberWaiting": None}
    [notice] = [m for m in await outbox() if m.event == "new_contact"]
    # her choice of SMS alone went back to the company's (email) with the number
    assert (notice.status, notice.last_error) == (MessageStatus.SUPPRESSED, "switched_off")
    assert len(gateway.requests) == 1  # the code only
    with tenancy.as_tenant(await ours()):
        actions = [e.action for e in await AuditEvent.filter(action__startswith="staff.sms").order_by("created_at")]
    assert actions == ["staff.sms_number_verified", "staff.sms_number_removed"]


async def test_a_code_is_its_staff_members_alone_and_signing_in_is_required(gql, world, roofing, dispatcher, gateway):
    # given: Anna's code; Ville is her colleague, Erik in another company
    await world.staff("kattohuolto", VILLE)
    anna, ville, erik = await staff_token(gql), await staff_token(gql, VILLE), await staff_token(gql, ERIK)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    await dispatcher.run_once()
    code = code_in(gateway.requests[-1]["body"]["message"])

    # when
    theirs = [(await gql(VERIFY, {"code": code}, token=t))["verifySmsNumber"] for t in (ville, erik)]
    anonymous = [
        await gql(VERIFY, {"code": code}, expect_errors=True),
        await gql(START, {"number": ANNAS_NUMBER}, expect_errors=True),
        await gql(REMOVE, expect_errors=True),
    ]

    # then: neither has a code waiting; Anna's still works, with all her tries left
    assert [t["errors"][0]["code"] for t in theirs] == ["no_code", "no_code"]
    assert all(a["errors"][0]["message"] == "Staff sign-in required." for a in anonymous)
    assert [(await gql(ME, token=t))["viewer"]["smsNumber"] for t in (ville, erik)] == [None, None]
    assert (await gql(VERIFY, {"code": code}, token=anna))["verifySmsNumber"]["__typename"] == "SmsNumberVerified"


async def test_a_code_the_limits_stop_is_never_made_and_the_console_is_told_why(
    gql, roofing, dispatcher, gateway, settings, plugins
):
    # given: the number has had its messages for today (the limit that protects someone else's number)
    anna = await staff_token(gql)
    key = security.keyed_digest(settings.signing_key, "msg-recipient", ANNAS_NUMBER)
    for _ in range(dispatching.PER_RECIPIENT.max_hits):
        await ratelimit.hit(dispatching.PER_RECIPIENT, key)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)

    # when
    await dispatcher.run_once()
    waiting = (await gql(ME, token=anna))["viewer"]["smsNumberWaiting"]

    # then: nothing reached the gateway, no code exists to guess, and the reason is shown
    assert gateway.requests == []
    with tenancy.as_tenant(await ours()):
        [check] = await SmsNumberCheck.all()
    assert check.code_digest is None and check.code_expires_at is None
    assert waiting["sent"] == "SUPPRESSED" and waiting["problem"] == "limit_recipient"
    assert (await gql(VERIFY, {"code": "000000"}, token=anna))["verifySmsNumber"]["errors"][0]["code"] == "no_code"


async def test_without_sms_set_up_the_code_is_not_sent_and_the_console_is_told_why(gql, roofing, settings, plugins):
    # given: a Rapidly with email only
    anna = await staff_token(gql)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)

    # when
    await Dispatcher(settings, plugins, {}).run_once()

    # then
    waiting = (await gql(ME, token=anna))["viewer"]["smsNumberWaiting"]
    assert waiting["sent"] == "SUPPRESSED" and waiting["problem"] == "channel_not_configured"


async def test_wrong_tries_count_across_codes_sent_again(gql, roofing, dispatcher, gateway, settings):
    # given: a code; two wrong tries
    anna = await staff_token(gql)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    await dispatcher.run_once()
    first = code_in(gateway.requests[-1]["body"]["message"])
    wrong = f"{(int(first) + 1) % 1_000_000:06d}"
    for _ in range(2):
        await gql(VERIFY, {"code": wrong}, token=anna)

    # when: the outbox sends the text again (a retry makes a new code), and three more wrong tries
    tenant = await Tenant.get(slug="kattohuolto")
    with tenancy.as_tenant(tenant.id):
        check = await SmsNumberCheck.get()
    _, again = await reach.code_for_sending(settings, tenant, check.staff_id, check.id)  # type: ignore[misc]
    second = code_in(again.text)
    wrong = next(f"{n:06d}" for n in range(3) if f"{n:06d}" != second)
    answers = [(await gql(VERIFY, {"code": wrong}, token=anna))["verifySmsNumber"] for _ in range(3)]

    # then: five wrong in all, whichever code they were meant for
    assert [a["errors"][0]["code"] for a in answers] == ["wrong_code", "wrong_code", "too_many_tries"]
    assert (await gql(VERIFY, {"code": second}, token=anna))["verifySmsNumber"]["errors"][0]["code"] == "no_code"


async def test_two_numbers_given_at_once_leave_one_waiting_and_the_others_text_unsent(
    gql, roofing, dispatcher, gateway
):
    # given
    anna = await staff_token(gql)

    # when: the form sent twice at once
    answers = await asyncio.gather(*(gql(START, {"number": n}, token=anna) for n in (ANNAS_NUMBER, "+358401112244")))
    await dispatcher.run_once()

    # then: both answered; one number waits, and only its text went
    assert [a["startSmsNumberCheck"]["__typename"] for a in answers] == ["SmsCodeSent", "SmsCodeSent"]
    waiting = (await gql(ME, token=anna))["viewer"]["smsNumberWaiting"]["number"]
    assert [r["body"]["recipients"] for r in gateway.requests] == [[{"msisdn": int(waiting.lstrip("+"))}]]
    codes = [m for m in await outbox() if m.event == "sms_number_code"]
    assert sorted((m.status, m.last_error) for m in codes) == [
        (MessageStatus.SENT, None),
        (MessageStatus.SUPPRESSED, "no_check"),
    ]


async def test_choices_made_at_once_both_hold_and_sms_shows_only_with_a_number(gql, world, roofing):
    # given: the company sends new contacts by email and SMS; Anna has no number
    anna = await staff_token(gql)
    await gql(COMPANY_CHANNELS, {"event": "NEW_CONTACT", "channels": ["EMAIL", "SMS"]}, token=anna)

    # when: two events chosen at once
    await asyncio.gather(
        gql(CHOOSE, {"event": "MEDIA_ADDED", "channels": ["EMAIL"]}, token=anna),
        gql(CHOOSE, {"event": "CHAT_MESSAGE", "channels": []}, token=anna),
    )

    # then: both hold; the company's SMS is not shown to her, who cannot get it
    mine = {c["event"]: c for c in (await gql(ME, token=anna))["viewer"]["messageChannels"]}
    assert mine["MEDIA_ADDED"] == {"event": "MEDIA_ADDED", "channels": ["EMAIL"], "own": True}
    assert mine["CHAT_MESSAGE"] == {"event": "CHAT_MESSAGE", "channels": [], "own": True}
    assert mine["NEW_CONTACT"] == {"event": "NEW_CONTACT", "channels": ["EMAIL"], "own": False}


async def test_removing_the_number_gives_a_choice_of_sms_alone_back_to_the_company(gql, roofing, dispatcher, gateway):
    # given
    anna = await staff_token(gql)
    await confirmed(gql, dispatcher, gateway, anna)
    await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["SMS"]}, token=anna)
    await gql(CHOOSE, {"event": "CHAT_MESSAGE", "channels": ["EMAIL", "SMS"]}, token=anna)

    # when
    await gql(REMOVE, token=anna)

    # then
    mine = {c["event"]: c for c in (await gql(ME, token=anna))["viewer"]["messageChannels"]}
    assert mine["NEW_CONTACT"] == {"event": "NEW_CONTACT", "channels": ["EMAIL"], "own": False}
    assert mine["CHAT_MESSAGE"] == {"event": "CHAT_MESSAGE", "channels": ["EMAIL"], "own": True}
    with tenancy.as_tenant(await ours()):
        assert (await StaffUser.get(email=ANNA)).message_channels == {"CHAT_MESSAGE": ["email"]}


async def test_photo_after_photo_texts_a_staff_member_once_and_texts_a_day_are_capped(
    gql, http, roofing, dispatcher, gateway
):
    # given: Anna gets new photos by SMS
    anna = await staff_token(gql)
    await confirmed(gql, dispatcher, gateway, anna)
    await gql(CHOOSE, {"event": "MEDIA_ADDED", "channels": ["SMS"]}, token=anna)
    token = await start(gql)
    await gql(
        'mutation { saveField(key: "name", value: "Maija") { __typename } }', token=token
    )  # the contact exists: photos are MEDIA_ADDED
    gateway.requests.clear()

    # when: a customer uploads three photos in a row
    for _ in range(3):
        uploaded = await upload(http, token, images.jpeg(32, 24))
        assert uploaded.json()["data"]["uploadMedia"]["__typename"] == "MediaUploaded"
    await dispatcher.run_once()

    # then: one text
    assert len([r for r in gateway.requests if "/staff/contacts/" in r["body"]["message"]]) == 1

    # when: her texts for the day are used up, and a new customer writes
    await gql(CHOOSE, {"event": "NEW_CONTACT", "channels": ["SMS"]}, token=anna)
    with tenancy.as_tenant(await ours()):
        staff_id = (await StaffUser.get(email=ANNA)).id
    for _ in range(dispatching.PER_STAFF_SMS.max_hits - 1):  # one text went to her today already
        await ratelimit.hit(dispatching.PER_STAFF_SMS, str(staff_id), await ours())
    gateway.requests.clear()
    await contact(gql, email=None, phone=None)
    await dispatcher.run_once()

    # then: not sent, quietly
    assert gateway.requests == []
    [notice] = [m for m in await outbox() if m.event == "new_contact" and m.channel == "sms"]
    assert (notice.status, notice.last_error) == (MessageStatus.SUPPRESSED, "limit_recipient")


async def test_a_handled_code_message_is_purged_after_its_time_and_a_customers_message_is_not(
    gql, roofing, dispatcher, gateway
):
    # given: Anna's code, sent; a customer's message; both queued long ago
    from rapidly.messaging import outbox as messages

    anna = await staff_token(gql)
    await gql(START, {"number": ANNAS_NUMBER}, token=anna)
    await dispatcher.run_once()
    await contact(gql, email=None, phone=None)  # a new contact: Anna's email, about the contact
    waiting_code = await gql(START, {"number": "+358401112244"}, token=anna)  # pending, never purged
    assert waiting_code["startSmsNumberCheck"]["__typename"] == "SmsCodeSent"
    with tenancy.as_tenant(await ours()):
        await OutboundMessage.all().update(created_at=datetime.now(UTC) - timedelta(days=31))

    # when
    purged = await messages.purge_account_messages()

    # then
    left = sorted((m.event, m.status) for m in await outbox())
    assert purged == 1
    assert left == [("new_contact", MessageStatus.PENDING), ("sms_number_code", MessageStatus.PENDING)]
