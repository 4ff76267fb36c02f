"""Checks of what plugins return. Every failure is a `PluginError` naming the plugin and, if known, the field.

`validate_fields` also normalises: kinds and roles become enums, blank texts are dropped, default limits are
filled in. The core only ever sees validated specs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
from collections.abc import Mapping

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from rapidly.plugins.types import (
    LIMIT_CAPS,
    LIMITS_BY_KIND,
    SUPPORTED_LOCALES,
    TEMPLATE_VARIABLES,
    Channel,
    Choice,
    FieldKind,
    FieldLimits,
    FieldRole,
    FieldSpec,
    MessageTemplate,
    PluginError,
)

#: A field key: lower-case ASCII letter, then letters, digits or underscores; at most 63 characters.
FIELD_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Longest SMS template source accepted (three concatenated SMS segments).
MAX_SMS_TEMPLATE_CHARS = 480
MAX_TEMPLATE_CHARS = 4000
MAX_SUBJECT_TEMPLATE_CHARS = 200

_CHOICE_KINDS = frozenset({FieldKind.CHOICE, FieldKind.MULTI_CHOICE})


def validate_fields(plugin: str, result: object) -> list[FieldSpec]:
    """Validate what a plugin's `contact_fields` returned and return the normalised specs."""
    hook = "contact_fields"
    _reject_awaitable(plugin, hook, result)
    if not isinstance(result, list | tuple):
        raise PluginError(plugin, f"must return a list of FieldSpec or None, not {type(result).__name__}", hook=hook)
    if not result:
        raise PluginError(plugin, "returned no fields; return None to use the core's default form", hook=hook)
    specs: list[FieldSpec] = []
    seen_keys: set[str] = set()
    seen_roles: dict[FieldRole, str] = {}
    for index, spec in enumerate(result):
        if not isinstance(spec, FieldSpec):
            raise PluginError(plugin, f"item {index} is a {type(spec).__name__}, not a FieldSpec", hook=hook)
        normalised = _validate_field(plugin, spec)
        if normalised.key in seen_keys:
            raise PluginError(plugin, "duplicate key: two fields share it", hook=hook, field=normalised.key)
        seen_keys.add(normalised.key)
        if normalised.role is not None:
            role = FieldRole(normalised.role)
            if role in seen_roles:
                raise PluginError(
                    plugin,
                    f"role {role.name} is already on field {seen_roles[role]!r}; one field per role",
                    hook=hook,
                    field=normalised.key,
                )
            seen_roles[role] = normalised.key
        specs.append(normalised)
    return specs


def _reject_awaitable(plugin: str, hook: str, result: object) -> None:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: close it so Python does not warn
        raise PluginError(plugin, "hooks are synchronous: define the hook with def, not async def", hook=hook)


def _validate_field(plugin: str, spec: FieldSpec) -> FieldSpec:
    hook = "contact_fields"
    key = spec.key
    if not isinstance(key, str) or not FIELD_KEY_RE.match(key):
        raise PluginError(
            plugin,
            "key must match ^[a-z][a-z0-9_]{0,62}$ (lower-case letter, then letters, digits, underscores)",
            hook=hook,
            field=str(key),
        )

    def fail(problem: str) -> PluginError:
        return PluginError(plugin, problem, hook=hook, field=key)

    kind = FieldKind.coerce(spec.kind)
    if kind is None:
        known = ", ".join(k.name for k in FieldKind)
        raise fail(f"unknown kind {spec.kind!r}; known kinds: {known}")

    labels = _texts(fail, "labels", spec.labels)
    if not labels:
        raise fail("has no label: give labels in at least one of " + ", ".join(SUPPORTED_LOCALES))
    purpose = _texts(fail, "purpose", spec.purpose)
    if not purpose:
        raise fail(
            "has no purpose: every field must tell the end user why it is collected"
            " (purpose={'fi': ..., 'sv': ..., 'en': ...})"
        )
    help_ = _texts(fail, "help", spec.help) if spec.help is not None else {}

    if not isinstance(spec.required, bool):
        raise fail(f"required must be True or False, not {spec.required!r}")

    role: FieldRole | None = None
    if spec.role is not None:
        role = FieldRole.coerce(spec.role)
        if role is None:
            known = ", ".join(r.name for r in FieldRole)
            raise fail(f"unknown role {spec.role!r}; known roles: {known}")
        if kind is not role.required_kind:
            raise fail(f"role {role.name} needs kind {role.required_kind.name}, not {kind.name}")

    choices = _validate_choices(fail, kind, spec.choices)
    limits = _validate_limits(fail, kind, spec.limits, choices)

    return dataclasses.replace(
        spec,
        kind=kind,
        labels=labels,
        purpose=purpose,
        help=help_ or None,
        role=role,
        choices=choices,
        limits=limits,
    )


def _texts(fail, what: str, texts: object) -> dict[str, str]:
    """Check a locale -> text mapping; return it without blank entries."""
    if texts is None:
        return {}
    if not isinstance(texts, Mapping):
        raise fail(f"{what} must map a locale to text, e.g. {{'fi': ..., 'en': ...}}, not {type(texts).__name__}")
    clean: dict[str, str] = {}
    for locale, text in texts.items():
        if locale not in SUPPORTED_LOCALES:
            raise fail(f"{what} has unknown locale {locale!r}; supported: {', '.join(SUPPORTED_LOCALES)}")
        if not isinstance(text, str):
            raise fail(f"{what}[{locale!r}] must be text, not {type(text).__name__}")
        if text.strip():
            clean[locale] = text.strip()
    return clean


def _validate_choices(fail, kind: FieldKind, choices: object) -> tuple[Choice, ...]:
    if choices is None:
        choices = ()
    if isinstance(choices, str | bytes) or not isinstance(choices, list | tuple):
        raise fail(f"choices must be a list of Choice, not {type(choices).__name__}")
    if kind not in _CHOICE_KINDS:
        if choices:
            raise fail(f"a {kind.name} field takes no choices; only CHOICE and MULTI_CHOICE do")
        return ()
    if not choices:
        raise fail(f"a {kind.name} field needs at least one choice")
    seen: set[str] = set()
    clean: list[Choice] = []
    for choice in choices:
        if not isinstance(choice, Choice):
            raise fail(f"choices must be Choice objects, not {type(choice).__name__}")
        value = choice.value
        if not isinstance(value, str) or not value.strip() or value != value.strip() or len(value) > 100:
            raise fail(f"choice value {value!r} must be non-empty text without surrounding spaces (<= 100 chars)")
        if value in seen:
            raise fail(f"choice value {value!r} appears twice")
        seen.add(value)
        labels = _texts(fail, f"labels of choice {value!r}", choice.labels)
        if not labels:
            raise fail(f"choice {value!r} has no label")
        clean.append(Choice(value=value, labels=labels))
    return tuple(clean)


def _validate_limits(fail, kind: FieldKind, limits: object, choices: tuple[Choice, ...]) -> FieldLimits:
    if limits is None:
        limits = FieldLimits()
    if not isinstance(limits, FieldLimits):
        raise fail(f"limits must be a FieldLimits, not {type(limits).__name__}")
    allowed = LIMITS_BY_KIND[kind]
    defaults = FieldLimits.default_for(kind)
    values: dict[str, int | float | None] = {}
    for f in dataclasses.fields(FieldLimits):
        value = getattr(limits, f.name)
        if value is None:
            values[f.name] = getattr(defaults, f.name)
            continue
        if f.name not in allowed:
            raise fail(f"limit {f.name} does not apply to a {kind.name} field")
        if f.name in ("min_value", "max_value"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise fail(f"limit {f.name} must be a finite number, not {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise fail(f"limit {f.name} must be a whole number >= 1, not {value!r}")
            cap = LIMIT_CAPS.get(f.name)
            if cap is not None and value > cap:
                raise fail(f"limit {f.name}={value} is above the core's cap of {cap}")
        values[f.name] = value
    low, high = values["min_value"], values["max_value"]
    if low is not None and high is not None and low > high:
        raise fail("limit min_value is greater than max_value")
    if kind is FieldKind.MULTI_CHOICE:
        if values["max_items"] is None:
            values["max_items"] = len(choices)
        elif values["max_items"] > len(choices):
            raise fail(f"limit max_items={values['max_items']} exceeds the {len(choices)} choices")
    return FieldLimits(**values)


def validate_template(
    plugin: str, result: object, *, event: str, channel: Channel | str, locale: str
) -> MessageTemplate | None:
    """Validate what a plugin's `message_template` returned (None is allowed: the core default applies)."""
    if result is None:
        return None
    hook = "message_template"
    _reject_awaitable(plugin, hook, result)
    where = f"({event}, {channel}, {locale})"
    if not isinstance(result, MessageTemplate):
        raise PluginError(
            plugin, f"must return a MessageTemplate or None, not {type(result).__name__} {where}", hook=hook
        )
    ch = Channel.coerce(channel)
    if not isinstance(result.body, str) or not result.body.strip():
        raise PluginError(plugin, f"template body is empty {where}", hook=hook)
    if ch is Channel.EMAIL:
        if not isinstance(result.subject, str) or not result.subject.strip():
            raise PluginError(plugin, f"an email template needs a subject {where}", hook=hook)
        if "\n" in result.subject or "\r" in result.subject:
            raise PluginError(plugin, f"the subject must be one line {where}", hook=hook)
    elif result.subject is not None:
        raise PluginError(plugin, f"an SMS has no subject: return subject=None {where}", hook=hook)
    if len(result.body) > MAX_TEMPLATE_CHARS:
        raise PluginError(plugin, f"template longer than {MAX_TEMPLATE_CHARS} characters {where}", hook=hook)
    if len(result.subject or "") > MAX_SUBJECT_TEMPLATE_CHARS:
        raise PluginError(plugin, f"subject longer than {MAX_SUBJECT_TEMPLATE_CHARS} characters {where}", hook=hook)
    if ch is Channel.SMS and len(result.body) > MAX_SMS_TEMPLATE_CHARS:
        raise PluginError(plugin, f"SMS template is longer than {MAX_SMS_TEMPLATE_CHARS} characters {where}", hook=hook)
    for part, source in (("subject", result.subject), ("body", result.body)):
        if source is None:
            continue
        problem = check_template_source(source)
        if problem:
            raise PluginError(plugin, f"template {part} {where}: {problem}", hook=hook)
    return result


#: What a message template may contain besides text and variables: conditions and these filters.
#: No loops, macros, blocks or includes, so that rendering is linear in the template's size, and no
#: filter that can grow its input (center, indent, wordwrap) or reach beyond it.
ALLOWED_FILTERS = frozenset({"upper", "lower", "title", "capitalize", "trim", "default", "d", "e", "escape"})
_ALLOWED_STATEMENTS = (
    jinja2.nodes.Template, jinja2.nodes.Output, jinja2.nodes.TemplateData, jinja2.nodes.If, jinja2.nodes.Name,
    jinja2.nodes.Const, jinja2.nodes.Filter, jinja2.nodes.Not, jinja2.nodes.And, jinja2.nodes.Or,
    jinja2.nodes.Compare, jinja2.nodes.Operand, jinja2.nodes.CondExpr,
)  # fmt: skip
#: Links come from `{{ link }}` only: a template cannot add a look-alike of the core's links.
_LITERAL_LINK = re.compile(r"https?:|www\.|//", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def check_template_source(source: str) -> str | None:
    """None when `source` is valid Jinja2 using only `TEMPLATE_VARIABLES`, else what is wrong with it."""
    env = _parse_env()
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"Jinja2 syntax error on line {exc.lineno}: {exc.message}"
    unknown = jinja2.meta.find_undeclared_variables(ast) - set(TEMPLATE_VARIABLES)
    if unknown:
        return f"unknown variable(s) {', '.join(sorted(unknown))}; available: {', '.join(TEMPLATE_VARIABLES)}"
    for node in ast.find_all(jinja2.nodes.Node):
        if not isinstance(node, _ALLOWED_STATEMENTS):
            return f"{type(node).__name__} is not allowed: use text, {{{{ variables }}}}, {{% if %}} and simple filters"
        if isinstance(node, jinja2.nodes.Filter) and node.name not in ALLOWED_FILTERS:
            return f"filter {node.name!r} is not allowed; allowed: {', '.join(sorted(ALLOWED_FILTERS))}"
        literal = node.data if isinstance(node, jinja2.nodes.TemplateData) else getattr(node, "value", None)
        if isinstance(node, jinja2.nodes.TemplateData | jinja2.nodes.Const) and _LITERAL_LINK.search(str(literal)):
            return "links must come from {{ link }}; the template may not contain addresses of its own"
    return None


@functools.cache
def _parse_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
