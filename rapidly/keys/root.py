"""The root key: where it comes from, and the one thing it does (wrap and unwrap tenant keys).

A `KeyProvider` holds it. The core's own is `PassphraseProvider` (`RAPIDLY_ROOT_KEY`, or with the
embedded database a key generated once into the data dir, as the backup key is); a key management
service comes through the `key_provider` plugin hook (rapidly/plugins/hookspecs.py). Each wrapped
tenant key records the `key_id` of what wrapped it (never material), so a start with another root
key is told apart from an altered row, and `rapidly keys rotate` knows what is left to re-wrap.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import nacl.pwhash
from nacl.encoding import HexEncoder
from nacl.hash import blake2b

from rapidly.keys.sealing import KEY_BYTES, open_sealed, seal

if TYPE_CHECKING:
    from rapidly.config import Settings
    from rapidly.plugins import PluginRegistry

#: Argon2id's cost for turning the passphrase into a key, once per process: about 0.05 s and 32 MiB.
_KDF_OPS = 2
_KDF_MEMORY = 32 * 1024 * 1024
#: A fixed salt: the passphrase is long (at least 32 characters) and unique to the installation.
_SALT = b"rapidly root key"


@runtime_checkable
class KeyProvider(Protocol):
    """Holds a root key. `wrap`/`unwrap` are synchronous (a KMS's are network calls: the key ring calls
    them in a thread, at most once per tenant key per process while it is cached)."""

    #: Names the root key, never its material: stored beside each key it wraps.
    key_id: str

    def wrap(self, key: bytes, where: bytes) -> bytes:
        """`key` sealed under the root key, bound to `where` (the tenant's place)."""
        ...

    def unwrap(self, wrapped: bytes, where: bytes) -> bytes:
        """The key `wrap` sealed; `keys.Unreadable` when it does not open (another root key, or altered)."""
        ...

    def opens(self, key_id: str) -> bool:
        """Whether a key wrapped by `key_id` is this provider's to unwrap."""
        ...


class KeyServiceUnavailable(Exception):
    """The KMS cannot be reached now: a request answers 503 UNAVAILABLE, a start refuses."""


class PassphraseProvider:
    """A root key derived from a passphrase (Argon2id, when first used: a start that refuses for another
    reason does not pay for it). Its `key_id` is a keyed hash of the derived key: the same passphrase
    always has the same ID, and the ID gives nothing of it away."""

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase

    @cached_property
    def _key(self) -> bytes:
        return nacl.pwhash.argon2id.kdf(
            KEY_BYTES, self._passphrase.encode(), _SALT.ljust(nacl.pwhash.argon2id.SALTBYTES, b"\0"),
            opslimit=_KDF_OPS, memlimit=_KDF_MEMORY,
        )  # fmt: skip

    @cached_property
    def key_id(self) -> str:  # type: ignore[override]
        check = blake2b(b"rapidly root key id", key=self._key, digest_size=8, encoder=HexEncoder).decode()
        return f"passphrase:{check}"

    def wrap(self, key: bytes, where: bytes) -> bytes:
        return seal(self._key, key, where)

    def unwrap(self, wrapped: bytes, where: bytes) -> bytes:
        return open_sealed(self._key, wrapped, where)

    def opens(self, key_id: str) -> bool:
        return key_id == self.key_id


def root_providers(settings: Settings, plugins: PluginRegistry) -> list[KeyProvider]:
    """The providers that may open tenant keys, the current root key's first: a `key_provider`
    plugin's (a KMS) or `RAPIDLY_ROOT_KEY`'s, then `RAPIDLY_PREVIOUS_ROOT_KEY`'s while a rotation is
    under way. Empty when there is no root key at all (`keys.start` refuses that)."""
    found: list[KeyProvider] = []
    if (provided := plugins.key_provider(settings)) is not None:
        found.append(provided)
    elif (passphrase := settings.root_passphrase) is not None:
        found.append(PassphraseProvider(passphrase))
    if found and settings.previous_root_key:  # never in place of a current root key
        found.append(PassphraseProvider(settings.previous_root_key))
    return found
