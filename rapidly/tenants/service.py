"""Creating and listing tenants. Operators see metadata and counts here, never contact data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from rapidly import db, tenancy
from rapidly.errors import InputInvalid, NotFound
from rapidly.plugins import PluginRegistry, TenantInfo
from rapidly.tenants.models import Tenant
from rapidly.tenants.origins import MAX_ORIGINS, clean_origin, listed
from rapidly.validation import SLUG, clean_https_url, clean_locale, clean_slug, clean_text

M = TypeVar("M", bound=Model)
_TENANT_COLUMNS = tuple(sorted(Tenant._meta.db_fields))  # sorted: a routine's definition must not vary
#: The tenant's columns as `t_<column>`, for a plain statement that joins `tenant t` to load a row
#: with its tenant in one round trip (`tenant_of_row` reads them back).
TENANT_SELECT = ", ".join(f"t.{f} AS t_{f}" for f in _TENANT_COLUMNS)
#: Their names and types, for the rows of a `db.Routine` that selects `TENANT_SELECT`.
TENANT_ROW = ", ".join(
    f"t_{column} {Tenant._meta.fields_map[column].get_for_dialect('postgres', 'SQL_TYPE').lower()}"
    for column in _TENANT_COLUMNS
)


def tenant_of_row(row: Mapping[str, object]) -> Tenant:
    """The tenant of a row selected with `TENANT_SELECT`."""
    return Tenant._init_from_db(**{f: row[f"t_{f}"] for f in _TENANT_COLUMNS})


async def fetch_with_tenant(model: type[M], columns: Sequence[str], routine: db.Routine, token_hash: str) -> M | None:
    """The row of `routine` (its `columns`, then `TENANT_SELECT`) for a token's hash, as a `model`
    with its tenant loaded; None when there is none. For the lookups every request starts with (a
    token's contact or staff member): one round trip, where the ORM's query builder cost more than
    the query and the tenant, then the row as it, took four.

    A token names no tenant: the routine's `tenant_of`, a function of migration 0008, finds it
    across tenants; the row is read as that tenant, to which the request is then bound (a request
    bound to another gets `AnotherTenant`, as it would before the read)."""
    rows = await routine.fetch_found(token_hash)
    if not rows:
        return None
    row = rows[0]
    tenancy.claim(row["t_id"])
    found = model._init_from_db(**{f: row[f] for f in columns})
    found.tenant = tenant_of_row(row)  # type: ignore[attr-defined]
    return found


MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True, slots=True)
class TenantSummary:
    slug: str
    name: str
    plugin: str
    default_locale: str
    created_at: str
    staff_count: int
    contact_count: int
    retention_days: int | None


async def create_tenant(
    plugins: PluginRegistry,
    *,
    slug: str,
    name: str,
    plugin: str,
    default_locale: str = "fi",
    privacy_policy_url: str | None = None,
    retention_days: int | None = None,
) -> Tenant:
    """Validate everything first, so that a bad input creates nothing."""
    slug = clean_slug(slug)
    retention_days = clean_retention_days(retention_days)
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
            slug=slug,
            name=name,
            plugin=plugin,
            default_locale=default_locale,
            privacy_policy_url=privacy_policy_url,
            retention_days=retention_days,
        )
    except IntegrityError:  # created concurrently
        raise InputInvalid.one("slug", "taken", "A tenant with this slug exists already.") from None


def clean_retention_days(days: int | None) -> int | None:
    """None keeps contacts until they are erased; otherwise 1 to 3650 days after the last activity."""
    if days is not None and not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise InputInvalid.one(
            "retention_days", "out_of_range", f"Keep contacts {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} days."
        )
    return days


async def set_retention(slug: str, days: int | None) -> Tenant:
    """Contacts inactive for longer than `days` are erased by the sweeper; None switches it off."""
    days = clean_retention_days(days)
    tenant = await get_by_slug(slug)
    tenant.retention_days = days
    with tenancy.as_tenant(tenant.id):  # a tenant's row changes only as that tenant (migration 0008)
        await tenant.save(update_fields=["retention_days", "updated_at"])
    return tenant


async def change_origins(slug: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Tenant:
    """Add and remove allowed origins (see `rapidly.tenants.origins`); every input is checked first,
    so a bad one changes nothing. Adding a listed origin again changes nothing; removing one that is
    not listed is an error (a typo must not pass for a removal)."""
    added = [clean_origin(origin, "add") for origin in add]
    removed = [clean_origin(origin, "remove") for origin in remove]

    def changed(origins: list[str]) -> list[str]:
        if missing := [origin for origin in removed if origin not in origins]:
            raise InputInvalid.one("remove", "not_listed", f"Not among the allowed origins: {', '.join(missing)}.")
        kept = [origin for origin in origins if origin not in removed]
        return kept + [origin for origin in dict.fromkeys(added) if origin not in kept]

    return await _update_origins(slug, changed)


async def set_origins(slug: str, origins: Sequence[str]) -> Tenant:
    """Exactly these allowed origins (the demo's sample site, whatever port it has this time)."""
    wanted = list(dict.fromkeys(clean_origin(origin) for origin in origins))
    return await _update_origins(slug, lambda _: wanted)


async def _update_origins(slug: str, change: Callable[[list[str]], list[str]]) -> Tenant:
    """The tenant's origins replaced by `change(origins)`, under a row lock; this process's CORS
    layer reads them again once the change is committed."""
    found = await get_by_slug(slug)
    with tenancy.as_tenant(found.id):  # a tenant's row changes only as that tenant (migration 0008)
        async with db.transaction() as conn:
            tenant = await Tenant.filter(id=found.id).using_db(conn).select_for_update().first()
            if tenant is None:
                raise NotFound("No such tenant.")
            origins = change(list(tenant.allowed_origins or []))
            if len(origins) > MAX_ORIGINS:
                raise InputInvalid.one("add", "too_many", f"A company may list at most {MAX_ORIGINS} origins.")
            if origins != tenant.allowed_origins:
                tenant.allowed_origins = origins
                await tenant.save(using_db=conn, update_fields=["allowed_origins", "updated_at"])
                db.on_commit(listed.forget)
    return tenant


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
    """Every tenant with its counts, each counted as that tenant (an operator's command)."""
    summaries = []
    for t in await Tenant.all().order_by("slug"):
        with tenancy.as_tenant(t.id):
            staff_count = await t.staff.all().count()  # type: ignore[attr-defined]
            contact_count = await t.contacts.all().count()  # type: ignore[attr-defined]
        summaries.append(
            TenantSummary(
                slug=t.slug,
                name=t.name,
                plugin=t.plugin,
                default_locale=t.default_locale,
                created_at=t.created_at.strftime("%Y-%m-%d"),
                staff_count=staff_count,
                contact_count=contact_count,
                retention_days=t.retention_days,
            )
        )
    return summaries


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
