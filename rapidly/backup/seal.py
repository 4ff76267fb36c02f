"""Sealing a backup: authenticated encryption of a stream with a key derived from `RAPIDLY_BACKUP_KEY`.

libsodium's `secretstream` (XChaCha20-Poly1305, through PyNaCl) does the cryptography: each chunk is
authenticated, chunks cannot be reordered, dropped or repeated, and the last one carries a FINAL
tag, so a truncated file is told apart from a complete one. The key comes from the passphrase by
Argon2id with a salt of each backup's own. The file:

    MAGIC | length of the header (4 bytes) | header (JSON: ID, time, KDF and its salt, a key check)
    | secretstream header (24 bytes) | frames: length (4 bytes) + sealed chunk, ...

The header is authenticated as the first chunk's associated data, so a backup cannot be passed off
under another ID. The key check (a BLAKE2b of a constant, keyed with a second key from the same
derivation) tells a wrong key from an altered file.
"""

from __future__ import annotations

import base64
import hmac
import json
import struct
from dataclasses import dataclass
from typing import BinaryIO

import nacl.bindings as sodium
import nacl.pwhash
from nacl.encoding import RawEncoder
from nacl.exceptions import CryptoError
from nacl.hash import blake2b
from nacl.utils import random

MAGIC = b"RAPIDLY-BACKUP/1\n"
#: Plain bytes per sealed chunk: large enough that framing costs nothing, small enough to stream.
CHUNK = 1024 * 1024
_SEALED_CHUNK = CHUNK + sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_MAX_HEADER = 4096
_LENGTH = struct.Struct(">I")
_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#: Argon2id cost: about 0.1 s and 64 MiB once per backup or restore.
KDF_OPS = 3
KDF_MEMORY = 64 * 1024 * 1024


class BackupUnreadable(Exception):
    """A backup cannot be opened; the message says why (wrong key, altered, truncated) and holds no data."""


class WrongKey(BackupUnreadable):
    def __init__(self) -> None:
        super().__init__(
            "RAPIDLY_BACKUP_KEY does not open this backup: it was made with another key (or its header was altered)"
        )


@dataclass(frozen=True)
class Header:
    backup_id: str
    created: str  # ISO 8601, UTC
    salt: bytes
    ops: int
    memory: int
    check: bytes

    def encode(self) -> bytes:
        return json.dumps(
            {
                "id": self.backup_id,
                "created": self.created,
                "kdf": "argon2id13",
                "ops": self.ops,
                "memory": self.memory,
                "salt": base64.b64encode(self.salt).decode(),
                "check": base64.b64encode(self.check).decode(),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Header:
        try:
            fields = json.loads(raw)
            header = cls(
                backup_id=str(fields["id"]),
                created=str(fields["created"]),
                salt=base64.b64decode(fields["salt"], validate=True),
                ops=int(fields["ops"]),
                memory=int(fields["memory"]),
                check=base64.b64decode(fields["check"], validate=True),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupUnreadable("the backup's header is damaged") from exc
        if fields.get("kdf") != "argon2id13" or len(header.salt) != nacl.pwhash.argon2id.SALTBYTES:
            raise BackupUnreadable("the backup's header names an unknown key derivation")
        if not (1 <= header.ops <= 10 and 8192 <= header.memory <= 1024**3):
            raise BackupUnreadable("the backup's header asks for an absurd key derivation cost")
        return header


def _derive(passphrase: str, salt: bytes, ops: int, memory: int) -> tuple[bytes, bytes]:
    """Two keys from one Argon2id run: the stream's, and the key check's."""
    size = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
    both = nacl.pwhash.argon2id.kdf(2 * size, passphrase.encode(), salt, opslimit=ops, memlimit=memory)
    return both[:size], both[size:]


def _key_check(check_key: bytes) -> bytes:
    return blake2b(b"rapidly backup key check", key=check_key, digest_size=16, encoder=RawEncoder)


def seal(source: BinaryIO, sink: BinaryIO, passphrase: str, backup_id: str, created: str) -> int:
    """Read `source` to its end and write it sealed to `sink`; returns the bytes written."""
    salt = random(nacl.pwhash.argon2id.SALTBYTES)
    key, check_key = _derive(passphrase, salt, KDF_OPS, KDF_MEMORY)
    header = Header(backup_id, created, salt, KDF_OPS, KDF_MEMORY, _key_check(check_key)).encode()
    prefix = MAGIC + _LENGTH.pack(len(header)) + header
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    written = sink.write(prefix) + sink.write(sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key))
    chunk = _read_full(source, CHUNK)
    associated: bytes | None = prefix
    while True:
        following = _read_full(source, CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        sealed = sodium.crypto_secretstream_xchacha20poly1305_push(
            state, chunk, associated, _FINAL if last else _MESSAGE
        )
        written += sink.write(_LENGTH.pack(len(sealed))) + sink.write(sealed)
        if last:
            return written
        chunk, associated = following, None


def read_header(source: BinaryIO) -> tuple[Header, bytes]:
    """The backup's header (not yet authenticated) and the bytes it came in."""
    magic = source.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupUnreadable("not a Rapidly backup (or one from a newer version)")
    raw_length = _read_exactly(source, _LENGTH.size)
    (length,) = _LENGTH.unpack(raw_length)
    if length > _MAX_HEADER:
        raise BackupUnreadable("the backup's header is damaged")
    raw = _read_exactly(source, length)
    return Header.decode(raw), magic + raw_length + raw


def unseal(source: BinaryIO, sink: BinaryIO | None, passphrase: str, backup_id: str) -> Header:
    """Check every chunk of a sealed backup and write the plain bytes to `sink` (None: check only).

    Raises `WrongKey`, or `BackupUnreadable` for an altered, truncated or foreign file. A sink may
    have received part of the data before a later chunk fails: check first where that matters."""
    header, prefix = read_header(source)
    key, check_key = _derive(passphrase, header.salt, header.ops, header.memory)
    if not hmac.compare_digest(_key_check(check_key), header.check):
        raise WrongKey()
    if header.backup_id != backup_id:
        raise BackupUnreadable(f"the file holds backup {header.backup_id!r}, not {backup_id!r}")
    stream_header = _read_exactly(source, sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, key)
    associated: bytes | None = prefix
    while True:
        (length,) = _LENGTH.unpack(_read_exactly(source, _LENGTH.size, at_a_boundary=True))
        if length > _SEALED_CHUNK:
            raise BackupUnreadable("the backup was altered: a part has an impossible length")
        sealed = _read_exactly(source, length)
        try:
            chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, associated)
        except CryptoError:
            raise BackupUnreadable("the backup was altered: a part fails its authentication") from None
        if sink is not None:
            sink.write(chunk)
        associated = None
        if tag == _FINAL:
            if source.read(1):
                raise BackupUnreadable("the backup was altered: bytes follow its last part")
            return header


def _read_exactly(source: BinaryIO, size: int, *, at_a_boundary: bool = False) -> bytes:
    """`size` bytes of a sealed file, or `BackupUnreadable`: it ends early (at a part's boundary, the
    last part is missing)."""
    data = source.read(size)
    if len(data) < size:
        if at_a_boundary and not data:
            raise BackupUnreadable("the backup is truncated: its last part is missing")
        raise BackupUnreadable("the backup is truncated")
    return data


def _read_full(source: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end (a pipe returns what it has)."""
    parts, missing = [], size
    while missing:
        part = source.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)
