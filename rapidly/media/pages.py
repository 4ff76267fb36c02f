"""Serving local-storage media to holders of an app-signed, expiring URL (S3 serves its own)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rapidly.storage.local import LocalStorage

router = APIRouter()

_HEADERS = {
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Content-Disposition": "inline",
    # The embedded form shows the photos on the company's own site, another origin. The URL is the
    # secret (signed, short-lived), as with S3's presigned URLs, which send no such header at all.
    "Cross-Origin-Resource-Policy": "cross-origin",
}
_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


@router.get("/media/{tenant}/{contact}/{media}", include_in_schema=False)
async def media_file(request: Request, tenant: str, contact: str, media: str) -> Response:
    storage = request.app.state.storage
    key = f"{tenant}/{contact}/{media}"
    params = request.query_params
    content_type = params.get("type", "")
    if (
        not isinstance(storage, LocalStorage)
        or content_type not in _TYPES
        or not storage.verify(key, params.get("expires", ""), content_type, params.get("signature", ""))
    ):
        return Response(status_code=404, headers=_HEADERS)
    try:
        data = await storage.get(key)
    except (KeyError, FileNotFoundError):  # erased, or not a media key
        return Response(status_code=404, headers=_HEADERS)
    return Response(data, media_type=content_type, headers=_HEADERS)
