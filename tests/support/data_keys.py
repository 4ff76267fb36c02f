"""What the keys a database holds can open, read as its owner and opened with the suite's root key:
tests tell from it whether a ciphertext is still readable by anyone who has that database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from rapidly import db
from rapidly.keys.root import PassphraseProvider
from rapidly.keys.sealing import Unreadable, open_sealed
from rapidly.keys.service import contact_key_place, tenant_place
from tests.conftest import TEST_ROOT_KEY


async def data_keys(url: str, root_key: str = TEST_ROOT_KEY) -> dict[uuid.UUID, bytes]:
    """Every contact data key the database at `url` holds, opened through its tenant's key: by contact."""
    root = PassphraseProvider(root_key)
    conn = await db.Credentials.from_url(url).connect()
    try:
        tenant_keys = {
            row["tenant_id"]: root.unwrap(bytes(row["wrapped"]), tenant_place(row["tenant_id"]))
            for row in await conn.fetch("SELECT tenant_id, wrapped FROM tenant_key")
        }
        return {
            row["contact_id"]: open_sealed(
                tenant_keys[row["tenant_id"]],
                bytes(row["wrapped"]),
                contact_key_place(row["tenant_id"], row["contact_id"]),
            )
            for row in await conn.fetch("SELECT tenant_id, contact_id, wrapped FROM contact_key")
        }
    finally:
        await conn.close()


def opened_by_any(keys: Iterable[bytes], sealed: bytes, where: bytes) -> bytes | None:
    """The plaintext of `sealed` (at its place `where`) under whichever of `keys` opens it; None if none does."""
    for key in keys:
        try:
            return open_sealed(key, sealed, where)
        except Unreadable:
            continue
    return None
