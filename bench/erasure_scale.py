"""Erasure, retention and staff lists beside a million other contacts.

    .venv/bin/python bench/erasure_scale.py [--contacts 1000000] [--tenants 8] [--erasures 15] [--sweep 10000]
                                            [--savers 20] [--save-every-ms 50] [--pages 300] [--database-url URL]

One `rapidly serve` process. In order:

1. **Empty database**: `--erasures` contacts, each with its values, a token, 1,000 chat messages and 50
   photos (rows, and 50 small objects in the local storage), erased one by one by staff through
   `deleteContact`. Latency is the request's, from sending it to reading the receipt, which must be
   complete: every store emptied, the object storage and the erasure journal included.
2. `--contacts` contacts are bulk-loaded with SQL across `--tenants` tenants (`_common.bulk_contacts`,
   `everything`): 4 values, a token, 2 chat messages, a photo row and a sent message each; then the
   database is vacuumed and checkpointed, as one that grew over months would have been.
3. **The same erasures** beside them.
4. **Staff lists** under load: `--savers` customers save a field every `--save-every-ms` each (of the
   roofing tenant), while a staff member reads `contacts(first: 50)`, the first page and a page 100,000
   contacts deep (by its cursor; half the tenant's contacts when it has fewer), `--pages` times each,
   one at a time.
5. **A retention sweep** under the same load: `--sweep` contacts of the roofing tenant are made 400 days
   old and the tenant keeps 365; `rapidly retention run` (a process of its own, as an operator runs it)
   erases them. The savers' latency is measured for 10 s before it and during it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    REPO,
    TENANT_SLUG,
    Bench,
    RawClient,
    Savers,
    bulk_contacts,
    percentile,
    save_clients,
    staff_login,
    table,
)
from _common import parser as bench_parser

from rapidly.contacts.service import encode_cursor

ERASURE_TARGET_MS = 100.0
ERASURE_RATIO_TARGET = 1.5
SWEEP_TARGET_S = 60.0
SAVE_P99_TARGET_MS = 50.0
PAGE_P99_TARGET_MS = 20.0
CHAT_MESSAGES, PHOTOS = 1000, 50
DELETE = """mutation D($id: ID!) { deleteContact(id: $id) { __typename
  ... on ErasureReceipt { complete removed { store count } } ... on Error { message } } }"""
PAGE = """query P($after: String) { contacts(first: 50, after: $after) {
  edges { node { id displayName updatedAt } } pageInfo { hasNextPage endCursor } } }"""

# A contact of the roofing tenant ($1) with everything a busy one holds; returns its ID.
_BIG_CONTACT = [
    "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
    "VALUES ($2, $1, 'fi', now(), now(), now())",
    "INSERT INTO field_value (id, tenant_id, contact_id, key, value, updated_at) SELECT gen_random_uuid(), $1, $2, k, "
    "to_jsonb('Suuri Asiakas ' || k), now() FROM unnest(ARRAY['name', 'email', 'phone', 'damage_description']) k",
    "INSERT INTO contact_token (id, tenant_id, contact_id, token_hash, created_at, expires_at) "
    "VALUES (gen_random_uuid(), $1, $2::uuid, md5($2::uuid::text) || md5($2::uuid::text || 't'), now(), "
    "now() + interval '1 day')",
    "INSERT INTO media (id, tenant_id, contact_id, field_key, content_type, width, height, size_bytes, created_at) "
    "SELECT gen_random_uuid(), $1, $2, 'photos', 'image/jpeg', 1600, 1200, 350000, now() "
    "FROM generate_series(1, $3::int)",
    "INSERT INTO chat_message (id, tenant_id, contact_id, author, body, attachment_id, created_at) "
    "SELECT gen_random_uuid(), $1, $2, 'CONTACT', 'Viesti ' || n, "
    "(SELECT id FROM media WHERE tenant_id = $1 AND contact_id = $2 ORDER BY id OFFSET n % $3::int LIMIT 1), now() "
    "FROM generate_series(1, $4::int) n",
]


async def big_contacts(bench: Bench, count: int) -> list[str]:
    """`count` contacts with 1,000 chat messages and 50 photos each, their objects in local storage."""
    conn = await bench.owner.connect()  # type: ignore[union-attr]
    ids = []
    try:
        tenant_id = await conn.fetchval("SELECT id FROM tenant WHERE slug = $1", TENANT_SLUG)
        for _ in range(count):
            contact_id = uuid.uuid4()
            async with conn.transaction():
                for statement in _BIG_CONTACT:
                    sizes = (PHOTOS, CHAT_MESSAGES)[: statement.count("$3") + statement.count("$4")]
                    await conn.execute(statement, tenant_id, contact_id, *sizes)
            media = "SELECT id FROM media WHERE tenant_id = $1 AND contact_id = $2"
            for media_id in await conn.fetch(media, tenant_id, contact_id):
                path = bench.data_dir / "media" / str(tenant_id) / str(contact_id) / str(media_id["id"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\xff\xd8" + os.urandom(2000))
            ids.append(str(contact_id))
        await conn.execute("ANALYZE contact, field_value, media, chat_message")
    finally:
        await conn.close()
    return ids


async def erase_each(url: str, contact_ids: list[str]) -> list[float]:
    """Staff erase each contact through `deleteContact`; milliseconds per erasure."""
    latencies = []
    async with httpx.AsyncClient(timeout=60) as http:
        headers = {"Authorization": f"Bearer {await staff_login(http, url)}"}
        for contact_id in contact_ids:
            started = time.perf_counter()
            answer = await http.post(
                f"{url}/graphql", json={"query": DELETE, "variables": {"id": contact_id}}, headers=headers
            )
            latencies.append((time.perf_counter() - started) * 1000)
            result = answer.json()["data"]["deleteContact"]
            removed = {r["store"]: r["count"] for r in result.get("removed", [])}
            if not result.get("complete") or removed.get("chat_messages") != CHAT_MESSAGES:
                raise SystemExit(f"erasure of {contact_id} incomplete: {result}")
            if removed.get("media") != PHOTOS or removed.get("media_objects") != PHOTOS:
                raise SystemExit(f"erasure of {contact_id} left photos: {result}")
    return latencies


async def pages(bench: Bench, url: str, count: int, deep: int) -> dict[str, list[float]]:
    """The first page and the page `deep` contacts deep, `count` times each, alternating."""
    row = await asyncio.to_thread(
        bench.fetchval,
        "SELECT row(c.updated_at, c.id) FROM contact c JOIN tenant t ON t.id = c.tenant_id WHERE t.slug = $1 "
        "AND c.first_saved_at IS NOT NULL ORDER BY c.updated_at DESC, c.id DESC OFFSET $2 LIMIT 1",
        TENANT_SLUG,
        deep,
    )
    cursor = encode_cursor(SimpleNamespace(updated_at=row[0], id=row[1])) if row else None  # type: ignore[index]
    latencies: dict[str, list[float]] = {"first page": [], f"page after {deep:,}": []}
    async with httpx.AsyncClient(timeout=30) as http:
        headers = {"content-type": "application/json", "authorization": f"Bearer {await staff_login(http, url)}"}
    # The savers' own client, not httpx: this process also sends their 400 saves a second, and httpx's
    # CPU per request would show in these latencies as waiting for this process's event loop.
    raw = RawClient(f"{url}/graphql", timeout=30)
    try:
        for n in range(2 * count + 10):
            kind, after = [("first page", None), (f"page after {deep:,}", cursor)][n % 2]
            body = json.dumps({"query": PAGE, "variables": {"after": after}}).encode()
            started = time.perf_counter()
            status, content = await raw.post(body, headers)
            ms = (time.perf_counter() - started) * 1000
            edges = json.loads(content)["data"]["contacts"]["edges"] if status == 200 else []
            if len(edges) != 50:
                raise SystemExit(f"{kind}: HTTP {status}, {len(edges)} contacts, expected 50")
            if n >= 10:  # the first few warm the connection and the server
                latencies[kind].append(ms)
    finally:
        await raw.close()
    return {kind: sorted(values) for kind, values in latencies.items()}


async def sweep_under_load(bench: Bench, count: int) -> tuple[float, str]:
    """Make `count` contacts expired, run `rapidly retention run`; its seconds and its output."""
    await asyncio.to_thread(
        bench.fetchval,
        "WITH old AS (SELECT c.id FROM contact c JOIN tenant t ON t.id = c.tenant_id WHERE t.slug = $1 "
        "ORDER BY c.updated_at LIMIT $2) "
        "UPDATE contact SET updated_at = now() - interval '400 days' FROM old WHERE contact.id = old.id",
        TENANT_SLUG,
        count,
    )
    await asyncio.to_thread(bench.cli, "tenant", "retention", TENANT_SLUG, "--days", "365")
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "rapidly", "retention", "run", env=bench.env(), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"retention run failed:\n{err.decode()}")
    return seconds, out.decode().strip()


def summary(name: str, values: list[float]) -> tuple[str, ...]:
    return (name, str(len(values)), *(f"{percentile(values, q):.1f}" for q in (50, 95, 99)), f"{values[-1]:.1f}")


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts bulk-loaded (default 1,000,000)")
    parser.add_argument("--tenants", type=int, default=8, help="tenants they are shared among (default 8)")
    parser.add_argument("--erasures", type=int, default=15, help="big contacts erased in each database (default 15)")
    parser.add_argument("--sweep", type=int, default=10_000, help="contacts the retention sweep erases")
    parser.add_argument("--savers", type=int, default=20, help="customers saving during the lists and the sweep")
    parser.add_argument("--save-every-ms", type=float, default=50, help="each saver's interval (default 50 ms)")
    parser.add_argument("--pages", type=int, default=300, help="contact pages read of each kind (default 300)")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=True)
        tenants = [TENANT_SLUG]
        for n in range(1, args.tenants):
            tenants.append(f"{TENANT_SLUG}{n}")
            bench.cli("tenant", "create", "--slug", tenants[-1], "--name", f"Yritys {n}", "--plugin", "roofing_fi")
        print(f"os.cpu_count() = {os.cpu_count()}; database: {bench.describe_database()}")
        rapidly = bench.start_rapidly()

        empty = asyncio.run(erase_each(rapidly.url, asyncio.run(big_contacts(bench, args.erasures))))
        started = time.perf_counter()
        asyncio.run(bulk_contacts(bench, args.contacts, tenants, everything=True))
        rows = bench.fetchval(
            "SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE relname IN "
            "('field_value', 'contact_token', 'chat_message', 'media', 'outbound_message', 'contact_event')"
        )
        size = bench.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(
            f"bulk-loaded {args.contacts:,} contacts in {len(tenants)} tenants ({rows:,} rows beside them, "
            f"database {size}) in {time.perf_counter() - started:.0f} s"
        )
        # A database that grew to this size over months has been vacuumed and checkpointed since: one
        # that was written 3 GB a minute ago is still flushing them, which is not what is measured here.
        started = time.perf_counter()
        bench.fetchval("VACUUM")
        bench.fetchval("CHECKPOINT")
        print(f"vacuumed and checkpointed in {time.perf_counter() - started:.0f} s")
        full = asyncio.run(erase_each(rapidly.url, asyncio.run(big_contacts(bench, args.erasures))))

        async def under_load() -> tuple[dict[str, list[float]], Savers, tuple[float, str], tuple[float, float]]:
            _, clients = await save_clients(bench, rapidly.url, args.savers)
            async with Savers(rapidly.url, clients, args.save_every_ms / 1000) as savers:
                await asyncio.sleep(3)  # warm
                deep = min(100_000, args.contacts // args.tenants // 2)
                listed = await pages(bench, rapidly.url, args.pages, deep)
                before = time.time()
                await asyncio.sleep(10)
                swept = await sweep_under_load(bench, args.sweep)
                during = (before + 10, time.time())
            return listed, savers, swept, (before, during)  # type: ignore[return-value]

        listed, savers, (sweep_s, sweep_out), (before, (sweep_start, sweep_end)) = asyncio.run(under_load())
        erased = bench.fetchval("SELECT count(*) FROM erasure WHERE requested_by = 'RETENTION'")
        left = bench.fetchval("SELECT count(*) FROM contact WHERE updated_at < now() - interval '365 days'")

        print()
        rows_out = [("erasure of 1,000 chat messages and 50 photos", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")]
        rows_out += [summary("empty database", sorted(empty)), summary(f"beside {args.contacts:,}", sorted(full))]
        print(table(rows_out))
        print()
        per_second = 1000 / args.save_every_ms * args.savers
        title = f"under {args.savers} savers ({per_second:.0f} saves/s)"
        rows_out = [(title, "n", "p50 ms", "p95 ms", "p99 ms", "max ms")]
        rows_out += [summary(f"contacts(first: 50), {kind}", values) for kind, values in listed.items()]
        rows_out.append(summary("saves, 10 s before the sweep", savers.between(before, sweep_start)))
        rows_out.append(summary("saves during the sweep", savers.between(sweep_start, sweep_end)))
        print(table(rows_out))
        print(f"\nretention run: {sweep_out} in {sweep_s:.1f} s (the process's start and journal replay included)")
        print(f"ledger: {erased:,} retention erasures; {left:,} expired contacts left")
        print(f"save errors: {len(savers.errors)}")
        for error in savers.errors[:3]:
            print(f"  save error: {error}")

        empty_p50, full_p50 = statistics.median(empty), statistics.median(full)
        page_p99 = max(percentile(values, 99) for values in listed.values())
        save_p99 = percentile(savers.between(sweep_start, sweep_end), 99)
        ratio = full_p50 / empty_p50
        print()
        swept_all = sweep_s <= SWEEP_TARGET_S and erased == args.sweep and left == 0
        verdicts = [
            (f"one erasure <= {ERASURE_TARGET_MS:.0f} ms", full_p50 <= ERASURE_TARGET_MS, f"p50 {full_p50:.1f} ms"),
            (f"<= {ERASURE_RATIO_TARGET}x the empty database's", ratio <= ERASURE_RATIO_TARGET, f"{ratio:.2f}x"),
            (f"sweep of {args.sweep:,} <= {SWEEP_TARGET_S:.0f} s", swept_all, f"{sweep_s:.1f} s"),
            (f"saves' p99 meanwhile <= {SAVE_P99_TARGET_MS:.0f} ms", save_p99 <= SAVE_P99_TARGET_MS, f"{save_p99:.1f}"),
            (f"a contacts page p99 <= {PAGE_P99_TARGET_MS:.0f} ms", page_p99 <= PAGE_P99_TARGET_MS, f"{page_p99:.1f}"),
        ]
        for name, ok, figure in verdicts:
            print(f"target  {name} at {args.contacts:,} contacts: {'PASS' if ok else 'FAIL'} ({figure})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
