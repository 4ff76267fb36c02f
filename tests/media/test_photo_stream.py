"""A photo served as it is opened (its object sealed in segments): whole and the same bytes when
intact; not served when its start does not open; cut short, never completed with other bytes, when a
segment further on does not open; and photos sealed whole, before segments, still served."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid

import httpx
import psutil
import pytest
from PIL import Image

from rapidly.contacts import service as contacts
from rapidly.keys import service as keys
from rapidly.keys.sealing import SEGMENT, SEGMENTED, seal
from rapidly.media import service as media_service
from rapidly.storage import object_key
from tests.media import images
from tests.media.test_upload_api import named_contact, result, roofing, upload  # noqa: F401 - a fixture

HEADER, WHOLE = 8, SEGMENT + 16


@pytest.fixture
async def big_photo(http, gql, roofing, server):  # noqa: F811 - the fixture imported above
    """An uploaded photo of several segments: its URL, its stored object's name, and its image."""
    token = await named_contact(gql)
    uploaded = result(await upload(http, token, images.noisy_jpeg()))["media"]
    contact = await contacts.contact_for_token(token)
    media_id = uuid.UUID(uploaded["id"])
    image = await media_service.photo_bytes(server.app.state.storage, contact.tenant_id, contact.id, media_id)
    return uploaded["url"], object_key(contact.tenant_id, contact.id, media_id), image, (contact, media_id)


async def test_a_photo_of_several_segments_is_served_whole_and_the_same(http, server, big_photo):
    # given
    url, name, image, _ = big_photo
    stored = await server.app.state.storage.get(name)

    # when
    served = await http.get(url)

    # then: stored in segments, served as one image, the same bytes as opened whole
    assert stored[:1] == SEGMENTED and len(stored) > HEADER + 3 * WHOLE
    assert served.status_code == 200 and served.content == image
    assert Image.open(io.BytesIO(served.content)).size == (1200, 900)
    assert served.headers["content-type"] == "image/jpeg" and served.headers["cache-control"] == "private, no-store"


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


async def test_a_photo_whose_first_segment_does_not_open_is_not_served(http, server, big_photo, caplog):
    # given: a bit of its first segment flipped in the bucket
    url, name, _, (contact, media_id) = big_photo
    storage = server.app.state.storage
    await storage.put(name, flipped(await storage.get(name), HEADER + 10), media_service.SEALED_TYPE)

    # when
    with caplog.at_level(logging.ERROR, logger="rapidly.media.service"):
        served = await http.get(url)

    # then: a 404 like a photo that is gone, logged by its IDs
    assert served.status_code == 404 and served.content == b""
    assert f"photo {media_id} of contact {contact.id} does not open" in caplog.text


@pytest.mark.parametrize("how", ["flipped", "cut at a segment"])
async def test_a_photo_that_does_not_open_further_on_is_cut_short_never_completed(http, server, big_photo, caplog, how):
    # given: a segment well after the first piece served altered, or its last segment gone
    url, name, image, (_, media_id) = big_photo
    storage = server.app.state.storage
    stored = await storage.get(name)
    segments = -(-(len(stored) - HEADER) // WHOLE)
    assert HEADER + (segments - 2) * WHOLE > media_service.SERVED_PIECE
    if how == "flipped":
        altered = flipped(stored, HEADER + (segments - 2) * WHOLE + 100)
    else:
        altered = stored[: HEADER + (len(stored) - HEADER) // WHOLE * WHOLE]
    await storage.put(name, altered, media_service.SEALED_TYPE)

    # when: read as a browser would
    received = bytearray()
    with caplog.at_level(logging.ERROR), pytest.raises(httpx.RemoteProtocolError):  # the response ends unfinished
        async with http.stream("GET", url) as served:
            assert served.status_code == 200
            async for piece in served.aiter_bytes():
                received += piece

    # then: what came is the start of the true image, and less than all of it
    assert image.startswith(bytes(received)) and len(received) < len(image)
    assert f"photo {media_id} of contact" in caplog.text and "does not open further on" in caplog.text


async def test_a_photo_sealed_whole_before_segments_is_still_served(http, server, big_photo):
    # given: its object as it was sealed before segments (one tag over the whole image)
    url, name, image, (contact, media_id) = big_photo
    key = await keys.ring().contact_key(contact.tenant_id, contact.id)
    where = media_service.photo_place(contact.tenant_id, contact.id, media_id)
    await server.app.state.storage.put(name, seal(key, image, where), media_service.SEALED_TYPE)

    # when
    served = await http.get(url)

    # then
    assert served.status_code == 200 and served.content == image


async def test_a_client_that_leaves_mid_photo_leaves_no_file_open(http, server, big_photo):
    # given
    url, name, _, _ = big_photo
    path = str(server.app.state.storage.path_of(name))
    process = psutil.Process()

    # when: a client reads the first piece and goes
    async with http.stream("GET", url) as served:
        async for _ in served.aiter_raw():
            break

    # then: the object's file is closed soon after, not whenever a collector runs
    deadline = time.monotonic() + 5
    while any(f.path == path for f in process.open_files()):
        assert time.monotonic() < deadline, "the photo's file stayed open"
        await asyncio.sleep(0.05)
