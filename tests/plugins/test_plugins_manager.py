"""PluginRegistry: loading, check_pending, per-tenant dispatch, fallbacks, errors naming plugins, listing."""

from __future__ import annotations

import pytest

from rapidly import hookimpl
from rapidly.plugins import (
    Channel,
    FieldKind,
    FieldSpec,
    MessageEvent,
    MessageTemplate,
    PluginError,
    PluginRegistry,
    format_plugins,
)
from rapidly.plugins.defaults import DEFAULT_FIELDS, DEFAULT_TEMPLATES


def spec(key: str, **overrides: object) -> FieldSpec:
    values: dict[str, object] = {
        "key": key,
        "kind": FieldKind.TEXT,
        "labels": {"en": key.replace("_", " ").title()},
        "purpose": {"en": f"We need {key} to serve you."},
    }
    values.update(overrides)
    return FieldSpec(**values)  # type: ignore[arg-type]


class FieldsPlugin:
    """A plugin whose form is the given keys; records the tenants it was asked about."""

    def __init__(self, *keys: str) -> None:
        self.keys = keys
        self.asked: list[str] = []

    @hookimpl
    def contact_fields(self, tenant):
        self.asked.append(tenant.slug)
        return [spec(key) for key in self.keys]


class TemplatePlugin:
    """A plugin that words only the given (event, channel, locale) combinations; records what it was asked."""

    def __init__(self, templates: dict[tuple[str, str, str], MessageTemplate]) -> None:
        self.templates = templates
        self.calls: list[tuple[object, object, object]] = []

    @hookimpl
    def message_template(self, tenant, event, channel, locale):
        self.calls.append((event, channel, locale))
        return self.templates.get((event, channel, locale))


class RaisingPlugin:
    @hookimpl
    def contact_fields(self, tenant):
        raise RuntimeError("form service unavailable")

    @hookimpl
    def message_template(self, tenant, event, channel, locale):
        return {}["missing"]


SMS_X = MessageTemplate(subject=None, body="X: new contact {{ link }}")
EMAIL_FI_X = MessageTemplate(subject="X: uusi", body="X: uusi yhteydenotto {{ link }}")


# -- contact_fields ---------------------------------------------------------------------------------------


def test_hook_contact_fields_dispatches_per_tenant(make_tenant):
    # given two tenant plugins, each with its own field
    x, y = FieldsPlugin("name", "roof_photos"), FieldsPlugin("name", "registration_number")
    registry = PluginRegistry(load_entrypoints=False, plugins=[("plugin_x", x), ("plugin_y", y)])

    # when
    fields_a = registry.contact_fields(make_tenant("plugin_x"))
    fields_b = registry.contact_fields(make_tenant("plugin_y"))

    # then tenant A sees only plugin X's form and tenant B only plugin Y's
    assert [f.key for f in fields_a] == ["name", "roof_photos"]
    assert [f.key for f in fields_b] == ["name", "registration_number"]
    assert x.asked == ["tenant-plugin-x"]
    assert y.asked == ["tenant-plugin-y"]


def test_hook_contact_fields_none_gives_the_core_form_not_another_plugins(make_tenant):
    # given plugin Y defines a form, plugin Z only words messages
    registry = PluginRegistry(
        load_entrypoints=False,
        plugins=[("plugin_y", FieldsPlugin("registration_number")), ("plugin_z", TemplatePlugin({}))],
    )

    # when
    fields = registry.contact_fields(make_tenant("plugin_z"))

    # then Z's tenant gets the core defaults, never Y's fields
    assert [f.key for f in fields] == [f.key for f in DEFAULT_FIELDS] == ["name", "email", "phone"]


def test_hook_contact_fields_tenant_without_plugin_gets_the_core_form(empty_registry, make_tenant):
    # when
    fields = empty_registry.contact_fields(make_tenant(""))

    # then
    assert [(f.key, f.role) for f in fields] == [("name", "name"), ("email", "email"), ("phone", "phone")]
    assert all(f.purpose_text(loc) for f in fields for loc in ("fi", "sv", "en"))


def test_hook_contact_fields_receives_the_tenant(make_tenant):
    # given a plugin serving two tenants with different forms
    class PerTenant:
        @hookimpl
        def contact_fields(self, tenant):
            return [spec("name"), spec("roof_photos" if tenant.slug == "katto" else "car_model")]

    registry = PluginRegistry(load_entrypoints=False, plugins=[("shared", PerTenant())])

    # when
    roof = registry.contact_fields(make_tenant("shared", slug="katto"))
    car = registry.contact_fields(make_tenant("shared", slug="verkstad"))

    # then
    assert [f.key for f in roof] == ["name", "roof_photos"]
    assert [f.key for f in car] == ["name", "car_model"]


def test_hook_contact_fields_invalid_result_names_plugin_and_field(make_tenant):
    # given a plugin whose field has no purpose
    class NoPurpose:
        @hookimpl
        def contact_fields(self, tenant):
            return [spec("name"), spec("street_address", purpose={"fi": " "})]

    registry = PluginRegistry(load_entrypoints=False, plugins=[("roofing_bad", NoPurpose())])

    # when
    with pytest.raises(PluginError) as info:
        registry.contact_fields(make_tenant("roofing_bad"))

    # then
    assert info.value.plugin == "roofing_bad"
    assert info.value.field == "street_address"
    assert "has no purpose" in str(info.value)


def test_hook_contact_fields_exception_in_plugin_names_plugin(make_tenant):
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("flaky", RaisingPlugin())])

    # when
    with pytest.raises(PluginError) as info:
        registry.contact_fields(make_tenant("flaky"))

    # then the plugin is named and the original exception is chained, not swallowed
    assert info.value.plugin == "flaky"
    assert info.value.hook == "contact_fields"
    assert "RuntimeError: form service unavailable" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_hook_contact_fields_async_plugin_is_rejected(make_tenant):
    # given a plugin that defines the hook with async def
    class AsyncPlugin:
        @hookimpl
        async def contact_fields(self, tenant):
            return [spec("name")]

    registry = PluginRegistry(load_entrypoints=False, plugins=[("async_one", AsyncPlugin())])

    # when
    with pytest.raises(PluginError) as info:
        registry.contact_fields(make_tenant("async_one"))

    # then
    assert info.value.plugin == "async_one"
    assert "hooks are synchronous" in str(info.value)


def test_a_tenant_naming_a_missing_plugin_fails(empty_registry, make_tenant):
    # when
    with pytest.raises(PluginError) as info:
        empty_registry.contact_fields(make_tenant("uninstalled", slug="acme"))

    # then it is not silently given the default form
    assert info.value.plugin == "uninstalled"
    assert "not installed" in str(info.value) and "'acme'" in str(info.value)


def test_per_tenant_dispatch_follows_later_registrations(make_tenant):
    # given tenant A was answered before plugin Y was registered
    registry = PluginRegistry(load_entrypoints=False, plugins=[("plugin_x", FieldsPlugin("x_field"))])
    before = registry.contact_fields(make_tenant("plugin_x"))

    # when
    registry.register(FieldsPlugin("y_field"), "plugin_y")

    # then A still sees only X, and Y's tenant sees Y
    assert [f.key for f in before] == [f.key for f in registry.contact_fields(make_tenant("plugin_x"))]
    assert [f.key for f in registry.contact_fields(make_tenant("plugin_y"))] == ["y_field"]


# -- message_template -------------------------------------------------------------------------------------


def test_hook_message_template_dispatches_per_tenant(make_tenant):
    # given plugin X words the new-contact SMS; plugin Y words nothing
    x = TemplatePlugin({("new_contact", "sms", "en"): SMS_X})
    y = TemplatePlugin({})
    registry = PluginRegistry(load_entrypoints=False, plugins=[("plugin_x", x), ("plugin_y", y)])

    # when
    for_a = registry.message_template(make_tenant("plugin_x"), MessageEvent.NEW_CONTACT, Channel.SMS, "en")
    for_b = registry.message_template(make_tenant("plugin_y"), MessageEvent.NEW_CONTACT, Channel.SMS, "en")

    # then A gets X's wording; B gets the core's, never X's
    assert for_a == SMS_X
    assert for_b == DEFAULT_TEMPLATES[(MessageEvent.NEW_CONTACT, Channel.SMS, "en")]
    assert x.calls == [("new_contact", "sms", "en")]
    assert y.calls == [("new_contact", "sms", "en")]


def test_hook_message_template_passes_plain_strings(make_tenant):
    # given
    plugin = TemplatePlugin({})
    registry = PluginRegistry(load_entrypoints=False, plugins=[("words", plugin)])

    # when the core asks with enums and names in any case
    registry.message_template(make_tenant("words"), "CHAT_REPLY", "EMAIL", "fi")
    registry.message_template(make_tenant("words"), MessageEvent.PHOTO_REQUEST, Channel.SMS, "sv")

    # then the plugin is given the documented plain values
    assert plugin.calls == [("chat_reply", "email", "fi"), ("photo_request", "sms", "sv")]
    assert all(type(arg) is str for call in plugin.calls for arg in call)


def test_hook_message_template_falls_back_to_the_default_in_the_requested_locale(make_tenant):
    # given a plugin that words the email in Finnish only
    registry = PluginRegistry(
        load_entrypoints=False,
        plugins=[("fi_only", TemplatePlugin({("new_contact", "email", "fi"): EMAIL_FI_X}))],
    )
    tenant = make_tenant("fi_only")

    # when
    finnish = registry.message_template(tenant, "new_contact", "email", "fi")
    swedish = registry.message_template(tenant, "new_contact", "email", "sv")

    # then Swedish readers get the core's Swedish wording, not the plugin's Finnish
    assert finnish == EMAIL_FI_X
    assert swedish == DEFAULT_TEMPLATES[(MessageEvent.NEW_CONTACT, Channel.EMAIL, "sv")]


@pytest.mark.parametrize(
    ("requested", "expected"), [("de", "sv"), (None, "sv"), ("", "sv"), ("sv-FI", "sv"), ("EN_gb", "en")]
)
def test_hook_message_template_unsupported_locale_uses_the_tenants_default(make_tenant, requested, expected):
    # given a Swedish-speaking tenant
    plugin = TemplatePlugin({})
    registry = PluginRegistry(load_entrypoints=False, plugins=[("words", plugin)])
    tenant = make_tenant("words", default_locale="sv")

    # when
    template = registry.message_template(tenant, "self_service_link", "email", requested)

    # then
    assert plugin.calls == [("self_service_link", "email", expected)]
    assert template == DEFAULT_TEMPLATES[(MessageEvent.SELF_SERVICE_LINK, Channel.EMAIL, expected)]


def test_hook_message_template_invalid_result_names_plugin(make_tenant):
    # given a plugin whose email has no subject
    bad = MessageTemplate(subject=None, body="{{ link }}")
    registry = PluginRegistry(
        load_entrypoints=False,
        plugins=[("no_subject", TemplatePlugin({("media_added", "email", "en"): bad}))],
    )

    # when
    with pytest.raises(PluginError) as info:
        registry.message_template(make_tenant("no_subject"), "media_added", "email", "en")

    # then
    assert info.value.plugin == "no_subject"
    assert "needs a subject" in str(info.value)


def test_hook_message_template_exception_in_plugin_names_plugin(make_tenant):
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("flaky", RaisingPlugin())])

    # when
    with pytest.raises(PluginError) as info:
        registry.message_template(make_tenant("flaky"), "chat_message", "sms", "fi")

    # then
    assert info.value.plugin == "flaky"
    assert info.value.hook == "message_template"
    assert isinstance(info.value.__cause__, KeyError)


def test_hook_message_template_unknown_event_or_channel_is_a_core_error(empty_registry, make_tenant):
    # when / then: a typo in the core is not blamed on a plugin
    with pytest.raises(ValueError, match="unknown message event 'newsletter'"):
        empty_registry.message_template(make_tenant(""), "newsletter", "email", "fi")
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        empty_registry.message_template(make_tenant(""), "new_contact", "fax", "fi")


# -- loading and check_pending ----------------------------------------------------------------------------


def test_check_pending_rejects_a_misspelled_hook():
    # given a plugin implementing "contact_feilds"
    class Misspelled:
        @hookimpl
        def contact_feilds(self, tenant):
            return None

    # when
    with pytest.raises(PluginError) as info:
        PluginRegistry(load_entrypoints=False, plugins=[("typo_plugin", Misspelled())])

    # then the plugin and the hook are named, with the likely fix
    assert info.value.plugin == "typo_plugin"
    assert info.value.hook == "contact_feilds"
    assert "did you mean 'contact_fields'?" in str(info.value)


def test_a_rejected_plugin_leaves_the_registry_usable(empty_registry, make_tenant):
    # given
    class Misspelled:
        @hookimpl
        def message_templates(self, tenant, event, channel, locale):
            return None

    # when
    with pytest.raises(PluginError):
        empty_registry.register(Misspelled(), "typo_plugin")

    # then the bad plugin is not registered and the rest still works
    assert not empty_registry.has("typo_plugin")
    assert empty_registry.plugin_names() == []
    assert [f.key for f in empty_registry.contact_fields(make_tenant(""))] == ["name", "email", "phone"]


def test_a_hookimpl_with_an_unknown_argument_is_rejected():
    # given
    class ExtraArgument:
        @hookimpl
        def contact_fields(self, tenant, locale):
            return None

    # when
    with pytest.raises(PluginError) as info:
        PluginRegistry(load_entrypoints=False, plugins=[("extra_arg", ExtraArgument())])

    # then
    assert info.value.plugin == "extra_arg"
    assert "locale" in str(info.value)


def test_a_plugin_without_hookimpl_markers_is_rejected():
    # given a module-like object whose hook lacks @hookimpl
    class Unmarked:
        def contact_fields(self, tenant):
            return None

    # when
    with pytest.raises(PluginError) as info:
        PluginRegistry(load_entrypoints=False, plugins=[("unmarked", Unmarked())])

    # then
    assert info.value.plugin == "unmarked"
    assert "implements no hooks" in str(info.value)


def test_a_plugin_name_is_registered_once(empty_registry):
    # given
    empty_registry.register(FieldsPlugin("a"), "twice")

    # when / then
    with pytest.raises(PluginError, match="already registered"):
        empty_registry.register(FieldsPlugin("b"), "twice")
    with pytest.raises(PluginError, match="reserved for the core"):
        empty_registry.register(FieldsPlugin("c"), "rapidly.defaults")


def test_unregister_removes_a_plugin(make_tenant):
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("gone", FieldsPlugin("special"))])
    registry.contact_fields(make_tenant("gone"))

    # when
    registry.unregister("gone")

    # then
    assert not registry.has("gone")
    with pytest.raises(PluginError, match="not installed"):
        registry.contact_fields(make_tenant("gone"))
    with pytest.raises(KeyError):
        registry.unregister("rapidly.defaults")


# -- validate_all -----------------------------------------------------------------------------------------


def test_validate_all_stops_on_a_field_without_purpose():
    # given a broken plugin installed beside a good one
    class NoPurpose:
        @hookimpl
        def contact_fields(self, tenant):
            return [spec("name"), spec("description", purpose=None)]

    registry = PluginRegistry(load_entrypoints=False, plugins=[("good", FieldsPlugin("name")), ("broken", NoPurpose())])

    # when
    with pytest.raises(PluginError) as info:
        registry.validate_all()

    # then the start would stop with plugin and field named
    assert str(info.value).startswith("plugin 'broken', hook contact_fields, field 'description': has no purpose")


def test_validate_all_checks_every_template_combination():
    # given a plugin with a typo in one rarely used template
    typo = MessageTemplate(subject=None, body="{{ tenant }} replied: {{ link }}")
    registry = PluginRegistry(
        load_entrypoints=False, plugins=[("typo", TemplatePlugin({("chat_reply", "sms", "sv"): typo}))]
    )

    # when
    with pytest.raises(PluginError) as info:
        registry.validate_all()

    # then
    assert info.value.plugin == "typo"
    assert "(chat_reply, sms, sv)" in str(info.value)
    assert "unknown variable(s) tenant" in str(info.value)


def test_validate_all_returns_each_plugins_validated_fields():
    # given
    registry = PluginRegistry(
        load_entrypoints=False,
        plugins=[("good", FieldsPlugin("name", "photos")), ("words", TemplatePlugin({}))],
    )

    # when
    report = registry.validate_all()

    # then
    assert {name: [f.key for f in fields] for name, fields in report.items()} == {
        "good": ["name", "photos"],
        "words": ["name", "email", "phone"],
    }


# -- listing ----------------------------------------------------------------------------------------------


def test_describe_lists_tenant_plugins_and_their_hooks():
    # given
    registry = PluginRegistry(
        load_entrypoints=False,
        plugins=[("zeta", TemplatePlugin({})), ("alpha", RaisingPlugin()), ("mid", FieldsPlugin("a"))],
    )

    # when
    described = registry.describe()

    # then sorted by name, without the core defaults
    assert described == [
        ("alpha", ["contact_fields", "message_template"]),
        ("mid", ["contact_fields"]),
        ("zeta", ["message_template"]),
    ]
    assert registry.plugin_names() == ["alpha", "mid", "zeta"]
    assert registry.has("mid") and not registry.has("rapidly.defaults")


def test_format_plugins_prints_a_table():
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("roof", RaisingPlugin()), ("cars", FieldsPlugin("a"))])

    # when
    text = format_plugins(registry)

    # then
    lines = text.splitlines()
    assert lines[0].split() == ["PLUGIN", "PACKAGE", "HOOKS"]
    assert lines[1].split() == ["cars", "registered", "in", "code", "contact_fields"]
    assert lines[2].split() == ["roof", "registered", "in", "code", "contact_fields,", "message_template"]
    assert "rapidly.defaults" in lines[3]


def test_format_plugins_without_plugins(empty_registry):
    # when
    text = format_plugins(empty_registry)

    # then
    assert text.startswith("No tenant plugins installed.\n")
