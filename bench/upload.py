"""Photo upload throughput and the server's memory while it cleans 3 MB phone photos.

    .venv/bin/python bench/upload.py [--concurrency 8] [--uploads 64] [--size-mb 3]
                                     [--database-url postgresql://postgres@127.0.0.1:5432/rapidly_bench]

One `rapidly serve` process with local storage. A 4032x3024 JPEG of about `--size-mb` MB (a
12-megapixel phone photo, with EXIF and GPS) is made once; `--concurrency` clients then upload it
through `uploadMedia` (GraphQL multipart request) in a closed loop, `--uploads` in all, each client
starting a new contact when its photo field is full. Every upload is decoded, turned upright,
converted to sRGB, re-encoded and stored. Reported: images/s, MB/s (uploaded bytes), latency, and
the server's RSS before the uploads and at its highest during them. Target: RSS growth < 200 MB.

Then a photo's first byte (photos are opened under their contact's key since issue 27): each uploaded
photo is read once by its signed URL. With `--before REV` (say `--before 9af8305`, before photos were
sealed), that commit is served beside this one (its own database, migrated by its own code) with
`--compare` photos of its own, and the two are read in turns, `--rounds` times each photo, one request
at a time: p50 and p99 of both and their ratios, in one run (target: within 1.3x).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import time
from pathlib import Path

import httpx
from PIL import ExifTags, Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Bench, Earlier, Monitor, gql, mib, percentile, table

RSS_GROWTH_TARGET = 200 * 1024 * 1024
FIRST_BYTE_RATIO_TARGET = 1.3
FIELD, FIELD_FILES = "roof_photos", 10
UPLOAD = (
    "mutation U($fieldKey: String!, $file: Upload!) { uploadMedia(fieldKey: $fieldKey, file: $file) "
    "{ __typename ... on Error { message } ... on MediaUploaded { media { url } } } }"
)
START = 'mutation { startContact(tenant: "bench") { ... on ContactSession { token } } }'


def phone_photo(size_mb: float) -> bytes:
    """A 12-megapixel JPEG of about `size_mb` MB, with orientation, EXIF and GPS like a phone's."""
    g = Image.linear_gradient("L").resize((4032, 3024))
    n = Image.effect_noise((4032, 3024), 25).filter(ImageFilter.GaussianBlur(0.8))
    image = Image.merge("RGB", (Image.blend(g, n, 0.5), n, g))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (60.0, 10.0, 1.0)
    low, high, best = 40, 98, b""
    while low <= high:  # the quality whose size is closest to the target from below
        quality = (low + high) // 2
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, exif=exif)
        if out.tell() <= size_mb * 1e6:
            best, low = out.getvalue(), quality + 1
        else:
            high = quality - 1
    return best


async def upload(http: httpx.AsyncClient, url: str, token: str, photo: bytes, name: str = "IMG_0001.jpg") -> dict:
    response = await http.post(
        f"{url}/graphql",
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"fieldKey": FIELD, "file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        },
        files={"0": (name, photo, "image/jpeg")},
        headers={"Authorization": f"Bearer {token}", "Rapidly-Upload": "1"},
    )
    return response.json() if response.status_code == 200 else {"status": response.status_code, "text": response.text}


def served_url(url: str, signed: str) -> str:
    """The signed URL at the bench's server (it names RAPIDLY_BASE_URL, which the bench leaves unset)."""
    return url + "/media/" + signed.split("/media/", 1)[1]


async def measure(args: argparse.Namespace, url: str, photo: bytes, monitor: Monitor) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    urls: list[str] = []
    counter = iter(range(args.uploads))

    async with httpx.AsyncClient(timeout=120) as http:

        async def new_contact() -> str:
            return (await gql(http, url, START, {}))["startContact"]["token"]

        async def client() -> None:
            token, used = await new_contact(), 0
            for _ in counter:
                if used == FIELD_FILES:
                    token, used = await new_contact(), 0
                began = time.perf_counter()
                body = await upload(http, url, token, photo)
                latencies.append(time.perf_counter() - began)
                used += 1
                kind = body.get("data", {}).get("uploadMedia", {}).get("__typename")
                if kind == "MediaUploaded":
                    urls.append(body["data"]["uploadMedia"]["media"]["url"])
                elif len(failures) < 3:
                    failures.append(str(body)[:200])

        # one upload first, so that the baseline includes the imported decoders and warm pools
        await upload(http, url, await new_contact(), photo, "warmup.jpg")
        await asyncio.sleep(0.5)
        monitor.sample()
        baseline = monitor.rss_last.get("server", 0)
        monitor.rss_max["server"] = baseline
        monitor.mark_start()
        began = time.perf_counter()
        await asyncio.gather(*[client() for _ in range(args.concurrency)])
        elapsed = time.perf_counter() - began
        monitor.mark_end()
        first_bytes = [await first_byte(http, served_url(url, signed)) for signed in urls]
    return {
        "elapsed": elapsed,
        "latencies": sorted(latencies),
        "failures": failures,
        "baseline": baseline,
        "first_bytes": sorted(first_bytes),
        "urls": [served_url(url, signed) for signed in urls],
    }


async def photos_of(url: str, photo: bytes, count: int) -> list[str]:
    """`count` photos uploaded to the server at `url`, one at a time: their signed URLs there."""
    urls: list[str] = []
    async with httpx.AsyncClient(timeout=120) as http:
        while len(urls) < count:
            token = (await gql(http, url, START, {}))["startContact"]["token"]
            for _ in range(min(FIELD_FILES, count - len(urls))):
                body = await upload(http, url, token, photo)
                urls.append(served_url(url, body["data"]["uploadMedia"]["media"]["url"]))
    return urls


async def first_bytes_in_turns(photos: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Each server's photos read `rounds` times, the servers in turns, photo by photo."""
    timings: dict[str, list[float]] = {name: [] for name in photos}
    async with httpx.AsyncClient(timeout=120) as http:
        for _ in range(rounds):
            for index in range(max(len(urls) for urls in photos.values())):
                for name, urls in photos.items():
                    if index < len(urls):
                        timings[name].append(await first_byte(http, urls[index]))
    return {name: sorted(values) for name, values in timings.items()}


async def first_byte(http: httpx.AsyncClient, url: str) -> float:
    """Seconds from asking for a photo by its signed URL to its first byte (one at a time, idle server)."""
    began = time.perf_counter()
    async with http.stream("GET", url) as response:
        async for _ in response.aiter_raw():
            at = time.perf_counter() - began
            break
        if response.status_code != 200:
            raise SystemExit(f"photo {url[:60]}...: HTTP {response.status_code}")
    return at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--uploads", type=int, default=64)
    parser.add_argument("--size-mb", type=float, default=3.0)
    parser.add_argument("--database-url")
    parser.add_argument("--before", metavar="REV", help="an earlier commit whose photos' first byte is compared")
    parser.add_argument("--compare", type=int, default=32, help="photos of each server read in turns (default 32)")
    parser.add_argument("--rounds", type=int, default=10, help="times each of them is read (default 10)")
    args = parser.parse_args()
    with Bench(args.database_url) as bench:
        bench.setup_database()
        bench.prepare()
        photo = phone_photo(args.size_mb)
        print(
            f"upload benchmark: {args.uploads} uploads of a {len(photo) / 1e6:.2f} MB 4032x3024 JPEG, "
            f"{args.concurrency} at a time, one server process, local storage"
        )
        print(f"os.cpu_count() = {os.cpu_count()}; database: {bench.describe_database()}")
        sys.stdout.flush()
        server = bench.start_rapidly("rapidly", RAPIDLY_MEDIA_PER_CONTACT="1000")
        pg_pid = bench.postgres_pid()
        monitor = Monitor(
            rss_pids={"server": server.pid},
            cpu_groups={
                "server": ([server.pid], False),
                "postgres": ([pg_pid] if pg_pid else [], True),
                "bench": ([os.getpid()], False),
            },
            interval=0.05,
        )
        with monitor:
            r = asyncio.run(measure(args, server.url, photo, monitor))
        lat = r["latencies"]
        growth = monitor.rss_max["server"] - r["baseline"]
        rows = [
            ("", "value"),
            ("uploads answered MediaUploaded", f"{len(lat) - len(r['failures'])} of {len(lat)}"),
            ("images/s", f"{len(lat) / r['elapsed']:.1f}"),
            ("MB/s uploaded", f"{len(lat) * len(photo) / 1e6 / r['elapsed']:.1f}"),
            ("latency p50 / p99 / max s", f"{percentile(lat, 50):.2f} / {percentile(lat, 99):.2f} / {lat[-1]:.2f}"),
            (
                "a photo's first byte p50 / p99 ms",
                " / ".join(f"{percentile(r['first_bytes'], q) * 1000:.1f}" for q in (50, 99)),
            ),
            ("server RSS before MiB", mib(r["baseline"])),
            ("server RSS max during MiB", mib(monitor.rss_max["server"])),
            ("server RSS growth MiB", mib(growth)),
        ]
        for group, label in (
            ("server", "server"),
            ("postgres", "PostgreSQL"),
            ("bench", "bench client"),
            ("other", "others"),
        ):
            rows.append((f"CPU {label} % of a core", f"{monitor.cpu_percent.get(group, float('nan')):.0f}"))
        print()
        print(table(rows))
        for failure in r["failures"]:
            print(f"  failure: {failure}")
        verdict = "PASS" if growth < RSS_GROWTH_TARGET and not r["failures"] else "FAIL"
        print(
            f"\ntarget  RSS growth < 200 MB during {args.concurrency} concurrent uploads: {verdict} "
            f"({growth / 1e6:.0f} MB)"
        )
        if args.before:
            compare_first_bytes(bench, args, photo, r["urls"])
        return 0


def compare_first_bytes(bench: Bench, args: argparse.Namespace, photo: bytes, urls: list[str]) -> None:
    earlier = Earlier(bench, args.before)
    earlier.prepare()
    server = earlier.start()
    photos = {
        "this checkout": urls[: args.compare],
        args.before: asyncio.run(photos_of(server.url, photo, args.compare)),
    }
    timings = asyncio.run(first_bytes_in_turns(photos, args.rounds))
    now, then = timings["this checkout"], timings[args.before]
    rows = [("a photo's first byte, in turns", "p50 ms", "p99 ms")]
    for name, values in timings.items():
        rows.append((f"{name} ({len(values)} reads)", *(f"{percentile(values, q) * 1000:.2f}" for q in (50, 99))))
    ratios = [percentile(now, q) / percentile(then, q) for q in (50, 99)]
    rows.append((f"ratio this checkout / {args.before}", *(f"{ratio:.2f}x" for ratio in ratios)))
    print()
    print(table(rows))
    verdict = "PASS" if max(ratios) <= FIRST_BYTE_RATIO_TARGET else "FAIL"
    print(f"\ntarget  a photo's first byte within {FIRST_BYTE_RATIO_TARGET}x of {args.before} (p50 and p99): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
