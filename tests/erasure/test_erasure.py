"""Erasure over GraphQL and through the service: receipts, the ledger, staff, retention, retries."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tortoise import connections

from rapidly import db, tenancy
from rapidly.contacts import service as contacts
from rapidly.contacts.models import Contact, ContactToken, FieldValue
from rapidly.erasure import retention
from rapidly.erasure.models import Erasure, Requester
from rapidly.erasure.service import ErasureService
from rapidly.errors import NotFound
from rapidly.notifications.models import Notification
from rapidly.ratelimit import service as ratelimit
from rapidly.ratelimit.models import RateLimit
from rapidly.realtime.models import ContactEventLog
from rapidly.storage import journal_key
from rapidly.tenants import service as tenants
from rapidly.tenants.models import Tenant
from tests.conftest import subscribe
from tests.contacts.test_contacts_api import CONTACTS, NOTIFICATIONS, save, staff_token, start

DELETE_MY_DATA = """
mutation { deleteMyData { __typename
  ... on ErasureReceipt { contactId erasedAt requestedBy complete removed { store count } }
  ... on Error { message } } }
"""
DELETE_CONTACT = """
mutation Delete($id: ID!) { deleteContact(id: $id) { __typename
  ... on ErasureReceipt { contactId erasedAt requestedBy complete removed { store count } }
  ... on Error { message } } }
"""
ME = "query { me { __typename contactId tenantName values { key label value text } } }"
CONTACT_EVENTS = "subscription { contactEvents { __typename kind contactId contact { id } } }"


@pytest.fixture
async def two_tenants(world):
    await world.tenant("kattohuolto")
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    await world.tenant("verstas", plugin="carrepair_se", default_locale="sv")
    await world.staff("verstas", "erik@verstas.example")


async def filled_contact(gql, tenant="kattohuolto") -> tuple[str, str]:
    """A contact with a name, phone and email; returns (token, contact ID)."""
    token = await start(gql, tenant)
    await save(gql, token, "name", "Maija Meikäläinen")
    await save(gql, token, "phone", "040 123 4567")
    await save(gql, token, "email", "maija@example.com")
    contact = await contacts.contact_for_token(token)
    return token, str(contact.id)


async def tenant_of(slug: str = "kattohuolto") -> uuid.UUID:
    """The tenant whose rows the test's own statements read (row-level security: `tenancy.as_tenant`)."""
    return (await Tenant.get(slug=slug)).id


def removed(receipt: dict) -> dict[str, int]:
    return {row["store"]: row["count"] for row in receipt["removed"]}


async def test_delete_my_data_erases_everything_and_answers_with_a_receipt(gql, two_tenants):
    # given
    token, contact_id = await filled_contact(gql)
    anna = await staff_token(gql)

    # when
    receipt = (await gql(DELETE_MY_DATA, token=token))["deleteMyData"]

    # then
    assert receipt["__typename"] == "ErasureReceipt"
    assert receipt["contactId"] == contact_id
    assert receipt["requestedBy"] == "END_USER" and receipt["complete"] is True
    assert removed(receipt) == {
        "contact_key": 1,  # shredded first: the rest is unreadable from then on
        "field_values": 3,
        "contact_tokens": 1,
        "chat_messages": 0,
        "media": 0,
        "outbound_messages": 2,  # the self-service link by email (waiting), the staff's new-contact email
        "rate_limits": 0,
        "contact_events": 4,
        "media_objects": 0,
        "contact": 1,
    }
    stores = [row["store"] for row in receipt["removed"]]
    assert (stores[0], stores[-1]) == ("contact_key", "contact")
    cid = uuid.UUID(contact_id)
    with tenancy.as_tenant(await tenant_of()):
        assert not await Contact.exists(id=cid)
        assert not await FieldValue.exists(contact_id=cid)
        assert not await ContactToken.exists(contact_id=cid)
    assert (await gql(CONTACTS, token=anna))["contacts"]["edges"] == []
    assert (await gql(ME, token=token))["me"] is None
    again = (await gql(DELETE_MY_DATA, token=token))["deleteMyData"]
    assert again["__typename"] == "AuthError"


async def test_the_ledger_holds_ids_times_and_counts_only(gql, two_tenants):
    # given
    token, contact_id = await filled_contact(gql)

    # when
    await gql(DELETE_MY_DATA, token=token)

    # then
    with tenancy.as_tenant(await tenant_of()):
        row = await Erasure.get(contact_id=uuid.UUID(contact_id))
    assert row.requested_by == Requester.END_USER
    assert row.completed_at is not None and row.pending == []
    assert list(row.removed) and all(isinstance(n, int) for n in row.removed.values())
    columns = {f for f in Erasure._meta.db_fields}
    assert columns == {
        "id",
        "tenant_id",
        "contact_id",
        "requested_by",
        "requested_at",
        "completed_at",
        "removed",
        "pending",
        "attempts",
        "next_attempt_at",
    }


async def test_staff_erase_a_contact_and_erasing_again_returns_the_same_receipt(gql, two_tenants):
    # given
    _, contact_id = await filled_contact(gql)
    anna = await staff_token(gql)

    # when
    first = (await gql(DELETE_CONTACT, {"id": contact_id}, token=anna))["deleteContact"]
    second = (await gql(DELETE_CONTACT, {"id": contact_id}, token=anna))["deleteContact"]

    # then
    assert first["__typename"] == "ErasureReceipt" and first["requestedBy"] == "STAFF"
    assert second == first
    with tenancy.as_tenant(await tenant_of()):
        assert await Erasure.filter(contact_id=uuid.UUID(contact_id)).count() == 1


async def test_staff_of_another_tenant_can_neither_see_nor_erase_the_contact(gql, two_tenants):
    # given
    _, contact_id = await filled_contact(gql)
    erik = await staff_token(gql, "erik@verstas.example")

    # when
    foreign = (await gql(DELETE_CONTACT, {"id": contact_id}, token=erik))["deleteContact"]
    absent = (await gql(DELETE_CONTACT, {"id": str(uuid.uuid4())}, token=erik))["deleteContact"]
    malformed = (await gql(DELETE_CONTACT, {"id": "x" * 10_000}, token=erik))["deleteContact"]

    # then
    assert foreign == absent == malformed == {"__typename": "NotFoundError", "message": "No such contact."}
    with tenancy.as_tenant(await tenant_of()):
        assert await Contact.exists(id=uuid.UUID(contact_id))
        assert not await Erasure.exists(contact_id=uuid.UUID(contact_id))


async def test_delete_contact_needs_a_staff_token(gql, two_tenants):
    # given
    token, contact_id = await filled_contact(gql)

    # when
    as_contact = await gql(DELETE_CONTACT, {"id": contact_id}, token=token, expect_errors=True)
    anonymous = await gql(DELETE_CONTACT, {"id": contact_id}, expect_errors=True)
    my_data_as_staff = (await gql(DELETE_MY_DATA, token=await staff_token(gql)))["deleteMyData"]

    # then
    assert as_contact["errors"][0]["message"] == anonymous["errors"][0]["message"]
    assert my_data_as_staff["__typename"] == "AuthError"
    with tenancy.as_tenant(await tenant_of()):
        assert await Contact.exists(id=uuid.UUID(contact_id))


async def test_staff_are_told_deleted_and_notifications_keep_only_the_id(gql, two_tenants, server):
    # given
    _, contact_id = await filled_contact(gql)
    anna = await staff_token(gql)
    before = (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]
    assert before[0]["node"]["text"] == "Uusi yhteydenotto: Maija Meikäläinen"

    # when
    async with subscribe(server.graphql_url, CONTACT_EVENTS, anna, live=server.app.state.fanout) as events:
        await gql(DELETE_CONTACT, {"id": contact_id}, token=anna)
        event = (await events.next())["data"]["contactEvents"]

    # then
    assert event == {"__typename": "ContactEvent", "kind": "DELETED", "contactId": contact_id, "contact": None}
    after = (await gql(NOTIFICATIONS, token=anna))["notifications"]["edges"]
    assert after[0]["node"]["text"] == "Uusi yhteydenotto: (poistettu)"
    assert after[0]["node"]["contactId"] == contact_id
    with tenancy.as_tenant(await tenant_of()):
        assert await Notification.filter(contact_id=uuid.UUID(contact_id)).count() == 1


async def test_rate_limit_counters_of_the_contact_go_with_it(gql, two_tenants):
    # given
    token, _ = await filled_contact(gql)
    contact = await contacts.contact_for_token(token)
    limit = ratelimit.Limit("test-per-contact", 10, 3600)
    await ratelimit.hit(limit, "k1", contact.tenant_id, contact_id=contact.id)
    await ratelimit.hit(limit, "k2", contact.tenant_id)  # not the contact's: left alone

    # when
    receipt = (await gql(DELETE_MY_DATA, token=token))["deleteMyData"]

    # then
    assert removed(receipt)["rate_limits"] == 1
    with tenancy.as_tenant(contact.tenant_id):
        assert await RateLimit.filter(key__startswith="test-per-contact:").values_list("key", flat=True) == [
            "test-per-contact:k2"
        ]


async def test_a_save_racing_the_erasure_never_brings_the_contact_back(gql, two_tenants):
    # given
    token, contact_id = await filled_contact(gql)

    # when
    results = await asyncio.gather(
        *[save(gql, token, "name", f"Nimi {i}") for i in range(10)],
        gql(DELETE_MY_DATA, token=token),
        *[save(gql, token, "street_address", f"Katu {i}") for i in range(10)],
    )

    # then
    assert results[10]["deleteMyData"]["__typename"] == "ErasureReceipt"
    assert {r["__typename"] for r in results[:10] + results[11:]} <= {"FieldSaved", "AuthError"}
    cid = uuid.UUID(contact_id)
    with tenancy.as_tenant(await tenant_of()):
        assert not await Contact.exists(id=cid)
        assert not await FieldValue.exists(contact_id=cid)


async def test_concurrent_erasures_give_one_ledger_row_and_one_receipt(gql, two_tenants, server):
    # given
    token, _ = await filled_contact(gql)
    contact = await contacts.contact_for_token(token)
    erasure: ErasureService = server.app.state.erasure

    # when
    receipts = await asyncio.gather(*[erasure.erase(contact.tenant_id, contact.id, Requester.STAFF) for _ in range(5)])

    # then
    # the same erasure; a caller that arrived while object storage was being emptied sees it pending
    assert len({(r.erased_at, r.removed["field_values"], r.removed["contact"]) for r in receipts}) == 1
    with tenancy.as_tenant(contact.tenant_id):
        assert await Erasure.filter(contact_id=contact.id).count() == 1
        assert await ContactEventLog.filter(contact_id=contact.id, kind="DELETED").count() == 1


async def test_an_absent_contact_is_not_found(server, two_tenants, database_url):
    # given
    erasure: ErasureService = server.app.state.erasure
    owner = await db.Credentials.from_url(database_url).connect()  # every tenant's rows
    try:
        tenant_id = [row["tenant_id"] for row in await owner.fetch("SELECT tenant_id FROM contact")] or [uuid.uuid4()]

        # when / then
        with pytest.raises(NotFound):
            await erasure.erase(tenant_id[0], uuid.uuid4(), Requester.STAFF)
        assert await owner.fetchval("SELECT count(*) FROM erasure") == 0
    finally:
        await owner.close()


async def test_a_restored_backup_is_erased_again_from_the_journal(gql, two_tenants, server):
    # given: a backup taken before the erasure, restored after it (rows back, ledger row gone)
    token, _ = await filled_contact(gql)
    contact = await contacts.contact_for_token(token)
    conn = connections.get("default")
    with tenancy.as_tenant(contact.tenant_id):
        _, contact_rows = await conn.execute_query("SELECT * FROM contact WHERE id = $1", [contact.id])
        _, value_rows = await conn.execute_query("SELECT * FROM field_value WHERE contact_id = $1", [contact.id])
    backup = {"contact": contact_rows, "field_value": value_rows}
    erasure: ErasureService = server.app.state.erasure
    receipt = await erasure.erase(contact.tenant_id, contact.id, Requester.END_USER)
    assert receipt.complete
    with tenancy.as_tenant(contact.tenant_id):
        await restore(backup)
        await Erasure.filter(contact_id=contact.id).delete()
        assert await FieldValue.filter(contact_id=contact.id).count() == 3

    # when
    replayed = await erasure.replay()

    # then
    assert replayed == 1
    with tenancy.as_tenant(contact.tenant_id):
        assert not await Contact.exists(id=contact.id)
        assert not await FieldValue.exists(contact_id=contact.id)
        assert (await Erasure.get(contact_id=contact.id)).requested_by == Requester.END_USER
    assert await erasure.replay() == 0


@pytest.mark.parametrize("entry", [b"not json", b'{"requestedBy": "SOMEONE_NEW"}', b"[]", b""])
async def test_a_journal_entry_that_cannot_be_read_still_erases_its_contact(gql, two_tenants, server, entry):
    # given: a backup brought the contact back, and its journal entry is unreadable (a newer
    # version's, or damaged), beside an object in the journal that is none of ours
    token, _ = await filled_contact(gql)
    contact = await contacts.contact_for_token(token)
    conn = connections.get("default")
    with tenancy.as_tenant(contact.tenant_id):
        backup = {"contact": (await conn.execute_query("SELECT * FROM contact WHERE id = $1", [contact.id]))[1]}
    erasure: ErasureService = server.app.state.erasure
    assert (await erasure.erase(contact.tenant_id, contact.id, Requester.END_USER)).complete
    with tenancy.as_tenant(contact.tenant_id):
        await restore(backup)
        await Erasure.filter(contact_id=contact.id).delete()
    storage = server.app.state.storage
    await storage.put(journal_key(contact.tenant_id, contact.id), entry, "application/json")
    stray = storage.root / "erasures" / "README"
    stray.write_text("not a journal entry")

    # when
    try:
        replayed = await erasure.replay()
    finally:
        stray.unlink()

    # then
    with tenancy.as_tenant(contact.tenant_id):
        assert replayed == 1 and not await Contact.exists(id=contact.id)
        assert (await Erasure.get(contact_id=contact.id)).requested_by == Requester.RETENTION


async def restore(backup: dict) -> None:
    """Put the rows back as they were, as the current tenant (`tenancy.as_tenant`, the rows' own)."""
    conn = connections.get("default")
    for table, rows in backup.items():
        for row in rows:
            columns = list(row.keys())
            placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
            values = [json.dumps(v) if k == "value" else v for k, v in row.items()]
            await conn.execute_query(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608 - test tables
                values,
            )


async def test_retention_leaves_a_contact_that_became_active_again(gql, world, server):
    # given: listed as expired, then a save before its turn comes
    await world.tenant("kattohuolto", retention_days=30)
    token, contact_id = await filled_contact(gql)
    with tenancy.as_tenant(await tenant_of()):
        await connections.get("default").execute_query("UPDATE contact SET updated_at = now() - interval '31 days'")
    erasure: ErasureService = server.app.state.erasure
    await save(gql, token, "name", "Palasi takaisin")

    # when / then
    with pytest.raises(NotFound):
        await erasure.erase(
            (await contacts.contact_for_token(token)).tenant_id,
            uuid.UUID(contact_id),
            Requester.RETENTION,
            expired_only=True,
        )
    with tenancy.as_tenant(await tenant_of()):
        assert await Contact.exists(id=uuid.UUID(contact_id))
    assert await retention.sweep(erasure) == 0


async def test_retention_erases_contacts_inactive_for_longer_than_the_tenant_keeps_them(gql, world, server):
    # given
    await world.tenant("kattohuolto")
    await world.tenant("verstas", plugin="carrepair_se")
    await tenants.set_retention("kattohuolto", 30)  # as the operator does: `rapidly tenant retention`
    _, old_id = await filled_contact(gql)
    _, recent_id = await filled_contact(gql)
    keeper = await start(gql, "verstas")
    await save(gql, keeper, "name", "Erik")
    for slug in ("kattohuolto", "verstas"):  # every tenant's contacts but the recent one
        with tenancy.as_tenant(await tenant_of(slug)):
            await connections.get("default").execute_query(
                "UPDATE contact SET updated_at = now() - interval '31 days' WHERE id <> $1", [uuid.UUID(recent_id)]
            )

    # when
    erased = await retention.sweep(server.app.state.erasure)

    # then
    assert erased == 1
    with tenancy.as_tenant(await tenant_of()):
        assert not await Contact.exists(id=uuid.UUID(old_id))
        assert await Contact.exists(id=uuid.UUID(recent_id))
        assert (await Erasure.get(contact_id=uuid.UUID(old_id))).requested_by == Requester.RETENTION
    with tenancy.as_tenant(await tenant_of("verstas")):
        assert await Contact.filter(tenant__slug="verstas").count() == 1


async def test_the_end_users_own_subscription_gets_deleted_and_then_completes(gql, two_tenants, server):
    # given
    token, contact_id = await filled_contact(gql)
    my_events = "subscription { myEvents { __typename kind contactId contact { id } } }"

    # when
    async with subscribe(server.graphql_url, my_events, token, live=server.app.state.fanout) as events:
        await gql(DELETE_MY_DATA, token=token)
        event = (await events.next())["data"]["myEvents"]
        completed = json.loads(await asyncio.wait_for(events.ws.recv(), 5))

    # then
    assert event == {"__typename": "ContactEvent", "kind": "DELETED", "contactId": contact_id, "contact": None}
    assert completed == {"id": "1", "type": "complete"}


async def test_staff_see_the_tenants_retention(gql, two_tenants):
    # given
    await tenants.set_retention("kattohuolto", 365)  # as the operator does: `rapidly tenant retention`

    # when
    viewer = (await gql("query { viewer { tenant { retentionDays } } }", token=await staff_token(gql)))["viewer"]

    # then
    assert viewer == {"tenant": {"retentionDays": 365}}
