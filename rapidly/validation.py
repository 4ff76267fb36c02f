"""Input checks shared by services; each failure is an `InputInvalid` naming the field."""

from __future__ import annotations

import re
import unicodedata
import uuid

from email_validator import EmailNotValidError, validate_email

from rapidly.errors import InputInvalid

LOCALES = ("fi", "sv", "en")
#: Longest text taken for an ID: a UUID is 36 characters (45 with a urn: prefix); more is refused unread.
_MAX_ID = 64
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])")


def parse_id(value: str) -> uuid.UUID | None:
    """An ID given by a client as a UUID, or None when it cannot be one (absent and malformed IDs
    are then answered alike)."""
    if len(value) > _MAX_ID:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def clean_text(value: str, field: str, *, max_length: int, min_length: int = 1) -> str:
    """Trimmed, NFC-normalised single-line text without control characters."""
    text = unicodedata.normalize("NFC", value.strip()) if len(value) <= max_length * 4 else value
    if len(text) > max_length:
        raise InputInvalid.one(field, "too_long", f"At most {max_length} characters.")
    if len(text) < min_length:
        raise InputInvalid.one(field, "required", "This is required.")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InputInvalid.one(field, "invalid_characters", "Control characters are not allowed.")
    return text


def clean_email(value: str, field: str = "email") -> str:
    """Syntax check and normalisation only: no DNS lookups in the request path."""
    if len(value) > 320:
        raise InputInvalid.one(field, "too_long", "An email address has at most 320 characters.")
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise InputInvalid.one(field, "invalid_email", "This is not a valid email address.") from None
    return result.normalized.lower()


def clean_slug(value: str, field: str = "slug") -> str:
    if not SLUG.fullmatch(value):
        raise InputInvalid.one(
            field, "invalid_slug", "Use 3-63 lower-case letters, digits and hyphens, not at either end."
        )
    return value


def clean_locale(value: str, field: str = "locale") -> str:
    if value not in LOCALES:
        raise InputInvalid.one(field, "unsupported_locale", f"Use one of: {', '.join(LOCALES)}.")
    return value


def clean_https_url(value: str, field: str) -> str:
    if len(value) > 500 or not re.fullmatch(r"https://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?", value):
        raise InputInvalid.one(field, "invalid_url", "Use a full https:// address of at most 500 characters.")
    return value
