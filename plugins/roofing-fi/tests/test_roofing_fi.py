"""The roofing plugin: its form passes the core's validator in Finnish and English, and its wording works."""

from __future__ import annotations

import importlib.metadata
import uuid

import pytest
import rapidly_roofing_fi

from rapidly.plugins import (
    Channel,
    FieldKind,
    FieldRole,
    MessageEvent,
    PluginRegistry,
    TenantInfo,
    validate_fields,
)
from rapidly.plugins.defaults import DEFAULT_TEMPLATES

NAME = "roofing_fi"
TENANT = TenantInfo(id=uuid.uuid4(), slug="kattohuolto", name="Kattohuolto Oy", plugin=NAME)


@pytest.fixture
def registry() -> PluginRegistry:
    return PluginRegistry(load_entrypoints=False, plugins=[(NAME, rapidly_roofing_fi)])


def test_fields_pass_the_core_validator():
    # when
    fields = validate_fields(NAME, rapidly_roofing_fi.contact_fields(tenant=TENANT))

    # then
    assert [(f.key, f.kind) for f in fields] == [
        ("name", FieldKind.TEXT),
        ("phone", FieldKind.PHONE),
        ("email", FieldKind.EMAIL),
        ("street_address", FieldKind.TEXT),
        ("damage_description", FieldKind.LONG_TEXT),
        ("roof_photos", FieldKind.IMAGE),
    ]


def test_every_field_is_labelled_and_explained_in_finnish_and_english():
    # when
    fields = validate_fields(NAME, rapidly_roofing_fi.contact_fields(tenant=TENANT))

    # then
    for field in fields:
        assert set(field.labels) == {"fi", "en"}, field.key
        assert set(field.purpose) == {"fi", "en"}, field.key
        assert field.help is None or set(field.help) == {"fi", "en"}, field.key
    assert fields[-1].label("fi") == "Kuvat katosta"
    assert fields[-1].label("en") == "Photos of the roof"


def test_roles_and_limits():
    # when
    fields = {f.key: f for f in validate_fields(NAME, rapidly_roofing_fi.contact_fields(tenant=TENANT))}

    # then the core knows the contact's name, phone and email, and photos are bounded
    assert {f.role: key for key, f in fields.items() if f.role} == {
        FieldRole.NAME: "name",
        FieldRole.PHONE: "phone",
        FieldRole.EMAIL: "email",
    }
    assert fields["roof_photos"].limits.max_files == 10
    assert fields["damage_description"].required and fields["damage_description"].limits.max_length == 4000


def test_the_core_accepts_the_plugin_at_start(registry):
    # when
    report = registry.validate_all()

    # then
    assert report[NAME][0].key == "name"


def test_own_wording_for_the_continue_link_and_new_contacts(registry):
    # when
    fi = registry.message_template(TENANT, MessageEvent.CONTINUE_LINK, Channel.EMAIL, "fi")
    en_sms = registry.message_template(TENANT, MessageEvent.CONTINUE_LINK, Channel.SMS, "en")
    staff_fi = registry.message_template(TENANT, MessageEvent.NEW_CONTACT, Channel.SMS, "fi")

    # then
    assert fi.subject == "Lisää kuvat katosta – {{ tenant_name }}"
    assert "{{ link }}" in fi.body
    assert en_sms.subject is None and "add photos of your roof" in en_sms.body
    assert staff_fi.body == "Uusi kattovaurioilmoitus: {{ link }}"


def test_other_wording_is_left_to_the_core(registry):
    # when
    own = rapidly_roofing_fi.message_template(tenant=TENANT, event="continue_link", channel="email", locale="sv")
    via_core = registry.message_template(TENANT, MessageEvent.CONTINUE_LINK, Channel.EMAIL, "sv")
    chat = registry.message_template(TENANT, MessageEvent.CHAT_REPLY, Channel.SMS, "fi")

    # then
    assert own is None
    assert via_core is DEFAULT_TEMPLATES[(MessageEvent.CONTINUE_LINK, Channel.EMAIL, "sv")]
    assert chat is DEFAULT_TEMPLATES[(MessageEvent.CHAT_REPLY, Channel.SMS, "fi")]


def test_installed_under_its_entry_point():
    # when
    (ep,) = importlib.metadata.entry_points(group="rapidly", name=NAME)

    # then
    assert ep.load() is rapidly_roofing_fi
    assert ep.dist.name == "rapidly-roofing-fi"
