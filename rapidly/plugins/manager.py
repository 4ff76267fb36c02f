"""The one place where the core reaches tenant plugins.

`PluginRegistry` builds a pluggy manager for the hooks of `rapidly.plugins.hookspecs`, registers the core's
internal plugins ("rapidly.defaults", and "rapidly.aws_kms", the shipped `key_provider`), loads installed
tenant plugins from the entry-point group `rapidly` (the entry-point name is the plugin name), and runs
`check_pending()`. Each tenant is answered by its own plugin and the core defaults only: the tenant hooks are
called through `subset_hook_caller`, cached per plugin. `key_provider` is installation-wide: every plugin is
asked.

Everything a plugin returns is validated before the core sees it, and any failure, at load time or inside a
hook, is a `PluginError` naming the plugin.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from rapidly.keys import aws_kms
from rapidly.keys.root import KeyProvider
from rapidly.plugins import defaults, hookspecs
from rapidly.plugins.types import (
    SUPPORTED_LOCALES,
    Channel,
    FieldSpec,
    MessageEvent,
    MessageTemplate,
    PluginError,
    TenantInfo,
    resolve_locale,
)
from rapidly.plugins.validation import validate_fields, validate_template

if TYPE_CHECKING:
    from rapidly.config import Settings

#: The pluggy project name and the entry-point group tenant plugins are installed under.
ENTRYPOINT_GROUP = "rapidly"

#: Names of plugins that belong to the core; never tenant plugins, never listed as such.
INTERNAL_PLUGINS = frozenset({defaults.PLUGIN_NAME, aws_kms.PLUGIN_NAME})

#: The names of the hooks a plugin may implement, in the order of hookspecs.py.
HOOK_NAMES: tuple[str, ...] = tuple(
    fn.__name__
    for fn in sorted(
        (fn for fn in vars(hookspecs).values() if hasattr(fn, f"{ENTRYPOINT_GROUP}_spec")),
        key=lambda fn: fn.__code__.co_firstlineno,
    )
)
#: The hooks that answer for one tenant (they take `tenant`); the others answer for the whole installation.
TENANT_HOOKS: tuple[str, ...] = tuple(
    name for name in HOOK_NAMES if "tenant" in getattr(hookspecs, name).__code__.co_varnames
)

_PROBE_ID = uuid.UUID(int=0)


class PluginRegistry:
    """Installed tenant plugins plus the core's internal plugins, with per-tenant dispatch."""

    def __init__(self, *, load_entrypoints: bool = True, plugins: Iterable[tuple[str, object]] = ()) -> None:
        """Register the core's internal plugins, then `plugins` (name, plugin), then installed entry points."""
        self._pm = pluggy.PluginManager(ENTRYPOINT_GROUP)
        self._pm.add_hookspecs(hookspecs)
        self._pm.register(defaults, name=defaults.PLUGIN_NAME)
        self._pm.register(aws_kms, name=aws_kms.PLUGIN_NAME)
        self._dists: dict[str, tuple[str, str]] = {}
        self._callers: dict[tuple[str, str], pluggy.HookCaller] = {}
        self._fields: dict[TenantInfo, tuple[FieldSpec, ...]] = {}
        self._default_fields = validate_fields(defaults.PLUGIN_NAME, list(defaults.DEFAULT_FIELDS))
        self._default_field_ids = frozenset(id(spec) for spec in defaults.DEFAULT_FIELDS)
        self._default_template_ids = frozenset(id(t) for t in defaults.DEFAULT_TEMPLATES.values())
        for name, plugin in plugins:
            self.register(plugin, name)
        if load_entrypoints:
            self._load_entrypoints()
        self._check_pending()
        self._pm.check_pending()

    # -- loading -------------------------------------------------------------------------------------------

    def _load_entrypoints(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP):
            dist = (ep.dist.name, ep.dist.version) if ep.dist is not None else None
            if self._pm.has_plugin(ep.name):
                if dist is not None and self._dists.get(ep.name) == dist:
                    continue  # the same distribution seen twice on sys.path
                raise PluginError(
                    ep.name,
                    f"two installed plugins use this name ({self._dist_label(ep.name)} and {ep.value})",
                )
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    ep.name, f"failed to load entry point {ep.value!r}: {type(exc).__name__}: {exc}"
                ) from exc
            self.register(plugin, ep.name)
            if dist is not None:
                self._dists[ep.name] = dist

    def register(self, plugin: object, name: str) -> None:
        """Register a tenant plugin (a module or an object with `@rapidly.hookimpl` methods) under `name`."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a plugin needs a non-empty name")
        if name in INTERNAL_PLUGINS:
            raise PluginError(name, "this name is reserved for the core")
        if self._pm.has_plugin(name):
            raise PluginError(name, "another plugin is already registered under this name")
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(name, f"does not fit the hook contract: {exc}") from exc
        except ValueError as exc:  # the same object under another name
            raise PluginError(name, str(exc)) from exc
        self._callers.clear()
        self._fields.clear()
        try:
            self._check_pending()
            if not self._pm.get_hookcallers(plugin):
                raise PluginError(
                    name,
                    f"implements no hooks; mark hook functions with @rapidly.hookimpl (hooks: {', '.join(HOOK_NAMES)})",
                )
        except PluginError:
            self._pm.unregister(name=name)
            self._callers.clear()
            self._fields.clear()
            raise

    def unregister(self, name: str) -> None:
        """Remove the tenant plugin registered under `name`."""
        if name in INTERNAL_PLUGINS or not self._pm.has_plugin(name):
            raise KeyError(name)
        self._pm.unregister(name=name)
        self._dists.pop(name, None)
        self._callers.clear()
        self._fields.clear()

    def _check_pending(self) -> None:
        """pluggy's check_pending, with a message naming the plugin, the unknown hook and a likely fix."""
        for hook_name, caller in vars(self._pm.hook).items():
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(hook_name, HOOK_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; hooks: {', '.join(HOOK_NAMES)}"
                raise PluginError(impl.plugin_name, f"implements unknown hook {hook_name!r}{hint}", hook=hook_name)

    # -- what is installed ---------------------------------------------------------------------------------

    def plugin_names(self) -> list[str]:
        """Names of the registered tenant plugins (not the core defaults), sorted."""
        return sorted(name for name, _ in self._pm.list_name_plugin() if name not in INTERNAL_PLUGINS)

    def has(self, name: str) -> bool:
        """True when a tenant plugin of this name is registered (what `tenant create --plugin` checks)."""
        return name not in INTERNAL_PLUGINS and self._pm.has_plugin(name)

    def distribution(self, name: str) -> tuple[str, str] | None:
        """(project name, version) of the installed package providing plugin `name`, if it came from one."""
        return self._dists.get(name)

    def describe(self) -> list[tuple[str, list[str]]]:
        """(plugin name, names of the hooks it implements) for each tenant plugin, sorted by name."""
        result = []
        for name in self.plugin_names():
            plugin = self._pm.get_plugin(name)
            hooks = sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or ())
            result.append((name, hooks))
        return result

    def _dist_label(self, name: str) -> str:
        dist = self._dists.get(name)
        return f"{dist[0]} {dist[1]}" if dist else "registered in code"

    # -- per-tenant dispatch -------------------------------------------------------------------------------

    def _caller(self, tenant: TenantInfo, hook: str) -> pluggy.HookCaller:
        plugin_name = tenant.plugin or ""
        if plugin_name and not self.has(plugin_name):
            raise PluginError(plugin_name, f"is not installed, but tenant {tenant.slug!r} names it", hook=hook)
        key = (plugin_name, hook)
        caller = self._callers.get(key)
        if caller is None:
            others = [
                plugin
                for name, plugin in self._pm.list_name_plugin()
                if name not in INTERNAL_PLUGINS and name != plugin_name
            ]
            caller = self._pm.subset_hook_caller(hook, remove_plugins=others)
            self._callers[key] = caller
        return caller

    def _call(self, tenant: TenantInfo, hook: str, **kwargs: Any) -> Any:
        caller = self._caller(tenant, hook)
        try:
            return caller(tenant=tenant, **kwargs)
        except PluginError:
            raise
        except Exception as exc:
            culprit = _culprit(exc.__traceback__, caller) or tenant.plugin or defaults.PLUGIN_NAME
            raise PluginError(culprit, f"raised {type(exc).__name__}: {exc}", hook=hook) from exc

    def contact_fields(self, tenant: TenantInfo) -> list[FieldSpec]:
        """The tenant's validated form: its plugin's fields, or the core's default form.

        Hooks are declarative (their answer depends on the tenant alone), so the validated answer
        is kept per tenant: every save needs it.
        """
        cached = self._fields.get(tenant)
        if cached is None:
            result = self._call(tenant, "contact_fields")
            if result is None or self._is_default_fields(result):
                cached = tuple(self._default_fields)
            else:
                cached = tuple(validate_fields(tenant.plugin, result))
            self._fields[tenant] = cached
        return list(cached)

    def message_template(
        self, tenant: TenantInfo, event: MessageEvent | str, channel: Channel | str, locale: str | None
    ) -> MessageTemplate:
        """The tenant's validated wording for (event, channel, locale), else the core's.

        An unsupported `locale` falls back to the tenant's default locale, then to Finnish.
        """
        ev = MessageEvent.coerce(event)
        if ev is None:
            raise ValueError(f"unknown message event {event!r}")
        ch = Channel.coerce(channel)
        if ch is None:
            raise ValueError(f"unknown channel {channel!r}")
        loc = resolve_locale(locale, tenant.default_locale)
        result = self._call(tenant, "message_template", event=ev.value, channel=ch.value, locale=loc)
        if result is not None and id(result) not in self._default_template_ids:
            return validate_template(tenant.plugin, result, event=ev.value, channel=ch, locale=loc)
        if result is None:  # cannot happen for a known (event, channel, locale); kept as a safety net
            result = defaults.DEFAULT_TEMPLATES[(ev, ch, loc)]
        return result

    # -- installation-wide ---------------------------------------------------------------------------------

    def key_provider(self, settings: Settings) -> KeyProvider | None:
        """The root key's provider that a plugin offers (a KMS), or None: asked of every plugin, not per
        tenant, in pluggy's order (the last registered first); the first answer wins.

        The answer must fit the `KeyProvider` protocol; an answer that does not, or an exception raised
        inside the hook, is a `PluginError` naming the plugin. The implementations are called one by one,
        as pluggy's firstresult call would, so that the plugin that answered is known.
        """
        hook = "key_provider"
        arguments = {"settings": settings}
        for impl in reversed(self._pm.hook.key_provider.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                raise PluginError(impl.plugin_name, "wraps the hook; key_provider takes no wrappers", hook=hook)
            try:
                result = impl.function(*(arguments[name] for name in impl.argnames))
            except Exception as exc:
                raise PluginError(impl.plugin_name, f"raised {type(exc).__name__}: {exc}", hook=hook) from exc
            if result is None:
                continue
            if not isinstance(result, KeyProvider):
                raise PluginError(
                    impl.plugin_name,
                    f"returned {type(result).__name__}, not a KeyProvider (key_id, wrap, unwrap, opens)",
                    hook=hook,
                )
            if not isinstance(result.key_id, str) or not result.key_id.strip():
                raise PluginError(impl.plugin_name, "returned a KeyProvider without a key_id", hook=hook)
            return result
        return None

    def _is_default_fields(self, result: object) -> bool:
        return (
            isinstance(result, list)
            and len(result) == len(self._default_field_ids)
            and all(id(spec) in self._default_field_ids for spec in result)
        )

    # -- start-up check -----------------------------------------------------------------------------------

    def validate_all(self) -> dict[str, list[FieldSpec]]:
        """Call every tenant plugin's hooks with a probe tenant and validate all they return.

        Raises `PluginError` (naming plugin, hook and field) on the first problem; run at start so that a
        broken plugin stops the start. Returns each plugin's validated fields.
        """
        report: dict[str, list[FieldSpec]] = {}
        for name in self.plugin_names():
            probe = TenantInfo(id=_PROBE_ID, slug="plugin-check", name="Plugin check", plugin=name)
            report[name] = self.contact_fields(probe)
            for event in MessageEvent:
                for channel in Channel:
                    for locale in SUPPORTED_LOCALES:
                        self.message_template(probe, event, channel, locale)
        return report


def _culprit(tb: TracebackType | None, caller: pluggy.HookCaller) -> str | None:
    """The plugin whose hook implementation is the outermost frame of the traceback, if any."""
    codes = {}
    for impl in caller.get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code)
        if name is not None:
            return name
        tb = tb.tb_next
    return None


def format_plugins(registry: PluginRegistry) -> str:
    """A plain-text listing of installed tenant plugins and their hooks, for `rapidly plugins`."""
    rows = [(name, registry._dist_label(name), ", ".join(hooks) or "-") for name, hooks in registry.describe()]
    lines: list[str] = []
    if rows:
        headers = ("PLUGIN", "PACKAGE", "HOOKS")
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(2)]
        for row in [headers, *rows]:
            lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip())
    else:
        lines.append("No tenant plugins installed.")
    lines.append(
        f"Core defaults ({defaults.PLUGIN_NAME}) answer every hook a tenant's plugin leaves unanswered:"
        f" {', '.join(TENANT_HOOKS)}."
    )
    lines.append(f"key_provider is installation-wide; {aws_kms.PLUGIN_NAME} answers it when RAPIDLY_KMS_KEY_ID is set.")
    return "\n".join(lines)
