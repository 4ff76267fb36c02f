"""How many event-publishing commits a second PostgreSQL takes, by where the NOTIFY is sent.

    .venv/bin/python bench/notify_commits.py [--connections 16] [--duration 4] [--rounds 2]
                                             [--database-url postgresql://postgres@127.0.0.1:5432/rapidly_bench]

`--connections` connections commit, each in a closed loop, one `contact_event` row per transaction
(the statement `rapidly.realtime.publish` runs), in three ways:

- **NOTIFY inside**: the row and its `pg_notify` in the same statement, as Rapidly published before
  the announcer. PostgreSQL takes a cluster-wide lock at the pre-commit of a notifying transaction
  and holds it until the commit is recorded, so these commits queue behind one another;
- **announced after commit**: the row alone, then Rapidly's `Announcer` (the one each server process
  runs) sends the NOTIFYs of what has committed meanwhile, one statement per batch;
- **no NOTIFY**: the row alone, never announced (the ceiling).

A listener counts the notifications that arrive, to show that none is lost. The modes alternate for
`--rounds` rounds on one database, so drift on a shared machine hits all three alike.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Bench, percentile, table

from rapidly.realtime import CHANNEL, Announcer
from rapidly.realtime.publish import PUBLISH_CTES

_LOGGED = f"""
WITH to_publish AS (SELECT $1::uuid AS tenant_id, $2::uuid AS contact_id, 'FIELD_SAVED'::text AS kind, 1 AS ord),
{PUBLISH_CTES}
SELECT payload FROM published
"""  # noqa: S608 -- module constants
_NOTIFIED_INSIDE = f"""
WITH to_publish AS (SELECT $1::uuid AS tenant_id, $2::uuid AS contact_id, 'FIELD_SAVED'::text AS kind, 1 AS ord),
{PUBLISH_CTES}
SELECT pg_notify('{CHANNEL}', payload) FROM published
"""  # noqa: S608 -- module constants

MODES = ("NOTIFY inside", "announced after commit", "no NOTIFY")


async def run_mode(connect: dict, mode: str, connections: int, duration: float) -> dict:
    pool = await asyncpg.create_pool(**connect, min_size=connections + 1, max_size=connections + 1)
    listener = await asyncpg.connect(**connect)
    received = 0

    def on_notify(*_: object) -> None:
        nonlocal received
        received += 1

    await listener.add_listener(CHANNEL, on_notify)
    announcer = Announcer(pool.acquire)
    tenant = uuid.uuid4()
    latencies: list[float] = []
    end_at = time.perf_counter() + duration

    async def committer() -> None:
        contact = uuid.uuid4()
        async with pool.acquire() as conn:
            while time.perf_counter() < end_at:
                began = time.perf_counter()
                if mode == "NOTIFY inside":
                    await conn.fetchval(_NOTIFIED_INSIDE, tenant, contact)
                else:
                    payload = await conn.fetchval(_LOGGED, tenant, contact)
                    if mode == "announced after commit":
                        announcer.announce([payload])
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(committer() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    await announcer.drain(30)
    expected = 0 if mode == "no NOTIFY" else len(latencies)
    async with asyncio.timeout(30):
        while received < expected:
            await asyncio.sleep(0.05)
    await listener.close()
    await pool.close()
    return {
        "commits": len(latencies),
        "rate": len(latencies) / elapsed,
        "latencies": sorted(latencies),
        "received": received,
        "batches": announcer.batches,
    }


def _merged(results: list[dict]) -> list[float]:
    return sorted(x for r in results for x in r["latencies"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16, help="concurrent committing connections (16)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per mode and round (4)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three modes (2)")
    parser.add_argument("--database-url", help="a scratch database called rapidly_bench* (default: embedded)")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=False)
        connect = bench.owner.connect_kwargs()  # type: ignore[union-attr]
        print(f"event-publishing commits: {args.connections} connections, {args.rounds} rounds of {args.duration:g} s")
        print(f"database: {bench.describe_database()}\n")
        results: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                results[mode].append(asyncio.run(run_mode(connect, mode, args.connections, args.duration)))
        rows = []
        for label, value in (
            ("commits/s", lambda rs: f"{sum(r['commits'] for r in rs) / (args.duration * len(rs)):,.0f}"),
            ("commits", lambda rs: f"{sum(r['commits'] for r in rs):,}"),
            ("commits/s by round", lambda rs: " ".join(f"{r['rate']:,.0f}" for r in rs)),
            ("p50 commit latency ms", lambda rs: f"{percentile(_merged(rs), 50) * 1000:.1f}"),
            ("p99 commit latency ms", lambda rs: f"{percentile(_merged(rs), 99) * 1000:.1f}"),
            ("notifications received", lambda rs: f"{sum(r['received'] for r in rs):,}"),
            ("announcer statements", lambda rs: f"{sum(r['batches'] for r in rs)}"),
        ):
            rows.append((label, *(value(results[mode]) for mode in MODES)))
        print(table([("", *MODES), *rows]))
        inside = sum(r["commits"] for r in results["NOTIFY inside"])
        after = sum(r["commits"] for r in results["announced after commit"])
        print(f"\nannounced after commit / NOTIFY inside: {after / inside:.2f}x the commits")
        return 0


if __name__ == "__main__":
    sys.exit(main())
