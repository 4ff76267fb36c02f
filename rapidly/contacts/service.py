"""Contacts: starting one, saving its answers as they are typed, and the staff's view of them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import phonenumbers
from tortoise.backends.base.client import BaseDBAsyncClient

from rapidly import db, metrics, security, tenancy
from rapidly.config import Settings
from rapidly.contacts.models import Contact, ContactToken
from rapidly.contacts.values import is_empty, normalise
from rapidly.erasure.erasers import SqlEraser
from rapidly.errors import AuthFailed, InputInvalid, NotFound
from rapidly.keys import Unreadable, blind, open_sealed, place, seal
from rapidly.keys import service as keys
from rapidly.messaging import outbox
from rapidly.messaging import service as messaging
from rapidly.notifications import service as notifications
from rapidly.plugins import Channel, FieldRole, FieldSpec, MessageEvent, PluginRegistry, resolve_locale
from rapidly.ratelimit import service as ratelimit
from rapidly.realtime import EventKind
from rapidly.realtime.publish import PAYLOADS, PUBLISH_CTES, announce_committed
from rapidly.tenants import origins
from rapidly.tenants import service as tenants
from rapidly.tenants.models import Tenant
from rapidly.validation import parse_id

log = logging.getLogger(__name__)

MAX_PAGE = 100

#: The contact's own tables; the erasure service then deletes the contact row itself.
ERASERS = [
    SqlEraser("field_values", "DELETE FROM field_value WHERE tenant_id = $1 AND contact_id = $2"),
    SqlEraser("contact_tokens", "DELETE FROM contact_token WHERE tenant_id = $1 AND contact_id = $2"),
]

#: Saving a value of these roles may bring the self-service link on that channel.
ADDRESS_CHANNELS = {FieldRole.EMAIL: Channel.EMAIL, FieldRole.PHONE: Channel.SMS}

#: Default region for phone numbers written without a country code, by the tenant's language.
PHONE_REGION = {"fi": "FI", "sv": "SE", "en": "FI"}


def phone_region(tenant: Tenant) -> str:
    """Where the tenant's phone numbers written without a country code are from."""
    return PHONE_REGION.get(tenant.default_locale, "FI")


# A save is one statement, so one round trip and its own transaction. Parameters: $1 tenant, $2 contact,
# $3 key, $4 the value sealed under the contact's key (NULL to clear), $5-$8 the self-service link
# (channel, locale, dedupe key, send at; NULL for none), $9 the token's hash, $10 the tenant's
# updated_at, $11 the value's keyed digest, $12 its blind-index terms. It does this:
# - lock the contact first (the upsert reads from it): otherwise two first saves deadlock, each
#   upsert's foreign-key check share-locking the contact before each touch wants it exclusively;
#   and only while its token ($9) is live and its tenant is the version the value was checked
#   against ($10), or nothing at all happens (see `RecentTokens`);
# - store the value ($4) or, when it is NULL, clear it; an identical value (the same digest) is not
#   written again, and then nothing else happens: no touch, no event;
# - touch the contact with clock_timestamp(), not now(): overlapping saves must not move "last
#   activity" backwards;
# - log CREATED (first save) and FIELD_SAVED, and return their payloads to announce after the commit;
# - queue the self-service link when $5 names a channel (see `messaging.self_service_link`).
_SAVE = f"""
WITH locked AS (
    SELECT c.id, c.first_saved_at IS NULL AS first_save
    FROM contact c JOIN tenant t ON t.id = c.tenant_id AND t.updated_at = $10
    WHERE c.id = $2 AND c.tenant_id = $1 AND EXISTS (
        SELECT 1 FROM contact_token k WHERE k.token_hash = $9 AND k.contact_id = c.id AND k.expires_at > now()
    )
    FOR NO KEY UPDATE OF c
), saved AS (
    INSERT INTO field_value (id, tenant_id, contact_id, key, sealed, digest, terms, updated_at)
    SELECT gen_random_uuid(), $1, locked.id, $3, $4, $11, $12, clock_timestamp() FROM locked WHERE $4 IS NOT NULL
    ON CONFLICT (tenant_id, contact_id, key) DO UPDATE
        SET sealed = excluded.sealed, digest = excluded.digest, terms = excluded.terms, value = NULL,
            updated_at = excluded.updated_at
        WHERE field_value.digest IS DISTINCT FROM excluded.digest
    RETURNING updated_at
), cleared AS (
    DELETE FROM field_value USING locked
    WHERE $4 IS NULL AND field_value.tenant_id = $1 AND field_value.contact_id = locked.id
        AND field_value.key = $3
    RETURNING clock_timestamp() AS updated_at
), changed AS (
    SELECT updated_at FROM saved UNION ALL SELECT updated_at FROM cleared
), touched AS (
    UPDATE contact SET
        updated_at = GREATEST(contact.updated_at, clock_timestamp()),
        first_saved_at = COALESCE(contact.first_saved_at, clock_timestamp())
    FROM locked WHERE contact.id = locked.id AND EXISTS (SELECT 1 FROM changed)
), to_publish AS (
    SELECT $1::uuid AS tenant_id, locked.id AS contact_id, event.kind, event.ord
    FROM locked, (VALUES ('{EventKind.CREATED.value}', 1), ('{EventKind.FIELD_SAVED.value}', 2)) AS event (kind, ord)
    WHERE EXISTS (SELECT 1 FROM changed) AND (locked.first_save OR event.ord = 2)
), {PUBLISH_CTES}, to_enqueue AS (
    SELECT $1::uuid AS tenant_id, locked.id AS contact_id, NULL::uuid AS staff_id,
           '{MessageEvent.SELF_SERVICE_LINK.value}' AS event, $5::text AS channel, $6::text AS locale,
           '{{}}'::jsonb AS payload, $7::text AS dedupe_key, $8::timestamptz AS next_attempt_at
    FROM locked WHERE $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM saved)
), {outbox.ENQUEUE_CTE}
SELECT
    locked.first_save,
    EXISTS (SELECT 1 FROM changed) AS changed,
    (SELECT updated_at FROM changed) AS updated_at,
    {PAYLOADS} AS announce,
    (SELECT count(*) FROM enqueued) AS enqueued
FROM locked
"""  # noqa: S608 -- module constants; every value is a bind parameter

#: The save as one round trip that sets the tenant itself (see `db.Routine`).
_SAVE_ROUTINE = db.Routine(
    "rapidly_save",
    params=(
        "uuid",
        "uuid",
        "text",
        "bytea",
        "text",
        "text",
        "text",
        "timestamptz",
        "text",
        "timestamptz",
        "bytea",
        "int[]",
    ),
    returns="TABLE (first_save boolean, changed boolean, updated_at timestamptz, announce text[], enqueued bigint)",
    body=_SAVE,
)


_STORED_AT = "SELECT updated_at FROM field_value WHERE tenant_id = $1 AND contact_id = $2 AND key = $3"

_CONTACT_COLUMNS = ("id", "tenant_id", "locale", "created_at", "updated_at", "first_saved_at")
#: The contact's columns, for a plain statement that reads `contact c`.
_CONTACT_SELECT = ", ".join(f"c.{column}" for column in _CONTACT_COLUMNS)
#: Their names and types, for the rows of a `db.Routine` that selects them.
_CONTACT_ROWS = (
    "id uuid, tenant_id uuid, locale varchar, created_at timestamptz, updated_at timestamptz, "
    "first_saved_at timestamptz"
)
_CONTACT_FOR_TOKEN = db.Routine(
    "rapidly_contact_for_token",
    params=("text",),
    returns=f"TABLE ({_CONTACT_ROWS}, {tenants.TENANT_ROW})",
    body=f"""
SELECT {_CONTACT_SELECT}, {tenants.TENANT_SELECT}
FROM contact_token k JOIN contact c ON c.id = k.contact_id JOIN tenant t ON t.id = c.tenant_id
WHERE k.token_hash = $1 AND k.expires_at > now()
""",  # noqa: S608 - column names come from the models, the token hash is a parameter
    tenant_of="rapidly_contact_token_tenant",
)


@dataclass(frozen=True, slots=True)
class SavedValue:
    key: str
    value: object
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Page:
    contacts: list[Contact]
    has_next: bool
    #: A search's contacts' values, opened to check them: what the page's readers need not read again.
    values: dict[uuid.UUID, list[SavedValue]] | None = None


@dataclass(frozen=True, slots=True)
class FormView:
    tenant: Tenant
    locale: str
    fields: list[FieldSpec]


def self_service_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}/my/{token}"


def fields_of(plugins: PluginRegistry, tenant: Tenant) -> list[FieldSpec]:
    return plugins.contact_fields(tenants.tenant_info(tenant))


async def form(plugins: PluginRegistry, slug: str, locale: str | None, origin: str | None = None) -> FormView | None:
    """The tenant's form; None for an unknown tenant, `OriginNotAllowed` from a website it does not list."""
    try:
        tenant = await tenants.get_by_slug(slug)
    except NotFound:
        return None
    origins.require(tenant, origin)
    return FormView(tenant, resolve_locale(locale, tenant.default_locale), fields_of(plugins, tenant))


async def start_contact(
    settings: Settings, *, slug: str, locale: str | None, client_ip: str, origin: str | None = None
) -> str:
    """A new, empty contact; returns its token. Public, so limited per client address.

    An unsupported locale falls back to the tenant's, as the form does (a browser may ask for "de").
    From a browser on another website, the tenant must list that website (`OriginNotAllowed`).
    """
    await ratelimit.hit(
        ratelimit.Limit("start-contact-ip", settings.contacts_per_ip_per_hour, 3600),
        security.keyed_digest(settings.signing_key, "start-contact-ip", ratelimit.network_of(client_ip)),
    )
    tenant = await tenants.get_by_slug(slug)
    origins.require(tenant, origin)
    with tenancy.scoped(tenant.id):
        async with db.transaction() as conn:
            contact = await Contact.create(
                using_db=conn, tenant=tenant, locale=resolve_locale(locale, tenant.default_locale)
            )
            await keys.ring().new_contact_key(conn, tenant.id, contact.id)
            return await issue_token(conn, tenant.id, contact.id, timedelta(days=settings.contact_token_days))


async def issue_token(conn: BaseDBAsyncClient, tenant_id: uuid.UUID, contact_id: uuid.UUID, lifetime: timedelta) -> str:
    """A new bearer token for the contact (a link's token); only its SHA-256 is stored."""
    token = security.generate_token(security.CONTACT_TOKEN_PREFIX)
    await ContactToken.create(
        using_db=conn,
        tenant_id=tenant_id,
        contact_id=contact_id,
        token_hash=security.hash_token(token),
        expires_at=datetime.now(UTC) + lifetime,
    )
    return token


# Oldest first along their own indexes; rows a request holds are left for the next round. The batch
# is picked once (MATERIALIZED): as an `id IN (...)` subquery, the planner may run it again for every
# row under the row-level security policy, and a batch would be as large as the tenant's expired rows.
_PURGE_EXPIRED_TOKENS = """
WITH picked AS MATERIALIZED (
    SELECT id FROM contact_token WHERE expires_at < now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
DELETE FROM contact_token t USING picked WHERE t.id = picked.id RETURNING 1
"""
_PURGE_ABANDONED = """
WITH picked AS MATERIALIZED (
    SELECT id FROM contact WHERE first_saved_at IS NULL AND created_at < $1
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM contact c USING picked WHERE c.id = picked.id RETURNING 1
"""


async def purge_expired_tokens() -> int:
    """Links that no longer work (continue links last 30 minutes)."""
    return await db.delete_in_batches(_PURGE_EXPIRED_TOKENS, [])


async def contact_for_token(token: str) -> Contact | None:
    """The contact behind a live contact token, with its tenant loaded; None otherwise."""
    token_hash = security.hash_presented_token(token, security.CONTACT_TOKEN_PREFIX)
    return await _contact_for_hash(token_hash) if token_hash else None


async def _contact_for_hash(token_hash: str) -> Contact | None:
    # One plain statement: building it through the ORM's query builder cost more CPU than the rest of a save.
    return await tenants.fetch_with_tenant(Contact, _CONTACT_COLUMNS, _CONTACT_FOR_TOKEN, token_hash)


@dataclass(slots=True)
class Saver:
    """A token's contact, with its tenant and the tenant's fields, as a save needs them."""

    token_hash: str
    contact: Contact
    fields: dict[str, FieldSpec]
    #: The contact has a saved value (or had one): no save of it can be the first any more.
    saved_before: bool
    #: The contact's data key, and its tenant's blind-index key.
    key: bytes
    index_key: bytes


class RecentTokens:
    """Contact tokens that saved lately, by their hash: the `Saver` for each, so that the next save
    of an end user who is typing needs no lookup first.

    An entry can never let a save through that a fresh lookup would refuse: the save statement itself
    checks that the token is still live and the tenant still the version the value was checked
    against, and does nothing otherwise; the save is then done again after a fresh lookup. Bounded
    in number and age; only the refusal of an invalid value may come from a tenant's settings as they
    were up to `max_age` seconds ago."""

    def __init__(self, size: int = 10_000, max_age: float = 60.0) -> None:
        self.size, self.max_age = size, max_age
        self._entries: OrderedDict[str, tuple[float, Saver]] = OrderedDict()

    def get(self, token_hash: str) -> Saver | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[token_hash]
            return None
        return entry[1]

    def remember(self, saver: Saver) -> None:
        self._entries[saver.token_hash] = (time.monotonic() + self.max_age, saver)
        self._entries.move_to_end(saver.token_hash)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        self.prune()

    def prune(self) -> int:
        """Forget the entries past their age (a Saver holds its contact's data key); how many. The
        oldest come first, as each is moved to the end when remembered."""
        now, pruned = time.monotonic(), 0
        while self._entries and next(iter(self._entries.values()))[0] < now:
            self._entries.popitem(last=False)
            pruned += 1
        return pruned

    def forget(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)


_recent = RecentTokens()


async def save_field(
    plugins: PluginRegistry, token: str | None, key: str, raw: object, origin: str | None = None
) -> SavedValue:
    """Validate and store one answer at once, for the bearer of a contact token; last write wins, an
    identical repeat changes nothing.

    An invalid value raises `InputInvalid` and leaves the stored value as it was; a token that is not
    a live contact token raises `AuthFailed`; a browser on a website that the contact's tenant does
    not list, `OriginNotAllowed`.
    """
    token_hash = security.hash_presented_token(token, security.CONTACT_TOKEN_PREFIX)
    if token_hash is None:
        raise AuthFailed()
    # A remembered tenant that refuses the origin may predate the origin's listing: look it up afresh.
    if (saver := _recent.get(token_hash)) is not None and origins.allows(saver.contact.tenant, origin):
        try:
            if (saved := await _save(saver, key, raw)) is not None:
                return saved
        except InputInvalid:
            pass  # judged by a remembered tenant, for a token not checked yet: judge it afresh
        _recent.forget(token_hash)
    for _ in range(2):  # a tenant changed between a lookup and its save makes the save do nothing: again
        contact = await _contact_for_hash(token_hash)
        if contact is None:
            raise AuthFailed()
        origins.require(contact.tenant, origin)
        fields = {f.key: f for f in fields_of(plugins, contact.tenant)}
        contact_key, index_key = await _keys_for_saving(contact)
        saver = Saver(token_hash, contact, fields, contact.first_saved_at is not None, contact_key, index_key)
        if (saved := await _save(saver, key, raw)) is not None:
            _recent.remember(saver)
            return saved
    raise AuthFailed()  # erased or expired since the lookup


async def _keys_for_saving(contact: Contact) -> tuple[bytes, bytes]:
    """The contact's data key (made now for a contact from before encryption) and the blind-index key."""
    ring = keys.ring()
    tenant_id = contact.tenant_id  # type: ignore[attr-defined]
    key = await ring.contact_key(tenant_id, contact.id)
    if key is None:
        with tenancy.scoped(tenant_id):
            async with db.transaction() as tx:
                key = await ring.key_for_writing(tx, tenant_id, contact.id)
    return key, blind.index_key(await ring.tenant_key(tenant_id))


def sealed_value(
    contact_key: bytes, index_key: bytes, tenant_id: uuid.UUID, contact_id: uuid.UUID, key: str, value: object
) -> tuple[bytes, bytes, list[int]]:
    """A value as stored: sealed under the contact's key, its digest, its blind-index terms."""
    plain = json.dumps(value, ensure_ascii=False).encode()
    digest = hashlib.blake2b(key.encode() + b"\0" + plain, key=contact_key, digest_size=16).digest()
    sealed = seal(contact_key, plain, value_place(tenant_id, contact_id, key))
    return sealed, digest, blind.terms_of(index_key, value)


def value_place(tenant_id: uuid.UUID, contact_id: uuid.UUID, key: str) -> bytes:
    return place("value", tenant_id, contact_id, key)


async def _save(saver: Saver, key: str, raw: object) -> SavedValue | None:
    """The save itself; None when the statement found the token dead or the tenant changed."""
    contact = saver.contact
    tenant: Tenant = contact.tenant
    spec = saver.fields.get(key)
    if spec is None:
        raise InputInvalid.one("key", "unknown_field", "This form has no field with that key.")
    value = normalise(spec, raw, default_region=phone_region(tenant))
    value = None if is_empty(value) else value
    link = messaging.self_service_link(tenant, contact, ADDRESS_CHANNELS.get(spec.role)) if value is not None else None
    sealed, digest, terms = (
        sealed_value(saver.key, saver.index_key, tenant.id, contact.id, key, value)
        if value is not None
        else (None, None, None)
    )
    params = [contact.id, key, sealed, *(link or (None, None, None, None)), saver.token_hash, tenant.updated_at]
    params += [digest, terms]
    if saver.saved_before:  # first_saved_at is never unset: one statement
        rows = await _SAVE_ROUTINE.fetch(tenant.id, *params)
        row = rows[0] if rows else None
        if row is not None:
            announce_committed(row["announce"])
    else:  # the first save also notifies the staff, in the same transaction
        with tenancy.scoped(tenant.id):
            async with db.transaction() as tx:
                rows = await _SAVE_ROUTINE.fetch(tenant.id, *params)
                row = rows[0] if rows else None
                if row and row["first_save"] and row["changed"]:
                    await notifications.notify_staff(tx, tenant.id, notifications.NEW_CONTACT, contact.id)
                    await messaging.to_staff(tx, tenant, MessageEvent.NEW_CONTACT, contact.id)
                if row:
                    announce_committed(row["announce"])
        saver.saved_before = row is not None and (row["changed"] or not row["first_save"])
    if row is None:
        return None
    metrics.SAVES.inc()
    # Nothing changed: the stored value's time, read afresh (this statement's snapshot may predate an
    # identical save it waited for).
    updated_at = row["updated_at"] if row["changed"] else await _stored_at(contact, key)
    return SavedValue(key, value, updated_at)


async def _stored_at(contact: Contact, key: str) -> datetime | None:
    with tenancy.scoped(contact.tenant_id):  # type: ignore[attr-defined]
        async with db.connection() as conn:
            return await conn.fetchval(_STORED_AT, contact.tenant_id, contact.id, key)


async def get_contact(tenant_id: uuid.UUID, contact_id: str) -> Contact | None:
    """A visible contact of this tenant; None when absent, not yet started, or another tenant's."""
    cid = parse_id(contact_id)
    if cid is None:
        return None
    with tenancy.scoped(tenant_id):
        return await Contact.get_or_none(id=cid, tenant_id=tenant_id, first_saved_at__not_isnull=True)


async def list_contacts(tenant: Tenant, first: int, after: str | None, search: str | None = None) -> Page:
    """Most recently active first; keyset pagination on (updated_at, id), so pages stay put as
    contacts are added. With `search`, only contacts one of whose values holds that text."""
    if not 1 <= first <= MAX_PAGE:
        raise InputInvalid.one("first", "out_of_range", f"Ask for 1 to {MAX_PAGE} contacts.")
    after_key = decode_cursor(after) if after is not None else None
    if search is None or not search.strip():
        return await _page(tenant.id, first, after_key, [])
    return await _search(tenant.id, first, after_key, search_needles(search, phone_region(tenant)))


SEARCH_MIN_LENGTH = 3
SEARCH_MAX_LENGTH = 100
_PHONE_LIKE = re.compile(r"\+?[0-9][0-9 ()-]*")


_PAGE_ORDER = "ORDER BY c.updated_at DESC, c.id DESC"
# A page of the staff list, in one round trip each that sets the tenant itself (`db.Routine`).
_FIRST_PAGE = db.Routine(
    "rapidly_first_page",
    params=("uuid", "int"),
    returns=f"TABLE ({_CONTACT_ROWS})",
    body=f"""
SELECT {_CONTACT_SELECT} FROM contact c WHERE c.tenant_id = $1 AND c.first_saved_at IS NOT NULL
{_PAGE_ORDER} LIMIT $2
""",  # noqa: S608 - column names from the model
)
_PAGE_AFTER = db.Routine(
    "rapidly_page_after",
    params=("uuid", "timestamptz", "uuid", "int"),
    returns=f"TABLE ({_CONTACT_ROWS})",
    body=f"""
SELECT {_CONTACT_SELECT} FROM contact c
WHERE c.tenant_id = $1 AND c.first_saved_at IS NOT NULL AND (c.updated_at, c.id) < ($2, $3)
{_PAGE_ORDER} LIMIT $4
""",  # noqa: S608 - column names from the model
)
_SEARCH_PAGE = f"""
SELECT {_CONTACT_SELECT} FROM contact c JOIN rapidly_search_sealed($2, $3, $4, $5::jsonb) AS found ON found.id = c.id
WHERE c.tenant_id = $1 AND c.first_saved_at IS NOT NULL
{_PAGE_ORDER} LIMIT $4
"""  # noqa: S608 - column names from the model; every value is a bind parameter


async def _page(
    tenant_id: uuid.UUID, first: int, after: tuple[datetime, uuid.UUID] | None, terms: list[list[int]]
) -> Page:
    """Visible contacts, most recently active first, from after `after`: one range of the
    (tenant_id, updated_at, id) index however deep the page, as the row comparison is an index
    condition (an `updated_at < $2 OR (updated_at = $2 AND id < $3)` is not, and read every contact
    before the page).

    With `terms` (one list per needle, see `rapidly.keys.blind`), only contacts with a value whose
    blind-index terms hold all of one needle's: candidates, which `_search` opens and checks. Each
    search is planned for its own terms: a rare one is found through the index and the few contacts
    sorted; a common one is found by walking the contacts from the most recent and stopping at a page.
    A plan made once for every search (a prepared statement's generic plan) takes seconds for one or
    the other. The search runs in the function `rapidly_search_sealed` (migration 0012): under
    row-level security, the terms' containment could not use the index."""
    if not terms:
        rows = await (
            _PAGE_AFTER.fetch(tenant_id, *after, first + 1) if after else _FIRST_PAGE.fetch(tenant_id, first + 1)
        )
    else:
        args = (tenant_id, *(after or (None, None)), first + 1, json.dumps(terms))
        with tenancy.scoped(tenant_id):
            async with db.connection() as conn:
                rows = await conn.fetch(_SEARCH_PAGE, *args)
    found = [Contact._init_from_db(**dict(row)) for row in rows]
    return Page(contacts=found[:first], has_next=len(found) > first)


async def _search(
    tenant_id: uuid.UUID, first: int, after: tuple[datetime, uuid.UUID] | None, needles: list[str]
) -> Page:
    """Contacts one of whose values holds one of `needles`: the blind index's candidates, opened and
    checked, so that nothing is shown that does not hold the text (a hash collision, or trigrams
    found apart). Candidates are read a page at a time until a page of true matches is made."""
    index_key = blind.index_key(await keys.ring().tenant_key(tenant_id))
    terms = [blind.needle_terms(index_key, needle) for needle in needles]
    matches: list[Contact] = []
    opened: dict[uuid.UUID, list[SavedValue]] = {}
    while True:
        page = await _page(tenant_id, first, after, terms)
        values = await values_by_contact(tenant_id, [c.id for c in page.contacts])
        for contact, saved in zip(page.contacts, values, strict=True):
            texts = [blind.searchable(v.value) for v in saved]
            if any(needle in text for needle in needles for text in texts):
                matches.append(contact)
                opened[contact.id] = saved
        if len(matches) > first or not page.has_next:
            shown = matches[:first]
            return Page(shown, len(matches) > first or page.has_next, {c.id: opened[c.id] for c in shown})
        last = page.contacts[-1]
        after = (last.updated_at, last.id)


def search_needles(text: str, region: str) -> list[str]:
    """What a staff member's search looks for: the text as typed (lower case, its spaces folded); for
    what looks like a phone number also its digits, and as numbers are stored (E.164): "040 123"
    finds "+358401234567". Digits' trigrams are the least selective (phone numbers take the longest
    to find: see bench/search.py), so a number typed with spaces is searched as stored only."""
    words = blind.folded(text)
    if len(words) < SEARCH_MIN_LENGTH:
        raise InputInvalid.one("search", "too_short", f"Type at least {SEARCH_MIN_LENGTH} characters.")
    if len(words) > SEARCH_MAX_LENGTH:
        raise InputInvalid.one("search", "too_long", f"Search for at most {SEARCH_MAX_LENGTH} characters.")
    found = [words]
    if _PHONE_LIKE.fullmatch(words):
        # Also its digits, and as numbers are stored; typed with spaces ("040 123"), it is in no value
        # as typed, and searching that would only match every number sharing a group of digits.
        digits = re.sub(r"\D", "", words)
        code = phonenumbers.country_code_for_region(region.upper())
        found = [] if " " in words else [words]
        if words.startswith(("+", "00")):  # an international number: "+358 40", "00358 40"
            found.append("+" + (digits[2:] if words.startswith("00") else digits))
        elif digits.startswith("0") and code:
            found.append(f"+{code}{digits[1:]}")
        else:
            found.append(digits)
    needles = [w for w in dict.fromkeys(found) if len(w) >= SEARCH_MIN_LENGTH]
    if not needles:  # "1 2": too few digits to search for
        raise InputInvalid.one("search", "too_short", f"Type at least {SEARCH_MIN_LENGTH} characters.")
    return needles


def encode_cursor(contact: Contact) -> str:
    raw = f"{contact.updated_at.isoformat()}|{contact.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, cid = base64.urlsafe_b64decode(cursor.encode()[:200]).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InputInvalid.one("after", "invalid_cursor", "This cursor is not valid.") from None


# Sorted by key in Python: asked for an order its index cannot give, PostgreSQL before 17 may rather
# read the tenant's every value in index order than look up each contact's. Each row brings its
# contact's wrapped key, so a page of contacts costs one round trip; the keys are asked for by the
# contacts' IDs too, so that the plan reads those keys only, whatever the table's statistics say.
# One round trip that sets the tenant itself (`db.Routine`): a page of contacts waits for it.
_VALUES_OF = db.Routine(
    "rapidly_values_of",
    params=("uuid", "uuid[]"),
    returns=(
        "TABLE (contact_id uuid, key varchar, sealed bytea, value jsonb, updated_at timestamptz, contact_key bytea)"
    ),
    body="""
SELECT v.contact_id, v.key, v.sealed, v.value, v.updated_at, k.wrapped AS contact_key
FROM field_value v LEFT JOIN contact_key k
    ON k.tenant_id = v.tenant_id AND k.contact_id = v.contact_id AND k.contact_id = ANY($2::uuid[])
WHERE v.tenant_id = $1 AND v.contact_id = ANY($2::uuid[])
""",
)


async def values_by_contact(tenant_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]) -> list[list[SavedValue]]:
    """DataLoader batch: the values of each of a tenant's contacts, opened, in one plain statement, as
    plain values (a page of 50 contacts has 200: the ORM's query builder and model instances cost more
    than the query). A value that does not open (altered, moved from another row, or its contact's key
    gone) is left out, and logged by its contact's ID and its key only."""
    grouped: dict[uuid.UUID, list[SavedValue]] = {cid: [] for cid in contact_ids}
    rows = await _VALUES_OF.fetch(tenant_id, list(contact_ids))
    ring = keys.ring()
    opened: dict[uuid.UUID, bytes | None] = {}
    for row in sorted(rows, key=lambda row: row["key"]):
        cid = row["contact_id"]
        if row["sealed"] is None:  # saved before encryption
            grouped[cid].append(SavedValue(row["key"], json.loads(row["value"]), row["updated_at"]))
            continue
        if cid not in opened:
            wrapped = row["contact_key"]
            opened[cid] = (
                None if wrapped is None else await _open_quietly(ring.open_contact_key(tenant_id, cid, wrapped))
            )
        try:
            if (key := opened[cid]) is None:
                raise Unreadable("its contact's key is gone")
            plain = open_sealed(key, row["sealed"], value_place(tenant_id, cid, row["key"]))
        except Unreadable:
            log.error("a value (%s) of contact %s does not open: left out", row["key"], cid)
            continue
        grouped[cid].append(SavedValue(row["key"], json.loads(plain), row["updated_at"]))
    return [grouped[cid] for cid in contact_ids]


_UNSEALED_VALUES = """
SELECT id, contact_id, key, value FROM field_value WHERE tenant_id = $1 AND sealed IS NULL AND value IS NOT NULL
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""
_SEAL_VALUE = "UPDATE field_value SET sealed = $2, digest = $3, terms = $4, value = NULL WHERE id = $1"


async def seal_existing_values(tenant_id: uuid.UUID, batch: int) -> int:
    """Seal up to `batch` of the tenant's values saved before encryption, in one transaction (rows a
    save holds are left for the next batch); how many. Run as the tenant."""
    ring = keys.ring()
    index_key = blind.index_key(await ring.tenant_key(tenant_id))
    async with db.transaction() as tx:
        _, rows = await tx.execute_query(_UNSEALED_VALUES, [tenant_id, batch])
        contact_keys: dict[uuid.UUID, bytes] = {}
        for row in rows:
            cid = row["contact_id"]
            if cid not in contact_keys:
                contact_keys[cid] = await ring.key_for_writing(tx, tenant_id, cid)
            value = json.loads(row["value"]) if isinstance(row["value"], str) else row["value"]
            sealed, digest, terms = sealed_value(contact_keys[cid], index_key, tenant_id, cid, row["key"], value)
            await tx.execute_query(_SEAL_VALUE, [row["id"], sealed, digest, terms])
    return len(rows)


async def values_of(contact: Contact) -> list[SavedValue]:
    """One contact's values, opened (see `values_by_contact`), sorted by key."""
    return (await values_by_contact(contact.tenant_id, [contact.id]))[0]  # type: ignore[attr-defined]


async def _open_quietly(opening: Awaitable[bytes]) -> bytes | None:
    try:
        return await opening
    except Unreadable:
        return None


async def contacts_by_id(contact_ids: Sequence[uuid.UUID]) -> list[Contact | None]:
    """DataLoader batch: contacts by ID (None once erased)."""
    found = {c.id: c for c in await Contact.filter(id__in=list(contact_ids))}
    return [found.get(cid) for cid in contact_ids]


def role_value(values: Iterable[SavedValue], fields: Iterable[FieldSpec], role: FieldRole) -> str | None:
    """The saved value of the field with this role (the contact's name, email or phone)."""
    key = next((f.key for f in fields if f.role == role), None)
    return next((str(v.value) for v in values if v.key == key), None) if key else None


async def forget_idle_keys() -> int:
    """What this process holds of contacts' keys and typed text beyond its use: the recent tokens'
    Savers past their age, and the blind index's remembered trigrams (`keys.blind`). For maintenance,
    so that an idle process keeps neither for longer than a round."""
    blind.forget_trigrams()
    return _recent.prune()


async def purge_abandoned(older_than: timedelta) -> int:
    """Remove contacts that never got a saved value (bots, abandoned visits). A contact being saved
    holds its row: it is skipped, and is no longer abandoned once the save commits."""
    return await db.delete_in_batches(_PURGE_ABANDONED, [datetime.now(UTC) - older_than])
