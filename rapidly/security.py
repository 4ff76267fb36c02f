"""Tokens and passwords.

Tokens are 256-bit random strings with a short kind prefix (so a staff token offered as a contact
token fails early and secret scanners can spot them). Only their SHA-256 is stored: a slow hash
buys nothing for 256 bits of entropy, and lookups stay an index probe.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

STAFF_TOKEN_PREFIX = "rps_"  # noqa: S105 - a prefix, not a secret
CONTACT_TOKEN_PREFIX = "rpc_"  # noqa: S105
INVITATION_TOKEN_PREFIX = "rpi_"  # noqa: S105
TOKEN_BYTES = 32

_hasher = PasswordHasher(type=Type.ID)
#: Verified against when the account does not exist, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def generate_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_presented_token(token: str | None, prefix: str) -> str | None:
    """The hash to look a presented token up by, or None when there is none or it cannot be one of
    this kind."""
    if not token or not token.startswith(prefix) or len(token) > len(prefix) + 64:
        return None
    return hash_token(token)


def keyed_digest(key: bytes, *parts: str) -> str:
    """An HMAC of identifying values (e.g. an email) for use as a rate-limit key without storing them."""
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; with no hash, still spends the same time and returns False."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
