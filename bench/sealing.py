"""The cipher of contact data, alone: sealing and opening a value and a photo, in each format.

    .venv/bin/python bench/sealing.py [--rounds 20000]

Format 2 (AES-256-GCM through `cryptography`, rapidly/keys/sealing.py) against format 1 (libsodium's
XChaCha20-Poly1305 through PyNaCl, as it sealed before; still opened), in one run: a value of 40
bytes (a name, as JSON) and a photo of 700 kB. A page of 50 contacts opens 50 contact keys and 200
values; a photo is opened whole each time it is served.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rapidly.keys.sealing import new_key, open_sealed, place, seal
from tests.support.sealed import sealed_in_the_first_format


def per_call(fn: Callable[[], object], rounds: int) -> float:
    """Best of three runs of `rounds` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20_000, help="calls per measurement of a value")
    rounds = parser.parse_args().rounds
    key, where = new_key(), place("value", uuid.uuid4(), uuid.uuid4(), "name")
    value, photo = b'"Maija Meik\xc3\xa4l\xc3\xa4inen, Katu 1 A 2"', os.urandom(700_000)
    rows = []
    for name, plaintext, n in (("value, 40 B", value, rounds), ("photo, 700 kB", photo, max(rounds // 400, 20))):
        current, first = seal(key, plaintext, where), sealed_in_the_first_format(key, plaintext, where)
        timings = {
            "seal": (
                per_call(partial(seal, key, plaintext, where), n),
                per_call(partial(sealed_in_the_first_format, key, plaintext, where), n),
            ),
            "open": (
                per_call(partial(open_sealed, key, current, where), n),
                per_call(partial(open_sealed, key, first, where), n),
            ),
        }
        for what, (aes, xchacha) in timings.items():
            rows.append((f"{what} a {name}", aes, xchacha))
    print(f"{'':24} {'AES-256-GCM µs':>15} {'XChaCha20 µs':>13} {'ratio':>6}")
    for label, aes, xchacha in rows:
        print(f"{label:24} {aes:15.2f} {xchacha:13.2f} {xchacha / aes:5.1f}×")


if __name__ == "__main__":
    main()
