"""Field values: what `saveField(key, value)` stores, checked and normalised by the field's kind.

Pure functions, no I/O. `normalise` returns the value to store or raises `InputInvalid` with one
`FieldProblem` per problem; problems name the field and a code, and their messages never repeat what
was submitted (it is personal data). Required-ness is not checked: autosave saves one field at a time
and clearing a field is always allowed.

Every check that walks the input is preceded by a size check, so a 1 MB string or a list of 100 000
items is refused in constant time. Nested objects are refused by their type without being walked.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from rapidly.errors import FieldProblem, InputInvalid
from rapidly.plugins.types import FieldKind, FieldLimits, FieldSpec
from rapidly.validation import clean_text

#: Largest magnitude a NUMBER may have whatever its limits: beyond it JSON clients lose precision.
MAX_SAFE_NUMBER = 2**53 - 1

#: Longest string a NUMBER or DATE may be given as, and how much longer than the longest choice a
#: CHOICE string may be, before it is refused unread.
_SHORT_INPUT = 64

#: How much longer than its limit a raw string may be before it is refused unread (room for
#: surrounding whitespace and decomposed characters that NFC composes).
_SLACK = 4

#: Characters refused in text besides control characters: lone surrogates (not storable as UTF-8)
#: and the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) that can
#: make a name display as something else in the staff's view. Other format characters (zero-width
#: joiners in emoji and Indic scripts, LRM/RLM marks in mixed-direction names) are allowed.
_HIDDEN = "\ud800-\udfff\u202a-\u202e\u2066-\u2069"
#: TEXT is one line: control characters were refused by `clean_text`, so also refuse the Unicode
#: line and paragraph separators.
_REFUSED_IN_TEXT = re.compile(f"[{_HIDDEN}\u2028\u2029]")
#: LONG_TEXT keeps newlines (all line breaks are turned into "\n" first) and tabs.
_REFUSED_IN_LONG_TEXT = re.compile(f"[{_HIDDEN}\x00-\x08\x0b-\x1f\x7f-\x9f]")

_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_YEARS = (1900, 2200)
_EMAIL_MAX = 254


def is_empty(value: object) -> bool:
    """True when a saved value means "clear this field": None, "", whitespace only, or []."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list) and not value


def normalise(spec: FieldSpec, raw: object, *, default_region: str = "FI") -> object:
    """The JSON-serialisable value to store for `raw`, or None when `raw` clears the field.

    `default_region` (the tenant's country, ISO 3166 alpha-2) reads phone numbers written without a
    country code. Raises `InputInvalid` naming `spec.key` when `raw` is not acceptable.
    """
    kind = FieldKind.coerce(spec.kind)
    if kind is None:
        raise ValueError(f"field {spec.key!r} has an unknown kind")
    if kind is FieldKind.IMAGE:
        raise _problem(spec, "use_upload", "Photos are sent with uploadMedia.")
    if raw is None:
        return None
    if isinstance(raw, str) and len(raw) > _raw_cap(spec, kind):
        message = f"At most {_max_length(spec, kind)} characters." if kind in _TEXT_KINDS else "This is far too long."
        raise _problem(spec, "too_long", message)
    if is_empty(raw):
        return None
    return _NORMALISERS[kind](spec, raw, default_region)


# --- kinds ---------------------------------------------------------------------------------------


def _text(spec: FieldSpec, raw: object, _region: str) -> str:
    text = clean_text(_string(spec, raw), spec.key, max_length=_max_length(spec, FieldKind.TEXT), min_length=0)
    if _REFUSED_IN_TEXT.search(text):
        raise _problem(spec, "invalid_characters", "This text contains characters that are not allowed.")
    return text


def _long_text(spec: FieldSpec, raw: object, _region: str) -> str:
    """Like TEXT, but on several lines: every kind of line break becomes "\\n", and tabs are kept."""
    text = "\n".join(_string(spec, raw).splitlines()).strip()
    text = unicodedata.normalize("NFC", text)
    limit = _max_length(spec, FieldKind.LONG_TEXT)
    if len(text) > limit:
        raise _problem(spec, "too_long", f"At most {limit} characters.")
    if _REFUSED_IN_LONG_TEXT.search(text):
        raise _problem(spec, "invalid_characters", "This text contains characters that are not allowed.")
    return text


def _email(spec: FieldSpec, raw: object, _region: str) -> str:
    """Syntax only (no DNS in the request path). The domain is lower-cased; the local part is kept as
    email-validator normalises it, since mailboxes may be case-sensitive (so `clean_email`, which
    lower-cases logins, is not used here)."""
    text = _string(spec, raw).strip()
    limit = _max_length(spec, FieldKind.EMAIL)
    if len(text) > limit:
        raise _problem(spec, "too_long", f"At most {limit} characters.")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise _problem(spec, "invalid_email", "This is not a valid email address.") from None
    if len(result.normalized) > limit:
        raise _problem(spec, "too_long", f"At most {limit} characters.")
    return result.normalized


def _phone(spec: FieldSpec, raw: object, region: str) -> str:
    """Any common notation ("+358 40 123 4567", "040 1234567" in Finland) stored as E.164 ("+358401234567")."""
    text = _string(spec, raw).strip()
    limit = _max_length(spec, FieldKind.PHONE)
    if len(text) > limit:
        raise _problem(spec, "too_long", f"At most {limit} characters.")
    number = e164(text, region)
    if number is None:
        raise _problem(spec, "invalid_phone", "This is not a valid phone number.")
    return number


def e164(text: str, region: str) -> str | None:
    """A phone number in any common notation, read in `region` when it has no country code, as E.164;
    None when it is no valid number (or has an extension)."""
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _number(spec: FieldSpec, raw: object, _region: str) -> int | float:
    """A JSON number, or a string holding a plain decimal ("42", "-3.5"): no exponent, no thousands
    separators, no decimal comma ("1,500" is 1.5 in Finnish but 1500 in English). Integral values are
    stored as int."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _problem(spec, "wrong_type", "Expected a number.")
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > _SHORT_INPUT or not _DECIMAL.fullmatch(text):
            raise _problem(spec, "invalid_number", "Enter a number, like 42 or 3.5.")
        number: int | float | Decimal = Decimal(text)
    elif isinstance(raw, float) and not math.isfinite(raw):
        raise _problem(spec, "invalid_number", "Enter a number, like 42 or 3.5.")
    else:
        number = raw
    limits = spec.effective_limits
    low = max(-MAX_SAFE_NUMBER, limits.min_value if limits.min_value is not None else -MAX_SAFE_NUMBER)
    high = min(MAX_SAFE_NUMBER, limits.max_value if limits.max_value is not None else MAX_SAFE_NUMBER)
    if not low <= number <= high:
        raise _problem(spec, "out_of_range", f"Enter a number from {_show(low)} to {_show(high)}.")
    return int(number) if number == int(number) else float(number)


def _date(spec: FieldSpec, raw: object, _region: str) -> str:
    """An ISO 8601 calendar date, "YYYY-MM-DD" exactly: no times, weeks or other notations."""
    text = _string(spec, raw).strip()
    if len(text) > _SHORT_INPUT or not _ISO_DATE.fullmatch(text):
        raise _problem(spec, "invalid_date", "Enter a date as YYYY-MM-DD.")
    try:
        date = datetime.date.fromisoformat(text)
    except ValueError:
        raise _problem(spec, "invalid_date", "This date does not exist.") from None
    low, high = _DATE_YEARS
    if not low <= date.year <= high:
        raise _problem(spec, "out_of_range", f"Enter a date between the years {low} and {high}.")
    return date.isoformat()


def _boolean(spec: FieldSpec, raw: object, _region: str) -> bool:
    if not isinstance(raw, bool):
        raise _problem(spec, "wrong_type", "Expected true or false.")
    return raw


def _choice(spec: FieldSpec, raw: object, _region: str) -> str:
    """Exactly one of the field's choice values (as stored, not a label)."""
    if not isinstance(raw, str):
        raise _problem(spec, "wrong_type", "Expected one option.")
    if raw not in {choice.value for choice in spec.choices}:
        raise _problem(spec, "unknown_choice", "This is not one of the options.")
    return raw


def _multi_choice(spec: FieldSpec, raw: object, _region: str) -> list[str]:
    """Distinct choice values, stored in the order the field lists its choices."""
    if not isinstance(raw, list):
        raise _problem(spec, "wrong_type", "Expected a list of options.")
    order = {choice.value: i for i, choice in enumerate(spec.choices)}
    max_items = spec.effective_limits.max_items
    limit = len(order) if max_items is None else max_items
    if len(raw) > limit:
        raise _problem(spec, "too_many", f"Pick at most {limit}.")
    codes: dict[str, str] = {}
    picked: set[str] = set()
    for item in raw:
        if not isinstance(item, str):
            codes.setdefault("wrong_type", "Each option must be given as text.")
        elif item not in order:
            codes.setdefault("unknown_choice", "One of these is not among the options.")
        elif item in picked:
            codes.setdefault("duplicate_choice", "An option is picked more than once.")
        else:
            picked.add(item)
    if codes:
        raise InputInvalid(*(FieldProblem(spec.key, code, message) for code, message in codes.items()))
    return sorted(picked, key=order.__getitem__)


_NORMALISERS: dict[FieldKind, Callable[[FieldSpec, object, str], object]] = {
    FieldKind.TEXT: _text,
    FieldKind.LONG_TEXT: _long_text,
    FieldKind.EMAIL: _email,
    FieldKind.PHONE: _phone,
    FieldKind.NUMBER: _number,
    FieldKind.DATE: _date,
    FieldKind.BOOLEAN: _boolean,
    FieldKind.CHOICE: _choice,
    FieldKind.MULTI_CHOICE: _multi_choice,
}

#: Kinds whose input is a string with a `max_length` limit.
_TEXT_KINDS = frozenset({FieldKind.TEXT, FieldKind.LONG_TEXT, FieldKind.EMAIL, FieldKind.PHONE})


# --- helpers -------------------------------------------------------------------------------------


def _problem(spec: FieldSpec, code: str, message: str) -> InputInvalid:
    return InputInvalid.one(spec.key, code, message)


def _string(spec: FieldSpec, raw: object) -> str:
    if not isinstance(raw, str):
        raise _problem(spec, "wrong_type", "Expected text.")
    return raw


def _max_length(spec: FieldSpec, kind: FieldKind) -> int:
    limit = spec.effective_limits.max_length or FieldLimits.default_for(kind).max_length or _EMAIL_MAX
    return min(limit, _EMAIL_MAX) if kind is FieldKind.EMAIL else limit


def _raw_cap(spec: FieldSpec, kind: FieldKind) -> int:
    """Longest raw string worth looking at for a field of this kind; anything longer is refused unread."""
    if kind in _TEXT_KINDS:
        return _SLACK * _max_length(spec, kind) + _SHORT_INPUT
    if kind is FieldKind.CHOICE:
        return max((len(choice.value) for choice in spec.choices), default=0) + _SHORT_INPUT
    return _SHORT_INPUT


def _show(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)
