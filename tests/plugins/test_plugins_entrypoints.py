"""The example plugins under plugins/ are installed by the project's setup and load through entry points."""

from __future__ import annotations

from rapidly.plugins import Channel, MessageEvent, PluginRegistry, format_plugins
from rapidly.plugins.defaults import DEFAULT_TEMPLATES

EXAMPLES = {"roofing_fi": "rapidly-roofing-fi", "carrepair_se": "rapidly-carrepair-se"}


def test_the_example_plugins_load_through_entry_points():
    # when the registry is built as the core builds it at start
    registry = PluginRegistry()

    # then both examples are found, with their packages and hooks, and pass the start-up check
    assert set(EXAMPLES) <= set(registry.plugin_names())
    for name, project in EXAMPLES.items():
        assert registry.distribution(name) == (project, "0.1.0")
        assert dict(registry.describe())[name] == ["contact_fields", "message_template"]
    report = registry.validate_all()
    assert "roof_photos" in [f.key for f in report["roofing_fi"]]
    assert "registration_number" in [f.key for f in report["carrepair_se"]]


def test_hook_contact_fields_keeps_installed_tenants_apart(make_tenant):
    # given the installed plugins
    registry = PluginRegistry()

    # when
    roofing = [f.key for f in registry.contact_fields(make_tenant("roofing_fi"))]
    carrepair = [f.key for f in registry.contact_fields(make_tenant("carrepair_se", default_locale="sv"))]

    # then neither tenant sees the other's fields
    assert "roof_photos" in roofing and "registration_number" not in roofing
    assert "registration_number" in carrepair and "roof_photos" not in carrepair


def test_hook_message_template_of_installed_plugins_falls_back_to_core_wording(make_tenant):
    # given
    registry = PluginRegistry()

    # when the roofing tenant's Swedish-speaking customer and the car shop's Finnish one get a continue link
    roof_sv = registry.message_template(make_tenant("roofing_fi"), "continue_link", "email", "sv")
    car_fi = registry.message_template(make_tenant("carrepair_se"), "continue_link", "email", "fi")
    roof_fi = registry.message_template(make_tenant("roofing_fi"), "continue_link", "email", "fi")

    # then the languages the plugins do not speak get the core's wording; the others the plugin's
    assert roof_sv is DEFAULT_TEMPLATES[(MessageEvent.CONTINUE_LINK, Channel.EMAIL, "sv")]
    assert car_fi is DEFAULT_TEMPLATES[(MessageEvent.CONTINUE_LINK, Channel.EMAIL, "fi")]
    assert "katosta" in roof_fi.subject


def test_format_plugins_names_the_installed_packages():
    # when
    text = format_plugins(PluginRegistry())

    # then
    assert "rapidly-roofing-fi 0.1.0" in text
    assert "rapidly-carrepair-se 0.1.0" in text
