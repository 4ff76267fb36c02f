"""Every rule of `validate_fields` and `validate_template`: each failure names the plugin and the field."""

from __future__ import annotations

import dataclasses

import pytest

from rapidly.plugins import (
    Channel,
    Choice,
    FieldKind,
    FieldLimits,
    FieldRole,
    FieldSpec,
    MessageTemplate,
    PluginError,
    validate_fields,
    validate_template,
)

PLUGIN = "acme_plugin"


def field(key: str = "notes", kind: FieldKind | str = FieldKind.TEXT, **overrides: object) -> FieldSpec:
    values: dict[str, object] = {
        "key": key,
        "kind": kind,
        "labels": {"fi": "Lisätiedot", "en": "Notes"},
        "purpose": {"fi": "Jotta ymmärrämme asiasi.", "en": "So we understand your matter."},
    }
    values.update(overrides)
    return FieldSpec(**values)  # type: ignore[arg-type]


def choice_field(key: str = "service", kind: FieldKind = FieldKind.CHOICE, **overrides: object) -> FieldSpec:
    choices = (Choice("a", {"en": "A"}), Choice("b", {"en": "B"}), Choice("c", {"en": "C"}))
    return field(key, kind, choices=overrides.pop("choices", choices), **overrides)


def rejected(specs: object) -> PluginError:
    with pytest.raises(PluginError) as info:
        validate_fields(PLUGIN, specs)
    return info.value


# -- valid forms -------------------------------------------------------------------------------------------


def test_valid_fields_are_normalised():
    # given a plugin passing kind and role as strings, a blank locale and no limits
    specs = [
        field("full_name", "text", role="NAME", labels={"fi": "Nimi", "sv": "  ", "en": "Name"}),
        field("photos", "Image"),
        field("extras", "multi-choice", choices=[Choice("x", {"en": "X"}), Choice("y", {"en": "Y"})]),
    ]

    # when
    result = validate_fields(PLUGIN, specs)

    # then kinds and roles are enums, blank texts are gone and default limits are filled in
    assert [s.kind for s in result] == [FieldKind.TEXT, FieldKind.IMAGE, FieldKind.MULTI_CHOICE]
    assert result[0].role is FieldRole.NAME
    assert result[0].labels == {"fi": "Nimi", "en": "Name"}
    assert result[0].limits == FieldLimits(max_length=200)
    assert result[1].limits == FieldLimits(max_files=10, max_file_bytes=20 * 1024 * 1024)
    assert result[2].limits == FieldLimits(max_items=2)


def test_own_limits_are_kept_and_missing_ones_defaulted():
    # given an IMAGE field that sets only max_files
    specs = [field("photos", FieldKind.IMAGE, limits=FieldLimits(max_files=3))]

    # when
    (result,) = validate_fields(PLUGIN, specs)

    # then
    assert result.limits == FieldLimits(max_files=3, max_file_bytes=20 * 1024 * 1024)


def test_a_tuple_of_fields_is_accepted():
    # given
    specs = (field("a"), field("b"))

    # when
    result = validate_fields(PLUGIN, specs)

    # then
    assert [s.key for s in result] == ["a", "b"]


def test_label_helpers_fall_back_through_locales():
    # given a field labelled in Finnish and English only, with help in English only
    (spec,) = validate_fields(PLUGIN, [field(help={"en": "Anything else?"})])

    # when / then: Swedish falls back to the requested fallback, else to the first supported locale
    assert spec.label("sv") == "Lisätiedot"
    assert spec.label("sv", fallback="en") == "Notes"
    assert spec.purpose_text("en") == "So we understand your matter."
    assert spec.help_text("fi") == "Anything else?"
    assert validate_fields(PLUGIN, [field()])[0].help_text("fi") is None


# -- the hook's return value -------------------------------------------------------------------------------


@pytest.mark.parametrize("result", [{"key": "x"}, "name", 42, (f for f in ())])
def test_a_result_that_is_not_a_list_is_rejected(result):
    # when
    error = rejected(result)

    # then
    assert error.plugin == PLUGIN
    assert "must return a list of FieldSpec" in str(error)
    assert PLUGIN in str(error)


def test_an_item_that_is_not_a_fieldspec_is_rejected():
    # when
    error = rejected([field("ok"), {"key": "bad"}])

    # then
    assert "item 1 is a dict, not a FieldSpec" in str(error)
    assert error.plugin == PLUGIN


def test_an_empty_form_is_rejected():
    # when
    error = rejected([])

    # then
    assert "return None to use the core's default form" in str(error)


# -- purpose ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "purpose",
    [None, {}, {"fi": ""}, {"fi": "   ", "sv": "\t", "en": "\n"}],
    ids=["missing", "empty-mapping", "empty-text", "blank-in-every-locale"],
)
def test_a_field_without_purpose_is_rejected(purpose):
    # given
    specs = [field("name"), field("street_address", purpose=purpose)]

    # when
    error = rejected(specs)

    # then the message names plugin and field
    assert error.plugin == PLUGIN
    assert error.field == "street_address"
    assert "has no purpose" in str(error)
    assert f"plugin {PLUGIN!r}" in str(error) and "field 'street_address'" in str(error)


def test_a_purpose_in_one_locale_is_enough():
    # when
    (result,) = validate_fields(PLUGIN, [field(purpose={"sv": "Så att vi kan svara."})])

    # then
    assert result.purpose_text("fi") == "Så att vi kan svara."


def test_a_purpose_that_is_not_a_mapping_is_rejected():
    # when
    error = rejected([field(purpose="Because.")])

    # then
    assert error.field == "notes"
    assert "purpose must map a locale to text" in str(error)


# -- labels and locales -----------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [{}, {"fi": " "}, None])
def test_a_field_without_label_is_rejected(labels):
    # when
    error = rejected([field("notes", labels=labels)])

    # then
    assert error.field == "notes"
    assert "has no label" in str(error)


@pytest.mark.parametrize("what", ["labels", "purpose", "help"])
def test_an_unknown_locale_is_rejected(what):
    # given Swedish mistyped as "se"
    spec = field(**{what: {"fi": "Teksti", "se": "Text"}})

    # when
    error = rejected([spec])

    # then
    assert error.field == "notes"
    assert f"{what} has unknown locale 'se'" in str(error)


def test_a_text_that_is_not_a_string_is_rejected():
    # when
    error = rejected([field(labels={"fi": 3})])

    # then
    assert "labels['fi'] must be text" in str(error)


# -- keys -------------------------------------------------------------------------------------------------


def test_a_duplicate_key_is_rejected():
    # given
    specs = [field("phone", FieldKind.PHONE), field("email", FieldKind.EMAIL), field("phone", FieldKind.TEXT)]

    # when
    error = rejected(specs)

    # then
    assert error.field == "phone"
    assert "duplicate key" in str(error)


@pytest.mark.parametrize("key", ["", "Name", "1st", "_x", "first-name", "a b", "å", "x" * 64, None])
def test_a_malformed_key_is_rejected(key):
    # when
    error = rejected([field(key)])

    # then
    assert error.field == str(key)
    assert "key must match" in str(error)


def test_the_longest_key_is_accepted():
    # when
    (result,) = validate_fields(PLUGIN, [field("k" + "_" * 62)])

    # then
    assert len(result.key) == 63


# -- kinds ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["textarea", "", "photo", 7, None])
def test_an_unknown_kind_is_rejected(kind):
    # when
    error = rejected([field("damage", kind)])

    # then
    assert error.field == "damage"
    assert "unknown kind" in str(error)
    assert "LONG_TEXT" in str(error)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("TEXT", FieldKind.TEXT), ("long_text", FieldKind.LONG_TEXT), ("Long-Text", FieldKind.LONG_TEXT)],
)
def test_a_kind_given_as_string_is_coerced(given, expected):
    # when
    (result,) = validate_fields(PLUGIN, [field(kind=given)])

    # then
    assert result.kind is expected


# -- roles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "kind"),
    [
        (FieldRole.NAME, FieldKind.LONG_TEXT),
        (FieldRole.EMAIL, FieldKind.TEXT),
        (FieldRole.PHONE, FieldKind.NUMBER),
        ("phone", FieldKind.TEXT),
    ],
)
def test_a_role_on_the_wrong_kind_is_rejected(role, kind):
    # when
    error = rejected([field("contact", kind, role=role)])

    # then
    assert error.field == "contact"
    assert "needs kind" in str(error)


def test_a_role_on_two_fields_is_rejected():
    # given
    specs = [field("mobile", FieldKind.PHONE, role="phone"), field("landline", FieldKind.PHONE, role="PHONE")]

    # when
    error = rejected(specs)

    # then
    assert error.field == "landline"
    assert "already on field 'mobile'" in str(error)


def test_an_unknown_role_is_rejected():
    # when
    error = rejected([field(role="address")])

    # then
    assert "unknown role 'address'" in str(error)


def test_each_role_on_its_kind_is_accepted():
    # given
    specs = [
        field("name", FieldKind.TEXT, role=FieldRole.NAME),
        field("email", FieldKind.EMAIL, role=FieldRole.EMAIL),
        field("phone", FieldKind.PHONE, role=FieldRole.PHONE),
    ]

    # when
    result = validate_fields(PLUGIN, specs)

    # then
    assert [s.role for s in result] == [FieldRole.NAME, FieldRole.EMAIL, FieldRole.PHONE]


# -- choices ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [FieldKind.CHOICE, FieldKind.MULTI_CHOICE])
def test_a_choice_field_without_choices_is_rejected(kind):
    # when
    error = rejected([field("service_type", kind)])

    # then
    assert error.field == "service_type"
    assert "needs at least one choice" in str(error)


def test_choices_on_a_text_field_are_rejected():
    # when
    error = rejected([field(choices=[Choice("a", {"en": "A"})])])

    # then
    assert "takes no choices" in str(error)


@pytest.mark.parametrize(
    ("choices", "problem"),
    [
        ([Choice("a", {"en": "A"}), Choice("a", {"en": "Again"})], "appears twice"),
        ([Choice(" a", {"en": "A"})], "must be non-empty text"),
        ([Choice("", {"en": "A"})], "must be non-empty text"),
        ([Choice("a", {})], "has no label"),
        (["a", "b"], "must be Choice objects"),
        ("ab", "must be a list of Choice"),
    ],
)
def test_a_bad_choice_is_rejected(choices, problem):
    # when
    error = rejected([field("service_type", FieldKind.CHOICE, choices=choices)])

    # then
    assert error.field == "service_type"
    assert problem in str(error)


# -- limits -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "limits", "problem"),
    [
        (FieldKind.TEXT, FieldLimits(max_files=2), "does not apply to a TEXT field"),
        (FieldKind.IMAGE, FieldLimits(max_length=2), "does not apply to a IMAGE field"),
        (FieldKind.TEXT, FieldLimits(max_length=0), "whole number >= 1"),
        (FieldKind.TEXT, FieldLimits(max_length=True), "whole number >= 1"),
        (FieldKind.TEXT, FieldLimits(max_length=2.5), "whole number >= 1"),
        (FieldKind.LONG_TEXT, FieldLimits(max_length=1_000_000), "above the core's cap"),
        (FieldKind.IMAGE, FieldLimits(max_files=500), "above the core's cap"),
        (FieldKind.NUMBER, FieldLimits(min_value=5, max_value=1), "min_value is greater than max_value"),
        (FieldKind.NUMBER, FieldLimits(max_value=float("inf")), "finite number"),
    ],
)
def test_a_bad_limit_is_rejected(kind, limits, problem):
    # when
    error = rejected([field("amount", kind, limits=limits)])

    # then
    assert error.field == "amount"
    assert problem in str(error)


def test_max_items_above_the_number_of_choices_is_rejected():
    # when
    error = rejected([choice_field(kind=FieldKind.MULTI_CHOICE, limits=FieldLimits(max_items=4))])

    # then
    assert "exceeds the 3 choices" in str(error)


def test_limits_that_are_not_field_limits_are_rejected():
    # when
    error = rejected([field(limits={"max_length": 3})])

    # then
    assert "limits must be a FieldLimits" in str(error)


def test_required_must_be_a_bool():
    # when
    error = rejected([field(required="yes")])

    # then
    assert "required must be True or False" in str(error)


# -- message templates ------------------------------------------------------------------------------------


def template_rejected(result: object, channel: str = "email") -> PluginError:
    with pytest.raises(PluginError) as info:
        validate_template(PLUGIN, result, event="new_contact", channel=channel, locale="fi")
    return info.value


def test_a_valid_template_and_none_pass():
    # given
    email = MessageTemplate(subject="Uusi yhteydenotto – {{ tenant_name }}", body="Avaa: {{ link }}")
    sms = MessageTemplate(subject=None, body="{% if staff_name %}{{ staff_name }}: {% endif %}{{ link }}")

    # when / then
    assert validate_template(PLUGIN, email, event="new_contact", channel=Channel.EMAIL, locale="fi") is email
    assert validate_template(PLUGIN, sms, event="chat_reply", channel="sms", locale="fi") is sms
    assert validate_template(PLUGIN, None, event="new_contact", channel="sms", locale="fi") is None


@pytest.mark.parametrize(
    ("result", "channel", "problem"),
    [
        ("Hello {{ link }}", "email", "must return a MessageTemplate or None"),
        (MessageTemplate(subject="S", body="  "), "email", "body is empty"),
        (MessageTemplate(subject=None, body="{{ link }}"), "email", "needs a subject"),
        (MessageTemplate(subject="Two\nlines", body="{{ link }}"), "email", "one line"),
        (MessageTemplate(subject="S", body="{{ link }}"), "sms", "SMS has no subject"),
        (MessageTemplate(subject=None, body="x" * 481), "sms", "longer than 480"),
        (MessageTemplate(subject="S", body="{% if link %}open"), "email", "Jinja2 syntax error"),
        (
            MessageTemplate(subject="S", body="Hi {{ contactname }}"),
            "email",
            "unknown variable(s) contactname",
        ),
        (MessageTemplate(subject="{{ phone }}", body="{{ link }}"), "email", "unknown variable(s) phone"),
    ],
)
def test_a_bad_template_is_rejected(result, channel, problem):
    # when
    error = template_rejected(result, channel)

    # then
    assert error.plugin == PLUGIN
    assert error.hook == "message_template"
    assert problem in str(error)
    assert "(new_contact, " in str(error)


def test_validated_specs_are_frozen():
    # given
    (spec,) = validate_fields(PLUGIN, [field()])

    # when / then
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.key = "other"  # type: ignore[misc]
