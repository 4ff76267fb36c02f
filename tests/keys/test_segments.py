"""A photo's segmented seal (rapidly/keys/sealing.py, STREAM over AES-256-GCM): opened as it is read,
in pieces of any size, and refused when segments are altered, reordered, dropped, repeated or cut off."""

from __future__ import annotations

import os

import pytest

from rapidly.keys.sealing import (
    SEGMENT,
    SEGMENTED,
    SegmentOpener,
    Unreadable,
    is_sealed,
    new_key,
    open_sealed,
    seal,
    seal_segmented,
)

KEY = new_key()
WHERE = b"rapidly/photo/tenant/contact/photo"
HEADER = 8  # version and prefix
WHOLE = SEGMENT + 16  # a full segment with its tag


def opened_in_pieces(sealed: bytes, size: int, key: bytes = KEY, where: bytes = WHERE) -> bytes:
    opener = SegmentOpener(key, where)
    out = [opener.feed(sealed[at : at + size]) for at in range(0, len(sealed), size)]
    return b"".join(out) + opener.end()


@pytest.mark.parametrize("length", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17])
@pytest.mark.parametrize("piece", [1, 7, WHOLE, WHOLE + 1, 1 << 20])
def test_a_segmented_seal_opens_fed_in_pieces_of_any_size(length, piece):
    # given
    plaintext = os.urandom(length)
    sealed = seal_segmented(KEY, plaintext, WHERE)

    # when
    opened = opened_in_pieces(sealed, piece)

    # then: the same bytes, whole or in pieces; each segment costs its tag, the object its header
    assert opened == plaintext == open_sealed(KEY, sealed, WHERE)
    segments = max(1, -(-length // SEGMENT))
    assert len(sealed) == HEADER + length + 16 * segments
    assert sealed[:1] == SEGMENTED and is_sealed(sealed[: HEADER + 16])


def test_the_first_segment_is_out_before_the_rest_is_read():
    # given: a photo of three segments and a bit
    plaintext = os.urandom(3 * SEGMENT + 100)
    sealed = seal_segmented(KEY, plaintext, WHERE)
    opener = SegmentOpener(KEY, WHERE)

    # when: its first segment and one byte of the next have come
    first = opener.feed(sealed[: HEADER + WHOLE + 1])

    # then: the first segment is open; a full segment alone waits (it could be the last)
    assert first == plaintext[:SEGMENT]
    assert SegmentOpener(KEY, WHERE).feed(sealed[: HEADER + WHOLE]) == b""


def segments_of(sealed: bytes) -> list[bytes]:
    body = sealed[HEADER:]
    return [body[at : at + WHOLE] for at in range(0, len(body), WHOLE)]


def altered(sealed: bytes, how: str) -> bytes:
    header, parts = sealed[:HEADER], segments_of(sealed)
    if how == "swapped":
        parts[0], parts[1] = parts[1], parts[0]
    elif how == "dropped":
        del parts[1]
    elif how == "repeated":
        parts.insert(1, parts[1])
    elif how == "cut at a segment":
        del parts[-1]
    elif how == "cut inside a segment":
        parts[-1] = parts[-1][:-1]
    elif how == "flipped":
        parts[2] = parts[2][:5] + bytes([parts[2][5] ^ 1]) + parts[2][6:]
    elif how == "appended":
        parts.append(b"\x00" * 32)
    elif how == "another prefix":
        header = header[:1] + bytes([header[1] ^ 1]) + header[2:]
    return header + b"".join(parts)


@pytest.mark.parametrize(
    "how",
    [
        "swapped",
        "dropped",
        "repeated",
        "cut at a segment",
        "cut inside a segment",
        "flipped",
        "appended",
        "another prefix",
    ],
)
def test_segments_altered_reordered_dropped_or_cut_off_do_not_open(how):
    # given: four segments
    plaintext = os.urandom(3 * SEGMENT + 100)
    sealed = altered(seal_segmented(KEY, plaintext, WHERE), how)

    # when / then: whole, and in pieces, refused
    with pytest.raises(Unreadable):
        open_sealed(KEY, sealed, WHERE)
    opener, out = SegmentOpener(KEY, WHERE), []
    with pytest.raises(Unreadable) as refused:
        for at in range(0, len(sealed), 1000):
            out.append(opener.feed(sealed[at : at + 1000]))
        opener.end()
    # nothing of a segment that does not open came out: only the authentic segments before it
    assert plaintext.startswith(b"".join(out))
    assert WHERE.decode() in str(refused.value)  # named by its place: IDs only


@pytest.mark.parametrize(
    "sealed",
    [b"", SEGMENTED, SEGMENTED + b"\x00" * 7, SEGMENTED + b"\x00" * 22, b"\x02" + b"\x00" * 40, b"\xff" * 100],
    ids=["empty", "version only", "header only", "short of a tag", "another format", "junk"],
)
def test_what_is_no_segmented_seal_does_not_open_as_one(sealed):
    opener = SegmentOpener(KEY, WHERE)
    with pytest.raises(Unreadable):
        opener.feed(sealed)
        opener.end()


def test_a_segmented_seal_opens_only_with_its_key_at_its_place():
    # given
    sealed = seal_segmented(KEY, b"photo", WHERE)

    # when / then
    for key, where in ((new_key(), WHERE), (KEY, b"rapidly/photo/tenant/another-contact/photo")):
        with pytest.raises(Unreadable):
            open_sealed(key, sealed, where)
    with pytest.raises(Unreadable):
        open_sealed(KEY[:16], sealed, WHERE)  # not a 256-bit key
    with pytest.raises(ValueError):
        seal_segmented(KEY[:16], b"photo", WHERE)


def test_a_photo_sealed_whole_before_segments_still_opens():
    plaintext = os.urandom(2 * SEGMENT)
    assert open_sealed(KEY, seal(KEY, plaintext, WHERE), WHERE) == plaintext


def test_an_opener_that_refused_a_segment_refuses_whatever_comes_after():
    # given: an opener that has just refused a flipped second segment
    sealed = seal_segmented(KEY, os.urandom(3 * SEGMENT), WHERE)
    flipped = sealed[: HEADER + WHOLE + 5] + bytes([sealed[HEADER + WHOLE + 5] ^ 1]) + sealed[HEADER + WHOLE + 6 :]
    opener = SegmentOpener(KEY, WHERE)
    with pytest.raises(Unreadable):
        opener.feed(flipped)

    # when / then: the true bytes after it are refused too, as is the end (no BufferError, no plaintext)
    with pytest.raises(Unreadable):
        opener.feed(sealed[HEADER + 2 * WHOLE :])
    with pytest.raises(Unreadable):
        opener.end()
