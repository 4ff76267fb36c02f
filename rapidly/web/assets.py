"""`/embed/*`, `/lib/*` and `/console/*`: the browser code, served from the package, to any website.

The files are read once at import. They are public and carry no credentials, so any origin may load
them (`Access-Control-Allow-Origin: *`, which module scripts need) and embed them
(`Cross-Origin-Resource-Policy: cross-origin`). Browsers revalidate them on each load (`no-cache`
with an ETag): a new release is picked up at once, and an unchanged file costs a 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

AREAS = ("embed", "lib", "console")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, Asset]:
    assets = {}
    static = files("rapidly.web").joinpath("static")
    for area in AREAS:
        for item in static.joinpath(area).iterdir():
            media_type = next((t for suffix, t in MEDIA_TYPES.items() if item.name.endswith(suffix)), None)
            if media_type is None or not item.is_file():
                continue
            body = item.read_bytes()
            assets[f"/{area}/{item.name}"] = Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return assets


ASSETS = _load()
HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter()


@router.api_route("/embed/{name}", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/lib/{name}", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/console/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    found = ASSETS.get(request.url.path)
    if found is None:
        return Response(status_code=404, headers=HEADERS)
    headers = {**HEADERS, "ETag": found.etag}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
