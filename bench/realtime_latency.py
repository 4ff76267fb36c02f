"""Save-to-subscriber latency across two server processes on one database.

    .venv/bin/python bench/realtime_latency.py [--rate 200] [--duration 10] [--contacts 40]
                                               [--database-url postgresql://postgres@127.0.0.1:5432/rapidly_bench]

Two `rapidly serve` processes, A and B, on one database. A staff member signs in and subscribes to
`contactEvents { kind contactId }` over graphql-transport-ws on B. `saveField` calls go to A in an
open loop at a fixed rate (each sent at its scheduled time, whether or not earlier ones have been
answered), spread round-robin over several contacts, every one with a new value so that every save
is a real write with a FIELD_SAVED event. Each event is matched to the oldest unmatched save of its
contact: with the default 40 contacts at 200 saves/s, saves of one contact are 200 ms apart, so they
never overlap and the order is unambiguous. Latency: save sent to A -> event received from B.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import deque
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOFING_KEYS,
    Bench,
    Monitor,
    RawPool,
    Subscriber,
    identify_contacts,
    is_saved,
    mib,
    percentile,
    roofing_value,
    save_body,
    staff_login,
    start_contacts,
    table,
)

P99_TARGET_MS = 100.0


async def measure(args: argparse.Namespace, a_url: str, b_url: str, monitor_window: list) -> dict:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:
        staff = await staff_login(http, a_url)
        tokens = await start_contacts(http, a_url, args.contacts)
        async with Subscriber(b_url, staff) as sub:
            contact_ids = await identify_contacts(http, a_url, sub, tokens)
            raw = RawPool(f"{a_url}/graphql", args.connections) if args.client == "raw" else None

            pending: dict[str, deque] = {cid: deque() for cid in contact_ids}
            latencies: list[float] = []
            save_latencies: list[float] = []
            counts = {"ok": 0, "failed": 0, "unexpected": 0, "other_kinds": 0}
            failures: list[str] = []

            def on_event(at: float, kind: str, cid: str) -> None:
                if kind != "FIELD_SAVED":
                    counts["other_kinds"] += 1
                elif pending.get(cid):
                    latencies.append((at - pending[cid].popleft()[1]) * 1000)
                else:
                    counts["unexpected"] += 1

            sub.on_event = on_event

            async def save(i: int) -> None:
                c = i % len(tokens)
                key = ROOFING_KEYS[(i // len(tokens) + 1) % len(ROOFING_KEYS)]
                entry = [i, time.perf_counter()]
                pending[contact_ids[c]].append(entry)
                body = save_body(key, roofing_value(key, 1_000 + i))
                headers = {"authorization": f"Bearer {tokens[c]}", "content-type": "application/json"}
                try:
                    if raw is not None:
                        status, content = await raw.post(body, headers)
                    else:
                        response = await http.post(f"{a_url}/graphql", content=body, headers=headers)
                        status, content = response.status_code, response.content
                    ok = status == 200 and is_saved(content)
                    problem = f"HTTP {status}: {content[:300].decode(errors='replace')}"
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, TimeoutError, StopIteration) as exc:
                    ok, problem = False, type(exc).__name__
                save_latencies.append((time.perf_counter() - entry[1]) * 1000)
                if ok:
                    counts["ok"] += 1
                    return
                counts["failed"] += 1
                if len(failures) < 3:
                    failures.append(problem)
                if entry in pending[contact_ids[c]]:  # no event will come for it
                    pending[contact_ids[c]].remove(entry)

            total = int(args.rate * args.duration)
            tasks = []
            lag_max = 0.0
            t0 = time.perf_counter() + 0.2
            monitor_window[:] = [time.time() + 0.2, time.time() + 0.2 + args.duration]
            for i in range(total):
                target = t0 + i / args.rate
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lag_max = max(lag_max, time.perf_counter() - target)
                tasks.append(asyncio.create_task(save(i)))
            sent_in = time.perf_counter() - t0
            await asyncio.gather(*tasks)
            deadline = time.perf_counter() + args.grace
            while any(pending.values()) and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # anything arriving late or twice shows up as unexpected
            if raw is not None:
                await raw.close()
            return {
                "sent": total,
                "send_seconds": sent_in,
                "lag_max_ms": lag_max * 1000,
                "latencies": sorted(latencies),
                "save_latencies": sorted(save_latencies),
                "failures": failures,
                "problems": sub.problems,
                **counts,
            }


def report(args: argparse.Namespace, r: dict, monitor: Monitor) -> str:
    lat = r["latencies"]
    lost = r["ok"] - len(lat)
    rows = [
        ("", "value"),
        ("saves sent (target rate)", f"{r['sent']} in {r['send_seconds']:.1f} s ({args.rate:g}/s)"),
        ("saves answered FieldSaved", str(r["ok"])),
        ("saves failed", str(r["failed"])),
        ("FIELD_SAVED events received/matched", str(len(lat))),
        ("events lost (saved, never received)", str(lost)),
        ("events unexpected (unmatched)", str(r["unexpected"])),
        ("save->event p50 ms", f"{percentile(lat, 50):.1f}"),
        ("save->event p95 ms", f"{percentile(lat, 95):.1f}"),
        ("save->event p99 ms", f"{percentile(lat, 99):.1f}"),
        ("save->event max ms", f"{lat[-1]:.1f}" if lat else "-"),
        (
            "saveField HTTP p50 / p99 ms",
            f"{percentile(r['save_latencies'], 50):.1f} / {percentile(r['save_latencies'], 99):.1f}",
        ),
        ("sender lag max ms (open loop)", f"{r['lag_max_ms']:.1f}"),
        (
            "server A RSS max / end MiB",
            f"{mib(monitor.rss_max.get('A'))} / {mib(monitor.rss_end.get('A', monitor.rss_last.get('A')))}",
        ),
        (
            "server B RSS max / end MiB",
            f"{mib(monitor.rss_max.get('B'))} / {mib(monitor.rss_end.get('B', monitor.rss_last.get('B')))}",
        ),
    ]
    for group, label in (
        ("A", "server A"),
        ("B", "server B"),
        ("postgres", "PostgreSQL"),
        ("bench", "bench client"),
        ("other", "others"),
    ):
        rows.append((f"CPU {label} % of a core", f"{monitor.cpu_percent.get(group, float('nan')):.0f}"))
    out = [table(rows)]
    out += [f"  save failure: {f}" for f in r["failures"]]
    out += [f"  subscription: {p}" for p in r["problems"][:3]]
    p99 = percentile(lat, 99)
    verdict = "PASS" if lat and p99 <= P99_TARGET_MS and lost == 0 else "FAIL"
    out.append("")
    out.append(
        f"target  p99 <= {P99_TARGET_MS:.0f} ms at {args.rate:g} saves/s, no event lost: {verdict} "
        f"(p99 {p99:.1f} ms, {lost} lost)"
    )
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="saves per second, open loop (default 200)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of saving (default 10)")
    parser.add_argument("--contacts", type=int, default=40, help="contacts the saves are spread over (default 40)")
    parser.add_argument("--connections", type=int, default=32, help="HTTP connections to server A (default 32)")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="HTTP client for the saves: a minimal HTTP/1.1 pool (default) or httpx.AsyncClient",
    )
    parser.add_argument("--grace", type=float, default=5, help="seconds to wait for late events (default 5)")
    parser.add_argument(
        "--database-url",
        help="use this PostgreSQL instead of an embedded one; the database (rapidly_bench*) is created and dropped",
    )
    args = parser.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.contacts < 1 or args.connections < 1:
        parser.error("--rate, --duration, --contacts and --connections must be positive")
    return args


def main() -> int:
    args = parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=True)
        print(
            f"realtime benchmark: saves through A at {args.rate:g}/s for {args.duration:g} s over {args.contacts} "
            f"contacts, staff subscriber on B"
        )
        print(f"os.cpu_count() = {os.cpu_count()} (both servers, PostgreSQL and this client share them)")
        print(f"database: {bench.describe_database()}")
        client = "httpx.AsyncClient" if args.client == "httpx" else "minimal asyncio HTTP/1.1 client"
        print(f"saves: {client}, up to {args.connections} keep-alive connections; subscriber: websockets")
        sys.stdout.flush()
        a = bench.start_rapidly("rapidly-A")
        b = bench.start_rapidly("rapidly-B")
        pg_pid = bench.postgres_pid()
        monitor = Monitor(
            rss_pids={"A": a.pid, "B": b.pid},
            cpu_groups={
                "A": ([a.pid], False),
                "B": ([b.pid], False),
                "postgres": ([pg_pid] if pg_pid else [], True),
                "bench": ([os.getpid()], False),
            },
        )

        result = monitor.measure(lambda window: measure(args, a.url, b.url, window))
        print()
        print(report(args, result, monitor))
        for line in bench.explain(result["failures"]):
            print(line)
        return 0


if __name__ == "__main__":
    sys.exit(main())
