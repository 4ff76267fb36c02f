"""Field values: normalisation by kind, refusals with codes, and hostile input refused quickly and quietly."""

from __future__ import annotations

import json
import time

import pytest

from rapidly.contacts.values import MAX_SAFE_NUMBER, is_empty, normalise
from rapidly.errors import InputInvalid
from rapidly.plugins.types import Choice, FieldKind, FieldLimits, FieldSpec

K = FieldKind
COLOURS = (Choice("red", {"en": "Red"}), Choice("green", {"en": "Green"}), Choice("blue", {"en": "Blue"}))
MARKER = "Zq7Xmarker"  # unique: must never show up in an error message
MEGABYTE = "x" * 1_000_000


def spec(kind: FieldKind, limits: FieldLimits | None = None) -> FieldSpec:
    return FieldSpec(
        key="answer",
        kind=kind,
        labels={"en": "Answer"},
        purpose={"en": "To answer you."},
        choices=COLOURS if kind in (K.CHOICE, K.MULTI_CHOICE) else (),
        limits=limits,
    )


def refusal(field: FieldSpec, raw: object, **kwargs: str) -> InputInvalid:
    with pytest.raises(InputInvalid) as caught:
        normalise(field, raw, **kwargs)
    assert all(problem.field == "answer" for problem in caught.value.problems)
    return caught.value


def codes(field: FieldSpec, raw: object, **kwargs: str) -> list[str]:
    return [problem.code for problem in refusal(field, raw, **kwargs).problems]


VALID = [
    # TEXT: trimmed, NFC, emoji and joiners kept
    (K.TEXT, "  Maija Meikäläinen ", None, "Maija Meikäläinen"),
    (K.TEXT, "Meika\u0308la\u0308inen", None, "Meikäläinen"),  # decomposed ä composed
    (K.TEXT, "👨\u200d👩\u200d👧 family", None, "👨\u200d👩\u200d👧 family"),
    (K.TEXT, "\u05e9\u05dc\u05d5\u05dd\u200f", None, "\u05e9\u05dc\u05d5\u05dd\u200f"),  # RLM mark is fine
    (K.TEXT, "a" * 200, None, "a" * 200),
    (K.TEXT, "abc", FieldLimits(max_length=3), "abc"),
    # LONG_TEXT: every line break becomes \n, tabs kept
    (K.LONG_TEXT, "one\r\ntwo\rthree\u2028four\n", None, "one\ntwo\nthree\nfour"),
    (K.LONG_TEXT, "  col\tcol\n\nnext  ", None, "col\tcol\n\nnext"),
    (K.LONG_TEXT, "y" * 5_000, None, "y" * 5_000),
    # EMAIL: domain lower-cased, local part as email-validator leaves it
    (K.EMAIL, " Maija.Meikalainen@EXAMPLE.FI ", None, "Maija.Meikalainen@example.fi"),
    (K.EMAIL, "äiti@esimerkki.fi", None, "äiti@esimerkki.fi"),
    (K.EMAIL, "a@xn--smrgsbord-82a8p.se", None, "a@smörgåsbord.se"),
    (K.EMAIL, "Åsa@SMÖRGÅSBORD.SE", None, "Åsa@smörgåsbord.se"),
    # PHONE: E.164
    (K.PHONE, "+358 40 123 4567", None, "+358401234567"),
    (K.PHONE, "040 123 4567", None, "+358401234567"),
    (K.PHONE, "040-1234567", None, "+358401234567"),
    (K.PHONE, "00358 9 1234567", None, "+35891234567"),
    (K.PHONE, "+46 70 123 45 67", None, "+46701234567"),
    # NUMBER: ints stay ints, integral floats become ints, plain decimal strings are read
    (K.NUMBER, 42, None, 42),
    (K.NUMBER, -7, None, -7),
    (K.NUMBER, 3.5, None, 3.5),
    (K.NUMBER, 4.0, None, 4),
    (K.NUMBER, -0.0, None, 0),
    (K.NUMBER, "42", None, 42),
    (K.NUMBER, " -3.25 ", None, -3.25),
    (K.NUMBER, "+10.0", None, 10),
    (K.NUMBER, "007", None, 7),
    (K.NUMBER, 0, FieldLimits(min_value=0, max_value=10), 0),
    (K.NUMBER, 10, FieldLimits(min_value=0, max_value=10), 10),
    (K.NUMBER, 0.5, FieldLimits(min_value=0.5), 0.5),
    (K.NUMBER, MAX_SAFE_NUMBER, None, MAX_SAFE_NUMBER),
    # DATE
    (K.DATE, "2024-02-29", None, "2024-02-29"),
    (K.DATE, " 1900-01-01 ", None, "1900-01-01"),
    (K.DATE, "2200-12-31", None, "2200-12-31"),
    # BOOLEAN
    (K.BOOLEAN, True, None, True),
    (K.BOOLEAN, False, None, False),
    # CHOICE
    (K.CHOICE, "green", None, "green"),
    # MULTI_CHOICE: in the field's order
    (K.MULTI_CHOICE, ["blue", "red"], None, ["red", "blue"]),
    (K.MULTI_CHOICE, ["green"], None, ["green"]),
    (K.MULTI_CHOICE, ["blue", "green", "red"], None, ["red", "green", "blue"]),
    (K.MULTI_CHOICE, ["blue", "red"], FieldLimits(max_items=2), ["red", "blue"]),
]


@pytest.mark.parametrize(("kind", "raw", "limits", "expected"), VALID)
def test_valid_values_are_normalised(
    kind: FieldKind, raw: object, limits: FieldLimits | None, expected: object
) -> None:
    # given
    field = spec(kind, limits)

    # when
    value = normalise(field, raw)

    # then
    assert value == expected
    assert type(value) is type(expected)
    assert json.loads(json.dumps(value, ensure_ascii=False)) == expected


@pytest.mark.parametrize(("kind", "raw", "limits", "expected"), VALID)
def test_normalising_a_stored_value_changes_nothing(
    kind: FieldKind, raw: object, limits: FieldLimits | None, expected: object
) -> None:
    # given
    field = spec(kind, limits)
    stored = normalise(field, raw)

    # when
    again = normalise(field, stored)

    # then
    assert again == stored


def test_phone_numbers_without_country_code_are_read_in_the_tenants_region() -> None:
    # given
    field = spec(K.PHONE)

    # when
    swedish = normalise(field, "070-123 45 67", default_region="SE")
    lower_case_region = normalise(field, "070-123 45 67", default_region="se")

    # then
    assert swedish == lower_case_region == "+46701234567"


def test_kind_may_be_given_as_a_string() -> None:
    # given
    field = FieldSpec(key="answer", kind="Phone", labels={"en": "Phone"}, purpose={"en": "To call you."})

    # when
    value = normalise(field, "040 123 4567")

    # then
    assert value == "+358401234567"


INVALID = [
    # wrong JSON type, for every kind
    (K.TEXT, 42, None, "wrong_type"),
    (K.TEXT, True, None, "wrong_type"),
    (K.TEXT, ["a"], None, "wrong_type"),
    (K.TEXT, {"a": "b"}, None, "wrong_type"),
    (K.LONG_TEXT, 1.5, None, "wrong_type"),
    (K.EMAIL, {"email": "a@example.fi"}, None, "wrong_type"),
    (K.PHONE, 401234567, None, "wrong_type"),  # a number would lose the leading zero
    (K.NUMBER, True, None, "wrong_type"),
    (K.NUMBER, [1], None, "wrong_type"),
    (K.NUMBER, {"n": 1}, None, "wrong_type"),
    (K.DATE, 20240229, None, "wrong_type"),
    (K.BOOLEAN, "true", None, "wrong_type"),
    (K.BOOLEAN, "yes", None, "wrong_type"),
    (K.BOOLEAN, 1, None, "wrong_type"),
    (K.BOOLEAN, 0, None, "wrong_type"),
    (K.CHOICE, ["red"], None, "wrong_type"),
    (K.CHOICE, 1, None, "wrong_type"),
    (K.MULTI_CHOICE, "red", None, "wrong_type"),
    (K.MULTI_CHOICE, {"red": True}, None, "wrong_type"),
    (K.MULTI_CHOICE, [["red"]], None, "wrong_type"),
    (K.MULTI_CHOICE, [None], None, "wrong_type"),
    # TEXT
    (K.TEXT, "a" * 201, None, "too_long"),
    (K.TEXT, "abcd", FieldLimits(max_length=3), "too_long"),
    (K.TEXT, "line\nbreak", None, "invalid_characters"),
    (K.TEXT, "tab\there", None, "invalid_characters"),
    (K.TEXT, "nul\x00byte", None, "invalid_characters"),
    (K.TEXT, "bell\x07", None, "invalid_characters"),
    (K.TEXT, "c1\x85control", None, "invalid_characters"),
    (K.TEXT, "line\u2028separator", None, "invalid_characters"),
    (K.TEXT, "evil\u202egnp.exe", None, "invalid_characters"),  # right-to-left override
    (K.TEXT, "isolate\u2066x\u2069", None, "invalid_characters"),
    (K.TEXT, "lone\ud800surrogate", None, "invalid_characters"),
    # LONG_TEXT
    (K.LONG_TEXT, "y" * 5_001, None, "too_long"),
    (K.LONG_TEXT, "nul\x00byte", None, "invalid_characters"),
    (K.LONG_TEXT, "escape\x1b[31m", None, "invalid_characters"),
    (K.LONG_TEXT, "evil\u202eoverride", None, "invalid_characters"),
    # EMAIL
    (K.EMAIL, "not an address", None, "invalid_email"),
    (K.EMAIL, "maija@", None, "invalid_email"),
    (K.EMAIL, "@example.fi", None, "invalid_email"),
    (K.EMAIL, "maija@localhost", None, "invalid_email"),
    (K.EMAIL, "mai\x00ja@example.fi", None, "invalid_email"),
    (K.EMAIL, '"quoted local"@example.fi', None, "invalid_email"),
    (K.EMAIL, "a@" + "b" * 250 + ".fi", None, "too_long"),
    (K.EMAIL, "maija@example.fi", FieldLimits(max_length=10), "too_long"),
    # PHONE
    (K.PHONE, "12", None, "invalid_phone"),
    (K.PHONE, "not a number", None, "invalid_phone"),
    (K.PHONE, "+999 123 456", None, "invalid_phone"),  # no such country code
    (K.PHONE, "+358 40 123", None, "invalid_phone"),  # too short to be valid
    (K.PHONE, "040 123 4567 ext. 12", None, "invalid_phone"),  # an extension cannot be stored in E.164
    (K.PHONE, "1" * 33, None, "too_long"),
    # NUMBER
    (K.NUMBER, float("nan"), None, "invalid_number"),
    (K.NUMBER, float("inf"), None, "invalid_number"),
    (K.NUMBER, float("-inf"), None, "invalid_number"),
    (K.NUMBER, "NaN", None, "invalid_number"),
    (K.NUMBER, "Infinity", None, "invalid_number"),
    (K.NUMBER, "1e5", None, "invalid_number"),
    (K.NUMBER, "3,5", None, "invalid_number"),  # decimal comma: ambiguous with thousands separators
    (K.NUMBER, "1,000", None, "invalid_number"),
    (K.NUMBER, "1_000", None, "invalid_number"),
    (K.NUMBER, "0x10", None, "invalid_number"),
    (K.NUMBER, "١٢", None, "invalid_number"),  # non-ASCII digits
    (K.NUMBER, "12 kg", None, "invalid_number"),
    (K.NUMBER, ".5", None, "invalid_number"),
    (K.NUMBER, "5.", None, "invalid_number"),
    (K.NUMBER, 11, FieldLimits(min_value=0, max_value=10), "out_of_range"),
    (K.NUMBER, -1, FieldLimits(min_value=0, max_value=10), "out_of_range"),
    (K.NUMBER, "10.01", FieldLimits(max_value=10), "out_of_range"),
    (K.NUMBER, 0.49, FieldLimits(min_value=0.5), "out_of_range"),
    (K.NUMBER, MAX_SAFE_NUMBER + 1, None, "out_of_range"),
    (K.NUMBER, 10**400, None, "out_of_range"),
    (K.NUMBER, -1e300, None, "out_of_range"),
    (K.NUMBER, 2**60, FieldLimits(max_value=1e300), "out_of_range"),  # the safe range caps any limit
    # DATE
    (K.DATE, "2023-02-29", None, "invalid_date"),
    (K.DATE, "2024-13-01", None, "invalid_date"),
    (K.DATE, "2024-02-29T10:00:00", None, "invalid_date"),
    (K.DATE, "2024-02-29 10:00", None, "invalid_date"),
    (K.DATE, "20240229", None, "invalid_date"),
    (K.DATE, "2024-W09-4", None, "invalid_date"),
    (K.DATE, "29.2.2024", None, "invalid_date"),
    (K.DATE, "2024-2-9", None, "invalid_date"),
    (K.DATE, "２０２４-０２-２９", None, "invalid_date"),  # full-width digits
    (K.DATE, "1899-12-31", None, "out_of_range"),
    (K.DATE, "2201-01-01", None, "out_of_range"),
    (K.DATE, "0001-01-01", None, "out_of_range"),
    # CHOICE: exact values only, never labels or other spellings
    (K.CHOICE, "purple", None, "unknown_choice"),
    (K.CHOICE, "Red", None, "unknown_choice"),
    (K.CHOICE, " red", None, "unknown_choice"),
    # MULTI_CHOICE
    (K.MULTI_CHOICE, ["red", "purple"], None, "unknown_choice"),
    (K.MULTI_CHOICE, ["red", "red"], None, "duplicate_choice"),
    (K.MULTI_CHOICE, ["red", "green", "blue"], FieldLimits(max_items=2), "too_many"),
    (K.MULTI_CHOICE, ["red", "green", "blue", "red"], None, "too_many"),
    # IMAGE: never through saveField
    (K.IMAGE, "data:image/png;base64,AAAA", None, "use_upload"),
    (K.IMAGE, {"url": "https://example.com/a.png"}, None, "use_upload"),
    (K.IMAGE, None, None, "use_upload"),
]


@pytest.mark.parametrize(("kind", "raw", "limits", "code"), INVALID)
def test_invalid_values_are_refused_with_a_code(
    kind: FieldKind, raw: object, limits: FieldLimits | None, code: str
) -> None:
    # given
    field = spec(kind, limits)

    # when
    found = codes(field, raw)

    # then
    assert found == [code]


def test_each_problem_in_a_multi_choice_is_reported_once() -> None:
    # given
    field = spec(K.MULTI_CHOICE)

    # when
    found = codes(field, ["red", "red", "purple"])

    # then
    assert found == ["duplicate_choice", "unknown_choice"]


def test_an_image_is_sent_with_upload_media() -> None:
    # when
    problem = refusal(spec(K.IMAGE), "x").problems[0]

    # then
    assert (problem.code, problem.message) == ("use_upload", "Photos are sent with uploadMedia.")


@pytest.mark.parametrize("kind", [k for k in FieldKind if k is not K.IMAGE])
@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n ", []], ids=repr)
def test_empty_values_clear_the_field(kind: FieldKind, raw: object) -> None:
    # given
    field = spec(kind)

    # when
    value = normalise(field, raw)

    # then
    assert value is None
    assert is_empty(raw)


@pytest.mark.parametrize(
    ("value", "empty"),
    [
        (None, True),
        ("", True),
        (" \u00a0\n", True),
        ([], True),
        ("a", False),
        (0, False),
        (False, False),
        ({}, False),
        ([""], False),
    ],
    ids=repr,
)
def test_is_empty(value: object, empty: bool) -> None:
    # when / then
    assert is_empty(value) is empty


# --- hostile input -------------------------------------------------------------------------------


def nested(depth: int) -> list:
    value: list = [MARKER]
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = {
    "megabyte string": MEGABYTE,
    "megabyte of whitespace": " " * 1_000_000,
    "megabyte with a NUL": "\x00" + MEGABYTE,
    "100k item list": ["red"] * 100_000,
    "deeply nested list": nested(100_000),
    "deeply nested object": {"a": nested(10_000)},
}


@pytest.mark.parametrize("kind", list(FieldKind))
@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_oversized_input_is_refused_quickly(kind: FieldKind, raw: object) -> None:
    # given
    field = spec(kind)

    # when
    started = time.perf_counter()
    found = codes(field, raw)
    elapsed = time.perf_counter() - started

    # then
    assert found[0] in {"too_long", "too_many", "wrong_type", "use_upload"}
    assert elapsed < 0.05


@pytest.mark.parametrize("kind", [K.TEXT, K.LONG_TEXT, K.EMAIL, K.PHONE, K.NUMBER, K.DATE, K.CHOICE])
def test_a_megabyte_string_is_too_long_for_every_kind_that_takes_text(kind: FieldKind) -> None:
    # when
    started = time.perf_counter()
    found = codes(spec(kind), MEGABYTE)
    elapsed = time.perf_counter() - started

    # then
    assert found == ["too_long"]
    assert elapsed < 0.05


def test_a_huge_list_is_too_many_for_a_multi_choice() -> None:
    # when
    found = codes(spec(K.MULTI_CHOICE), ["red"] * 100_000)

    # then
    assert found == ["too_many"]


LEAKY = [
    f"{MARKER}",
    f"{MARKER}\x00",
    f"{MARKER}\u202e",
    f"{MARKER}@",
    f"{MARKER}@@example.fi",
    f"+358{MARKER}",
    f"2024-{MARKER}",
    f"{MARKER}" * 100_000,
    [MARKER],
    [MARKER, MARKER],
    ["red", MARKER, 1],
    {MARKER: MARKER},
    nested(3),
]


@pytest.mark.parametrize("kind", list(FieldKind))
@pytest.mark.parametrize("raw", LEAKY, ids=range(len(LEAKY)))
def test_error_messages_never_repeat_the_submitted_value(kind: FieldKind, raw: object) -> None:
    # when
    error = refusal(spec(kind, FieldLimits(max_length=5) if kind in (K.TEXT, K.LONG_TEXT) else None), raw)

    # then
    shown = [error.message, str(error)] + [p.message for p in error.problems] + [p.code for p in error.problems]
    assert all(MARKER.lower() not in text.lower() for text in shown)
    assert all(p.message and len(p.message) < 100 for p in error.problems)
