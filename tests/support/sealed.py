"""Reading what is stored sealed (rapidly/keys), as the service reads it: tests assert on values
opened under their contacts' keys, never on the ciphertext columns."""

from __future__ import annotations

import uuid

import nacl.bindings as sodium
from nacl.utils import random

from rapidly import tenancy
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact


async def opened_values(tenant_id: uuid.UUID) -> list[contacts.SavedValue]:
    """Every saved value of the tenant's contacts, opened, by contact then key."""
    with tenancy.as_tenant(tenant_id):
        ids = [c.id for c in await Contact.filter(tenant_id=tenant_id).order_by("created_at", "id")]
    return [value for values in await contacts.values_by_contact(tenant_id, ids) for value in values]


def sealed_in_the_first_format(key: bytes, plaintext: bytes, where: bytes) -> bytes:
    """`plaintext` sealed as version 1 sealed it (XChaCha20-Poly1305 through PyNaCl, before AES-256-GCM),
    byte for byte as such data lies in a database of before: to prove it still opens."""
    nonce = random(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    return b"\x01" + nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, where, nonce, key)
