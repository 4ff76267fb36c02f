"""Blind indexes: staff search over sealed values without the database seeing any text.

Each saved value's searchable text (lower case, whitespace folded) is cut into its trigrams, and each
trigram is stored as a 32-bit keyed hash (BLAKE2b under the tenant's index key, derived from the
tenant key) in `field_value.terms`, indexed by GIN. A search hashes the trigrams of what was typed and
asks for values whose terms contain all of them; the few candidates are opened and checked for the
text itself, so nothing that does not contain it is ever shown.

What it leaks, within one tenant only (another tenant's index key differs): which values share a
trigram hash, hence how alike two values are and, with enough values and a guess at their language,
frequency analysis of trigrams. 32 bits make collisions between different trigrams rare in one
tenant (about one in four billion per pair) yet cost a quarter of a 64-bit hash's index.
"""

from __future__ import annotations

import hashlib


def index_key(tenant_key: bytes) -> bytes:
    """The tenant's blind-index key: derived, so it needs no row of its own and rotates with nothing."""
    return hashlib.blake2b(b"rapidly blind index", key=tenant_key, digest_size=32).digest()


def folded(text: str) -> str:
    """Text as search compares it: lower case, runs of whitespace as one space, trimmed."""
    return " ".join(text.split()).lower()


def searchable(value: object) -> str:
    """The text of a stored value that search looks in ("" for what has none: yes/no answers)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, list):
        return " ".join(searchable(item) for item in value)
    return folded(str(value))


def trigrams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


def terms_of(key: bytes, value: object) -> list[int]:
    """The sorted, distinct terms of a stored value (bounded by the field's length limit)."""
    return _terms(key, trigrams(searchable(value)))


def needle_terms(key: bytes, needle: str) -> list[int]:
    """The terms a value must hold to contain `needle` (already folded, at least 3 characters)."""
    return _terms(key, trigrams(needle))


#: Each tenant's trigrams' terms, as this process computed them: typing repeats trigrams, and a dict
#: lookup costs a twentieth of the keyed hash (a save's terms were two thirds of what sealing adds to it,
#: bench/save_field.py). It holds fragments of what was typed (three characters each, tied to no contact
#: and no order): in memory only, bounded, and dropped by each maintenance round (`forget_trigrams`).
_KNOWN: dict[bytes, dict[str, int]] = {}
_KNOWN_PER_TENANT = 65_536
_KNOWN_TENANTS = 256


def forget_trigrams() -> None:
    """Drop every remembered trigram (serve's maintenance does, each round)."""
    _KNOWN.clear()


def _terms(key: bytes, found: set[str]) -> list[int]:
    known = _KNOWN.get(key)
    if known is None:
        if len(_KNOWN) >= _KNOWN_TENANTS:
            _KNOWN.clear()
        known = _KNOWN[key] = {}
    keyed = None
    terms = set()
    for trigram in found:
        term = known.get(trigram)
        if term is None:
            if keyed is None:
                keyed = hashlib.blake2b(key=key, digest_size=4)  # keyed once, copied per trigram
            hashed = keyed.copy()
            hashed.update(trigram.encode())
            term = int.from_bytes(hashed.digest(), "big", signed=True)
            if len(known) < _KNOWN_PER_TENANT:
                known[trigram] = term
        terms.add(term)
    return sorted(terms)
