"""saveField throughput and latency against one `rapidly serve` process, against `serve --workers 2`,
and next to the floor.

    .venv/bin/python bench/save_field.py [--clients 32] [--duration 15] [--warmup 3] [--workers 2]
                                         [--database-url postgresql://postgres@127.0.0.1:5432/rapidly_bench]
                                         [--load-procs 1] [--profile FILE] [--before REV]

Phase 1: N closed-loop clients (each with its own contact token from startContact and its own
keep-alive HTTP/1.1 connection) send `saveField` mutations cycling through the roofing plugin's keys
with a new value every time, for the warm-up and then the measured duration. Phase 2: the same
clients, values and durations against bench/floor_app.py (FastAPI + raw asyncpg doing the same
upsert, one uvicorn worker), each client on the same contact row as in phase 1. Between them, the
phase of phase 1 against `rapidly serve --workers N` (unless --workers 1). Only one server runs at a
time. See bench/README.md for what the figures mean.

With `--before REV` (say `--before main`), an earlier commit is measured in the same run: each round
serves this checkout, then REV (its own source, against a database of its own migrated by its own
code), then the floor, which writes to REV's database, where the floor is what it was before this
checkout's migrations; the ratio of each to the floor, and the change between them, are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    ROOFING_KEYS,
    Bench,
    Earlier,
    Monitor,
    RawClient,
    mib,
    percentile,
    roofing_value,
    save_clients,
    save_request,
    sleep_until,
    table,
)

P99_TARGET_MS = 50.0
THROUGHPUT_TARGET = 0.5
#: The phases: one server process, `serve --workers N`, the floor.
ONE, WORKERS, FLOOR, BEFORE = "rapidly", "workers", "floor", "before"


# -- the load generator -----------------------------------------------------------------------------------


async def _client(spec: dict, client: dict, result: dict) -> None:
    """One closed-loop client: a request, wait for the answer, the next request."""
    floor = spec["kind"] == FLOOR
    path, headers, body_of = save_request(floor, client)
    url = spec["url"] + path
    warm_end, end_at = spec["warm_end"], spec["end_at"]
    n = spec["value_base"] + client["index"] * 1_000_000
    raw = RawClient(url) if spec["client"] == "raw" else None
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:
        await sleep_until(spec["start_at"])
        step = 0
        while time.time() < end_at:
            key = ROOFING_KEYS[step % len(ROOFING_KEYS)]
            value = roofing_value(key, n + step)
            step += 1
            body = body_of(key, value)
            began = time.perf_counter()
            try:
                if raw is not None:
                    status, content = await raw.post(body, headers)
                else:
                    response = await http.post(url, content=body, headers=headers)
                    status, content = response.status_code, response.content
                ok = status == 200 and (floor or b'"FieldSaved"' in content)
                problem = None if ok else f"HTTP {status}: {content[:200]!r}"
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, TimeoutError, StopIteration) as exc:
                ok, problem = False, type(exc).__name__
            elapsed = time.perf_counter() - began
            done = time.time()
            result["requests"] += 1
            result["ok_total"] += ok
            if not warm_end <= done <= end_at:
                if not ok:
                    result["errors_outside"] += 1
                continue
            if ok:
                result["latencies"].append(elapsed * 1000)
            else:
                result["errors"] += 1
                if len(result["error_samples"]) < 3:
                    result["error_samples"].append(problem)
        if raw is not None:
            await raw.close()


async def run_clients(spec: dict) -> dict:
    result = {"latencies": [], "errors": 0, "errors_outside": 0, "requests": 0, "ok_total": 0, "error_samples": []}
    await asyncio.gather(*(_client(spec, c, result) for c in spec["clients"]))
    return result


def _run_loop(spec: dict) -> dict:
    try:
        import uvloop

        return uvloop.run(run_clients(spec))
    except ImportError:
        return asyncio.run(run_clients(spec))


def _worker(spec: dict, queue: multiprocessing.Queue) -> None:
    queue.put(_run_loop(spec))


def _collect(queue: multiprocessing.Queue, workers: list, deadline: float) -> list[dict]:
    """Each worker's result; fails (rather than hangs) if a worker dies without one."""
    results = []
    while len(results) < len(workers):
        try:
            results.append(queue.get(timeout=0.5))
        except Empty:
            if time.time() > deadline or not any(w.is_alive() for w in workers):
                raise RuntimeError("a load generator process ended without a result") from None
    return results


def merge(results: list[dict]) -> dict:
    merged: dict = {"latencies": [], "error_samples": []}
    for r in results:
        for k, v in r.items():
            merged[k] = merged.get(k, 0 if isinstance(v, int) else []) + v
    return merged


def load_phase(
    kind: str,
    url: str,
    server_pid: int,
    pg_pid: int | None,
    clients: list[dict],
    args: argparse.Namespace,
    profile: str | None = None,
) -> dict:
    procs = max(1, min(args.load_procs, len(clients)))
    start_at = time.time() + (0.3 if procs == 1 else 3.0)  # spawned workers need time to import
    warm_end = start_at + args.warmup
    end_at = warm_end + args.duration
    base = {"kind": kind, "url": url, "start_at": start_at, "warm_end": warm_end, "end_at": end_at}
    base["client"] = args.client
    base["value_base"] = {ONE: 0, WORKERS: 250_000_000, FLOOR: 500_000_000, BEFORE: 750_000_000}[kind]
    chunks = [clients[i::procs] for i in range(procs)]
    workers: list[multiprocessing.Process] = []
    profiler = None
    try:
        if procs == 1:
            loadgen_pids = [os.getpid()]
        else:
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            workers = [ctx.Process(target=_worker, args=({**base, "clients": c}, queue)) for c in chunks]
            for w in workers:
                w.start()
            loadgen_pids = [w.pid for w in workers]  # type: ignore[misc]
        monitor = Monitor(
            rss_pids={"server": server_pid},
            cpu_groups={
                "server": ([server_pid], True),  # with the worker processes of `--workers N`
                "postgres": ([pg_pid] if pg_pid else [], True),
                "loadgen": (loadgen_pids, False),
            },
            window=(warm_end, end_at),
        )
        if profile:
            profiler = Profiler(profile, server_pid, warm_end, args.duration)
        with monitor:
            if procs == 1:
                results = [_run_loop({**base, "clients": chunks[0]})]
            else:
                results = _collect(queue, workers, deadline=end_at + 60)
            monitor.wait_window()
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
            w.join(5)
        if profiler is not None:
            profiler.finish()
    merged = merge(results)
    merged["monitor"] = monitor
    merged["duration"] = args.duration
    return merged


def combine(rounds: list[dict]) -> dict:
    """One kind's rounds together: every measured answer, total time, and per-round throughput."""
    latencies = sorted(x for r in rounds for x in r["latencies"])
    cpu_groups = {g for r in rounds for g in r["monitor"].cpu_percent}
    return {
        "latencies": latencies,
        "duration": sum(r["duration"] for r in rounds),
        "round_rps": [len(r["latencies"]) / r["duration"] for r in rounds],
        "errors": sum(r["errors"] for r in rounds),
        "errors_outside": sum(r["errors_outside"] for r in rounds),
        "error_samples": [e for r in rounds for e in r["error_samples"]][:3],
        "ok_total": sum(r["ok_total"] for r in rounds),
        "rows_written": sum(r["rows_written"] for r in rounds),
        "rss_max": max((r["monitor"].rss_max.get("server", 0) for r in rounds), default=None),
        "rss_end": rounds[-1]["monitor"].rss_end.get("server", rounds[-1]["monitor"].rss_last.get("server")),
        "cpu": {g: sum(r["monitor"].cpu_percent.get(g, 0.0) for r in rounds) / len(rounds) for g in cpu_groups},
    }


class Profiler:
    """py-spy on the server during the measured window only (started by a timer, not during warm-up)."""

    def __init__(self, path: str, pid: int, at: float, duration: float) -> None:
        py_spy = Path(PYTHON).with_name("py-spy")
        fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(path).suffix, "flamegraph")
        self.argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(max(1, int(duration)))]
        self.argv += ["--rate", "250", "--format", fmt, "--output", path, "--nonblocking"]
        self.process: subprocess.Popen | None = None
        self.duration = duration
        self.timer = threading.Timer(max(0.0, at - time.time()), self._start)
        if py_spy.exists():
            self.timer.start()
        else:
            print("warning: --profile needs py-spy in the venv (.venv/bin/pip install py-spy)", file=sys.stderr)

    def _start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self) -> None:
        self.timer.cancel()
        if self.process is not None:
            try:
                self.process.wait(self.duration + 30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(5)


def _cpu_ms_per_save(result: dict, group: str) -> float:
    """CPU milliseconds per measured save of one group of processes ("all": every group)."""
    cpu = result["cpu"]
    percent = sum(v for v in cpu.values() if v == v) if group == "all" else cpu.get(group, float("nan"))
    return percent / 100 * result["duration"] * 1000 / max(len(result["latencies"]), 1)


# -- the run ---------------------------------------------------------------------------------------------


async def _rows_written(bench: Bench, owner: object = None) -> int:
    """Rows inserted or updated in field_value so far, from PostgreSQL's statistics (complete once the
    server under test has stopped: a backend flushes its counters when it exits)."""
    conn = await (owner or bench.owner).connect()  # type: ignore[union-attr]
    try:
        return await conn.fetchval(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = 'field_value'"
        )
    finally:
        await conn.close()


def report(args: argparse.Namespace, results: dict[str, dict]) -> str:
    titles = {
        ONE: "Rapidly saveField",
        WORKERS: f"Rapidly, {args.workers} workers",
        BEFORE: f"Rapidly at {args.before}",
        FLOOR: "floor (FastAPI+asyncpg)",
    }
    order = [k for k in (ONE, BEFORE, WORKERS, FLOOR) if k in results]
    rows: list[tuple[str, ...]] = [("", *(titles[k] for k in order))]

    def each(fn) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        return tuple(fn(results[k]) for k in order)

    def rps(r: dict) -> float:
        return len(r["latencies"]) / r["duration"]

    rows.append(("requests/s", *each(lambda r: f"{rps(r):.0f}")))
    rows.append(("requests/s by round", *each(lambda r: " ".join(f"{x:.0f}" for x in r["round_rps"]))))
    for q in (50, 95, 99):
        rows.append((f"p{q} latency ms", *each(lambda r, q=q: f"{percentile(r['latencies'], q):.1f}")))
    rows.append(("max latency ms", *each(lambda r: f"{r['latencies'][-1]:.1f}" if r["latencies"] else "-")))
    rows.append(("ok requests (measured)", *each(lambda r: str(len(r["latencies"])))))
    rows.append(("errors (measured)", *each(lambda r: str(r["errors"]))))
    rows.append(("errors (warm-up/tail)", *each(lambda r: str(r["errors_outside"]))))
    rows.append(("server RSS max MiB", *each(lambda r: mib(r["rss_max"]))))
    rows.append(("server RSS end MiB", *each(lambda r: mib(r["rss_end"]))))
    rows.append(("rows written/ok saves, all", *each(lambda r: f"{r['rows_written']}/{r['ok_total']}")))
    groups = (("server", "server"), ("postgres", "PostgreSQL"), ("loadgen", "load generator"), ("other", "others"))
    for group, label in groups:
        rows.append(
            (
                f"CPU {label} % of a core",
                *each(lambda r, g=group: f"{r['cpu'].get(g, float('nan')):.0f}"),
            )
        )
    for group, label in (*groups, ("all", "all")):
        rows.append((f"CPU ms per save, {label}", *each(lambda r, g=group: f"{_cpu_ms_per_save(r, g):.3f}")))
    out = [table(rows)]
    for k in order:
        for sample in results[k]["error_samples"]:
            out.append(f"  {k} error: {sample}")

    def ratio_of(a: str, b: str) -> tuple[float, str]:
        pairs = zip(results[a]["round_rps"], results[b]["round_rps"], strict=True)
        by_round = " ".join(f"{x / max(y, 1e-9):.2f}" for x, y in pairs)
        return rps(results[a]) / max(rps(results[b]), 1e-9), by_round

    if ONE in results and WORKERS in results:
        ratio, by_round = ratio_of(WORKERS, ONE)
        out.append("")
        out.append(f"throughput ratio {args.workers} workers/1 process: {ratio:.2f} (by round: {by_round})")
    if ONE in results and FLOOR in results:
        ratio, by_round = ratio_of(ONE, FLOOR)
        p99 = percentile(results[ONE]["latencies"], 99)
        out.append("")
        out.append(f"throughput ratio Rapidly/floor: {ratio:.2f} (by round: {by_round})")
        verdict = "PASS" if ratio >= THROUGHPUT_TARGET else "FAIL"
        out.append(f"target  Rapidly >= {THROUGHPUT_TARGET:.0%} of floor throughput: {verdict} ({ratio:.0%})")
        # The cores are shared, so PostgreSQL's work per save counts against throughput as the server's does.
        floor_all = _cpu_ms_per_save(results[FLOOR], "all")
        rest = _cpu_ms_per_save(results[ONE], "all") - _cpu_ms_per_save(results[ONE], "server")
        bound = floor_all / (rest + _cpu_ms_per_save(results[FLOOR], "server"))
        out.append(
            f"ratio by CPU per save: {floor_all / _cpu_ms_per_save(results[ONE], 'all'):.2f}; with Rapidly's server "
            f"costing per save what the floor's does (the rest as measured): {bound:.2f}"
        )
        verdict = "PASS" if p99 <= P99_TARGET_MS else "FAIL"
        out.append(f"target  Rapidly p99 <= {P99_TARGET_MS:.0f} ms: {verdict} ({p99:.1f} ms)")
    if BEFORE in results and FLOOR in results and ONE in results:
        before, by_round = ratio_of(BEFORE, FLOOR)
        after, _ = ratio_of(ONE, FLOOR)
        out.append(f"throughput ratio Rapidly at {args.before}/floor: {before:.2f} (by round: {by_round})")
        out.append(f"change of the ratio to the floor, this checkout against {args.before}: {after - before:+.2f}")
        ratio, by_round = ratio_of(ONE, BEFORE)
        out.append(f"throughput ratio this checkout/{args.before}: {ratio:.2f} (by round: {by_round})")
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per phase (default 5)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds before measuring (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating Rapidly/floor phases, each kind's summed (default 3)"
    )
    parser.add_argument(
        "--database-url",
        help="use this PostgreSQL instead of an embedded one; the database (rapidly_bench*) is created and dropped",
    )
    parser.add_argument(
        "--load-procs", type=int, default=1, help="load generator processes sharing the clients (default 1)"
    )
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="raw",
        help="raw: a minimal HTTP/1.1 client on asyncio streams (default; leaves the CPU to the servers); httpx",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes of the `serve --workers` phase; 1: no such phase"
    )
    parser.add_argument("--only", choices=(ONE, WORKERS, FLOOR), help="run one phase only (no ratio, no verdict)")
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also measure this earlier commit in each round (implies --workers 1): see the docstring",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy the Rapidly server during the measured window "
        "(FILE.svg flame graph, FILE.json speedscope, FILE.txt collapsed stacks)",
    )
    args = parser.parse_args()
    if args.before:
        args.workers = 1
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.workers < 1:
        parser.error("--clients, --rounds and --workers must be >= 1, --duration > 0, --warmup >= 0")
    return args


def main() -> int:
    args = parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare()
        pg_pid = bench.postgres_pid()
        print(
            f"saveField benchmark: {args.clients} clients, {args.rounds} rounds of Rapidly (1 process"
            f"{f', then {args.workers} workers' if args.workers > 1 else ''}) then floor, each phase "
            f"{args.duration:g} s measured after {args.warmup:g} s warm-up"
        )
        print(f"os.cpu_count() = {os.cpu_count()} (server, PostgreSQL and load generator share them)")
        print(f"database: {bench.describe_database()}")
        procs = max(1, min(args.load_procs, args.clients))
        client = "httpx.AsyncClient" if args.client == "httpx" else "raw asyncio HTTP/1.1 client"
        print(f"load generator: {procs} process(es), {client}, one keep-alive HTTP/1.1 connection per client")
        sys.stdout.flush()

        kinds = [ONE, *([WORKERS] if args.workers > 1 else []), *([BEFORE] if args.before else []), FLOOR]
        rounds: dict[str, list[dict]] = {kind: [] for kind in kinds}
        earlier = owner = None
        if args.before:
            earlier = Earlier(bench, args.before)
            print(f"before: {args.before} ({earlier.commit}), its own database {earlier.owner.database}")
            earlier.prepare()
            server = earlier.start()
            floor_tenant, floor_clients = asyncio.run(save_clients(bench, server.url, args.clients, earlier.owner))
            bench.stop(server)
            owner = earlier.owner
        server = bench.start_rapidly()
        tenant_id, clients = asyncio.run(save_clients(bench, server.url, args.clients))
        if earlier is None:
            floor_tenant, floor_clients = tenant_id, clients
        # Rows written so far in each database: this checkout's, and REV's (written by REV and the floor).
        database_of = {kind: None if kind in (ONE, WORKERS) or owner is None else owner for kind in kinds}
        written = {id(o): asyncio.run(_rows_written(bench, o)) for o in set(database_of.values())}
        for n in range(args.rounds):
            for kind in kinds:
                if args.only not in (None, kind):
                    continue
                if server is None and kind == ONE:
                    server = bench.start_rapidly()
                elif server is None and kind == WORKERS:
                    server = bench.start_rapidly(workers=args.workers)
                elif server is None and kind == BEFORE:
                    server = earlier.start()  # type: ignore[union-attr]
                elif server is None:
                    credentials = earlier.app_credentials if earlier else None
                    server = bench.start_floor(floor_tenant, floor_clients[0]["contact"], credentials=credentials)
                profile = args.profile if kind == ONE and n == 0 else None
                phase_clients = clients if kind in (ONE, WORKERS) else floor_clients
                result = load_phase(kind, server.url, server.pid, pg_pid, phase_clients, args, profile)
                bench.stop(server)
                server = None
                now = asyncio.run(_rows_written(bench, database_of[kind]))
                result["rows_written"], written[id(database_of[kind])] = now - written[id(database_of[kind])], now
                rounds[kind].append(result)
        if server is not None:
            bench.stop(server)
        if earlier is not None and bench.external_url:
            earlier.drop()
        results = {kind: combine(each) for kind, each in rounds.items() if each}
        print()
        print(report(args, results))
        for line in bench.explain([e for r in results.values() for e in r["error_samples"]]):
            print(line)
        if args.profile and ONE in results:
            print(f"\nprofile of the Rapidly server during the measured window: {args.profile}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
