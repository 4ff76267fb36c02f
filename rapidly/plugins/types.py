"""Data passed between the core and tenant plugins.

Everything here is plain, immutable data: hooks receive a `TenantInfo` and return `FieldSpec`s or a
`MessageTemplate`; the core validates what they return (`rapidly.plugins.validation`) and does all I/O.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

#: Locales the core speaks. Labels, purposes, help texts and templates are keyed by these.
SUPPORTED_LOCALES: tuple[str, ...] = ("fi", "sv", "en")

#: The locale used when neither the requested locale nor the tenant's default is usable.
FALLBACK_LOCALE = "fi"


class PluginError(Exception):
    """A plugin failed to load, broke the hook contract, or raised inside a hook.

    The message always names the plugin, and the hook and field when known.
    """

    def __init__(self, plugin: str, problem: str, *, hook: str | None = None, field: str | None = None) -> None:
        where = f"plugin {plugin!r}"
        if hook:
            where += f", hook {hook}"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")
        self.plugin = plugin
        self.problem = problem
        self.hook = hook
        self.field = field


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """What a plugin is told about the tenant it answers for. Holds no personal data."""

    id: uuid.UUID
    slug: str
    name: str
    plugin: str
    default_locale: str = "fi"
    privacy_policy_url: str | None = None


class FieldKind(enum.StrEnum):
    """What a field holds; decides its input widget and how the core checks a saved value."""

    TEXT = "text"
    LONG_TEXT = "long_text"
    EMAIL = "email"
    PHONE = "phone"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    BOOLEAN = "boolean"
    IMAGE = "image"

    @classmethod
    def coerce(cls, value: object) -> FieldKind | None:
        """The kind named by `value` (a member, or its name or value in any case), else None."""
        return _coerce_enum(cls, value)


class FieldRole(enum.StrEnum):
    """Tells the core which saved value is the contact's name, email address or phone number."""

    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"

    @classmethod
    def coerce(cls, value: object) -> FieldRole | None:
        """The role named by `value` (a member, or its name or value in any case), else None."""
        return _coerce_enum(cls, value)

    @property
    def required_kind(self) -> FieldKind:
        """The only field kind this role may be put on."""
        return _ROLE_KIND[self]


_ROLE_KIND = {
    FieldRole.NAME: FieldKind.TEXT,
    FieldRole.EMAIL: FieldKind.EMAIL,
    FieldRole.PHONE: FieldKind.PHONE,
}


class Channel(enum.StrEnum):
    """How a message is delivered."""

    EMAIL = "email"
    SMS = "sms"

    @classmethod
    def coerce(cls, value: object) -> Channel | None:
        return _coerce_enum(cls, value)


class MessageEvent(enum.StrEnum):
    """The closed set of occasions on which the core sends a message. There is no bulk sending."""

    # to the end user
    CONTINUE_LINK = "continue_link"
    SELF_SERVICE_LINK = "self_service_link"
    PHOTO_REQUEST = "photo_request"
    CHAT_REPLY = "chat_reply"
    # to the tenant's staff
    NEW_CONTACT = "new_contact"
    MEDIA_ADDED = "media_added"
    CHAT_MESSAGE = "chat_message"
    # to someone an admin invites to join the tenant's staff (bound to no contact)
    STAFF_INVITATION = "staff_invitation"

    @classmethod
    def coerce(cls, value: object) -> MessageEvent | None:
        return _coerce_enum(cls, value)

    @property
    def to_staff(self) -> bool:
        """True when the message goes to the tenant's staff, False when it goes to the end user."""
        return self in _STAFF_EVENTS


_E = TypeVar("_E", bound=enum.Enum)

_STAFF_EVENTS = frozenset(
    {MessageEvent.NEW_CONTACT, MessageEvent.MEDIA_ADDED, MessageEvent.CHAT_MESSAGE, MessageEvent.STAFF_INVITATION}
)


def _coerce_enum(cls: type[_E], value: object) -> _E | None:
    if isinstance(value, cls):
        return value
    if not isinstance(value, str):
        return None
    wanted = value.strip().lower().replace("-", "_")
    for member in cls:
        if wanted in (member.name.lower(), str(member.value).lower()):
            return member
    return None


def resolve_locale(requested: str | None, default: str | None = None) -> str:
    """A supported locale for `requested` ("sv", "sv-FI", "sv_SE"), else `default` if supported, else "fi"."""
    for candidate in (requested, default):
        if isinstance(candidate, str):
            primary = candidate.strip().replace("_", "-").split("-")[0].lower()
            if primary in SUPPORTED_LOCALES:
                return primary
    return FALLBACK_LOCALE


def localized(texts: Mapping[str, str] | None, locale: str | None, fallback: str | None = None) -> str | None:
    """The text for `locale`, else for `fallback`, else for the first supported locale that has one.

    Blank texts count as missing. None when there is no text at all.
    """
    if not texts:
        return None
    order = [loc for loc in (locale, fallback) if loc] + list(SUPPORTED_LOCALES) + sorted(texts)
    for loc in order:
        text = texts.get(loc)
        if isinstance(text, str) and text.strip():
            return text
    return None


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a CHOICE or MULTI_CHOICE field: the stored `value` and its label per locale."""

    value: str
    labels: Mapping[str, str]

    def label(self, locale: str | None, fallback: str | None = None) -> str:
        return localized(self.labels, locale, fallback) or self.value


@dataclass(frozen=True, slots=True)
class FieldLimits:
    """Bounds the core enforces on a saved value. None means "the default for the field's kind".

    - `max_length`: characters (TEXT, LONG_TEXT, EMAIL, PHONE)
    - `min_value`, `max_value`: inclusive bounds (NUMBER)
    - `max_items`: how many options may be picked (MULTI_CHOICE; default: all of them)
    - `max_files`, `max_file_bytes`: uploads per contact and size of each (IMAGE)
    """

    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    max_items: int | None = None
    max_files: int | None = None
    max_file_bytes: int | None = None

    @staticmethod
    def default_for(kind: FieldKind) -> FieldLimits:
        """The limits a field of `kind` gets when its plugin sets none."""
        return _DEFAULT_LIMITS.get(kind, FieldLimits())


#: Which limits apply to which kinds; setting any other limit on a field is a plugin error.
LIMITS_BY_KIND: Mapping[FieldKind, frozenset[str]] = {
    FieldKind.TEXT: frozenset({"max_length"}),
    FieldKind.LONG_TEXT: frozenset({"max_length"}),
    FieldKind.EMAIL: frozenset({"max_length"}),
    FieldKind.PHONE: frozenset({"max_length"}),
    FieldKind.NUMBER: frozenset({"min_value", "max_value"}),
    FieldKind.DATE: frozenset(),
    FieldKind.CHOICE: frozenset(),
    FieldKind.MULTI_CHOICE: frozenset({"max_items"}),
    FieldKind.BOOLEAN: frozenset(),
    FieldKind.IMAGE: frozenset({"max_files", "max_file_bytes"}),
}

#: Upper bounds a plugin cannot exceed: they protect the core's storage and the staff's attention.
LIMIT_CAPS: Mapping[str, int] = {
    "max_length": 20_000,
    "max_files": 50,
    "max_file_bytes": 50 * 1024 * 1024,
}

_DEFAULT_LIMITS = {
    FieldKind.TEXT: FieldLimits(max_length=200),
    FieldKind.LONG_TEXT: FieldLimits(max_length=5_000),
    FieldKind.EMAIL: FieldLimits(max_length=254),
    FieldKind.PHONE: FieldLimits(max_length=32),
    FieldKind.IMAGE: FieldLimits(max_files=10, max_file_bytes=20 * 1024 * 1024),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a tenant's contact form.

    `labels`, `purpose` and `help` map a locale ("fi", "sv", "en") to text. `purpose` is mandatory: it tells
    the end user why the tenant collects this value. A plugin may pass `kind` and `role` as strings ("image",
    "LONG_TEXT"); validation turns them into `FieldKind` and `FieldRole`, and fills in default `limits`.
    """

    key: str
    kind: FieldKind | str
    labels: Mapping[str, str]
    purpose: Mapping[str, str]
    help: Mapping[str, str] | None = None
    required: bool = False
    role: FieldRole | str | None = None
    choices: Sequence[Choice] = ()
    limits: FieldLimits | None = None

    def label(self, locale: str | None, fallback: str | None = None) -> str:
        """The label in `locale`, else in `fallback`, else in any supported locale, else the key."""
        return localized(self.labels, locale, fallback) or self.key

    def purpose_text(self, locale: str | None, fallback: str | None = None) -> str:
        """Why the tenant collects this value, in `locale` (falling back as `label` does)."""
        return localized(self.purpose, locale, fallback) or ""

    def help_text(self, locale: str | None, fallback: str | None = None) -> str | None:
        """The help text in `locale` (falling back as `label` does), or None when the field has none."""
        return localized(self.help, locale, fallback)

    @property
    def effective_limits(self) -> FieldLimits:
        """The limits the core enforces: the field's own, or the defaults for its kind."""
        if self.limits is not None:
            return self.limits
        kind = FieldKind.coerce(self.kind)
        return FieldLimits.default_for(kind) if kind else FieldLimits()


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """Wording of one message on one channel: Jinja2 text, rendered by the core in a sandbox.

    `subject` is required for email and must be None for SMS. The core always appends the self-service
    link and delete button (end-user messages), so a template need not include them.
    """

    subject: str | None
    body: str


#: Variables available to every template, with what they hold. No other names may be used.
TEMPLATE_VARIABLES: Mapping[str, str] = {
    "tenant_name": "The company's name.",
    "contact_name": (
        "The end user's name as they entered it; empty when not given yet, and always empty in messages"
        " to staff (a sent message cannot be erased, so messages to staff carry no personal data)."
    ),
    "link": (
        "The link this event is about: the continue link (CONTINUE_LINK, PHOTO_REQUEST), the self-service"
        " page (SELF_SERVICE_LINK), the conversation (CHAT_REPLY), or the contact in the staff dashboard"
        " (NEW_CONTACT, MEDIA_ADDED, CHAT_MESSAGE)."
    ),
    "staff_name": "The staff member who replied (CHAT_REPLY) or asked (PHOTO_REQUEST); may be empty.",
}


def template_context(
    event: MessageEvent | str,
    *,
    tenant_name: str,
    link: str,
    contact_name: str | None = None,
    staff_name: str | None = None,
) -> dict[str, str]:
    """The variables a template of `event` is rendered with (exactly `TEMPLATE_VARIABLES`).

    Messages to staff never carry the end user's name, whatever is passed.
    """
    ev = MessageEvent.coerce(event)
    if ev is None:
        raise ValueError(f"unknown message event {event!r}")
    return {
        "tenant_name": tenant_name,
        "contact_name": "" if ev.to_staff else (contact_name or ""),
        "link": link,
        "staff_name": staff_name or "",
    }
