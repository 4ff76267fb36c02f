"""Memory and resources of one `rapidly serve` under live load, for minutes or hours.

    .venv/bin/python bench/soak.py [--minutes 10] [--typists 30] [--interval 0.3] [--staff 10]
                                   [--contacts 5] [--sample 30] [--warm-up 60] [--database-url URL]

`--typists` customers type (a save every `--interval` s each, one in flight each), `--staff` staff
consoles watch `contactEvents` and `--contacts` of the customers watch their own `myEvents`: with the
defaults, 100 saves and about 1,000 deliveries a second. Every `--sample` seconds a row: deliveries and
saves per second, the server's resident memory, its open file descriptors, its asyncio tasks
(`rapidly_tasks` of /metrics), open subscriptions and the database's connections. At the end, the
growth of resident memory per 100,000 deliveries after `--warm-up` seconds (least squares over the
rows), and what the server holds once the watchers have left.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MY_EVENTS_SUBSCRIPTION,
    Bench,
    Savers,
    Subscriber,
    mib,
    save_clients,
    staff_login,
    table,
)
from _common import (
    parser as bench_parser,
)

METRICS_TOKEN = "bench-metrics-token-" + "m" * 32


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


class Sampler:
    """The serving process's figures, as an operator's monitoring would read them."""

    def __init__(self, bench: Bench, url: str, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.http = httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        self.bench = bench
        self.owner = None

    async def __aenter__(self) -> Sampler:
        self.owner = await self.bench.owner.connect()  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.owner.close()  # type: ignore[union-attr]

    async def metrics(self) -> dict[str, float]:
        text = (await self.http.get("/metrics")).text
        wanted = ("rapidly_tasks", "rapidly_subscribers")
        return {
            name: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            for name in wanted
            if line.startswith(name + " ")
        }

    async def sample(self) -> dict[str, float]:
        figures = await self.metrics()
        # The sampler's own connection is not the server's.
        connections = await self.owner.fetchval(  # type: ignore[union-attr]
            "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()"
        )
        return {
            "rss": self.process.memory_info().rss,
            "fds": self.process.num_fds(),
            "tasks": figures.get("rapidly_tasks", float("nan")),
            "subscribers": figures.get("rapidly_subscribers", float("nan")),
            "db": connections,
        }


async def soak(bench: Bench, url: str, pid: int, args: object) -> None:
    a = args
    _, clients = await save_clients(bench, url, a.typists)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(timeout=30) as http:
        staff = await staff_login(http, url)
    delivered = [0]

    def count(*_: object) -> None:
        delivered[0] += 1

    watchers = [Subscriber(url, staff) for _ in range(a.staff)]  # type: ignore[attr-defined]
    watchers += [Subscriber(url, c["token"], MY_EVENTS_SUBSCRIPTION) for c in clients[: a.contacts]]  # type: ignore[attr-defined]
    rows: list[tuple[str, ...]] = [
        ("min", "deliveries/s", "saves/s", "RSS MiB", "fds", "tasks", "subscriptions", "db connections")
    ]
    points: list[tuple[float, float]] = []
    async with Sampler(bench, url, pid) as sampler:
        idle = await sampler.sample()
        for watcher in watchers:
            watcher.on_event = count
            await watcher.__aenter__()
        began = time.monotonic()
        ends = began + a.minutes * 60  # type: ignore[attr-defined]
        last_at, last_delivered, last_saves = began, 0, 0
        async with Savers(url, clients, a.interval) as savers:  # type: ignore[attr-defined]
            while time.monotonic() < ends:
                await asyncio.sleep(min(a.sample, max(0.0, ends - time.monotonic())))  # type: ignore[attr-defined]
                now, figures = time.monotonic(), await sampler.sample()
                deliveries, saves = delivered[0], len(savers.samples)
                seconds = max(now - last_at, 1e-9)
                rows.append(
                    (
                        f"{(now - began) / 60:.1f}",
                        f"{(deliveries - last_delivered) / seconds:,.0f}",
                        f"{(saves - last_saves) / seconds:,.0f}",
                        f"{figures['rss'] / 2**20:.1f}",
                        str(figures["fds"]),
                        f"{figures['tasks']:.0f}",
                        f"{figures['subscribers']:.0f}",
                        str(figures["db"]),
                    )
                )
                print("  ".join(rows[-1]), flush=True)
                if now - began >= a.warm_up:  # type: ignore[attr-defined]
                    points.append((deliveries, figures["rss"]))
                last_at, last_delivered, last_saves = now, deliveries, saves
            problems = savers.errors
        for watcher in watchers:
            problems += watcher.problems
            await watcher.__aexit__()
        await asyncio.sleep(5)
        left = await sampler.sample()

    print()
    print(table(rows))
    measured = points[-1][0] - points[0][0] if len(points) > 1 else 0
    per_delivery = slope(points)
    print(
        f"\nafter the warm-up: {measured:,.0f} deliveries; resident memory {per_delivery:+.1f} bytes per delivery, "
        f"{per_delivery * 100_000 / 2**20:+.2f} MiB per 100,000 deliveries"
    )
    print(
        f"before the watchers: RSS {mib(idle['rss'])} MiB, {idle['fds']} fds, {idle['tasks']:.0f} tasks; "
        f"after they left: RSS {mib(left['rss'])} MiB, {left['fds']} fds, {left['tasks']:.0f} tasks, "
        f"{left['subscribers']:.0f} subscriptions, {left['db']} db connections"
    )
    if problems:
        print(f"\n{len(problems)} problems, the first: {problems[:3]}")


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--typists", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--staff", type=int, default=10)
    parser.add_argument("--contacts", type=int, default=5)
    parser.add_argument("--sample", type=float, default=30)
    parser.add_argument("--warm-up", type=float, default=60)
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=True)
        proc = bench.start_rapidly(RAPIDLY_METRICS_TOKEN=METRICS_TOKEN)
        print(f"{bench.describe_database()}; {psutil.cpu_count()} cores; one `rapidly serve` (pid {proc.pid})")
        print(
            f"{args.typists} customers saving every {args.interval} s; {args.staff} staff watching contactEvents, "
            f"{args.contacts} customers watching myEvents; a row every {args.sample:.0f} s for {args.minutes} min\n"
        )
        asyncio.run(soak(bench, proc.url, proc.pid, args))


if __name__ == "__main__":
    main()
