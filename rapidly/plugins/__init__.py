"""Tenant plugins: hook specifications, data types, validation and per-tenant dispatch.

A plugin implements the hooks of `rapidly.plugins.hookspecs` with `@rapidly.hookimpl` and is installed under
the entry-point group `rapidly`. See docs/plugin_hooks.md. The core reaches plugins only through
`rapidly.plugins.manager.PluginRegistry`.
"""

from rapidly import hookimpl
from rapidly.plugins.manager import HOOK_NAMES, PluginRegistry, format_plugins
from rapidly.plugins.types import (
    FALLBACK_LOCALE,
    SUPPORTED_LOCALES,
    TEMPLATE_VARIABLES,
    Channel,
    Choice,
    FieldKind,
    FieldLimits,
    FieldRole,
    FieldSpec,
    MessageEvent,
    MessageTemplate,
    PluginError,
    TenantInfo,
    localized,
    resolve_locale,
    template_context,
)
from rapidly.plugins.validation import validate_fields, validate_template

__all__ = [
    "FALLBACK_LOCALE",
    "HOOK_NAMES",
    "SUPPORTED_LOCALES",
    "TEMPLATE_VARIABLES",
    "Channel",
    "Choice",
    "FieldKind",
    "FieldLimits",
    "FieldRole",
    "FieldSpec",
    "MessageEvent",
    "MessageTemplate",
    "PluginError",
    "PluginRegistry",
    "TenantInfo",
    "format_plugins",
    "hookimpl",
    "localized",
    "resolve_locale",
    "template_context",
    "validate_fields",
    "validate_template",
]
