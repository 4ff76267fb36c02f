"""The core defaults: a valid tri-lingual form, and wording for every event, channel and locale."""

from __future__ import annotations

import itertools

import pytest
from jinja2.sandbox import SandboxedEnvironment

from rapidly.plugins import (
    SUPPORTED_LOCALES,
    TEMPLATE_VARIABLES,
    Channel,
    FieldRole,
    MessageEvent,
    template_context,
    validate_fields,
    validate_template,
)
from rapidly.plugins.defaults import DEFAULT_FIELDS, DEFAULT_TEMPLATES, PLUGIN_NAME

COMBINATIONS = list(itertools.product(MessageEvent, Channel, SUPPORTED_LOCALES))
LINK = "https://rapidly.example.eu/continue/" + "k" * 43  # a realistic token length
TENANT = "Kattohuolto Oy"
CONTACT = "Maija Meikäläinen"
STAFF = "Pekka"


def render(source: str, event: MessageEvent) -> str:
    env = SandboxedEnvironment(autoescape=False)
    context = template_context(event, tenant_name=TENANT, link=LINK, contact_name=CONTACT, staff_name=STAFF)
    return env.from_string(source).render(context)


def test_default_fields_are_valid_and_speak_every_locale():
    # when
    fields = validate_fields(PLUGIN_NAME, list(DEFAULT_FIELDS))

    # then: name, email, phone with their roles, labelled and explained in fi, sv and en
    assert [(f.key, f.role) for f in fields] == [
        ("name", FieldRole.NAME),
        ("email", FieldRole.EMAIL),
        ("phone", FieldRole.PHONE),
    ]
    for f in fields:
        assert set(f.labels) == set(f.purpose) == set(SUPPORTED_LOCALES)


def test_there_is_a_default_for_every_event_channel_and_locale():
    # then
    assert set(DEFAULT_TEMPLATES) == set(COMBINATIONS)
    assert len(DEFAULT_TEMPLATES) == 8 * 2 * 3


@pytest.mark.parametrize(("event", "channel", "locale"), COMBINATIONS, ids=lambda v: str(v))
def test_hook_message_template_default_is_valid_for(empty_registry, make_tenant, event, channel, locale):
    # when a tenant without a plugin asks for it
    template = empty_registry.message_template(make_tenant(""), event, channel, locale)

    # then it is the default, valid, non-empty, with a subject exactly when it is an email
    assert template is DEFAULT_TEMPLATES[(event, channel, locale)]
    assert validate_template(PLUGIN_NAME, template, event=event, channel=channel, locale=locale) is template
    assert template.body.strip()
    if channel is Channel.EMAIL:
        assert template.subject and template.subject.strip()
    else:
        assert template.subject is None


@pytest.mark.parametrize(("event", "channel", "locale"), COMBINATIONS, ids=lambda v: str(v))
def test_default_renders_with_the_link_and_no_staff_side_personal_data(event, channel, locale):
    # given
    template = DEFAULT_TEMPLATES[(event, channel, locale)]

    # when
    body = render(template.body, event)
    subject = render(template.subject, event) if template.subject else ""

    # then the link is there, nothing is left unrendered, and staff never get the end user's name
    assert LINK in body
    assert "{{" not in body + subject and "{%" not in body + subject
    if event.to_staff:
        assert CONTACT not in body + subject
    elif channel is Channel.EMAIL:
        assert CONTACT in body


@pytest.mark.parametrize(("event", "locale"), list(itertools.product(MessageEvent, SUPPORTED_LOCALES)), ids=str)
def test_default_sms_fits_one_message(event, locale):
    # when
    text = render(DEFAULT_TEMPLATES[(event, Channel.SMS, locale)].body, event)

    # then one 160-character SMS, link included
    assert len(text) <= 160, text


@pytest.mark.parametrize(("event", "channel"), list(itertools.product(MessageEvent, Channel)), ids=str)
def test_default_wording_differs_per_locale(event, channel):
    # when
    bodies = {DEFAULT_TEMPLATES[(event, channel, locale)].body for locale in SUPPORTED_LOCALES}

    # then fi, sv and en are three translations, not one text copied
    assert len(bodies) == 3


def test_template_context_keeps_the_contact_name_from_staff():
    # when
    to_staff = template_context("new_contact", tenant_name=TENANT, link=LINK, contact_name=CONTACT)
    to_user = template_context(MessageEvent.CONTINUE_LINK, tenant_name=TENANT, link=LINK, contact_name=CONTACT)

    # then
    assert set(to_staff) == set(to_user) == set(TEMPLATE_VARIABLES)
    assert to_staff["contact_name"] == "" and to_user["contact_name"] == CONTACT
    with pytest.raises(ValueError):
        template_context("newsletter", tenant_name=TENANT, link=LINK)
