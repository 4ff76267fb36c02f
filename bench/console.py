"""The staff console: its cold load, and staff watching live while customers type.

    .venv/bin/python bench/console.py [--loads 10] [--contacts 1000] [--consoles 20] [--typists 50]
                                      [--interval 0.3] [--duration 20] [--database-url URL]

One `rapidly serve` process; headless Chromium (Debian's) for the consoles.

1. Cold load: `--loads` loads of `/console` in new browser contexts (empty cache), signed in (the staff
   token put in sessionStorage before the page runs, as after a sign-in): the bytes and requests of the
   console's files, and the time from navigation start to the first contact list on screen.
2. Watching: `--contacts` contacts bulk-loaded, then `--typists` customers who each start a contact and
   type into it (a save of the field's whole text every `--interval` s, one save in flight each, as the
   form sends them), while `--consoles` consoles show the contact list: `--browser-consoles` of them real
   ones in Chromium, the rest console clients that do over the API what a console does with each event
   (twenty Chromium pages take this 2-core machine's CPU from the server and the typists, which then
   measures the browsers, not Rapidly). Save-to-screen: from a save being sent to each console showing
   that contact at the top of its list (in Chromium a MutationObserver records when; all clocks are
   this machine's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Bench,
    Monitor,
    RawClient,
    Subscriber,
    bulk_contacts,
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

SIGNED_IN = "sessionStorage.setItem('rapidly-console-token', {token!r})"
#: Each console page records when a contact is put at the top of its list.
WATCH = """
window.__moves = []
new MutationObserver((changes) => {
  const now = performance.timeOrigin + performance.now()
  for (const change of changes) for (const node of change.addedNodes) {
    if (node.dataset?.id && node === node.parentNode?.firstElementChild) window.__moves.push([node.dataset.id, now])
  }
}).observe(document, { childList: true, subtree: true })
"""
CONSOLE_FILES = "performance.getEntriesByType('resource').filter(e => /[/](console|lib)[/]/.test(e.name))"
ME = "query { me { contactId } }"
ONE = "query One($id: ID!) { contact(id: $id) { id displayName updatedAt } }"


async def cold_loads(url: str, token: str, loads: int) -> dict:
    from playwright.async_api import async_playwright

    first_list, requests, transferred = [], [], []
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        for _ in range(loads):
            context = await browser.new_context()
            await context.add_init_script(SIGNED_IN.format(token=token))
            page = await context.new_page()
            await page.goto(f"{url}/console")
            await page.locator(".contacts li").first.wait_for(timeout=30_000)
            first_list.append(await page.evaluate("performance.now()"))
            requests.append(await page.evaluate(f"{CONSOLE_FILES}.length + 1"))  # and the page itself
            transferred.append(await page.evaluate(f"{CONSOLE_FILES}.reduce((n, e) => n + e.decodedBodySize, 0)"))
            await context.close()
        await browser.close()
    return {"first_list": sorted(first_list), "requests": requests, "bytes": transferred}


class ConsoleClient:
    """What a console does with the live events, without a browser: each contact's event puts it at the
    top of the list at once (`shown`), and its name is read again at most every 10 s (`contact(id)`),
    as console.js does. Enough of them show what a server serves to that many consoles; the real
    consoles in Chromium show what a screen adds to it."""

    NAME_EVERY_SECONDS = 10.0

    def __init__(self, url: str, staff: str) -> None:
        self.url, self.staff = url, staff
        self.subscriber = Subscriber(url, staff)
        self.shown: dict[str, list[float]] = {}
        self.reads = 0
        self._reading: set[str] = set()
        self._http = httpx.AsyncClient(timeout=30)

    async def __aenter__(self) -> ConsoleClient:
        self.subscriber.on_event = self._on_event
        await self.subscriber.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.subscriber.__aexit__(*exc)
        await self._http.aclose()

    def _on_event(self, _at: float, kind: str, contact_id: str) -> None:
        if kind == "FIELD_SAVED":
            self.shown.setdefault(contact_id, []).append(time.time() * 1000)
        if contact_id not in self._reading:
            self._reading.add(contact_id)
            asyncio.get_running_loop().call_later(
                self.NAME_EVERY_SECONDS, lambda: asyncio.ensure_future(self._read(contact_id))
            )

    async def _read(self, contact_id: str) -> None:
        self._reading.discard(contact_id)
        self.reads += 1
        with contextlib.suppress(httpx.HTTPError):  # the run may end with a read in flight
            await self._http.post(
                f"{self.url}/graphql",
                json={
                    "query": "query One($id: ID!) { contact(id: $id) { id displayName updatedAt } }",
                    "variables": {"id": contact_id},
                },
                headers={"authorization": f"Bearer {self.staff}"},
            )


def run_clients(url: str, staff: str, count: int, stop: object, results: object) -> None:
    """A worker process: `count` console clients, until `stop` is set; then what they showed, and when."""

    async def run() -> dict:
        clients = [ConsoleClient(url, staff) for _ in range(count)]
        for client in clients:
            await client.__aenter__()
        results.put("ready")  # type: ignore[attr-defined]
        while not stop.is_set():  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
        report = {
            "shown": [client.shown for client in clients],
            "reads": sum(client.reads for client in clients),
            "problems": [p for client in clients for p in client.subscriber.problems],
        }
        for client in clients:
            await client.__aexit__(None, None, None)
        return report

    results.put(asyncio.run(run()))  # type: ignore[attr-defined]


async def watching(args: argparse.Namespace, url: str, staff: str, window: list[float]) -> dict:
    from playwright.async_api import async_playwright

    async with httpx.AsyncClient(timeout=30) as http:
        tokens = await start_contacts(http, url, args.typists)
        ids = []
        for token in tokens:  # each typist's first answer makes its contact visible
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            answer = await http.post(f"{url}/graphql", content=save_body("name", "Asiakas"), headers=headers)
            assert is_saved(answer.content), answer.text
            me = await http.post(f"{url}/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"})
            ids.append(me.json()["data"]["me"]["contactId"])
    sent: list[tuple[str, float]] = []
    failed = 0
    # The console clients run in processes of their own, so that their events are not queued behind the
    # typists' in one event loop (that would measure this script, not Rapidly).
    count = args.consoles - args.browser_consoles
    per = [count // args.client_procs + (i < count % args.client_procs) for i in range(args.client_procs)]
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    results = context.Queue()
    procs = [context.Process(target=run_clients, args=(url, staff, n, stop, results)) for n in per if n]
    for proc in procs:
        proc.start()
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        pages = []
        for _ in range(args.browser_consoles):
            context_ = await browser.new_context()
            await context_.add_init_script(SIGNED_IN.format(token=staff))
            await context_.add_init_script(WATCH)
            page = await context_.new_page()
            await page.goto(f"{url}/console")
            await page.locator(".contacts li").first.wait_for(timeout=60_000)
            pages.append(page)
        ready = [await asyncio.to_thread(results.get, True, 60) for _ in procs]
        assert all(r == "ready" for r in ready), ready
        await asyncio.sleep(1)
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
                    sent_at = time.time() * 1000
                    status, content = await client.post(save_body("damage_description", f"Vuotaa {i} {n}"), headers)
                    if status == 200 and is_saved(content):
                        sent.append((ids[i], sent_at))
                    else:
                        failed += 1
                    at = max(at + args.interval, time.perf_counter())
            finally:
                await client.close()

        await asyncio.gather(*(typist(i) for i in range(args.typists)))
        await asyncio.sleep(3)  # the last events reach the screens
        on_screens = [await page.evaluate("window.__moves") for page in pages]
        await browser.close()
    stop.set()
    reported = [await asyncio.to_thread(results.get, True, 60) for _ in procs]
    for proc in procs:
        proc.join(10)
    clients = [shown for report in reported for shown in report["shown"]]
    reads = sum(report["reads"] for report in reported)
    problems = [p for report in reported for p in report["problems"]]

    def latencies(shown_by_contact: list[dict[str, list[float]]]) -> tuple[list[float], int]:
        found, missing = [], 0
        for shown in shown_by_contact:
            for contact_id, sent_at in sent:
                at = next((t for t in shown.get(contact_id, ()) if t >= sent_at), None)
                if at is None:
                    missing += 1
                else:
                    found.append(at - sent_at)
        return sorted(found), missing

    browsers = [{} for _ in on_screens]
    for shown, moves in zip(browsers, on_screens, strict=True):
        for contact_id, at in moves:
            shown.setdefault(contact_id, []).append(at)
    return {
        "clients": latencies(clients),
        "browsers": latencies(browsers),
        "saves": len(sent),
        "failed": failed,
        "reads": reads,
        "problems": problems,
    }


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--loads", type=int, default=10, help="cold loads of the console (default 10)")
    parser.add_argument("--contacts", type=int, default=1000, help="contacts bulk-loaded first (default 1000)")
    parser.add_argument("--consoles", type=int, default=20, help="consoles watching (default 20)")
    parser.add_argument(
        "--browser-consoles", type=int, default=2, help="of them, real consoles in Chromium (default 2)"
    )
    parser.add_argument("--client-procs", type=int, default=2, help="processes for the other consoles (default 2)")
    parser.add_argument("--typists", type=int, default=50, help="customers typing (default 50)")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between a typist's saves (0.3)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of typing (default 20)")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare(staff=True)
        asyncio.run(bulk_contacts(bench, args.contacts))
        rapidly = bench.start_rapidly()
        print(f"os.cpu_count() = {os.cpu_count()}; database: {bench.describe_database()}")

        async def sign_in() -> str:
            async with httpx.AsyncClient(timeout=30) as http:
                return await staff_login(http, rapidly.url)

        staff = asyncio.run(sign_in())
        loaded = asyncio.run(cold_loads(rapidly.url, staff, args.loads))
        print(f"\nconsole cold load, {args.loads} loads, signed in, {args.contacts:,} contacts")
        print(
            table(
                [
                    ("", "value"),
                    ("the console's files, bytes (uncompressed)", f"{max(loaded['bytes']):,}"),
                    ("requests (the page and its files)", str(max(loaded["requests"]))),
                    (
                        "navigation -> first contact list, p50 / p90 / max ms",
                        " / ".join(f"{percentile(loaded['first_list'], q):.0f}" for q in (50, 90, 100)),
                    ),
                ]
            )
        )
        monitor = Monitor(
            rss_pids={"server": rapidly.pid},
            cpu_groups={"server": ([rapidly.pid], False), "postgres": ([bench.postgres_pid()], True)},
        )
        result = monitor.measure(lambda window: watching(args, rapidly.url, staff, window))
        print(
            f"\n{args.consoles} consoles watching ({args.browser_consoles} in Chromium), {args.typists} customers "
            f"typing (a save each every {args.interval:g} s), {args.duration:g} s, one server process"
        )
        rows = [("", "value"), ("saves (failed)", f"{result['saves']} ({result['failed']})")]
        for key, label in (("clients", "console clients"), ("browsers", "consoles in Chromium")):
            lat, missing = result[key]
            rows.append(
                (
                    f"save -> {label}, p50 / p95 / p99 / max ms",
                    " / ".join(f"{percentile(lat, q):.0f}" for q in (50, 95, 99, 100)),
                )
            )
            rows.append((f"saves shown / not shown ({label})", f"{len(lat)} / {missing}"))
        rows += [
            ("names read again (contact(id)) by the console clients", str(result["reads"])),
            ("server RSS max MiB", mib(monitor.rss_max.get("server"))),
            (
                "CPU server / PostgreSQL / everything else, % of a core",
                " / ".join(f"{monitor.cpu_percent.get(k, 0):.0f}" for k in ("server", "postgres", "other")),
            ),
        ]
        print(table(rows))
        for problem in result["problems"][:3]:
            print(f"  subscription: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
