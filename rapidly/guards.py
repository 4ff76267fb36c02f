"""Guards every HTTP request passes: the body size limit, the upload header, the security headers."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Room for the multipart envelope and the operations/map parts around one file.
UPLOAD_OVERHEAD_BYTES = 256 * 1024
UPLOAD_HEADERS = (b"rapidly-upload", b"apollo-require-preflight")


class UploadGuard:
    """Multipart requests to /graphql must carry `Rapidly-Upload` (or Apollo's
    `Apollo-Require-Preflight`): a header a cross-site HTML form cannot send, so a browser must ask
    first (CORS preflight) and is refused. Without it, 400 and nothing is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/graphql") and _is_multipart(scope):
            headers = dict(scope["headers"])
            if not any(headers.get(name) for name in UPLOAD_HEADERS):
                response = JSONResponse(
                    {"errors": [{"message": "Uploads need the `Rapidly-Upload: 1` header."}]}, status_code=400
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def media_type(scope: Scope) -> bytes:
    """The request's Content-Type without its parameters, lower-cased (b"" when there is none)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower()
    return b""


def _is_multipart(scope: Scope) -> bool:
    return media_type(scope) == b"multipart/form-data"


class BodySizeLimit:
    """Refuse request bodies over the cap with 413, counting as they stream in, so an oversized
    upload is cut off before it is held. Multipart requests (uploads) have their own, larger cap."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_upload_bytes if _is_multipart(scope) else self.max_bytes
        if declared_too_large(scope, cap):
            await too_large(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await too_large(send)


class BodyTooLarge(Exception):
    pass


def declared_too_large(scope: Scope, cap: int) -> bool:
    """The Content-Length is over `cap` (or is not a number)."""
    declared = dict(scope["headers"]).get(b"content-length")
    return declared is not None and (not declared.isdigit() or int(declared) > cap)


async def read_body(receive: Receive, cap: int) -> bytes:
    """The whole request body; raises `BodyTooLarge` as soon as it passes `cap`."""
    chunks, received = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > cap:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def too_large(send: Send) -> None:
    response = JSONResponse({"errors": [{"message": "Request body too large."}]}, status_code=413)
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


#: Headers every response carries; the GraphQL API is never cached or framed.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """`SECURITY_HEADERS` on every response, unless the response sets them itself."""

    HEADERS = SECURITY_HEADERS

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
