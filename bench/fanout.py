"""Live fan-out: save-to-screen with one console and with many, in one run on one server process.

    .venv/bin/python bench/fanout.py [--typists 50] [--consoles 20] [--interval 0.3] [--duration 15]
                                     [--client-procs 2] [--idle 1000] [--database-url URL]

One `rapidly serve` process. `--typists` customers each start a contact and type into it (a save of
the field's whole text every `--interval` s, one save in flight each, as the form sends them) while
staff consoles watch `contactEvents { kind contactId at }` over graphql-transport-ws: first one
console, then `--consoles` of them, each phase `--duration` s with the same typists. The consoles
run in `--client-procs` processes of their own and the typists in this one, so that the load
generator's CPU is not the server's (its share is printed beside the server's).

Each save is matched to its contact's events in order (a typist has one save in flight, so the n-th
event of a contact at a console is the n-th save of it): save-to-screen is from the save being sent
to its event arriving. Lost: saves answered whose event never arrived at a console; duplicated:
events beyond the saves; out of order: a contact's events whose `at` went back.

After the phases, `--idle` idle subscriptions (a socket each) are opened and closed again, twice:
the server's resident memory before, with them and after says what one costs and whether it comes
back (the first round also grows the allocator's pools to their working size).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Bench,
    Monitor,
    RawClient,
    Subscriber,
    gql,
    is_saved,
    mib,
    percentile,
    save_body,
    staff_login,
    start_contacts,
    table,
)
from _common import parser as bench_parser

EVENTS = "subscription Events { contactEvents { kind contactId at } }"
ME = "query { me { contactId } }"


class Console:
    """One staff console's live stream: when each contact's FIELD_SAVED events arrived, and their `at`."""

    def __init__(self, url: str, staff: str) -> None:
        self.subscriber = Subscriber(url, staff, EVENTS)
        self.subscriber.on_event = self._on_event
        self.arrived: dict[str, list[float]] = {}
        #: Each contact's events' own times (`at`), as they arrived.
        self.times: dict[str, list[str]] = {}

    def _on_event(self, _at: float, kind: str, contact_id: str) -> None:
        if kind == "FIELD_SAVED":
            self.arrived.setdefault(contact_id, []).append(time.time() * 1000)
            self.times.setdefault(contact_id, []).append(self.subscriber.event["at"])


def run_consoles(url: str, staff: str, count: int, commands: object, results: object) -> None:
    """A worker process: `count` consoles, subscribed on "start" until "stop", then what arrived when."""

    async def run() -> None:
        while True:
            command = await asyncio.to_thread(commands.get)  # type: ignore[attr-defined]
            if command == "exit":
                return
            consoles = [Console(url, staff) for _ in range(count)]
            for console in consoles:
                await console.subscriber.__aenter__()
            started = time.process_time()
            results.put("ready")  # type: ignore[attr-defined]
            await asyncio.to_thread(commands.get)  # type: ignore[attr-defined]  # "stop"
            cpu = time.process_time() - started
            for console in consoles:
                await console.subscriber.__aexit__(None, None, None)
            results.put(  # type: ignore[attr-defined]
                {
                    "arrived": [c.arrived for c in consoles],
                    "times": [c.times for c in consoles],
                    "problems": [p for c in consoles for p in c.subscriber.problems],
                    "cpu": cpu,
                }
            )

    asyncio.run(run())


async def typing(args: argparse.Namespace, url: str, tokens: list[str], ids: list[str], window: list[float]) -> dict:
    """The typists, for `--duration` s: the saves answered (contact ID, when sent) and their latencies."""
    sent: dict[str, list[float]] = {cid: [] for cid in ids}
    save_ms: list[float] = []
    failed = 0
    start = time.perf_counter() + 1
    end = start + args.duration
    window[:] = [time.time() + 1, time.time() + 1 + args.duration]

    async def typist(i: int) -> None:
        nonlocal failed
        client = RawClient(f"{url}/graphql")
        headers = {"content-type": "application/json", "authorization": f"Bearer {tokens[i]}"}
        at = start + (i / args.typists) * args.interval
        n = 0
        try:
            while at < end:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                n += 1
                sent_at, began = time.time() * 1000, time.perf_counter()
                status, content = await client.post(save_body("damage_description", f"Vuotaa {i} {n}"), headers)
                if status == 200 and is_saved(content):
                    sent[ids[i]].append(sent_at)
                    save_ms.append(1000 * (time.perf_counter() - began))
                else:
                    failed += 1
                at = max(at + args.interval, time.perf_counter())
        finally:
            await client.close()

    await asyncio.gather(*(typist(i) for i in range(args.typists)))
    await asyncio.sleep(3)  # the last events arrive
    return {"sent": sent, "save_ms": sorted(save_ms), "failed": failed}


def matched(sent: dict[str, list[float]], arrived: list[dict[str, list[float]]], times: list[dict]) -> dict:
    """Each console's events against the saves, contact by contact and in order."""
    latencies, lost, duplicated, reordered = [], 0, 0, 0
    for console, console_times in zip(arrived, times, strict=True):
        for contact_id, saves in sent.items():
            events = console.get(contact_id, [])
            lost += max(0, len(saves) - len(events))
            duplicated += max(0, len(events) - len(saves))
            at = [datetime.fromisoformat(t) for t in console_times.get(contact_id, [])]
            reordered += sum(b < a for a, b in itertools.pairwise(at))
            latencies += [event - save for save, event in zip(saves, events, strict=False)]
    return {"latencies": sorted(latencies), "lost": lost, "duplicated": duplicated, "reordered": reordered}


def phase(args: argparse.Namespace, bench: Bench, rapidly: object, consoles: int, prepared: dict) -> dict:
    """One phase: `consoles` consoles in worker processes while the typists type."""
    context = multiprocessing.get_context("spawn")
    procs_n = min(args.client_procs, consoles)
    per = [consoles // procs_n + (i < consoles % procs_n) for i in range(procs_n)]
    commands = [context.Queue() for _ in per]
    results = context.Queue()
    procs = [
        context.Process(target=run_consoles, args=(rapidly.url, prepared["staff"], n, q, results))  # type: ignore[attr-defined]
        for n, q in zip(per, commands, strict=True)
    ]
    for proc in procs:
        proc.start()
    for q in commands:
        q.put("start")
    ready = [results.get(True, 120) for _ in procs]
    assert all(r == "ready" for r in ready), ready
    time.sleep(1)
    monitor = Monitor(
        rss_pids={"server": rapidly.pid},  # type: ignore[attr-defined]
        cpu_groups={
            "server": ([rapidly.pid], False),  # type: ignore[attr-defined]
            "postgres": ([bench.postgres_pid()], True),
            "load": ([os.getpid(), *(p.pid for p in procs)], False),
        },
    )
    typed = monitor.measure(lambda window: typing(args, rapidly.url, prepared["tokens"], prepared["ids"], window))  # type: ignore[attr-defined]
    for q in commands:
        q.put("stop")
    reports = [results.get(True, 120) for _ in procs]
    for q in commands:
        q.put("exit")
    for proc in procs:
        proc.join(30)
    arrived = [a for report in reports for a in report["arrived"]]
    found = matched(typed["sent"], arrived, [t for report in reports for t in report["times"]])
    saves = sum(len(s) for s in typed["sent"].values())
    server_cpu = monitor.cpu_percent.get("server", 0) / 100 * args.duration
    deliveries = saves * consoles
    return {
        **found,
        "consoles": consoles,
        "saves": saves,
        "failed": typed["failed"],
        "save_ms": typed["save_ms"],
        "deliveries": deliveries,
        "server_cpu_s": server_cpu,
        "cpu": dict(monitor.cpu_percent),
        "rss": monitor.rss_end.get("server"),
        "problems": [p for report in reports for p in report["problems"]],
    }


def idle_memory(args: argparse.Namespace, rapidly: object, staff: str) -> list[tuple[int, int, int]]:
    """Twice: the server's RSS before `--idle` idle subscriptions (one socket each), with them, and
    after they left. The first round also grows the allocator's pools to their working size."""
    server = psutil.Process(rapidly.pid)  # type: ignore[attr-defined]
    context = multiprocessing.get_context("spawn")
    commands, results = context.Queue(), context.Queue()
    proc = context.Process(target=run_consoles, args=(rapidly.url, staff, args.idle, commands, results))  # type: ignore[attr-defined]
    proc.start()
    rounds = []
    for _ in range(2):
        time.sleep(3)
        before = server.memory_info().rss
        commands.put("start")
        assert results.get(True, 300) == "ready"
        time.sleep(3)
        held = server.memory_info().rss
        commands.put("stop")
        results.get(True, 300)
        time.sleep(3)
        rounds.append((before, held, server.memory_info().rss))
    commands.put("exit")
    proc.join(30)
    return rounds


async def prepare(url: str, typists: int) -> dict:
    async with httpx.AsyncClient(timeout=30) as http:
        staff = await staff_login(http, url)
        tokens = await start_contacts(http, url, typists)
        ids = []
        for token in tokens:  # each typist's first answer makes its contact visible
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            answer = await http.post(f"{url}/graphql", content=save_body("name", "Asiakas"), headers=headers)
            assert is_saved(answer.content), answer.text
            ids.append((await gql(http, url, ME, {}, token))["me"]["contactId"])
    return {"staff": staff, "tokens": tokens, "ids": ids}


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "-"


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--typists", type=int, default=50, help="customers typing (default 50)")
    parser.add_argument("--consoles", type=int, default=20, help="consoles watching in the second phase (20)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between a typist's saves (0.3)")
    parser.add_argument("--duration", type=float, default=15, help="seconds of typing per phase (default 15)")
    parser.add_argument("--client-procs", type=int, default=2, help="processes for the consoles (default 2)")
    parser.add_argument("--idle", type=int, default=1000, help="idle subscriptions whose memory is measured (1000)")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=True)
        rapidly = bench.start_rapidly()
        print(f"os.cpu_count() = {os.cpu_count()}; database: {bench.describe_database()}")
        prepared = asyncio.run(prepare(rapidly.url, args.typists))
        one = phase(args, bench, rapidly, 1, prepared)
        many = phase(args, bench, rapidly, args.consoles, prepared)
        idle = idle_memory(args, rapidly, prepared["staff"]) if args.idle else None
        print(
            f"\n{args.typists} customers typing (a save each every {args.interval:g} s), {args.duration:g} s "
            f"per phase, one server process; consoles subscribed to `{EVENTS}`"
        )
        rows = [("", "1 console", f"{args.consoles} consoles", "ratio")]

        def row(label: str, a: float, b: float, fmt: str = "{:.0f}") -> None:
            rows.append((label, fmt.format(a), fmt.format(b), f"{b / a:.2f}" if a else "-"))

        for q in (50, 99):
            row(f"save -> screen p{q} ms", percentile(one["latencies"], q), percentile(many["latencies"], q))
        for q in (50, 99):
            row(f"the save's own p{q} ms", percentile(one["save_ms"], q), percentile(many["save_ms"], q))
        row("saves answered", one["saves"], many["saves"])
        rows.append(("saves failed", str(one["failed"]), str(many["failed"]), ""))
        row("deliveries/s", one["deliveries"] / args.duration, many["deliveries"] / args.duration)
        for result in (one, many):
            result["per_core"] = result["deliveries"] / result["server_cpu_s"] if result["server_cpu_s"] else 0
            result["per_1000"] = 1000 * result["server_cpu_s"] / result["deliveries"] if result["deliveries"] else 0
        row("deliveries per second of server CPU (saves' CPU included)", one["per_core"], many["per_core"])
        row("server CPU ms per 1,000 deliveries (saves' included)", one["per_1000"], many["per_1000"], "{:.1f}")
        added_cpu = many["server_cpu_s"] - one["server_cpu_s"]
        added = many["deliveries"] - one["deliveries"]
        rows.append(
            (
                f"the {args.consoles - 1} more consoles: deliveries per second of the server CPU they added",
                "",
                f"{added / added_cpu:,.0f}" if added_cpu > 0 else "-",
                "",
            )
        )
        for name in ("server", "postgres", "load", "other"):
            row(f"CPU {name}, % of a core", one["cpu"].get(name, 0), many["cpu"].get(name, 0))
        rows.append(("server RSS at the end MiB", mib(one["rss"]), mib(many["rss"]), ""))
        rows.append(
            (
                "lost / duplicated / out of order",
                f"{one['lost']} / {one['duplicated']} / {one['reordered']}",
                f"{many['lost']} / {many['duplicated']} / {many['reordered']}",
                "",
            )
        )
        print(table(rows))
        print(f"(load: this process's typists and {args.client_procs} console processes; psutil {psutil.__version__})")
        for n, (before, held, after) in enumerate(idle or (), 1):
            print(
                f"{'' if n > 1 else chr(10)}{args.idle} idle subscriptions (a socket each), round {n}: server RSS "
                f"{mib(before)} -> {mib(held)} MiB ({(held - before) / args.idle / 1024:.1f} KiB each), "
                f"{mib(after)} MiB once they left"
            )
        for problem in (one["problems"] + many["problems"])[:3]:
            print(f"  subscription: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
