"""CPU instructions per `saveField`, Rapidly next to the floor: a figure that does not drift.

    .venv/bin/python bench/save_instructions.py [--saves 640] [--clients 32] [--only rapidly|floor]

Each server (`rapidly serve`, then bench/floor_app.py) runs under valgrind's callgrind with its
instrumentation off. Its contacts are started and it is warmed up with 5 saves per client; then the
instrumentation is switched on for exactly `--saves` saves from `--clients` concurrent keep-alive
connections (the same clients, values and fields as bench/save_field.py) and off again, and the
server's instruction count is divided by the saves. Everything the server process does for them
counts: uvicorn, the middleware, GraphQL, the database driver, the listener receiving the events.
PostgreSQL and the load generator run outside valgrind and are not counted.

The count is repeatable to a fraction of a percent whatever else runs on the machine, unlike seconds
on a shared 2-core machine, so it tells whether a change made a save cheaper. Instructions are not
time (cache misses, system calls and waiting are not in them), and the server is about 50 times
slower under valgrind, so throughput and latency still come from bench/save_field.py.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    ROOFING_KEYS,
    Bench,
    RawClient,
    free_port,
    roofing_value,
    save_clients,
    save_request,
    wait_ready,
)

CALLGRIND = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--instr-atstart=no"]


async def _drive(url: str, floor: bool, clients: list[dict], saves: int, base: int) -> None:
    """`saves` saves split over the clients, each client in a closed loop on its own connection."""

    async def client(spec: dict, count: int) -> None:
        path, headers, body_of = save_request(floor, spec)
        raw = RawClient(url + path)
        try:
            for step in range(count):
                key = ROOFING_KEYS[step % len(ROOFING_KEYS)]
                value = roofing_value(key, base + spec["index"] * 1_000_000 + step)
                status, content = await raw.post(body_of(key, value), headers)
                if status != 200 or not (floor or b'"FieldSaved"' in content):
                    raise RuntimeError(f"save failed: HTTP {status}: {content[:200]!r}")
        finally:
            await raw.close()

    per_client, extra = divmod(saves, len(clients))
    await asyncio.gather(*(client(c, per_client + (i < extra)) for i, c in enumerate(clients)))


def _callgrind(pid: int, on: bool) -> None:
    control = shutil.which("callgrind_control") or "callgrind_control"
    subprocess.run([control, "--instr=on" if on else "--instr=off", str(pid)], check=True, capture_output=True)


def measure(bench: Bench, name: str, argv: list[str], env: dict, port: int, clients: list[dict], saves: int) -> float:
    out = bench.tmp / f"callgrind-{name}.out"
    url = f"http://127.0.0.1:{port}"
    proc = bench.spawn(name, [*CALLGRIND, f"--callgrind-out-file={out}", *argv], env, url)
    wait_ready(proc, "/readyz", timeout=600)
    floor = name == "floor"
    asyncio.run(_drive(url, floor, clients, 5 * len(clients), 0))  # warm-up: caches, pools, statements
    _callgrind(proc.process.pid, True)
    asyncio.run(_drive(url, floor, clients, saves, 10_000_000))
    _callgrind(proc.process.pid, False)
    proc.process.send_signal(signal.SIGTERM)
    proc.process.wait(600)  # callgrind writes its counts as the process ends
    totals = [line.split()[1] for line in out.read_text().splitlines() if line.startswith(("summary:", "totals:"))]
    return int(totals[-1]) / saves


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=640, help="saves counted per server (default 640)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--only", choices=("rapidly", "floor"), help="measure one server only")
    args = parser.parse_args()
    if args.saves < args.clients or args.clients < 1:
        parser.error("--saves must be at least --clients, and --clients at least 1")
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        raise SystemExit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    with Bench(None) as bench:
        bench.setup_database()
        bench.prepare()
        server = bench.start_rapidly()
        tenant_id, clients = asyncio.run(save_clients(bench, server.url, args.clients))
        bench.stop(server)
        print(f"instructions per saveField: {args.saves} saves from {args.clients} clients, under callgrind")
        figures: dict[str, float] = {}
        if args.only in (None, "rapidly"):
            port = free_port()
            argv = [PYTHON, "-m", "rapidly", "serve", "--host", "127.0.0.1", "--port", str(port)]
            figures["rapidly"] = measure(bench, "rapidly", argv, bench.env(), port, clients, args.saves)
            print(f"  Rapidly saveField        {figures['rapidly']:>12,.0f}")
        if args.only in (None, "floor"):
            port = free_port()
            argv, env = bench.floor_command(tenant_id, clients[0]["contact"], port)
            figures["floor"] = measure(bench, "floor", argv, env, port, clients, args.saves)
            print(f"  floor (FastAPI+asyncpg)  {figures['floor']:>12,.0f}")
        if len(figures) == 2:
            ratio = figures["floor"] / figures["rapidly"]
            print(f"floor / Rapidly: {ratio:.2f} (the throughput ratio, were the server's CPU all that counted)")
        return 0


if __name__ == "__main__":
    sys.exit(main())
