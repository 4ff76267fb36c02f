"""Cross-origin use of `/graphql` from the websites tenants list (DESIGN.md §6).

A browser on a company's site asks first (the CORS preflight), then sends its request with an
`Origin`. This layer, in front of everything, answers the preflight and grants
`Access-Control-Allow-Origin` (the origin echoed; tokens are bearer tokens, so no credentials mode)
only to origins some tenant lists; other foreign origins get 403, on HTTP and at the WebSocket
handshake. Which tenant an operation may act for is decided further in, by the operation itself
(`rapidly.tenants.origins.require`): a listed origin of one company cannot drive another's contacts.

Requests without `Origin` (servers, apps, curl) and from Rapidly's own origin pass untouched.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapidly.errors import RETRY_AFTER_SECONDS, UNAVAILABLE, UNAVAILABLE_MESSAGE
from rapidly.guards import SECURITY_HEADERS
from rapidly.tenants.origins import ListedOrigins

PATH = "/graphql"
#: What a page needs: JSON POSTs, the bearer token, multipart uploads with their header, and the media
#: type it accepts (an `Accept` that browsers do not count as safe, e.g. a long one, is preflighted).
ALLOWED_METHODS = frozenset({"POST"})
ALLOWED_HEADERS = frozenset({"authorization", "content-type", "rapidly-upload", "apollo-require-preflight", "accept"})
#: Browsers cache a granted preflight this long (Chromium caps it at two hours).
MAX_AGE_SECONDS = 600
_VARY = (b"vary", b"Origin")
_PREFLIGHT_VARY = (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")


@functools.lru_cache(maxsize=8)
def own_origin(base_url: str) -> str:
    """Rapidly's origin (`RAPIDLY_BASE_URL`'s) as browsers write it: lower case, no default port."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = "" if parts.port in (None, {"https": 443, "http": 80}.get(scheme)) else f":{parts.port}"
    return f"{scheme}://{host}{port}"


def foreign_origin(scope: Scope, own: str) -> str | None:
    """The request's `Origin` when it is another site's; None without one, and for Rapidly's own
    origin (`RAPIDLY_BASE_URL`) or the address the request was sent to (its scheme and Host). Only
    bearer tokens authenticate here, so a page served by this very host is no threat to anyone."""
    origin = host = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if origin is None or origin == own:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    if host is not None and origin.lower() == f"{scheme}://{host}".lower():
        return None
    return origin


class CrossOrigin:
    def __init__(self, app: ASGIApp, base_url: str, listed: ListedOrigins) -> None:
        self.app = app
        self.own = own_origin(base_url)
        self.listed = listed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        origin = foreign_origin(scope, self.own)
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = await self.listed.contains(origin)
        if scope["type"] == "websocket":
            if allowed:
                await self.app(scope, receive, send)
            else:  # closing before accepting answers the handshake with 403
                await send({"type": "websocket.close", "code": 1008})
            return
        headers = {name: value for name, value in scope["headers"]}
        if allowed is None:  # no list could be read yet: the database is unreachable
            await _answer(send, 503, _UNAVAILABLE, [_VARY, (b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
        elif scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(origin, allowed, headers, send)
        elif not allowed:
            await _answer(send, 403, _REFUSAL, [_VARY])
        else:
            await self.app(scope, receive, _granting(origin, send))

    async def _preflight(self, origin: str, allowed: bool, headers: dict[bytes, bytes], send: Send) -> None:
        method = headers[b"access-control-request-method"].decode("latin-1").strip()
        asked = {
            name.strip().lower()
            for name in headers.get(b"access-control-request-headers", b"").decode("latin-1").split(",")
            if name.strip()
        }
        if not allowed or method not in ALLOWED_METHODS or not asked <= ALLOWED_HEADERS:
            await _answer(send, 403, _REFUSAL, [_PREFLIGHT_VARY])
            return
        grant = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ", ".join(sorted(ALLOWED_METHODS)).encode()),
            (b"access-control-allow-headers", b"Authorization, Content-Type, Rapidly-Upload, Apollo-Require-Preflight"),
            (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
            _PREFLIGHT_VARY,
            *SECURITY_HEADERS,
        ]
        await send({"type": "http.response.start", "status": 204, "headers": grant})
        await send({"type": "http.response.body", "body": b""})


def _granting(origin: str, send: Send) -> Send:
    grant = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        # A client told to come back later must be able to read when.
        (b"access-control-expose-headers", b"Retry-After"),
        _VARY,
    ]

    async def send_granted(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *grant]}
        await send(message)

    return send_granted


_REFUSAL = json.dumps(
    {
        "errors": [
            {
                "message": "This website may not use Rapidly's API: its origin is not among any company's allowed "
                "origins.",
                "extensions": {"code": "OriginNotAllowed"},
            }
        ]
    }
).encode()


_UNAVAILABLE = json.dumps(
    {
        "errors": [
            {
                "message": UNAVAILABLE_MESSAGE,
                "extensions": {"code": UNAVAILABLE, "retryAfterSeconds": RETRY_AFTER_SECONDS},
            }
        ]
    }
).encode()


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
