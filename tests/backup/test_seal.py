"""The sealed format on its own: what goes in comes out, and any change to the file is refused."""

from __future__ import annotations

import io
import os
import struct

import pytest

from rapidly.backup import seal as sealing
from rapidly.backup.seal import CHUNK, BackupUnreadable, WrongKey, read_header, seal, unseal

KEY = "k" * 32
ID = "20261204T101825Z-a1b2c3"


def sealed(data: bytes, key: str = KEY, backup_id: str = ID) -> bytes:
    out = io.BytesIO()
    written = seal(io.BytesIO(data), out, key, backup_id, "2026-12-04T10:18:25+00:00")
    assert written == len(out.getvalue())
    return out.getvalue()


def opened(data: bytes, key: str = KEY, backup_id: str = ID) -> bytes:
    out = io.BytesIO()
    unseal(io.BytesIO(data), out, key, backup_id)
    return out.getvalue()


class Trickle(io.RawIOBase):
    """A pipe that hands out a few bytes per read, as pg_dump's stdout may."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        part, self.data = bytes(self.data[: min(size, 7777)]), self.data[min(size, 7777) :]
        return part


def frames(file: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each sealed chunk in a file."""
    _, prefix = read_header(io.BytesIO(file))
    offset = len(prefix) + 24
    found = []
    while offset < len(file):
        (length,) = struct.unpack(">I", file[offset : offset + 4])
        found.append((offset, length))
        offset += 4 + length
    return found


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_what_is_sealed_is_opened_whole(size):
    # given
    data = os.urandom(size)

    # when
    file = sealed(data)

    # then
    assert opened(file) == data
    assert data[:64] not in file or size < 16  # nothing of it in the clear


def test_a_pipe_that_returns_short_reads_is_sealed_in_full_chunks():
    # given
    data = os.urandom(2 * CHUNK + 100)

    # when
    out = io.BytesIO()
    seal(Trickle(data), out, KEY, ID, "2026-12-04T10:18:25+00:00")

    # then
    assert opened(out.getvalue()) == data
    assert [length for _, length in frames(out.getvalue())][:2] == [CHUNK + 17, CHUNK + 17]


def test_the_same_data_sealed_twice_differs():
    assert sealed(b"same") != sealed(b"same")


def test_a_wrong_key_is_told_apart_from_damage():
    with pytest.raises(WrongKey, match="RAPIDLY_BACKUP_KEY does not open this backup"):
        opened(sealed(b"data"), key="another passphrase of 32 characters!")


@pytest.mark.parametrize("where", ["header", "stream header", "first chunk", "length", "last chunk"])
def test_one_altered_byte_anywhere_is_refused(where):
    # given
    file = bytearray(sealed(os.urandom(2 * CHUNK + 10)))
    _, prefix = read_header(io.BytesIO(bytes(file)))
    chunks = frames(bytes(file))
    offset = {
        "header": len(prefix) - 20,  # inside the JSON: the salt or the key check
        "stream header": len(prefix) + 3,
        "first chunk": chunks[0][0] + 4 + 1000,
        "length": chunks[1][0] + 3,
        "last chunk": chunks[-1][0] + 4 + 2,
    }[where]

    # when
    file[offset] ^= 0x01

    # then
    with pytest.raises(BackupUnreadable):
        opened(bytes(file))


@pytest.mark.parametrize("cut", [1, 17, 100, CHUNK, CHUNK + 40])
def test_a_truncated_backup_is_refused_as_truncated(cut):
    # given
    file = sealed(os.urandom(2 * CHUNK))

    # then
    with pytest.raises(BackupUnreadable, match="truncated"):
        opened(file[:-cut])


def test_the_end_cut_off_at_a_chunk_boundary_is_still_truncated():
    # given
    file = sealed(os.urandom(3 * CHUNK))
    last = frames(file)[-1][0]

    # then
    with pytest.raises(BackupUnreadable, match="last part is missing"):
        opened(file[:last])


def test_chunks_swapped_or_repeated_are_refused():
    # given
    file = sealed(os.urandom(3 * CHUNK + 1))
    (a, la), (b, lb) = frames(file)[1:3]
    first, second = file[a : a + 4 + la], file[b : b + 4 + lb]

    # then
    with pytest.raises(BackupUnreadable, match="altered"):
        opened(file[:a] + second + first + file[b + 4 + lb :])
    with pytest.raises(BackupUnreadable, match="altered"):
        opened(file[:a] + first + first + file[b + 4 + lb :])


def test_bytes_after_the_end_are_refused():
    with pytest.raises(BackupUnreadable, match="bytes follow"):
        opened(sealed(b"data") + b"x")


def test_a_backup_cannot_pass_for_another():
    with pytest.raises(BackupUnreadable, match="not '20261204T101825Z-ffffff'"):
        opened(sealed(b"data"), backup_id="20261204T101825Z-ffffff")


@pytest.mark.parametrize(
    "file",
    [
        b"",
        b"PGDMP",  # a plain pg_dump file
        sealing.MAGIC + b"\xff\xff\xff\xff",
        sealing.MAGIC + struct.pack(">I", 5) + b"{nope",
        sealing.MAGIC + struct.pack(">I", 2) + b"[]",
    ],
    ids=["empty", "plain dump", "huge header", "bad json", "json not an object"],
)
def test_files_that_are_no_backup_are_refused_clearly(file):
    with pytest.raises(BackupUnreadable):
        opened(file)


def test_a_header_asking_for_an_absurd_key_derivation_is_refused_before_deriving():
    # given: memory of 1 TiB would exhaust the machine
    file = sealed(b"data")
    header, prefix = read_header(io.BytesIO(file))
    forged = header.encode().replace(b'"memory":67108864', b'"memory":1099511627776')
    file = sealing.MAGIC + struct.pack(">I", len(forged)) + forged + file[len(prefix) :]

    # then
    with pytest.raises(BackupUnreadable, match="absurd"):
        opened(file)
