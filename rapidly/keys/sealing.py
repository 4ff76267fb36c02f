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

A photo is sealed in segments (version 3), so that it can be served as it is opened: its first bytes
go out before its last are read, and a request holds one segment, not the whole image, in memory. A
tag over the whole object would let nothing out before all of it was read and checked. The framing is
the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015), as Tink's streaming AEAD and age
use it: each segment of `SEGMENT` bytes is sealed on its own, its nonce the object's random 7-byte
prefix, the segment's number and whether it is the last, so segments cannot be reordered, dropped,
repeated or cut off at a boundary without failing to open:

    SEGMENTED (1 byte) | prefix (7 bytes, random) | segment 0 | segment 1 | ... | last segment
    segment i = AES-256-GCM(key, nonce = prefix | i (4 bytes, big-endian) | last (1 byte), place)

A 56-bit random prefix is safe for up to 2**20 objects under one key (a collision of two prefixes,
below 2**-16, would repeat nonces); a contact key seals one contact's photos, a few dozen at most.
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
#: AES-256-GCM in segments (a photo): opened as it is read.
SEGMENTED = b"\x03"
#: Plaintext bytes per segment: small enough for a first byte soon, large enough that the tags
#: (16 bytes each, 0.02 %) and one AEAD call per segment cost nothing measurable.
SEGMENT = 64 * 1024
_PREFIX = 7
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
    aead = _aead(key)
    nonce = os.urandom(_NONCE)
    return b"".join((VERSION, nonce, aead.encrypt(nonce, plaintext, where)))  # one copy of a photo, not two


def seal_segmented(key: bytes, plaintext: bytes, where: bytes) -> bytes:
    """`plaintext` sealed in segments, to be opened as it is read (`SegmentOpener`)."""
    aead = _aead(key)
    prefix = os.urandom(_PREFIX)
    view = memoryview(plaintext)
    count = max(1, -(-len(plaintext) // SEGMENT))  # an empty plaintext is one empty last segment
    segments = (
        aead.encrypt(_segment_nonce(prefix, i, i == count - 1), view[i * SEGMENT : (i + 1) * SEGMENT], where)
        for i in range(count)
    )
    return b"".join((SEGMENTED, prefix, *segments))


class SegmentOpener:
    """Opens a segmented seal fed in pieces of any size: each `feed` returns the plaintext of the
    segments it completed, `end` that of the last one. `Unreadable` as soon as a segment does not
    open; nothing of it is returned, and the opener is done (it refuses whatever comes after). A
    segment is known to be the last only when the input ends, so one full segment waits for the byte
    after it."""

    def __init__(self, key: bytes, where: bytes) -> None:
        self._aead = _aead(key)
        self._where = where
        self._pending = bytearray()
        self._prefix: bytes | None = None
        self._index = 0
        self._failed = False

    def feed(self, data: bytes) -> bytes:
        self._refuse_after_failure()
        self._pending += data
        with memoryview(self._pending) as pending:
            opened, used = self._open_segments(pending, ended=False)
        del self._pending[:used]  # once per piece: the rest of a piece moves once, not once per segment
        return opened

    def end(self) -> bytes:
        self._refuse_after_failure()
        with memoryview(self._pending) as pending:
            opened, _ = self._open_segments(pending, ended=True)
        self._pending.clear()
        return opened

    def _refuse_after_failure(self) -> None:
        if self._failed:  # its buffer may still be held by the failure's traceback: never reused
            raise Unreadable(f"a segmented seal that did not open ({self._named()})")

    def open_whole(self, sealed: bytes) -> bytes:
        """All of a segmented seal at once, read where it lies (no copy of it)."""
        with memoryview(sealed) as view:
            return self._open_segments(view, ended=True)[0]

    def _open_segments(self, data: memoryview, ended: bool) -> tuple[bytes, int]:
        """The plaintext of the segments complete in `data`, and how many bytes of it they took."""
        try:
            return self._open_complete(data, ended)
        except Unreadable:
            self._failed = True
            raise

    def _open_complete(self, data: memoryview, ended: bool) -> tuple[bytes, int]:
        at = 0
        if self._prefix is None:
            if len(data) < 1 + _PREFIX + (_TAG if ended else 0):
                if ended:
                    raise Unreadable(f"a segmented seal cut short ({self._named()})")
                return b"", 0
            if data[:1] != SEGMENTED:
                raise Unreadable(f"not a segmented seal ({self._named()})")
            self._prefix, at = bytes(data[1 : 1 + _PREFIX]), 1 + _PREFIX
        whole, opened = SEGMENT + _TAG, []
        while len(data) - at > whole:
            opened.append(self._open(data[at : at + whole], last=False))
            at += whole
        if ended:
            if len(data) - at < _TAG:
                raise Unreadable(f"a segmented seal cut short ({self._named()})")
            opened.append(self._open(data[at:], last=True))
            at = len(data)
        return b"".join(opened), at

    def _open(self, segment: memoryview, last: bool) -> bytes:
        assert self._prefix is not None
        try:
            opened = self._aead.decrypt(_segment_nonce(self._prefix, self._index, last), segment, self._where)
        except InvalidTag:
            raise Unreadable(f"segment {self._index} does not open ({self._named()})") from None
        self._index += 1
        return opened

    def _named(self) -> str:
        return self._where.decode(errors="replace")


def _segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _aead(key: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:  # AESGCM would take a 16- or 24-byte key as AES-128 or AES-192
        raise ValueError(f"a sealing key is {KEY_BYTES} bytes")
    return AESGCM(key)


def open_sealed(key: bytes, sealed: bytes, where: bytes) -> bytes:
    """The plaintext of `sealed`, in any of the formats; `Unreadable` when it does not open at `where`
    with `key`."""
    version = sealed[:1]
    if version == SEGMENTED:
        try:
            opener = SegmentOpener(key, where)
        except ValueError:
            raise Unreadable(f"a sealed value does not open ({where.decode(errors='replace')})") from None
        return opener.open_whole(sealed)
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
    """Looks like a sealed value (a version byte and its length); only opening it tells for sure. Of
    a segmented seal, its first `1 + 7 + 16` bytes are enough."""
    version = data[:1]
    return (
        (version == VERSION and len(data) >= OVERHEAD)
        or (version == SEGMENTED and len(data) >= 1 + _PREFIX + _TAG)
        or (version == _XCHACHA and len(data) >= _XCHACHA_OVERHEAD)
    )
