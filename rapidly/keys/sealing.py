"""Authenticated encryption of one value under one key, bound to its place.

AES-256-GCM through `cryptography` (OpenSSL, with the processor's AES instructions): a page of 50
contacts opens 250 sealed values and keys, and a photo is opened whole each time it is served, so
the cipher's speed shows (bench/sealing.py: a value opens in 1.3 µs and a 700 kB photo in 0.05 ms,
2.8 and 9.8 times faster than with libsodium's XChaCha20-Poly1305 through PyNaCl). A sealed value is

    VERSION (1 byte) | nonce (12 bytes, random) | ciphertext and tag (16 bytes more than the plaintext)

and its associated data is its `place`: what it is and whose (tenant, contact, field or item), so a
ciphertext copied to another row, contact or tenant fails to open.

Random 96-bit nonces are safe for up to 2**32 seals under one key; a key here seals one contact's
values and photos (a contact key), one company's contact keys (a tenant key) or a deployment's
tenant keys (the root key), each far fewer. What was sealed in version 1 (XChaCha20-Poly1305, a
24-byte nonce, before this cipher) still opens; a value's next save seals it in the current one.
"""

from __future__ import annotations

import os
import uuid

import nacl.bindings as sodium
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError

#: The current format: AES-256-GCM.
VERSION = b"\x02"
#: The first format: XChaCha20-Poly1305 (IETF), opened only.
_XCHACHA = b"\x01"
KEY_BYTES = 32
_NONCE = 12
_TAG = 16
#: Up to this size, slices cost less than a memoryview's set-up (a value; not a photo).
_COPY_IS_CHEAP = 64 * 1024
#: What sealing adds to a plaintext's length.
OVERHEAD = len(VERSION) + _NONCE + _TAG
_XCHACHA_NONCE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_XCHACHA_OVERHEAD = len(_XCHACHA) + _XCHACHA_NONCE + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES


class Unreadable(Exception):
    """A sealed value that does not open: another place's, altered, truncated, or its key is gone.
    The message names the place by its kind and IDs only."""


def place(kind: str, tenant_id: uuid.UUID, contact_id: uuid.UUID | None = None, item: str = "") -> bytes:
    """The associated data of a sealed value: its kind and whose it is (IDs and keys only)."""
    return f"rapidly/{kind}/{tenant_id}/{contact_id or ''}/{item}".encode()


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, where: bytes) -> bytes:
    if len(key) != KEY_BYTES:  # AESGCM would take a 16- or 24-byte key as AES-128 or AES-192
        raise ValueError(f"a sealing key is {KEY_BYTES} bytes")
    nonce = os.urandom(_NONCE)
    return b"".join((VERSION, nonce, AESGCM(key).encrypt(nonce, plaintext, where)))  # one copy of a photo, not two


def open_sealed(key: bytes, sealed: bytes, where: bytes) -> bytes:
    """The plaintext of `sealed`; `Unreadable` when it does not open at `where` with `key`."""
    version = sealed[:1]
    try:
        if len(key) != KEY_BYTES:
            raise ValueError("not a 256-bit key")
        if version == VERSION and len(sealed) >= OVERHEAD:
            # A photo through a view, not slices: copying its megabyte took longer than opening it.
            view = memoryview(sealed) if len(sealed) > _COPY_IS_CHEAP else sealed
            return AESGCM(key).decrypt(view[1 : 1 + _NONCE], view[1 + _NONCE :], where)
        if version == _XCHACHA and len(sealed) >= _XCHACHA_OVERHEAD:
            nonce, body = sealed[1 : 1 + _XCHACHA_NONCE], sealed[1 + _XCHACHA_NONCE :]
            return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(body, where, nonce, key)
    except (InvalidTag, CryptoError, ValueError):  # ValueError: a key of the wrong length
        raise Unreadable(f"a sealed value does not open ({where.decode(errors='replace')})") from None
    raise Unreadable(f"not a sealed value ({where.decode(errors='replace')})")


def is_sealed(data: bytes) -> bool:
    """Looks like a sealed value (a version byte and its length); only opening it tells for sure."""
    version = data[:1]
    return (version == VERSION and len(data) >= OVERHEAD) or (version == _XCHACHA and len(data) >= _XCHACHA_OVERHEAD)
