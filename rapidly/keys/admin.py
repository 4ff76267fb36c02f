"""What `rapidly keys status` and `rapidly keys rotate` do: which keys exist, and moving every tenant key
to a new root key.

Both go tenant by tenant (`tenancy.as_tenant`), as the app role under row-level security, and say IDs
and counts only: a root key is named by its `key_id`, a tenant by its slug, and no key, wrapped or not,
is ever shown.

A rotation re-wraps each tenant key that another root key wrapped under the current one; contact keys
and the data they seal stay as they are (a tenant key's bytes do not change, only its envelope, so a
serving process's cached keys stay right). Each row is replaced by one statement that compares and sets
its old `wrapped_by` and `wrapped`: an interruption leaves every row either old or new, and a run again
skips those already under the current key. One rotation at a time per database (an advisory lock).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from rapidly import db, residency, tenancy
from rapidly.config import Settings
from rapidly.errors import StartupRefused
from rapidly.keys.root import KeyProvider, PassphraseProvider
from rapidly.keys.sealing import Unreadable
from rapidly.keys.service import KeyRing, ring_for, tenant_place
from rapidly.plugins import PluginRegistry

#: One `rapidly keys rotate` at a time on a database; the second is refused at once.
ROTATION_LOCK_ID = 0x524B4559  # "RKEY"
#: A `wrapped_by` is ours to print (it names a root key); one altered in the database is cut short.
_SHOWN = 120

_TENANT_KEY = "SELECT wrapped, wrapped_by FROM tenant_key WHERE tenant_id = $1"
_CONTACT_KEYS = "SELECT count(*) FROM contact_key WHERE tenant_id = $1"
_REWRAP = (
    "UPDATE tenant_key SET wrapped = $2, wrapped_by = $3 WHERE tenant_id = $1 AND wrapped_by = $4 AND wrapped = $5"
)


@dataclass(frozen=True)
class RootKey:
    """A configured root key, by its ID and where it comes from (a setting's name, never its value)."""

    key_id: str
    source: str
    current: bool


@dataclass(frozen=True)
class Configured:
    """The configured root keys, the current one first, as a key ring and as described."""

    ring: KeyRing
    roots: list[RootKey]

    @property
    def current(self) -> KeyProvider:
        return self.ring.current


def configured(settings: Settings, plugins: PluginRegistry) -> Configured:
    """The root keys the settings name, each with where it comes from; `StartupRefused` when there is
    no current one (`ring_for`)."""
    ring = ring_for(settings, plugins)
    roots = []
    for n, provider in enumerate(ring.providers):
        if n and settings.previous_root_key and n == len(ring.providers) - 1:
            source = "RAPIDLY_PREVIOUS_ROOT_KEY"
        elif not isinstance(provider, PassphraseProvider):
            source = f"key_provider plugin, {type(provider).__name__}"
        elif settings.root_key:
            source = "RAPIDLY_ROOT_KEY"
        else:
            source = f"generated, in {(settings.data_dir / 'root_key').resolve()}"
        roots.append(RootKey(provider.key_id, source, current=n == 0))
    return Configured(ring, roots)


async def _kms_resident(settings: Settings) -> None:
    """A KMS is handed tenant keys to open and to wrap: where it is is checked first, as `serve` does."""
    if not settings.kms_key_id:
        return
    verdict = (await residency.check_residency(settings)).get("kms")
    if not verdict.ok:
        raise StartupRefused("residency", f"data must stay in the EU/EEA: kms: {verdict.status}: {verdict.message}")


def _shown(key_id: str) -> str:
    return key_id[:_SHOWN]


def _why_not(ring: KeyRing, wrapped_by: str) -> str:
    """Why a tenant key wrapped by `wrapped_by` did not open."""
    if any(provider.opens(wrapped_by) for provider in ring.providers):
        return (
            f"its key does not open with the root key {_shown(wrapped_by)} "
            "(the row is altered, or another key has that ID)"
        )
    hint = " (set its passphrase as RAPIDLY_PREVIOUS_ROOT_KEY)" if wrapped_by.startswith("passphrase:") else ""
    return f"its key is wrapped by {_shown(wrapped_by)}, which no configured root key opens{hint}"


async def _tenants() -> list[tuple[uuid.UUID, str]]:
    """Every tenant's (ID, slug), by slug (the tenant table is the one every role reads whole)."""
    from rapidly.tenants.models import Tenant

    return await Tenant.all().order_by("slug").values_list("id", "slug")  # type: ignore[return-value]


async def _tenant_key(tenant_id: uuid.UUID) -> tuple[bytes, str] | None:
    with tenancy.as_tenant(tenant_id):
        async with db.connection() as conn:
            row = await conn.fetchrow(_TENANT_KEY, tenant_id)
    return None if row is None else (bytes(row["wrapped"]), row["wrapped_by"])


# -- status -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantKeys:
    slug: str
    #: The root key that wrapped its key; None while it has none (made with its first contact).
    wrapped_by: str | None
    contact_keys: int
    #: Why its key does not open with the configured root keys; None when it opens (or there is none).
    problem: str | None = None


@dataclass(frozen=True)
class Status:
    roots: list[RootKey]
    tenants: list[TenantKeys]

    @property
    def by_root_key(self) -> Counter[str]:
        """How many tenant keys each root key wrapped, the most first."""
        return Counter(_shown(t.wrapped_by) for t in self.tenants if t.wrapped_by is not None)

    @property
    def tenant_keys(self) -> int:
        return sum(self.by_root_key.values())

    @property
    def contact_keys(self) -> int:
        return sum(t.contact_keys for t in self.tenants)

    @property
    def not_opening(self) -> list[TenantKeys]:
        return [t for t in self.tenants if t.problem is not None]

    def as_json(self, *, tenants: bool = False) -> dict:
        shown: dict = {
            "root_keys": [{"key_id": r.key_id, "source": r.source, "current": r.current} for r in self.roots],
            "tenants": len(self.tenants),
            "tenant_keys": {
                "total": self.tenant_keys,
                "by_root_key": dict(self.by_root_key.most_common()),
                "not_opening": len(self.not_opening),
            },
            "not_opening": [{"tenant": t.slug, "why": t.problem} for t in self.not_opening],
            "contact_keys": {"total": self.contact_keys},
        }
        if tenants:
            shown["contact_keys"]["by_tenant"] = {t.slug: t.contact_keys for t in self.tenants}
            shown["by_tenant"] = [
                {
                    "tenant": t.slug,
                    "root_key": None if t.wrapped_by is None else _shown(t.wrapped_by),
                    "opens": None if t.wrapped_by is None else t.problem is None,
                    "contact_keys": t.contact_keys,
                }
                for t in self.tenants
            ]
        return shown

    def lines(self, *, tenants: bool = False) -> list[str]:
        """For people."""
        lines = [f"root key:      {r.key_id} ({r.source})" for r in self.roots if r.current]
        lines += [f"previous:      {r.key_id} ({r.source})" for r in self.roots if not r.current]
        without = len(self.tenants) - self.tenant_keys
        none_yet = f" ({without} of {len(self.tenants)} tenants have none yet: made with the first contact)"
        lines.append(f"tenant keys:   {self.tenant_keys}{none_yet if without else ''}")
        for key_id, count in self.by_root_key.most_common():
            lines.append(f"  {count:>8}  under {key_id} ({self._role(key_id)})")
        lines.append(f"contact keys:  {self.contact_keys}")
        if tenants and self.tenants:
            table = [("tenant", "root key", "opens", "contact keys")]
            table += [
                (
                    t.slug,
                    "-" if t.wrapped_by is None else _shown(t.wrapped_by),
                    "-" if t.wrapped_by is None else ("no" if t.problem else "yes"),
                    str(t.contact_keys),
                )
                for t in self.tenants
            ]
            widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
            lines += ["", *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)]
        lines.append("")
        if not self.not_opening:
            lines.append("every tenant key opens with the configured root keys")
        else:
            lines.append(f"tenant keys that do not open with the configured root keys: {len(self.not_opening)}")
            lines += [f"  {t.slug}: {t.problem}" for t in self.not_opening]
        return lines

    def _role(self, key_id: str) -> str:
        root = next((r for r in self.roots if r.key_id == key_id), None)
        if root is None:
            return "not configured"
        if root.current:
            return "the root key"
        return f"{root.source}: `rapidly keys rotate` re-wraps them under the root key"


async def status(settings: Settings, keys: Configured) -> Status:
    """Every tenant's key (by the root key that wrapped it, and whether it opens) and its count of
    contact keys."""
    await _kms_resident(settings)
    found = []
    for tenant_id, slug in await _tenants():
        with tenancy.as_tenant(tenant_id):
            async with db.connection() as conn:
                row = await conn.fetchrow(_TENANT_KEY, tenant_id)
                contact_keys = await conn.fetchval(_CONTACT_KEYS, tenant_id)
        problem = None
        if row is not None:
            try:
                await keys.ring.unwrap(row["wrapped"], row["wrapped_by"], tenant_place(tenant_id))
            except Unreadable:
                problem = _why_not(keys.ring, row["wrapped_by"])
        found.append(TenantKeys(slug, None if row is None else row["wrapped_by"], contact_keys, problem))
    return Status(keys.roots, found)


# -- rotate -----------------------------------------------------------------------------------------


class RotationUnderWay(Exception):
    """Another `rapidly keys rotate` holds the database's rotation lock."""


class RotationFailed(Exception):
    """The current root key cannot take the tenant keys (it does not open what it wraps): nothing more is
    changed. The message names the root key and the tenant, never a key."""


@dataclass(frozen=True)
class Step:
    """What became of one tenant's key: re-wrapped; left as it is, as no configured root key opens
    it; or nothing left to do (re-wrapped meanwhile, or its tenant deleted)."""

    slug: str
    outcome: Literal["rewrapped", "unreadable", "skipped"]
    why: str = ""


@dataclass
class Rotation:
    key_id: str
    #: Tenant keys there are, and those that were not under the current root key when it began.
    total: int = 0
    to_rewrap: int = 0
    rewrapped: int = 0
    unreadable: list[Step] = field(default_factory=list)
    skipped: int = 0
    #: Asked to stop before every tenant key of `to_rewrap` was dealt with.
    stopped: bool = False

    @property
    def done(self) -> int:
        """Tenant keys of `to_rewrap` dealt with so far, one way or another."""
        return self.rewrapped + len(self.unreadable) + self.skipped


@asynccontextmanager
async def _rotation_lock(settings: Settings) -> AsyncIterator[None]:
    """The database's rotation lock, on a connection of its own for as long as the rotation runs."""
    conn = await db.app_credentials(settings, db.owner_credentials(settings)).connect()
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ROTATION_LOCK_ID):
            raise RotationUnderWay(
                "another `rapidly keys rotate` is under way on this database: let it finish (or stop it), "
                "then run it again if it did not"
            )
        yield
    finally:
        await conn.close()  # releases the lock with the session


async def rotate(
    settings: Settings,
    keys: Configured,
    *,
    progress: Callable[[Rotation, Step | None], object] = lambda rotation, step: None,
    stop: Callable[[], bool] = lambda: False,
) -> Rotation:
    """Re-wrap every tenant key that another root key wrapped under the current one, a tenant at a
    time. `progress` is told once the work is known (step None) and after each such tenant; `stop` is
    asked before each, and a True ends the rotation there (run it again to go on). A tenant key that no
    configured root key opens is left as it is and listed in `unreadable`."""
    current = keys.current
    rotation = Rotation(current.key_id)
    await _kms_resident(settings)
    async with _rotation_lock(settings):
        todo = []
        for tenant_id, slug in await _tenants():
            found = await _tenant_key(tenant_id)
            if found is not None:
                rotation.total += 1
                if found[1] != current.key_id:
                    todo.append((tenant_id, slug))
        rotation.to_rewrap = len(todo)
        progress(rotation, None)
        for tenant_id, slug in todo:
            if stop():
                rotation.stopped = True
                break
            step = await _rewrap(keys.ring, tenant_id, slug)
            if step.outcome == "rewrapped":
                rotation.rewrapped += 1
            elif step.outcome == "unreadable":
                rotation.unreadable.append(step)
            else:
                rotation.skipped += 1
            progress(rotation, step)
    return rotation


async def _rewrap(ring: KeyRing, tenant_id: uuid.UUID, slug: str) -> Step:
    """One tenant's key, re-wrapped under the current root key in one statement (compare and set)."""
    current = ring.current
    found = await _tenant_key(tenant_id)
    if found is None or found[1] == current.key_id:
        return Step(slug, "skipped")
    wrapped, wrapped_by = found
    where = tenant_place(tenant_id)
    try:
        key = await ring.unwrap(wrapped, wrapped_by, where)
    except Unreadable:
        return Step(slug, "unreadable", _why_not(ring, wrapped_by))
    rewrapped = await asyncio.to_thread(current.wrap, key, where)
    try:  # a root key that wraps but cannot open (a KMS key without kms:Decrypt) would lose the tenant's data
        opens = await asyncio.to_thread(current.unwrap, rewrapped, where) == key
    except Unreadable:
        opens = False
    if not opens:
        raise RotationFailed(
            f"the root key {_shown(current.key_id)} does not open the key it wrapped for tenant {slug}: "
            "check it (a KMS key needs kms:Encrypt and kms:Decrypt); that tenant's key was left as it is"
        )
    with tenancy.as_tenant(tenant_id):
        async with db.connection() as conn:
            done = await conn.execute(_REWRAP, tenant_id, rewrapped, current.key_id, wrapped_by, wrapped)
    return Step(slug, "rewrapped" if done == "UPDATE 1" else "skipped")
