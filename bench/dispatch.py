"""Dispatcher throughput: queued emails delivered to a local SMTP server by `rapidly worker` processes.

    .venv/bin/python bench/dispatch.py [--workers 2] [--messages 2000]
                                       [--database-url postgresql://postgres@127.0.0.1:5432/rapidly_bench]

An SMTP server (aiosmtpd, in this process, plain SMTP on loopback) receives; `--workers` processes of
`rapidly worker` send. Once they are up, `--messages` staff notifications (NEW_CONTACT emails, one
event each) are written to the outbox in one statement; the clock runs from that commit until the SMTP
server has received every one and the outbox shows them all SENT. Each message is worded from the
tenant's template and sent over its own SMTP connection, as the dispatcher does in production.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import STAFF_EMAIL, Bench, Monitor, free_port, mib, table
from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.received = 0
        self.ids: set[str] = set()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received += 1
        for line in envelope.content.splitlines():
            if line.lower().startswith(b"message-id:"):
                self.ids.add(line.split(b":", 1)[1].strip().decode())
                break
        return "250 OK"


async def measure(bench: Bench, args: argparse.Namespace, counter: Counter) -> dict:
    conn = await bench.owner.connect()  # type: ignore[union-attr]
    try:
        tenant_id, staff_id = await conn.fetchrow("SELECT tenant_id, id FROM staff_user WHERE email = $1", STAFF_EMAIL)
        began = time.perf_counter()
        await conn.execute(
            "INSERT INTO outbound_message (id, tenant_id, staff_id, event, channel, locale, payload, status, "
            "attempts, next_attempt_at, created_at) "
            "SELECT gen_random_uuid(), $1, $2, 'new_contact', 'email', 'fi', '{}'::jsonb, 'PENDING', 0, now(), now() "
            "FROM generate_series(1, $3)",
            tenant_id,
            staff_id,
            args.messages,
        )
        while True:
            await asyncio.sleep(0.05)
            if counter.received >= args.messages:
                sent = await conn.fetchval("SELECT count(*) FROM outbound_message WHERE status = 'SENT'")
                if sent >= args.messages:
                    break
        elapsed = time.perf_counter() - began
        statuses = dict(await conn.fetch("SELECT status, count(*) FROM outbound_message GROUP BY status"))
    finally:
        await conn.close()
    return {"elapsed": elapsed, "statuses": statuses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=free_port())
    with Bench(args.database_url) as bench:
        try:
            bench.setup_database()
            bench.prepare(staff=True)
            controller.start()
            env = {
                "RAPIDLY_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
                "RAPIDLY_SMTP_COUNTRY": "FI",
                "RAPIDLY_MESSAGES_PER_TENANT_PER_DAY": "100000000",
            }
            workers = [
                bench.spawn(f"worker-{i}", [sys.executable, "-m", "rapidly", "worker"], bench.env(**env), "")
                for i in range(args.workers)
            ]
            time.sleep(3)  # both up and polling
            print(
                f"dispatch benchmark: {args.messages} emails, {args.workers} `rapidly worker` processes, "
                f"local SMTP (aiosmtpd, plain) in the benchmark process"
            )
            print(f"os.cpu_count() = {os.cpu_count()}; database: {bench.describe_database()}")
            pg_pid = bench.postgres_pid()
            monitor = Monitor(
                rss_pids={w.name: w.pid for w in workers},
                cpu_groups={
                    "workers": ([w.pid for w in workers], False),
                    "postgres": ([pg_pid] if pg_pid else [], True),
                    "bench": ([os.getpid()], False),
                },
            )
            with monitor:
                monitor.mark_start()
                r = asyncio.run(measure(bench, args, counter))
                monitor.mark_end()
            rows = [
                ("", "value"),
                ("messages queued", str(args.messages)),
                ("received by SMTP (distinct)", f"{counter.received} ({len(counter.ids)})"),
                ("outbox by status", ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))),
                ("seconds", f"{r['elapsed']:.2f}"),
                ("messages/s", f"{args.messages / r['elapsed']:.0f}"),
                *[(f"{w.name} RSS max MiB", mib(monitor.rss_max.get(w.name))) for w in workers],
            ]
            for group, label in (
                ("workers", "workers"),
                ("postgres", "PostgreSQL"),
                ("bench", "SMTP + bench"),
                ("other", "others"),
            ):
                rows.append((f"CPU {label} % of a core", f"{monitor.cpu_percent.get(group, float('nan')):.0f}"))
            print()
            print(table(rows))
            return 0
        finally:
            controller.stop()


if __name__ == "__main__":
    sys.exit(main())
