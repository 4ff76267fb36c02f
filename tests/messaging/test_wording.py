"""A company's own wording (issue 29): written by its admins, previewed by the sandbox that sends, refused
with the reason when it breaks a rule, carried by the next email (real SMTP) and SMS (the gateway on
loopback) with the core's link and button, and reset to the default beneath."""

from __future__ import annotations

import pytest

from rapidly import tenancy
from rapidly.audit.models import AuditEvent
from rapidly.messaging.models import MessageWording
from tests.contacts.test_contacts_api import staff_token
from tests.messaging.test_dispatch import SEND, contact, only, ours

PREVIEW = """
query P($event: String!, $channel: Channel!, $locale: String!, $subject: String, $body: String!) {
  messagePreview(event: $event, channel: $channel, locale: $locale, subject: $subject, body: $body) {
    __typename
    ... on MessagePreview { subject text deleteButton }
    ... on InputInvalidError { errors { field code message } }
    ... on Error { message }
  }
}
"""
SET = """
mutation S($event: String!, $channel: Channel!, $locale: String!, $subject: String, $body: String!) {
  setMessageWording(event: $event, channel: $channel, locale: $locale, subject: $subject, body: $body) {
    __typename
    ... on CompanySettingsChanged { tenant { messageWordings { event channel locale subject body custom } } }
    ... on InputInvalidError { errors { field code message } }
    ... on Error { message }
  }
}
"""
RESET = """
mutation R($event: String!, $channel: Channel!, $locale: String!) {
  resetMessageWording(event: $event, channel: $channel, locale: $locale) {
    __typename ... on CompanySettingsChanged { tenant { messageWordings { event channel locale body custom } } }
    ... on Error { message }
  }
}
"""
WORDINGS = "query { viewer { tenant { messageWordings { event channel locale subject body custom } } } }"
EMAIL = {
    "event": "CONTINUE_LINK",
    "channel": "EMAIL",
    "locale": "fi",
    "subject": "{{ tenant_name }}: jatka puhelimella",
    "body": "Moi {{ contact_name }}! Jatka tästä: {{ link }}\n\nTerveisin katon korjaajat",
}
SMS = {"event": "CONTINUE_LINK", "channel": "SMS", "locale": "fi", "body": "Jatka kuvien lisäämistä: {{ link }}"}


def the(wordings: list[dict], event: str, channel: str, locale: str) -> dict:
    return next(w for w in wordings if (w["event"], w["channel"], w["locale"]) == (event, channel, locale))


async def test_a_preview_shows_the_message_as_sent_with_the_link_and_button_that_cannot_be_removed(gql, roofing):
    # given
    token = await staff_token(gql)

    # when
    preview = (await gql(PREVIEW, EMAIL, token=token))["messagePreview"]
    sms = (await gql(PREVIEW, SMS, token=token))["messagePreview"]

    # then: sample values, never anyone's; the core's part after the company's words
    assert preview["subject"] == "Kattohuolto Oy: jatka puhelimella"
    assert preview["text"].startswith("Moi Matti Esimerkki! Jatka tästä: http://")
    assert "Näet kaikki tietosi ja voit poistaa ne tästä:\nhttp://" in preview["text"]
    assert preview["deleteButton"] == "Poista kaikki tietoni"
    assert sms["subject"] is None and sms["deleteButton"] is None
    assert "Tietosi/poisto: http://" in sms["text"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param("{% for i in range(10**9) %}x{% endfor %}", "For is not allowed", id="a loop"),
        pytest.param("{{ link.__class__.__mro__ }}", "not allowed", id="attribute access"),
        pytest.param("{{ ''.join }}", "not allowed", id="a method"),
        pytest.param("{{ contact_name * 100000 }}", "not allowed", id="huge output"),
        pytest.param("Katso https://phishing.example/", "links must come from {{ link }}", id="a link of its own"),
        pytest.param("{{ who_knows }}", "unknown variable(s) who_knows", id="an unknown variable"),
        pytest.param("{% if %}", "syntax error", id="broken syntax"),
        pytest.param("x" * 4_001, "longer than 4000", id="too long"),
        pytest.param("   ", "empty", id="empty"),
    ],
)
async def test_a_hostile_or_broken_wording_is_refused_with_the_reason_and_nothing_is_kept(gql, roofing, body, reason):
    # given
    token = await staff_token(gql)

    # when
    previewed = (await gql(PREVIEW, {**EMAIL, "body": body}, token=token))["messagePreview"]
    saved = (await gql(SET, {**EMAIL, "body": body}, token=token))["setMessageWording"]

    # then
    for answer in (previewed, saved):
        assert answer["__typename"] == "InputInvalidError", answer
        [problem] = answer["errors"]
        assert problem["code"] == "template_invalid" and reason in problem["message"], problem
    with tenancy.as_tenant(await ours()):
        assert await MessageWording.all().count() == 0


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"event": "NO_SUCH"}, "event", "unknown_event"),
        ({"event": "STAFF_INVITATION", "channel": "SMS"}, "channel", "staff_email_only"),
        ({"locale": "de"}, "locale", "unknown_locale"),
        ({"subject": "x" * 201}, "subject", "template_invalid"),
        ({"subject": ""}, "subject", "template_invalid"),
    ],
)
async def test_what_is_not_a_message_of_the_company_is_refused(gql, roofing, change, field, code):
    token = await staff_token(gql)
    saved = (await gql(SET, {**EMAIL, **change}, token=token))["setMessageWording"]
    assert saved["__typename"] == "InputInvalidError"
    assert [(e["field"], e["code"]) for e in saved["errors"]] == [(field, code)]


async def test_the_edited_wording_is_what_the_next_email_and_sms_carry_link_and_button_included(
    gql, roofing, dispatcher, smtp, gateway
):
    # given: the admin's own wording for the continue link, by email and by SMS
    _, mailbox, _ = smtp
    admin = await staff_token(gql)
    for wording in (EMAIL, SMS):
        assert (await gql(SET, wording, token=admin))["setMessageWording"]["__typename"] == "CompanySettingsChanged"
    token = await contact(gql)

    # when: the customer asks for the link both ways
    for channel in ("EMAIL", "SMS"):
        assert (await gql(SEND, {"channel": channel}, token=token))["sendContinueLink"]["__typename"] == "LinkSent"
    await only("continue_link")
    await dispatcher.run_once()

    # then
    [mail] = mailbox.messages
    assert mail["Subject"] == "Kattohuolto Oy: jatka puhelimella"
    text = mail.get_body(("plain",)).get_content()
    assert text.startswith("Moi Maija Meikäläinen! Jatka tästä: http://") and "Terveisin katon korjaajat" in text
    assert "/my/rpc_" in text and "Poista kaikki tietoni</a>" in mail.get_body(("html",)).get_content()
    [request] = gateway.requests
    message = request["body"]["message"]
    assert message.startswith("Jatka kuvien lisäämistä: http://") and "/continue/rpc_" in message
    assert "Tietosi/poisto: http://" in message and "/my/rpc_" in message


async def test_reset_brings_back_the_default_beneath_and_each_change_is_audited(gql, roofing):
    # given
    admin = await staff_token(gql)
    default = the(
        (await gql(WORDINGS, token=admin))["viewer"]["tenant"]["messageWordings"], "CONTINUE_LINK", "SMS", "fi"
    )
    changed = (await gql(SET, SMS, token=admin))["setMessageWording"]["tenant"]["messageWordings"]

    # when
    reset = (await gql(RESET, {k: SMS[k] for k in ("event", "channel", "locale")}, token=admin))["resetMessageWording"]

    # then
    assert the(changed, "CONTINUE_LINK", "SMS", "fi") == {**default, "body": SMS["body"], "custom": True}
    assert the(reset["tenant"]["messageWordings"], "CONTINUE_LINK", "SMS", "fi")["custom"] is False
    assert the(reset["tenant"]["messageWordings"], "CONTINUE_LINK", "SMS", "fi")["body"] == default["body"]
    with tenancy.as_tenant(await ours()):
        changes = [e.detail for e in await AuditEvent.filter(action="setting.changed").order_by("created_at")]
    assert changes == ["message_wording:CONTINUE_LINK:sms:fi"] * 2


async def test_staff_who_are_not_admins_and_another_company_cannot_touch_the_wording(gql, world, roofing):
    # given: Ville is staff of Kattohuolto; Erik is the admin of Verstas
    await world.staff("kattohuolto", "ville@kattohuolto.example")
    ville, erik = await staff_token(gql, "ville@kattohuolto.example"), await staff_token(gql, "erik@verstas.example")

    # when
    refused = [
        (await gql(SET, SMS, token=ville))["setMessageWording"],
        (await gql(PREVIEW, SMS, token=ville))["messagePreview"],
    ]
    theirs = (await gql(SET, SMS, token=erik))["setMessageWording"]

    # then: refused; Erik's wording is his company's alone
    assert [r["__typename"] for r in refused] == ["AdminRequiredError", "AdminRequiredError"]
    assert theirs["__typename"] == "CompanySettingsChanged"
    mine = (await gql(WORDINGS, token=await staff_token(gql)))["viewer"]["tenant"]["messageWordings"]
    assert the(mine, "CONTINUE_LINK", "SMS", "fi")["custom"] is False


async def test_a_company_wording_that_fails_when_sent_gives_way_to_the_plugins_and_the_message_goes(
    gql, roofing, dispatcher, smtp
):
    # given: a wording kept before a rule it breaks (stored directly: saving it now is refused)
    _, mailbox, _ = smtp
    with tenancy.as_tenant(await ours()):
        await MessageWording.create(
            tenant_id=await ours(),
            event="CONTINUE_LINK",
            channel="email",
            locale="fi",
            subject="Linkki",
            body="Katso https://phishing.example/ {{ link }}",
        )
    token = await contact(gql)
    await gql(SEND, {"channel": "EMAIL"}, token=token)
    await only("continue_link")

    # when
    await dispatcher.run_once()

    # then: sent in the plugin's words, with the core's links
    [mail] = mailbox.messages
    text = mail.get_body(("plain",)).get_content()
    assert "phishing.example" not in text and "Hei Maija Meikäläinen" in text
    assert "/continue/rpc_" in text and "/my/rpc_" in text
