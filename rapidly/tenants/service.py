"""Creating and listing tenants. Operators see metadata and counts here, never contact data."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count

from rapidly.errors import InputInvalid, NotFound
from rapidly.plugins import PluginRegistry, TenantInfo
from rapidly.tenants.models import Tenant
from rapidly.validation import SLUG, clean_https_url, clean_locale, clean_slug, clean_text


@dataclass(frozen=True, slots=True)
class TenantSummary:
    slug: str
    name: str
    plugin: str
    default_locale: str
    created_at: str
    staff_count: int
    contact_count: int


async def create_tenant(
    plugins: PluginRegistry,
    *,
    slug: str,
    name: str,
    plugin: str,
    default_locale: str = "fi",
    privacy_policy_url: str | None = None,
) -> Tenant:
    """Validate everything first, so that a bad input creates nothing."""
    slug = clean_slug(slug)
    name = clean_text(name, "name", max_length=200)
    default_locale = clean_locale(default_locale, "default_locale")
    if privacy_policy_url is not None:
        privacy_policy_url = clean_https_url(privacy_policy_url, "privacy_policy_url")
    if not plugins.has(plugin):
        installed = ", ".join(plugins.plugin_names()) or "none"
        raise InputInvalid.one(
            "plugin", "unknown_plugin", f"No plugin of that name is installed (installed: {installed})."
        )
    if await Tenant.exists(slug=slug):
        raise InputInvalid.one("slug", "taken", "A tenant with this slug exists already.")
    try:
        return await Tenant.create(
            slug=slug, name=name, plugin=plugin, default_locale=default_locale, privacy_policy_url=privacy_policy_url
        )
    except IntegrityError:  # created concurrently
        raise InputInvalid.one("slug", "taken", "A tenant with this slug exists already.") from None


async def ensure_tenant(plugins: PluginRegistry, *, slug: str, **details: str) -> Tenant:
    """The tenant with this slug, created with `details` if there is none yet."""
    existing = await Tenant.get_or_none(slug=slug)
    return existing or await create_tenant(plugins, slug=slug, **details)  # type: ignore[arg-type]


async def get_by_slug(slug: str) -> Tenant:
    tenant = await Tenant.get_or_none(slug=slug) if SLUG.fullmatch(slug) else None
    if tenant is None:
        raise NotFound("No such tenant.")
    return tenant


async def list_tenants() -> list[TenantSummary]:
    tenants = await Tenant.annotate(
        staff_count=Count("staff", distinct=True), contact_count=Count("contacts", distinct=True)
    ).order_by("slug")
    return [
        TenantSummary(
            slug=t.slug,
            name=t.name,
            plugin=t.plugin,
            default_locale=t.default_locale,
            created_at=t.created_at.strftime("%Y-%m-%d"),
            staff_count=t.staff_count,  # type: ignore[attr-defined]
            contact_count=t.contact_count,  # type: ignore[attr-defined]
        )
        for t in tenants
    ]


async def plugins_in_use() -> list[tuple[str, str]]:
    """(slug, plugin) of every tenant."""
    return await Tenant.all().values_list("slug", "plugin")  # type: ignore[return-value]


def tenant_info(tenant: Tenant) -> TenantInfo:
    """The read-only view of a tenant that plugins receive."""
    return TenantInfo(
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        plugin=tenant.plugin,
        default_locale=tenant.default_locale,
        privacy_policy_url=tenant.privacy_policy_url,
    )
