"""Sealing what was stored before encryption: saved values, chat messages and photos, in place.

Online and resumable: each batch is one short transaction of one tenant's rows (rows a request
holds are skipped and taken by a later batch), each store's unsealed rows are found through a
partial index (migration 0012) that is empty once all are sealed. `serve` runs it in its
maintenance; `rapidly keys encrypt-existing` runs it to the end.

What it cannot reach: a sealed row's earlier, plain version stays in the table's dead tuples until
VACUUM marks the space free and later writes reuse it, in the write-ahead log until its segments are
recycled, and in backups until they are pruned (30 days at most). `VACUUM FULL` (or pg_repack)
rewrites a table without them, at the cost of a lock; see docs/encryption.md.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from rapidly import db, tenancy
from rapidly.chat import service as chat
from rapidly.contacts import service as contacts
from rapidly.media import service as media
from rapidly.storage import Storage

BATCH = 500


def _steps(storage: Storage) -> dict[str, Callable[..., Awaitable[int]]]:
    return {
        "field_values": contacts.seal_existing_values,
        "chat_messages": chat.seal_existing_bodies,
        "photos": functools.partial(media.seal_existing_photos, storage),
    }


async def seal_existing(storage: Storage, *, batch: int = BATCH, max_batches: int | None = None) -> dict[str, int]:
    """Seal every store's unsealed rows, tenant by tenant, `batch` rows at a time (at most
    `max_batches` per tenant and store, when given); how many of each were sealed."""
    sealed = dict.fromkeys(_steps(storage), 0)
    for tenant_id in await db.tenant_ids():
        if tenant_id == tenancy.PLATFORM:
            continue
        with tenancy.as_tenant(tenant_id):
            for name, step in _steps(storage).items():
                for _ in range(max_batches or 2**62):
                    done = await step(tenant_id, batch)
                    sealed[name] += done
                    if done < batch:
                        break
    return sealed
