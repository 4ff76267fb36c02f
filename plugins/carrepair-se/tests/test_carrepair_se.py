"""The car repair plugin: its form passes the core's validator (sv, en) and its wording works."""

from __future__ import annotations

import importlib.metadata
import uuid

import pytest
import rapidly_carrepair_se

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

NAME = "carrepair_se"
TENANT = TenantInfo(id=uuid.uuid4(), slug="bilverkstad", name="Bilverkstad AB", plugin=NAME, default_locale="sv")


@pytest.fixture
def registry() -> PluginRegistry:
    return PluginRegistry(load_entrypoints=False, plugins=[(NAME, rapidly_carrepair_se)])


def fields_by_key():
    return {f.key: f for f in validate_fields(NAME, rapidly_carrepair_se.contact_fields(tenant=TENANT))}


def test_fields_pass_the_core_validator():
    # when
    fields = validate_fields(NAME, rapidly_carrepair_se.contact_fields(tenant=TENANT))

    # then
    assert [(f.key, f.kind) for f in fields] == [
        ("name", FieldKind.TEXT),
        ("phone", FieldKind.PHONE),
        ("email", FieldKind.EMAIL),
        ("registration_number", FieldKind.TEXT),
        ("make_model", FieldKind.TEXT),
        ("service_type", FieldKind.CHOICE),
        ("problem_description", FieldKind.LONG_TEXT),
        ("preferred_date", FieldKind.DATE),
        ("photos", FieldKind.IMAGE),
    ]


def test_every_field_and_choice_speaks_swedish_and_english():
    # when
    fields = fields_by_key()

    # then
    for field in fields.values():
        assert set(field.labels) == {"sv", "en"}, field.key
        assert set(field.purpose) == {"sv", "en"}, field.key
        assert field.help is None or set(field.help) == {"sv", "en"}, field.key
    service = fields["service_type"]
    assert [c.value for c in service.choices] == [
        "service",
        "repair",
        "tyres",
        "inspection",
        "air_conditioning",
        "other",
    ]
    assert all(set(c.labels) == {"sv", "en"} for c in service.choices)
    assert service.choices[2].label("sv") == "Däckbyte eller däckhotell"
    # a Finnish reader falls back to the tenant's Swedish
    assert fields["registration_number"].label("fi", fallback=TENANT.default_locale) == "Registreringsnummer"


def test_roles_and_limits():
    # when
    fields = fields_by_key()

    # then
    assert {f.role: key for key, f in fields.items() if f.role} == {
        FieldRole.NAME: "name",
        FieldRole.PHONE: "phone",
        FieldRole.EMAIL: "email",
    }
    assert fields["registration_number"].limits.max_length == 10
    assert fields["photos"].limits.max_files == 6
    assert fields["service_type"].required


def test_the_core_accepts_the_plugin_at_start(registry):
    # when
    report = registry.validate_all()

    # then
    assert "preferred_date" in [f.key for f in report[NAME]]


def test_own_wording_for_the_continue_link_and_new_requests(registry):
    # when
    sv = registry.message_template(TENANT, MessageEvent.CONTINUE_LINK, Channel.EMAIL, "sv")
    en = registry.message_template(TENANT, "continue_link", "sms", "en")
    staff = registry.message_template(TENANT, MessageEvent.NEW_CONTACT, Channel.EMAIL, "sv")

    # then
    assert sv.subject == "Skicka bilder på bilen – {{ tenant_name }}"
    assert en.subject is None and "add photos of your car" in en.body
    assert staff.subject == "Ny verkstadsförfrågan"


def test_other_wording_is_left_to_the_core(registry):
    # when
    own = rapidly_carrepair_se.message_template(tenant=TENANT, event="continue_link", channel="sms", locale="fi")
    via_core = registry.message_template(TENANT, MessageEvent.CONTINUE_LINK, Channel.SMS, "fi")
    unsupported = registry.message_template(TENANT, MessageEvent.PHOTO_REQUEST, Channel.SMS, "de")

    # then an unsupported locale falls back to the tenant's Swedish
    assert own is None
    assert via_core is DEFAULT_TEMPLATES[(MessageEvent.CONTINUE_LINK, Channel.SMS, "fi")]
    assert unsupported is DEFAULT_TEMPLATES[(MessageEvent.PHOTO_REQUEST, Channel.SMS, "sv")]


def test_installed_under_its_entry_point():
    # when
    (ep,) = importlib.metadata.entry_points(group="rapidly", name=NAME)

    # then
    assert ep.load() is rapidly_carrepair_se
    assert ep.dist.name == "rapidly-carrepair-se"
