"""A process's key ring: the tenant keys it has opened, and each contact's data key on demand.

A tenant key is opened through the root key's provider once per process and then kept in memory
(with a KMS, that is one call per tenant key per process, never one per request). A contact's data
key is unsealed from its row each time it is needed: it costs microseconds, and a key that is
erased is then gone from every process at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, tenancy
from rapidly.config import Settings
from rapidly.erasure.erasers import SqlEraser
from rapidly.errors import StartupRefused, is_unavailable
from rapidly.keys.aws_kms import KeyServiceRefused
from rapidly.keys.root import KeyProvider, root_providers
from rapidly.keys.sealing import Unreadable, new_key, open_sealed, place, seal
from rapidly.plugins import PluginRegistry

log = logging.getLogger(__name__)

#: Erasure's first step: with the data key gone, the contact's every sealed value is unreadable
#: whatever happens to the steps after it.
ERASER = SqlEraser("contact_key", "DELETE FROM contact_key WHERE tenant_id = $1 AND contact_id = $2")

_TENANT_KEY = "SELECT wrapped, wrapped_by FROM tenant_key WHERE tenant_id = $1"
_ADD_TENANT_KEY = (
    "INSERT INTO tenant_key (id, tenant_id, wrapped, wrapped_by, created_at) "
    "VALUES (gen_random_uuid(), $1, $2, $3, now()) ON CONFLICT (tenant_id) DO NOTHING"
)
_CONTACT_KEYS = "SELECT contact_id, wrapped FROM contact_key WHERE tenant_id = $1 AND contact_id = ANY($2::uuid[])"
_ADD_CONTACT_KEY = (
    "INSERT INTO contact_key (id, tenant_id, contact_id, wrapped) VALUES (gen_random_uuid(), $1, $2, $3) "
    "ON CONFLICT (contact_id) DO NOTHING"
)


def tenant_place(tenant_id: uuid.UUID) -> bytes:
    return place("tenant-key", tenant_id)


def contact_key_place(tenant_id: uuid.UUID, contact_id: uuid.UUID) -> bytes:
    return place("contact-key", tenant_id, contact_id)


class KeyRing:
    def __init__(self, providers: Sequence[KeyProvider]) -> None:
        if not providers:
            raise ValueError("a key ring needs a root key")
        self.providers = list(providers)
        self._tenant_keys: dict[uuid.UUID, bytes] = {}
        self._opening: dict[uuid.UUID, asyncio.Lock] = {}

    @property
    def current(self) -> KeyProvider:
        """The provider new tenant keys are wrapped by (the others only open old ones)."""
        return self.providers[0]

    # -- tenant keys -------------------------------------------------------------------------------
    async def tenant_key(self, tenant_id: uuid.UUID) -> bytes:
        """The tenant's key, opened once per process; made (and stored wrapped) on first need."""
        if (key := self._tenant_keys.get(tenant_id)) is not None:
            return key
        async with self._opening.setdefault(tenant_id, asyncio.Lock()):
            if (key := self._tenant_keys.get(tenant_id)) is None:
                key = self._tenant_keys[tenant_id] = await self._open_or_make(tenant_id)
        return key

    async def _open_or_make(self, tenant_id: uuid.UUID) -> bytes:
        where = tenant_place(tenant_id)
        with tenancy.scoped(tenant_id):
            async with db.connection() as conn:
                row = await conn.fetchrow(_TENANT_KEY, tenant_id)
                if row is None:
                    key = new_key()
                    wrapped = await asyncio.to_thread(self.current.wrap, key, where)
                    await conn.execute(_ADD_TENANT_KEY, tenant_id, wrapped, self.current.key_id)
                    row = await conn.fetchrow(_TENANT_KEY, tenant_id)  # another process's, if it came first
        return await self.unwrap(row["wrapped"], row["wrapped_by"], where)

    async def unwrap(self, wrapped: bytes, wrapped_by: str, where: bytes) -> bytes:
        """A tenant key opened by whichever configured root key wrapped it; `Unreadable` if none did."""
        provider = next((p for p in self.providers if p.opens(wrapped_by)), None)
        if provider is None:
            raise Unreadable(f"no configured root key opens a tenant key wrapped by {wrapped_by[:120]}")
        return await asyncio.to_thread(provider.unwrap, bytes(wrapped), where)

    # -- contact keys ------------------------------------------------------------------------------
    async def new_contact_key(self, conn: BaseDBAsyncClient, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> bytes:
        """A data key for a contact that has none, stored wrapped in the caller's transaction; the
        key the contact has, when it has one already (a contact from before encryption)."""
        key = new_key()
        wrapped = seal(await self.tenant_key(tenant_id), key, contact_key_place(tenant_id, contact_id))
        await conn.execute_query(_ADD_CONTACT_KEY, [tenant_id, contact_id, wrapped])
        _, rows = await conn.execute_query(_CONTACT_KEYS, [tenant_id, [contact_id]])
        return await self.open_contact_key(tenant_id, contact_id, rows[0]["wrapped"])

    async def contact_key(
        self, tenant_id: uuid.UUID, contact_id: uuid.UUID, conn: BaseDBAsyncClient | None = None
    ) -> bytes | None:
        """The contact's data key; None when it has none (erased, or from before encryption)."""
        return (await self.contact_keys(tenant_id, [contact_id], conn)).get(contact_id)

    async def contact_keys(
        self, tenant_id: uuid.UUID, contact_ids: Sequence[uuid.UUID], conn: BaseDBAsyncClient | None = None
    ) -> dict[uuid.UUID, bytes]:
        """The data keys of those of the tenant's contacts that have one (and whose key opens), in one
        statement."""
        if conn is not None:
            _, rows = await conn.execute_query(_CONTACT_KEYS, [tenant_id, list(contact_ids)])
        else:
            with tenancy.scoped(tenant_id):
                async with db.connection() as plain:
                    rows = await plain.fetch(_CONTACT_KEYS, tenant_id, list(contact_ids))
        opened = {}
        for row in rows:
            try:
                opened[row["contact_id"]] = await self.open_contact_key(tenant_id, row["contact_id"], row["wrapped"])
            except Unreadable:  # an altered key row: as good as gone, and said so by its ID only
                log.error("the key of contact %s does not open: its data is not shown", row["contact_id"])
        return opened

    async def open_contact_key(self, tenant_id: uuid.UUID, contact_id: uuid.UUID, wrapped: bytes) -> bytes:
        return open_sealed(await self.tenant_key(tenant_id), bytes(wrapped), contact_key_place(tenant_id, contact_id))

    async def key_for_writing(self, conn: BaseDBAsyncClient, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> bytes:
        """The contact's data key, made now if it has none yet; in the caller's transaction."""
        return await self.contact_key(tenant_id, contact_id, conn) or await self.new_contact_key(
            conn, tenant_id, contact_id
        )

    # -- the start ---------------------------------------------------------------------------------
    async def open_every_tenant_key(self) -> tuple[int, int]:
        """Open every tenant key there is: (opened, not opened). What the start checks."""
        opened = failed = 0
        for tenant_id in await db.tenant_ids():
            if tenant_id == tenancy.PLATFORM:
                continue
            with tenancy.scoped(tenant_id):
                async with db.connection() as conn:
                    row = await conn.fetchrow(_TENANT_KEY, tenant_id)
            if row is None:
                continue  # made on first need
            try:
                self._tenant_keys[tenant_id] = await self.unwrap(
                    row["wrapped"], row["wrapped_by"], tenant_place(tenant_id)
                )
                opened += 1
            except Unreadable:
                failed += 1
        return opened, failed


_ring: KeyRing | None = None


def ring() -> KeyRing:
    """This process's key ring (`start` makes it)."""
    if _ring is None:
        raise RuntimeError("the key ring is not started (rapidly.keys.service.start)")
    return _ring


def ring_for(settings: Settings, plugins: PluginRegistry) -> KeyRing:
    """A key ring for the configured root key; `StartupRefused` when there is none."""
    providers = root_providers(settings, plugins)
    if not providers and settings.previous_root_key:  # it would be taken for the current one
        raise StartupRefused(
            "root-key",
            "RAPIDLY_PREVIOUS_ROOT_KEY is set but no current root key is: set RAPIDLY_ROOT_KEY (or "
            "RAPIDLY_KMS_KEY_ID) to the new root key, and keep the old one as RAPIDLY_PREVIOUS_ROOT_KEY",
        )
    if not providers:
        raise StartupRefused(
            "root-key",
            "RAPIDLY_ROOT_KEY is not set, and contact data is encrypted under it: set a passphrase of at least "
            "32 characters, kept where neither the database, its backups nor the object storage is, or name a "
            "key management service (RAPIDLY_KMS_KEY_ID)",
        )
    return KeyRing(providers)


async def start(settings: Settings, plugins: PluginRegistry) -> KeyRing:
    """Make this process's key ring and open every tenant key with it: a root key that opens none
    of them, or not all, refuses the start (once, naming how many), not each request after it."""
    global _ring
    keys = ring_for(settings, plugins)
    try:
        opened, failed = await keys.open_every_tenant_key()
    except KeyServiceRefused as exc:
        raise StartupRefused(
            "key-service",
            f"the root key's key management service refused ({exc}): check RAPIDLY_KMS_KEY_ID and the "
            "credentials' permissions (kms:Encrypt, kms:Decrypt), then start again",
        ) from None
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise StartupRefused(
            "key-service",
            f"the root key's key management service cannot be reached ({type(exc).__name__}): check "
            "RAPIDLY_KMS_ENDPOINT_URL, RAPIDLY_KMS_REGION and the network, then start again",
        ) from None
    if failed:
        raise StartupRefused(
            "root-key",
            f"the root key does not open the keys of {failed} of {opened + failed} tenants: start with the "
            "root key they were made with (RAPIDLY_ROOT_KEY), or with it as RAPIDLY_PREVIOUS_ROOT_KEY "
            "beside the new one and run `rapidly keys rotate`",
        )
    _ring = keys
    return keys
