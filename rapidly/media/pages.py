"""Serving photos to holders of an app-signed, expiring URL, opened under their contact's key (the
object storage, local or S3, holds ciphertext only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from rapidly import tenancy
from rapidly.media import service
from rapidly.validation import parse_id

router = APIRouter()

_HEADERS = {
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Content-Disposition": "inline",
    # The embedded form shows the photos on the company's own site, another origin. The URL is the
    # secret (signed, short-lived), as a storage's presigned URL would be.
    "Cross-Origin-Resource-Policy": "cross-origin",
}
_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


@router.get("/media/{tenant}/{contact}/{media}", include_in_schema=False)
async def media_file(request: Request, tenant: str, contact: str, media: str) -> Response:
    """A photo, for the holder of its app-signed, expiring URL: opened under its contact's key as it
    is read, so its first bytes go out before its last are read."""
    settings = request.app.state.settings
    params = request.query_params
    content_type = params.get("type", "")
    ids = [parse_id(part) for part in (tenant, contact, media)]
    key = f"{tenant}/{contact}/{media}"
    if (
        content_type not in _TYPES
        or None in ids
        or not service.url_is_valid(settings, key, params.get("expires", ""), content_type, params.get("signature", ""))
    ):
        return Response(status_code=404, headers=_HEADERS)
    tenant_id, contact_id, media_id = ids
    with tenancy.scoped(tenant_id):
        photo = await service.photo(request.app.state.storage, tenant_id, contact_id, media_id)
    if photo is None:  # erased
        return Response(status_code=404, headers=_HEADERS)
    return _Streamed(photo, media_type=content_type, headers=_HEADERS)


class _Streamed(StreamingResponse):
    """A streamed response that closes its stream (the object's file or S3 response) however the
    sending ends: Starlette's leaves a stream it did not finish to the garbage collector."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
