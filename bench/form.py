"""The embeddable form: its size, its time to interactive from a cold load, and many typists at once.

    .venv/bin/python bench/form.py [--loads 15] [--typists 200] [--interval 0.3] [--duration 20]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/rapidly_bench]

One `rapidly serve` process, and the demo's company page (`rapidly.web.demo_site`, with the CSP we
advise) served from this process on another port, so that the form runs cross-origin as on a real site.

1. Size: the bytes of the modules the form loads before its fields work, and with the chat and phone
   section it loads right after, uncompressed and gzipped (level 6, for reference: Rapidly serves them
   uncompressed; a reverse proxy may compress).
2. Time to interactive: `--loads` cold loads of the company page in headless Chromium (Debian's), each in
   a new browser context (empty cache, no service worker): from navigation start to the form's
   `rapidly-ready` event, when its fields can be typed into; and to the chat panel being shown too.
3. Typists: `--typists` simulated end users, each with its own contact and its own keep-alive connection,
   sending `saveField` as the form does (with the company site's `Origin`): a keystroke batch every
   `--interval` seconds, the field's whole text each time, at most one save in flight per typist (a batch
   typed meanwhile waits and the newest is sent when the answer comes: the form's save queue). A staff
   member watches `contactEvents` on the same server.
   - batch -> saved: from the moment a batch is typed to the answer of the save that carried it (or a later
     one of the same typist), as the form shows "saved";
   - batch -> staff event: from the same moment to the staff's FIELD_SAVED event of that save.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TENANT_SLUG,
    Bench,
    Monitor,
    RawClient,
    Subscriber,
    identify_contacts,
    is_saved,
    launch_chromium,
    mib,
    percentile,
    save_body,
    staff_login,
    start_contacts,
    table,
)
from _common import (
    parser as bench_parser,
)

STATIC = files("rapidly.web").joinpath("static")
FIRST = ["embed/form.js", "embed/texts.js", "embed/texts-fi.js", "embed/form.css"]
FIRST += ["lib/dom.js", "lib/graphql.js", "lib/save-queue.js"]
LATER = ["embed/chat.js", "embed/photos.js"]
READY = "addEventListener('rapidly-ready', () => { window.__ready = performance.now() }, true)"
FORM_FILES_DONE = (
    "Math.max(...performance.getEntriesByType('resource').filter(e => /[/](embed|lib)[/]/.test(e.name))"
    ".map(e => e.responseEnd))"
)
FORM_FILES_LOADED = "performance.getEntriesByType('resource').filter(e => /[/](embed|lib)[/]/.test(e.name)).length"


def sizes() -> list[tuple[str, ...]]:
    def row(label: str, names: list[str]) -> tuple[str, ...]:
        raw = b"".join(STATIC.joinpath(name).read_bytes() for name in names)
        each = sum(len(gzip.compress(STATIC.joinpath(name).read_bytes(), 6)) for name in names)
        return label, f"{len(raw):,}", f"{each:,}", str(len(names))

    return [
        ("", "bytes", "gzip bytes", "files"),
        ("before the fields work (one language)", *row("", FIRST)[1:]),
        ("chat and photos, loaded right after", *row("", LATER)[1:]),
        ("in all", *row("", FIRST + LATER)[1:]),
    ]


def serve_site(rapidly_url: str) -> tuple[str, ThreadingHTTPServer]:
    from rapidly.cors import own_origin
    from rapidly.web.demo_site import DemoSite

    site = DemoSite(own_origin(rapidly_url), TENANT_SLUG, "Bench Katto Oy")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = site.respond(self.path)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name.decode(), value.decode())
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


async def cold_loads(site_url: str, loads: int) -> dict:
    from playwright.async_api import async_playwright

    ready, complete, requests = [], [], []
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        for _ in range(loads):
            context = await browser.new_context()
            await context.add_init_script(READY)
            page = await context.new_page()
            await page.goto(site_url)
            await page.wait_for_function("window.__ready !== undefined", timeout=30_000)
            await page.locator("rapidly-form .chat-panel").wait_for(timeout=30_000)
            ready.append(await page.evaluate("window.__ready"))
            complete.append(await page.evaluate(FORM_FILES_DONE))
            requests.append(await page.evaluate(FORM_FILES_LOADED))
            await context.close()
        version = browser.version
        await browser.close()
    return {"ready": sorted(ready), "complete": sorted(complete), "requests": requests, "chromium": version}


async def typists(args: argparse.Namespace, url: str, origin: str, window: list[float]) -> dict:
    async with httpx.AsyncClient(timeout=30) as http:
        staff = await staff_login(http, url)
        tokens = await start_contacts(http, url, args.typists)
        async with Subscriber(url, staff) as sub:
            contact_ids = await identify_contacts(http, url, sub, tokens)
            #: Per contact, the saves answered and not yet seen by staff: [batch times it carried].
            awaiting_event: dict[str, deque] = {cid: deque() for cid in contact_ids}
            to_saved: list[float] = []
            to_event: list[float] = []
            counts = {"saves": 0, "failed": 0, "unexpected": 0}
            failures: list[str] = []

            def on_event(at: float, kind: str, cid: str) -> None:
                if kind != "FIELD_SAVED":
                    return
                if not awaiting_event.get(cid):
                    counts["unexpected"] += 1
                    return
                to_event.extend((at - typed) * 1000 for typed in awaiting_event[cid].popleft())

            sub.on_event = on_event
            start = time.perf_counter() + 1.0
            end = start + args.duration
            window[:] = [time.time() + 1.0, time.time() + 1.0 + args.duration]

            async def typist(i: int) -> None:
                client = RawClient(f"{url}/graphql")
                headers = {"content-type": "application/json", "authorization": f"Bearer {tokens[i]}"}
                headers["origin"] = origin
                typed: list[float] = []  # batches typed since the last save was sent
                wake = asyncio.Event()
                finished = False

                async def keyboard() -> None:
                    # each typist at its own phase within the interval, as real people would be
                    nonlocal finished
                    at = start + (i / args.typists) * args.interval
                    while at < end:
                        await asyncio.sleep(max(0.0, at - time.perf_counter()))
                        typed.append(time.perf_counter())
                        wake.set()
                        at += args.interval
                    finished = True
                    wake.set()

                keys = asyncio.create_task(keyboard())
                n = 0
                try:
                    while not (finished and not typed):
                        await wake.wait()
                        wake.clear()
                        while typed:  # the newest text, carrying every batch typed since the last save
                            carried, typed[:] = list(typed), []
                            n += len(carried)
                            body = save_body("damage_description", f"Vuotaa {i}: {'x' * (n % 200)} {n}")
                            try:
                                status, content = await client.post(body, headers)
                                ok = status == 200 and is_saved(content)
                                problem = f"HTTP {status}: {content[:200].decode(errors='replace')}"
                            except (OSError, asyncio.IncompleteReadError, TimeoutError, StopIteration) as exc:
                                ok, problem = False, type(exc).__name__
                            done = time.perf_counter()
                            if ok:
                                counts["saves"] += 1
                                awaiting_event[contact_ids[i]].append(carried)
                                to_saved.extend((done - t) * 1000 for t in carried)
                            else:
                                counts["failed"] += 1
                                if len(failures) < 3:
                                    failures.append(problem)
                finally:
                    keys.cancel()
                    await client.close()

            await asyncio.gather(*(typist(i) for i in range(args.typists)))
            deadline = time.perf_counter() + 5
            while any(awaiting_event.values()) and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            lost = sum(len(q) for q in awaiting_event.values())
            return {
                "to_saved": sorted(to_saved),
                "to_event": sorted(to_event),
                "lost": lost,
                "failures": failures,
                "problems": sub.problems,
                **counts,
            }


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    return " / ".join(f"{percentile(values, q):.0f}" for q in (50, 95, 99)) + f" / {values[-1]:.0f}"


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--loads", type=int, default=15, help="cold loads of the company page (default 15)")
    parser.add_argument("--typists", type=int, default=200, help="simulated typists (default 200)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between keystroke batches (0.3)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of typing (default 20)")
    args = parser.parse_args()

    print("form size (uncompressed, as served)")
    print(table(sizes()))
    print()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=True)
        rapidly = bench.start_rapidly()
        site_url, site = serve_site(rapidly.url)
        bench.cli("tenant", "origins", TENANT_SLUG, "--add", site_url)
        print(f"os.cpu_count() = {os.cpu_count()}; database: {bench.describe_database()}")

        loaded = asyncio.run(cold_loads(site_url, args.loads))
        print(f"\ntime to interactive, {args.loads} cold loads of the company page (Chromium {loaded['chromium']})")
        print(
            table(
                [
                    ("from navigation start, ms", "p50", "p90", "max"),
                    (
                        "fields can be typed into (rapidly-ready)",
                        *(f"{percentile(loaded['ready'], q):.0f}" for q in (50, 90, 100)),
                    ),
                    (
                        "every file of the form loaded (chat, photos)",
                        *(f"{percentile(loaded['complete'], q):.0f}" for q in (50, 90, 100)),
                    ),
                ]
            )
        )
        print(f"requests for the form's files per load: {sorted(set(loaded['requests']))}")

        pg_pid = bench.postgres_pid()
        monitor = Monitor(
            rss_pids={"server": rapidly.pid},
            cpu_groups={
                "server": ([rapidly.pid], False),
                "postgres": ([pg_pid] if pg_pid else [], True),
                "bench": ([os.getpid()], False),
            },
        )

        result = monitor.measure(lambda window: typists(args, rapidly.url, site_url, window))
        site.shutdown()
        rate = args.typists / args.interval
        print(
            f"\n{args.typists} typists, a keystroke batch every {args.interval:g} s each ({rate:.0f} batches/s), "
            f"{args.duration:g} s, one server process"
        )
        rows = [
            ("", "value"),
            ("saves answered FieldSaved (per s)", f"{result['saves']} ({result['saves'] / args.duration:.0f})"),
            ("saves failed", str(result["failed"])),
            ("batch -> saved ms p50 / p95 / p99 / max", ms(result["to_saved"])),
            ("batch -> staff event ms p50 / p95 / p99 / max", ms(result["to_event"])),
            ("staff events lost / unexpected", f"{result['lost']} / {result['unexpected']}"),
            ("server RSS max MiB", mib(monitor.rss_max.get("server"))),
        ]
        for group, label in (
            ("server", "server"),
            ("postgres", "PostgreSQL"),
            ("bench", "typists + staff"),
            ("other", "others"),
        ):
            rows.append((f"CPU {label} % of a core", f"{monitor.cpu_percent.get(group, float('nan')):.0f}"))
        print(table(rows))
        for failure in result["failures"]:
            print(f"  save failure: {failure}")
        for problem in result["problems"][:3]:
            print(f"  subscription: {problem}")
        for line in bench.explain(result["failures"]):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
