"""Photos over GraphQL (multipart request spec) with local storage: cleaning, limits, access, events."""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pytest
from PIL import Image

from rapidly import tenancy
from rapidly.contacts import service as contacts
from rapidly.media import service as media_service
from rapidly.media.models import Media
from rapidly.storage import object_key
from tests.conftest import subscribe
from tests.contacts.test_contacts_api import NOTIFICATIONS, save, staff_token, start
from tests.media import images

UPLOAD = """
mutation Upload($fieldKey: String!, $file: Upload!) {
  uploadMedia(fieldKey: $fieldKey, file: $file) {
    __typename
    ... on MediaUploaded { media { id fieldKey contentType width height url } }
    ... on InputInvalidError { message errors { field code message } }
    ... on AuthError { message }
  }
}
"""
CONTACT_MEDIA = "query C($id: ID!) { contact(id: $id) { __typename media { id fieldKey url width height } } }"
ME_MEDIA = "query { me { media { id fieldKey contentType url } } }"


async def upload(
    http: httpx.AsyncClient,
    token: str | None,
    data: bytes,
    *,
    field: str = "roof_photos",
    filename: str = "photo.jpg",
    guard: bool = True,
    origin: str | None = None,
) -> httpx.Response:
    operations = {"query": UPLOAD, "variables": {"fieldKey": field, "file": None}}
    headers = {"Rapidly-Upload": "1"} if guard else {}
    if origin:
        headers["Origin"] = origin
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": (filename, data, "application/octet-stream")},
        headers=headers,
    )


def result(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["data"]["uploadMedia"]


@pytest.fixture
async def roofing(world):
    tenant = await world.tenant("kattohuolto")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    await world.tenant("verstas", plugin="carrepair_se")
    await world.staff("verstas", "erik@verstas.example")
    return tenant


async def named_contact(gql) -> str:
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija Meikäläinen")
    return token


async def test_a_phone_photo_is_stored_upright_without_exif_or_gps(http, gql, roofing, server):
    # given
    token = await named_contact(gql)
    photo = images.jpeg(800, 600, comment="Kesämökki Inkoossa", gps=True, orientation=6)

    # when
    uploaded = result(await upload(http, token, photo, filename="IMG_2040 Maija.jpg"))

    # then
    assert uploaded["__typename"] == "MediaUploaded"
    media = uploaded["media"]
    assert (media["fieldKey"], media["contentType"], media["width"], media["height"]) == (
        "roof_photos",
        "image/jpeg",
        600,
        800,
    )
    contact = await contacts.contact_for_token(token)
    storage = server.app.state.storage
    stored = await storage.get(object_key(contact.tenant_id, contact.id, uuid.UUID(media["id"])))
    assert not images.is_image(stored)  # sealed under the contact's key
    opened = await media_service.photo_bytes(storage, contact.tenant_id, contact.id, uuid.UUID(media["id"]))
    image = Image.open(io.BytesIO(opened))
    assert image.size == (600, 800)
    assert dict(image.getexif()) == {} and "exif" not in image.info and "comment" not in image.info
    assert b"Kes" not in opened and b"PhoneMaker" not in opened
    served = await http.get(media["url"])
    assert served.status_code == 200 and served.content == opened
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    with tenancy.as_tenant(roofing.id):
        row = await Media.get(id=media["id"])
    assert "Maija" not in json.dumps([row.field_key, row.content_type])


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (images.png_bomb(), "too_many_pixels"),
        (images.jpeg()[:4000], "not_an_image"),
        (b"<html><body>not an image</body></html>", "not_an_image"),
        (b"GIF89a" + b"\x00" * 100, "not_an_image"),
        (b"", "empty"),
    ],
    ids=["decompression-bomb", "truncated", "html", "gif", "empty"],
)
async def test_hostile_files_are_refused_and_nothing_is_stored(http, gql, roofing, server, data, code):
    # given
    token = await named_contact(gql)

    # when
    refused = result(await upload(http, token, data, filename="roof.jpg"))

    # then
    assert refused["__typename"] == "InputInvalidError"
    assert [e["code"] for e in refused["errors"]] == [code]
    with tenancy.as_tenant(roofing.id):
        assert await Media.all().count() == 0
    assert [p for p in server.app.state.storage.root.rglob("*") if p.is_file()] == []


async def test_a_polyglot_keeps_only_its_pixels(http, gql, roofing, server):
    # given
    token = await named_contact(gql)

    # when
    uploaded = result(await upload(http, token, images.polyglot(), filename="x.html"))

    # then
    assert uploaded["__typename"] == "MediaUploaded"
    served = await http.get(uploaded["media"]["url"])
    assert b"<script" not in served.content and b"<html" not in served.content
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_png_and_webp_are_accepted_whatever_the_name(http, gql, roofing):
    # given
    token = await named_contact(gql)

    # when
    as_png = result(await upload(http, token, images.png(text="secret note"), filename="photo.jpg"))
    as_webp = result(await upload(http, token, images.webp(), filename="noextension"))

    # then
    assert as_png["media"]["contentType"] == "image/png"
    assert as_webp["media"]["contentType"] == "image/webp"
    assert b"secret note" not in (await http.get(as_png["media"]["url"])).content


async def test_a_20_mb_upload_is_cut_off_while_streaming_and_nothing_is_stored(http, gql, roofing, server):
    # given
    token = await named_contact(gql)
    big = images.jpeg(64, 64) + b"\x00" * (20 * 1024 * 1024)

    # when
    response = await upload(http, token, big)

    # then
    assert response.status_code == 413
    with tenancy.as_tenant(roofing.id):
        assert await Media.all().count() == 0


async def test_uploads_need_the_guard_header(http, gql, roofing):
    # given
    token = await named_contact(gql)

    # when
    response = await upload(http, token, images.jpeg(), guard=False)

    # then
    assert response.status_code == 400
    assert "Rapidly-Upload" in response.json()["errors"][0]["message"]
    with tenancy.as_tenant(roofing.id):
        assert await Media.all().count() == 0


@pytest.mark.parametrize(
    ("field", "code"),
    [("name", "not_an_image_field"), ("no_such_field", "unknown_field"), ("x" * 5000, "unknown_field")],
)
async def test_only_image_fields_take_files(http, gql, roofing, field, code):
    # given
    token = await named_contact(gql)

    # when
    refused = result(await upload(http, token, images.jpeg(), field=field))

    # then
    assert [e["code"] for e in refused["errors"]] == [code]


async def test_wrong_tokens_are_refused(http, gql, roofing):
    # given
    anna = await staff_token(gql)

    # when
    answers = [
        result(await upload(http, None, images.jpeg())),
        result(await upload(http, anna, images.jpeg())),
        result(await upload(http, "rpc_" + "A" * 43, images.jpeg())),
    ]

    # then
    assert [a["__typename"] for a in answers] == ["AuthError"] * 3
    with tenancy.as_tenant(roofing.id):
        assert await Media.all().count() == 0


async def test_a_field_takes_at_most_its_number_of_files(http, gql, world):
    # given: the carrepair plugin's photos field takes 6
    verstas = await world.tenant("verstas", plugin="carrepair_se")
    token = await start(gql, "verstas")
    for _ in range(6):
        assert result(await upload(http, token, images.jpeg(32, 32), field="photos"))["__typename"] == "MediaUploaded"

    # when
    seventh = result(await upload(http, token, images.jpeg(32, 32), field="photos"))

    # then
    assert [e["code"] for e in seventh["errors"]] == ["field_full"]
    with tenancy.as_tenant(verstas.id):
        assert await Media.all().count() == 6


async def test_staff_and_the_end_user_see_the_photo_and_others_do_not(http, gql, roofing, server):
    # given
    token = await named_contact(gql)
    media_id = result(await upload(http, token, images.jpeg()))["media"]["id"]
    contact_id = str((await contacts.contact_for_token(token)).id)

    # when
    staff_view = (await gql(CONTACT_MEDIA, {"id": contact_id}, token=await staff_token(gql)))["contact"]
    other_view = await gql(CONTACT_MEDIA, {"id": contact_id}, token=await staff_token(gql, "erik@verstas.example"))
    mine = (await gql(ME_MEDIA, token=token))["me"]["media"]

    # then
    assert [m["id"] for m in staff_view["media"]] == [media_id]
    assert other_view["contact"] is None
    assert [m["id"] for m in mine] == [media_id]
    assert (await http.get(staff_view["media"][0]["url"])).status_code == 200


async def test_signed_urls_cannot_be_altered_or_reused_after_they_expire(http, gql, roofing, server):
    # given
    token = await named_contact(gql)
    url = result(await upload(http, token, images.jpeg()))["media"]["url"]
    settings = server.app.state.settings
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))

    # when
    tampered_type = await http.get(url.replace("image%2Fjpeg", "text%2Fhtml"))
    tampered_sig = await http.get(url[:-4] + "0000")
    other_key = await http.get(path.rsplit("/", 1)[0] + f"/{uuid.uuid4()}?{query}")
    old_signature = media_service.url_signature(settings, path.split("/media/")[1], 1, "image/jpeg")
    expired = await http.get(f"{path}?expires=1&type=image%2Fjpeg&signature={old_signature}")
    traversal = await http.get("/media/..%2F..%2F/etc/passwd?expires=9999999999&type=image%2Fjpeg&signature=x")

    # then
    assert params["type"] == "image%2Fjpeg"
    assert [r.status_code for r in (tampered_type, tampered_sig, other_key, expired, traversal)] == [404] * 5


async def test_media_added_reaches_both_subscriptions_and_the_staff(http, gql, roofing, server):
    # given
    token = await named_contact(gql)
    anna = await staff_token(gql)
    my_events = "subscription { myEvents { kind } }"
    staff_events = "subscription { contactEvents { kind contact { media { fieldKey } } } }"

    # when
    async with (
        subscribe(server.graphql_url, my_events, token, live=server.app.state.fanout) as mine,
        subscribe(server.graphql_url, staff_events, anna, live=server.app.state.fanout) as staffs,
    ):
        result(await upload(http, token, images.jpeg()))
        my_event = (await mine.next())["data"]["myEvents"]
        staff_event = (await staffs.next())["data"]["contactEvents"]

    # then
    assert my_event == {"kind": "MEDIA_ADDED"}
    assert staff_event == {"kind": "MEDIA_ADDED", "contact": {"media": [{"fieldKey": "roof_photos"}]}}
    texts = [n["node"]["text"] for n in (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]]
    assert texts[0] == "Uusi kuva: Maija Meikäläinen"


async def test_erasure_removes_the_photos_from_storage(http, gql, roofing, server):
    # given
    token = await named_contact(gql)
    url = result(await upload(http, token, images.jpeg()))["media"]["url"]
    result(await upload(http, token, images.png()))

    # when
    receipt = (
        await gql("mutation { deleteMyData { ... on ErasureReceipt { removed { store count } } } }", token=token)
    )["deleteMyData"]

    # then
    counts = {r["store"]: r["count"] for r in receipt["removed"]}
    assert counts["media"] == 2 and counts["media_objects"] == 2
    assert (await http.get(url)).status_code == 404
    root = server.app.state.storage.root
    assert [p.relative_to(root).parts[0] for p in root.rglob("*") if p.is_file()] == ["erasures"]


async def test_a_chunked_upload_without_a_length_is_cut_off_while_it_streams(http, gql, roofing):
    # given: no Content-Length, so only counting the stream can stop it
    token = await named_contact(gql)
    boundary = "rapidlyboundary"
    operations = json.dumps({"query": UPLOAD, "variables": {"fieldKey": "roof_photos", "file": None}})
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{operations}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{{"0": ["variables.file"]}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="0"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    sent = 0

    async def body():  # type: ignore[no-untyped-def]
        nonlocal sent
        yield head
        for _ in range(40):  # 40 MB, far over the cap
            sent += 1
            yield b"\xff" * (1024 * 1024)

    # when
    response = await http.post(
        "/graphql",
        content=body(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"Bearer {token}",
            "Rapidly-Upload": "1",
        },
    )

    # then
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    with tenancy.as_tenant(roofing.id):
        assert await Media.all().count() == 0
