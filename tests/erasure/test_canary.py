"""The canary: fill every field of every kind with unique markers, erase, and find no trace anywhere.

Tables and columns are discovered from the database catalog, so a table added later is scanned
without editing this test. A second contact, not erased, is a positive control: the same scan must
find its markers, or the scan itself is broken.
"""

from __future__ import annotations

import json
import logging
import random
import re
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import pytest
from tortoise import connections

from rapidly import db, tenancy
from rapidly.backup.seal import unseal
from rapidly.backup.service import Backups
from rapidly.contacts import service as contacts
from rapidly.logs import JsonFormatter
from rapidly.messaging.models import OutboundMessage
from rapidly.ratelimit import service as ratelimit
from tests.contacts.test_contacts_api import CONTACT, NOTIFICATIONS, save, staff_token, start
from tests.media import images
from tests.media.test_upload_api import upload
from tests.support.databases import plain_dump

#: Column types that cannot hold a marker string; every other type is scanned as text.
_NOT_TEXT = (
    "uuid",
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "real",
    "double precision",
    "boolean",
    "date",
    "timestamp with time zone",
    "timestamp without time zone",
    "interval",
)


STAFF_REPLY = "mutation R($body: String!, $id: ID) { sendChatMessage(body: $body, contactId: $id) { __typename } }"


async def send_chat(http, token: str, body: str, photo: bytes, filename: str) -> dict:  # type: ignore[no-untyped-def]
    """The end user writes in the chat with a photo attached (multipart request)."""
    query = (
        "mutation S($body: String!, $file: Upload) { sendChatMessage(body: $body, attachment: $file) "
        "{ __typename ... on Error { message } } }"
    )
    response = await http.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": query, "variables": {"body": body, "file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": (filename, photo, "image/jpeg")},
        headers={"Authorization": f"Bearer {token}", "Rapidly-Upload": "1"},
    )
    return response.json()["data"]["sendChatMessage"]


#: Loggers that are not the application's: the test's own HTTP client, its SMTP server (aiosmtpd's
#: "mail.log", standing in for the mail relay), and uvicorn's access log, which `rapidly serve`
#: switches off (pytest re-attaches its capture handler to it).
_NOT_APPLICATION = ("httpx", "httpcore", "mail.log", "uvicorn.access")


def markers(control: bool = False) -> dict[str, object]:
    """A value per field of tests/every_kind.py, each carrying a marker found nowhere else (choices:
    the erased contact picks options that the control contact does not)."""
    tag = uuid.uuid4().hex[:12]
    return {
        "name": f"Canary Näme {tag}",
        "story": f"line one\ncanary story {tag}",
        "email": f"canary.{tag}@example.com",
        "phone": f"+35840{random.randrange(10**6, 10**7)}",
        "count": random.randrange(10**8, 10**9),
        "day": f"21{random.randrange(10, 99)}-0{random.randrange(1, 9)}-1{random.randrange(0, 9)}",
        "colour": "blue" if control else "cq_choice_red",
        "extras": ["b"] if control else ["cq_multi_a"],
        "agree": True,
        "photo_name": f"canary-photo-{tag}.jpg",
        "photo_comment": f"canary exif {tag}",
        "chat_body": f"canary chat {tag}",
        "staff_reply": f"canary reply {tag}",
    }


SEARCH = "query S($q: String) { contacts(search: $q) { edges { node { id } } } }"


async def found_by_search(gql, staff: str, values: dict[str, object]) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """{needle: [contact IDs]} for the markers of the form's answers (the chat is not searched), as the
    staff's search, served by the values' trigram index, finds them."""
    found = {}
    for needle in (n for n in needles(values) if not n.startswith(("canary chat", "canary reply"))):
        edges = (await gql(SEARCH, {"q": needle}, token=staff))["contacts"]["edges"]
        found[needle] = [edge["node"]["id"] for edge in edges]
    return found


def needles(values: dict[str, object]) -> list[str]:
    """The strings the database may hold while the contact exists: every value that can be told
    apart from other data (the photo's name and EXIF are never stored: see `photo_needles`)."""
    found = [
        str(v).splitlines()[-1]
        for k, v in values.items()
        if k not in ("agree", "extras", "colour", "photo_name", "photo_comment")
    ]
    if values["colour"] != "blue":
        found += [str(values["colour"]), *values["extras"]]  # type: ignore[misc]
    return [*found, re.sub(r"\D", "", str(values["phone"]))[-9:], str(values["name"]).split()[-1]]


def photo_needles(values: dict[str, object]) -> list[str]:
    return [str(values["photo_name"]), str(values["photo_name"]).split("-")[-1], str(values["photo_comment"])]


def scan_files(root: Path, needles: list[str]) -> list[str]:
    """Every needle found in any file under root (the local object storage, every object)."""
    found = []
    for path in (p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{n} in {path.relative_to(root)}" for n in needles if n.encode() in data]
    return found


async def scan(database_url: str, needles: list[str]) -> dict[str, list[str]]:
    """{needle: ["table.column", ...]} for every text-like column of every table in the database."""
    conn = await db.Credentials.from_url(database_url).connect()
    hits: dict[str, list[str]] = {n: [] for n in needles}
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND NOT (data_type = ANY($1::text[])) ORDER BY 1, 2",
            list(_NOT_TEXT),
        )
        assert {c["table_name"] for c in columns} >= {"field_value", "contact_token", "notification", "erasure"}
        for column in columns:
            table, name = column["table_name"], column["column_name"]
            as_text = f"encode(\"{name}\", 'escape')" if column["data_type"] == "bytea" else f'"{name}"::text'
            for needle in needles:
                found = await conn.fetchval(
                    f'SELECT count(*) FROM "{table}" WHERE strpos({as_text}, $1) > 0',  # noqa: S608 - catalog names
                    needle,
                )
                if found:
                    hits[needle].append(f"{table}.{name}")
    finally:
        await conn.close()
    return {needle: where for needle, where in hits.items() if where}


@pytest.mark.parametrize("route", ["page", "deleteMyData", "deleteContact"])
async def test_erasure_leaves_no_trace_in_any_table_storage_or_log(
    gql, http, world, database_url, caplog, route, server, dispatcher, smtp
):
    # given
    caplog.set_level(logging.DEBUG)
    await world.tenant("canary", plugin="every_kind", privacy_policy_url="https://canary.example/privacy")
    await world.staff("canary", "staff@canary.example")
    anna = await staff_token(gql, "staff@canary.example")
    erased, control = markers(), markers(control=True)
    tokens = {}
    for label, values in (("erased", erased), ("control", control)):
        tokens[label] = await start(gql, "canary")
        for key, value in values.items():
            if key.startswith(("photo_", "chat_", "staff_")):
                continue
            saved = await save(gql, tokens[label], key, value)
            assert saved["__typename"] == "FieldSaved", saved
        photo = images.jpeg(320, 240, comment=str(values["photo_comment"]), gps=True)
        uploaded = await upload(http, tokens[label], photo, field="photos", filename=str(values["photo_name"]))
        assert uploaded.json()["data"]["uploadMedia"]["__typename"] == "MediaUploaded"
        cid = str((await contacts.contact_for_token(tokens[label])).id)
        chat_photo = images.jpeg(64, 48, comment=f"{values['photo_comment']} in chat", gps=True)
        chatted = await send_chat(
            http, tokens[label], str(values["chat_body"]), chat_photo, f"chat-{values['photo_name']}"
        )
        assert chatted["__typename"] == "ChatMessageSent", chatted
        replied = await gql(STAFF_REPLY, {"body": values["staff_reply"], "id": cid}, token=anna)
        assert replied["sendChatMessage"]["__typename"] == "ChatMessageSent"
    media_root = server.app.state.storage.root
    contact = await contacts.contact_for_token(tokens["erased"])
    other = await contacts.contact_for_token(tokens["control"])
    await ratelimit.hit(ratelimit.Limit("canary", 5, 60), "k", contact.tenant_id, contact_id=contact.id)
    viewed = (await gql(CONTACT, {"id": str(contact.id)}, token=anna))["contact"]  # audited
    assert viewed["displayName"] == erased["name"]
    assert (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]
    sent = await gql("mutation { sendContinueLink(channel: EMAIL) { __typename } }", token=tokens["erased"])
    assert sent["sendContinueLink"]["__typename"] == "LinkSent"
    with tenancy.as_tenant(contact.tenant_id):
        await connections.get("default").execute_query("UPDATE outbound_message SET next_attempt_at = now()")
    await dispatcher.run_once()
    assert any(m["X-Envelope-To"] == erased["email"] for m in smtp[1].messages)
    assert (await http.get(f"/my/{tokens['erased']}")).status_code == 200
    exported = await http.get(f"/my/{tokens['erased']}/export.json")
    assert exported.status_code == 200
    assert all(n in exported.text for n in needles(erased)), "the end user sees every marker, sealed ones too"
    before = await scan(database_url, [*needles(erased), "canary.example/privacy"])
    searched = await found_by_search(gql, anna, erased)
    assert set(searched) and all(ids == [str(contact.id)] for ids in searched.values()), "searched before erasure"
    # Every store holds ciphertext only (rapidly/keys): no marker in the database even before erasure,
    # while the scan does find what is stored in clear (the tenant's privacy page link).
    assert before == {"canary.example/privacy": ["tenant.privacy_policy_url"]}, before
    assert await scan(database_url, photo_needles(erased)) == {}, "a photo's name and EXIF are never stored"
    assert scan_files(media_root, photo_needles(erased) + needles(erased)) == []
    # ... nor in the whole database dumped by its owner, nor in a backup's content once unsealed
    everyone = needles(erased) + needles(control) + photo_needles(erased)
    dump = await plain_dump(database_url)
    assert b"canary.example/privacy" in dump and [n for n in everyone if n.encode() in dump] == []
    with_backups = server.app.state.settings.model_copy(update={"backup_key": "canary-backup-key-" + "k" * 20})
    backup = await Backups(with_backups, server.app.state.storage).create()
    with tempfile.TemporaryDirectory() as work:
        unsealed = Path(work) / "backup.dump"
        with (media_root.parent / "backups" / f"{backup.id}.backup").open("rb") as sealed, unsealed.open("wb") as out:
            unseal(sealed, out, with_backups.backup_passphrase, backup.id)
        content = await plain_dump(database_url, unsealed)
    assert b"canary.example/privacy" in content and [n for n in everyone if n.encode() in content] == []
    objects = [p for p in media_root.rglob("*") if p.is_file()]
    assert len(objects) == 4  # a photo and a chat photo each
    assert not any(images.is_image(p.read_bytes()) for p in objects), "photos are stored sealed"

    # when
    if route == "page":
        page = (await http.get(f"/my/{tokens['erased']}")).text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        assert (await http.post(f"/my/{tokens['erased']}/delete", data={"csrf": csrf})).status_code == 200
    elif route == "deleteMyData":
        result = await gql("mutation { deleteMyData { __typename } }", token=tokens["erased"])
        assert result["deleteMyData"]["__typename"] == "ErasureReceipt"
    else:
        result = await gql(
            "mutation D($id: ID!) { deleteContact(id: $id) { __typename } }", {"id": str(contact.id)}, token=anna
        )
        assert result["deleteContact"]["__typename"] == "ErasureReceipt"
    notifications = (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]

    # then
    assert await scan(database_url, needles(erased) + photo_needles(erased)) == {}
    with tenancy.as_tenant(contact.tenant_id):
        assert await OutboundMessage.filter(contact_id=contact.id).count() == 0
    assert scan_files(media_root, needles(erased) + photo_needles(erased)) == []
    left = [p.relative_to(media_root).parts[:2] for p in media_root.rglob("*") if p.is_file()]
    assert Counter(left) == Counter(
        {(str(contact.tenant_id), str(other.id)): 2, ("erasures", str(contact.tenant_id)): 1}
    )
    assert await scan(database_url, needles(control)) == {}, "the control contact's data is sealed too"
    shown = (await http.get(f"/my/{tokens['control']}/export.json")).text
    assert all(n in shown for n in needles(control)), "positive control: the sealed markers open"
    assert all(ids == [] for ids in (await found_by_search(gql, anna, erased)).values())
    assert all(ids == [str(other.id)] for ids in (await found_by_search(gql, anna, control)).values())
    app_records = [r for r in caplog.records if not r.name.startswith(_NOT_APPLICATION)]
    assert app_records, "the application's logs were captured"
    as_json = JsonFormatter()  # RAPIDLY_LOG_FORMAT=json: the same records, one object a line
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {as_json.format(r)}" for r in app_records)
    everything = needles(erased) + needles(control) + photo_needles(erased) + photo_needles(control)
    assert [n for n in [*everything, *tokens.values()] if n in logs] == []
    texts = [n["node"]["text"] for n in notifications]
    assert any(t.endswith("(poistettu)") for t in texts) and not any(erased["name"] in t for t in texts)
