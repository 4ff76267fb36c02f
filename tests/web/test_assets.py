"""The browser code as served: to any website, revalidated, from Rapidly alone, and small."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from rapidly.web.assets import ASSETS

STATIC = files("rapidly.web").joinpath("static")
#: What a page loads before the form's fields work (uncompressed), and with the chat and the photos'
#: code, which it loads right after.
FIRST_BYTES = 40_000
ALL_BYTES = 48_000


async def test_every_asset_is_served_to_any_site_with_its_type_and_revalidated(http):
    for path, asset in ASSETS.items():
        # when
        first = await http.get(path, headers={"Origin": "https://any.example"})
        again = await http.get(path, headers={"If-None-Match": first.headers["etag"]})

        # then
        assert first.status_code == 200 and first.content == asset.body
        assert first.headers["content-type"] == asset.media_type
        assert first.headers["access-control-allow-origin"] == "*"  # module scripts are CORS requests
        assert first.headers["cross-origin-resource-policy"] == "cross-origin"
        assert first.headers["x-content-type-options"] == "nosniff"
        assert first.headers["cache-control"] == "no-cache"
        assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/embed/nope.js",
        "/embed/form.js.map",
        "/embed/..%2F..%2Fapp.py",
        "/lib/%2e%2e%2fcli.py",
        "/embed/form.js/x",
        "/lib/",
        "/embed/%00.js",
        "/embed/" + "a" * 5000 + ".js",
    ],
)
async def test_anything_else_under_the_asset_paths_is_not_found(http, path):
    answer = await http.get(path)
    assert answer.status_code == 404
    assert b"rapidly" not in answer.content.lower()


def test_the_browser_code_loads_nothing_from_any_other_host():
    # given
    urls = {}
    for area in ("embed", "lib"):
        for item in STATIC.joinpath(area).iterdir():
            text = item.read_text(encoding="utf-8")
            urls[item.name] = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s'\"`)]*", text))
            # then: imports are relative, never another origin's
            for imported in re.findall(r"""(?:import|from)\s*\(?\s*['"`]([^'"`]+)""", text):
                assert imported.startswith("./") or imported.startswith("../"), (item.name, imported)

    # then: the one absolute URL is the SVG namespace, an identifier that is never fetched
    assert set().union(*urls.values()) == {"http://www.w3.org/2000/svg"}


def test_the_form_is_small():
    # given: the modules the form imports before it shows its fields (transitively), its stylesheet and
    # one language's texts; and those it imports once they are shown (the chat, the phone section)
    def graph(area: str, name: str, seen: set[str], later: set[str]) -> None:
        key = f"{area}/{name}"
        if key in seen:
            return
        seen.add(key)
        text = STATIC.joinpath(area, name).read_text(encoding="utf-8")
        for target in re.findall(r"^import .* from '([^']+)'", text, re.M):
            parts = target.split("/")
            graph(parts[-2] if parts[0] == ".." else area, parts[-1], seen, later)
        later.update(f"{area}/{target[2:]}" for target in re.findall(r"import\('(\./[\w-]+\.js)'\)", text))

    first: set[str] = set()
    then: set[str] = set()
    graph("embed", "form.js", first, then)
    first |= {"embed/form.css", "embed/texts-fi.js"}
    everything = set(first)
    for module in then:
        graph(*module.split("/"), everything, set())

    # when
    size = {name: len(STATIC.joinpath(name).read_bytes()) for name in everything}

    # then
    assert first == {
        "embed/form.js",
        "embed/texts.js",
        "embed/texts-fi.js",
        "embed/form.css",
        "lib/dom.js",
        "lib/graphql.js",
        "lib/save-queue.js",
        "lib/i18n.js",
    }
    assert everything - first == {"embed/chat.js", "embed/photos.js"}
    assert sum(size[name] for name in first) <= FIRST_BYTES, size
    assert sum(size.values()) <= ALL_BYTES, size
