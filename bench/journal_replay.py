"""The erasure journal's replay, which `serve` runs before its first request, with a full journal.

    .venv/bin/python bench/journal_replay.py [--entries 10000] [--present 10] [--database-url URL]

`--entries` journal objects (35 days of erasures at a busy installation) in the local object storage,
of which `--present` name contacts that still exist (a restored backup brought them back); the replay
is timed three times: the first erases those contacts again, the others find nothing to do.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TENANT_SLUG, Bench
from _common import parser as bench_parser


async def run(bench: Bench, entries: int, present: int) -> list[tuple[float, int]]:
    from rapidly import db, realtime
    from rapidly.erasure.stores import erasure_service
    from rapidly.storage import journal_key, storage_for

    settings = bench.settings()
    conn = await bench.owner.connect()  # type: ignore[union-attr]
    try:
        tenant_id = await conn.fetchval("SELECT id FROM tenant WHERE slug = $1", TENANT_SLUG)
        back = [uuid.uuid4() for _ in range(present)]
        await conn.executemany(
            "INSERT INTO contact (id, tenant_id, locale, created_at, updated_at, first_saved_at) "
            "VALUES ($1, $2, 'fi', now(), now(), now())",
            [(contact, tenant_id) for contact in back],
        )
    finally:
        await conn.close()
    storage = storage_for(settings)
    await storage.start()
    entry = json.dumps({"requestedBy": "END_USER", "requestedAt": "2026-12-01T00:00:00+00:00"}).encode()
    for contact in [*back, *(uuid.uuid4() for _ in range(entries - present))]:
        await storage.put(journal_key(tenant_id, contact), entry, "application/json")
    await db.init_orm(settings)
    timings = []
    try:
        erasure = erasure_service(storage, settings)
        for _ in range(3):
            started = time.perf_counter()
            replayed = await erasure.replay()
            timings.append((time.perf_counter() - started, replayed))
    finally:
        await realtime.announcer.drain()
        await db.close_orm()
        await storage.close()
    return timings


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--entries", type=int, default=10_000, help="journal objects (default 10,000)")
    parser.add_argument("--present", type=int, default=10, help="of them, contacts that exist (default 10)")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare()
        print(f"database: {bench.describe_database()}; {args.entries:,} journal entries, {args.present} present")
        for n, (seconds, replayed) in enumerate(asyncio.run(run(bench, args.entries, args.present)), 1):
            print(f"replay {n}: {seconds:.2f} s, {replayed} contacts erased again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
