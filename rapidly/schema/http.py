"""JSON queries and mutations over HTTP, run on graphql-core directly.

Strawberry's HTTP view and extension runner cost more CPU than the whole `saveField` they carry
(bench/save_field.py), and a JSON POST of a valid query or mutation is the one request shape that
is hot. This ASGI layer runs exactly that shape on the schema Strawberry built (same resolvers,
permission classes, context, limits, error log and masking) and leaves everything else to
Strawberry's router, untouched and with the body replayed: bodies that are not a JSON object with a
`query`, documents that do not parse or validate, subscriptions, uploads, WebSockets, GraphiQL. So
every unusual request still gets Strawberry's answer, and only valid documents are cached.

It also answers in the media type the client accepts, on both paths (`accepted`): the GraphQL over
HTTP specification's own `application/graphql-response+json` gets that content type, and a request
that fails before execution (a document that does not parse or validate, variables that do not
coerce) a 400 without `data`; `application/json`, `*/*` or no `Accept` get what they always got
(200, `"data": null`); an `Accept` that allows neither, a 406.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType, execute, parse, specified_rules
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.execution import optimized_is_awaitable
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http import process_result
from strawberry.schema.schema import validate_document
from strawberry.utils.await_maybe import await_maybe

from rapidly import metrics
from rapidly.errors import RETRY_AFTER_SECONDS, UNAVAILABLE
from rapidly.guards import SECURITY_HEADERS, BodyTooLarge, declared_too_large, media_type, read_body, too_large
from rapidly.schema import (
    EXTENSIONS,
    LIMIT_RULES,
    MAX_TOKENS,
    PARSE_CACHE_SIZE,
    FreshLoaders,
    RapidlySchema,
    RecordOperation,
    operation_span,
    public_error,
    root_field,
    status_of,
)

PATH = "/graphql"
#: What the schema's extensions do here instead: token limit, parse and validation caches, depth and
#: alias rules (`Documents`), masking (`public_error`), fresh loaders (a context per request).
DONE_HERE = {*EXTENSIONS, FreshLoaders, RecordOperation}
#: Longer documents are run but not kept: the cache must not hold 256 bodies of the maximum size.
MAX_CACHED_QUERY = 16 * 1024
_RULES = (*specified_rules, *LIMIT_RULES)
_RUNNABLE = {OperationType.QUERY, OperationType.MUTATION}


class Documents:
    """Valid query and mutation documents by their text, parsed and validated once (LRU-bounded:
    distinct texts cannot grow memory). Anything invalid is not kept, and Strawberry reports it."""

    def __init__(self, schema: RapidlySchema, size: int = PARSE_CACHE_SIZE) -> None:
        self.schema = schema
        self.size = size
        self._valid: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: str) -> DocumentNode | None:
        document = self._valid.get(query)
        if document is not None:
            self._valid.move_to_end(query)
            return document
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError:
            return None
        if validate_document(self.schema._schema, document, _RULES):
            return None
        if len(query) > MAX_CACHED_QUERY:
            return document
        self._valid[query] = document
        if len(self._valid) > self.size:
            self._valid.popitem(last=False)
        return document


def runnable(document: DocumentNode, operation_name: str | None) -> bool:
    """The named (or only) operation exists and is a query or mutation."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return len(operations) == 1 and operations[0].operation in _RUNNABLE
    return any(o.name is not None and o.name.value == operation_name and o.operation in _RUNNABLE for o in operations)


class GraphQLOverHTTP:
    """`POST /graphql` with `Content-Type: application/json`, when the document is valid; see above.
    `schema` and `context_getter` are those given to Strawberry's router. It reads the body itself,
    so it refuses one over `max_bytes` (413), and its answers carry the security headers."""

    def __init__(
        self,
        app: ASGIApp,
        schema: RapidlySchema,
        context_getter: Callable[[HTTPConnection], Awaitable[object]],
        max_bytes: int,
    ) -> None:
        if unknown := [e for e in schema.extensions if e not in DONE_HERE]:
            raise ValueError(f"GraphQLOverHTTP does not run schema extensions {unknown}: do their work here too")
        self.app = app
        self.schema = schema
        self.context_getter = context_getter
        self.max_bytes = max_bytes
        self.documents = Documents(schema)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH):
            await self.app(scope, receive, send)
            return
        answer_as = accepted(scope)
        if answer_as is None:
            await not_acceptable(send)
            return
        # Strawberry's answers are put in the media type asked for; this layer's own are made in it.
        downstream = _as_graphql_response(send) if answer_as is GRAPHQL_RESPONSE else send
        if media_type(scope) != JSON:
            await self.app(scope, receive, downstream)
            return
        if declared_too_large(scope, self.max_bytes):
            await too_large(send)
            return
        try:
            body = await read_body(receive, self.max_bytes)
        except BodyTooLarge:
            await too_large(send)
            return
        request = Request.of(body)
        if request is None and (problem := malformed(body)) is not None:
            await bad_request(send, problem)
            return
        document = self.documents.get(request.query) if request is not None else None
        if request is None or document is None or not runnable(document, request.operation_name):
            await self.app(scope, _replay(body, receive), downstream)
            return
        if (name := root_field(document, request.operation_name)) is not None:
            metrics.record_operation(name)
        context = await self.context_getter(HTTPConnection(scope))
        with operation_span(document, request.operation_name):
            result = await await_maybe(
                execute(
                    self.schema._schema,
                    document,
                    context_value=context,
                    variable_values=request.variables,
                    operation_name=request.operation_name,
                    is_awaitable=optimized_is_awaitable,
                    executor_class=self.schema.execution_context_class,
                    operation_extensions=request.extensions,
                )
            )
            if result.errors:  # logged (and marked on the span) as they are, before masking
                self.schema.process_errors(result.errors)
        status = 200
        if result.errors:
            result.errors = [public_error(error) for error in result.errors]
            status = status_of(result.errors)
        answer = process_result(result)
        if answer_as is GRAPHQL_RESPONSE and status == 200 and _request_error(answer):
            status = 400
            del answer["data"]
        payload = json.dumps(answer, separators=(",", ":")).encode()
        headers = [(b"content-type", answer_as), (b"content-length", str(len(payload)).encode())]
        if status == 503:
            headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        headers += SECURITY_HEADERS
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


JSON = b"application/json"
GRAPHQL_RESPONSE = b"application/graphql-response+json"
#: The `Accept` headers seen, and what each asks for: a client sends the same one every time. Only
#: short ones are kept (a browser's or a GraphQL client's is well under this).
_ACCEPTED: dict[bytes, bytes | None] = {}
_ACCEPTED_SIZE = 256
_CACHED_ACCEPT = 256
#: Longer `Accept` headers, or ones of more ranges, are not read: they allow nothing (406).
MAX_ACCEPT = 4096
MAX_RANGES = 64
_QVALUE = re.compile(rb"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_WILDCARDS = {b"application/*": 1, b"*/*": 0}


def accepted(scope: Scope) -> bytes | None:
    """The media type to answer this request in (`JSON` or `GRAPHQL_RESPONSE`); None when its
    `Accept` allows neither. Several `Accept` lines are one list, as RFC 9110 says."""
    lines = [value for name, value in scope["headers"] if name == b"accept"]
    if not lines:
        return JSON
    value = lines[0] if len(lines) == 1 else b",".join(lines)
    if (answer := _ACCEPTED.get(value, _ACCEPTED)) is not _ACCEPTED:
        return answer  # type: ignore[return-value]
    answer = negotiate(value)
    if len(value) <= _CACHED_ACCEPT:
        if len(_ACCEPTED) >= _ACCEPTED_SIZE:
            _ACCEPTED.clear()
        _ACCEPTED[value] = answer
    return answer


def negotiate(accept: bytes) -> bytes | None:
    """What an `Accept` header asks for, as RFC 9110 (12.5.1) says: each type's quality is that of the
    most specific range that matches it (the type itself, then `application/*`, then `*/*`), and the
    higher quality wins. Of two alike, the type a range names exactly wins, and of two named alike
    the specification's own; a tie of wildcards alone means `application/json`, as it did before the
    specification had a type of its own. A range with a charset other than UTF-8, or a quality that
    is no qvalue, refuses its types; other parameters are ignored. None: neither type is allowed."""
    if not accept.strip():
        return JSON
    if len(accept) > MAX_ACCEPT:
        return None
    ranges: list[tuple[bytes, float]] = []
    for part in accept.split(b",", MAX_RANGES)[:MAX_RANGES]:
        media, *parameters = part.split(b";")
        media = media.strip().lower()
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition(b"=")
            name, value = name.strip().lower(), value.strip().strip(b'"').lower()
            if name == b"q":
                quality = float(value) if _QVALUE.fullmatch(value) else 0.0
            elif name == b"charset" and value not in (b"utf-8", b"utf8"):
                quality = 0.0
        if media:
            ranges.append((media, quality))
    graphql_response, json_ = _quality(ranges, GRAPHQL_RESPONSE), _quality(ranges, JSON)
    if graphql_response[0] <= 0.0 and json_[0] <= 0.0:
        return None
    if graphql_response[0] != json_[0]:
        return GRAPHQL_RESPONSE if graphql_response[0] > json_[0] else JSON
    return GRAPHQL_RESPONSE if graphql_response[1] == 2 else JSON


def _quality(ranges: list[tuple[bytes, float]], offered: bytes) -> tuple[float, int]:
    """(the quality of `offered`, how specific the range that gave it: 2 exact, 1 `application/*`,
    0 `*/*`, -1 none)."""
    quality, specificity = 0.0, -1
    for media, q in ranges:
        matched = 2 if media == offered else _WILDCARDS.get(media, -1)
        if matched > specificity:
            quality, specificity = q, matched
        elif matched == specificity >= 0:
            quality = max(quality, q)
    return quality, specificity


def _request_error(answer: dict) -> bool:
    """Whether an answer is of a request that failed before it was executed: no data, and errors
    none of which is a field's (a field's error has a path) nor the server's own trouble."""
    errors = answer.get("errors")
    return (
        answer.get("data") is None
        and bool(errors)
        and not any("path" in error or _code(error) in _NOT_THE_REQUESTS for error in errors)
    )


#: Errors that are not the request's fault, whatever their shape.
_NOT_THE_REQUESTS = frozenset({"INTERNAL", UNAVAILABLE})


def _code(error: object) -> object:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return extensions.get("code") if isinstance(extensions, dict) else None


def _as_graphql_response(send: Send) -> Send:
    """`send` for Strawberry's answers to a client that accepts `application/graphql-response+json`:
    a GraphQL response (a 200 in JSON) gets that content type, and one of a request that failed before
    execution a 400 without `data`; a request Strawberry refused in plain text (an operation name the
    document does not have, a `query` that is no string) gets its words as a GraphQL error. Other
    answers (the transport's own refusals: a body that is no JSON object, one over the cap, a 503)
    go as they are, in `application/json`."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def sending(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            kind = next((v.split(b";")[0].strip() for n, v in headers if n == b"content-type"), b"")
            if (message["status"], kind) in ((200, JSON), (400, b"text/plain")):
                start = message
            else:
                await send(message)
            return
        if start is None:
            await send(message)
            return
        if message["type"] != "http.response.body":  # not expected here: the answer goes as it was
            held, start = start, None
            await send(held)
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status, body = start["status"], b"".join(chunks)
        if status == 400:  # Strawberry's words, in plain text
            refusal = {"errors": [{"message": body.decode("utf-8", "replace")}]}
            body = json.dumps(refusal, separators=(",", ":")).encode()
        elif body.startswith(b'{"data":null'):  # only then can it be a request's error
            with contextlib.suppress(ValueError):
                answer = json.loads(body)
                if isinstance(answer, dict) and _request_error(answer):
                    del answer["data"]
                    status, body = 400, json.dumps(answer, separators=(",", ":")).encode()
        headers = [
            (name, value)
            for name, value in start.get("headers", [])
            if name not in (b"content-type", b"content-length")
        ]
        headers += [(b"content-type", GRAPHQL_RESPONSE), (b"content-length", str(len(body)).encode())]
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return sending


async def not_acceptable(send: Send) -> None:
    """A 406 that says what Rapidly answers in."""
    payload = json.dumps({"errors": [{"message": _ONLY}]}, separators=(",", ":")).encode()
    headers = [(b"content-type", JSON), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 406, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": payload})


_ONLY = "Rapidly answers in application/graphql-response+json or application/json (in UTF-8): accept one of them."


@dataclass(frozen=True, slots=True)
class Request:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None

    @classmethod
    def of(cls, body: bytes) -> Request | None:
        """The request in a well-formed body; None for anything else."""
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        request = cls(data.get("query"), data.get("variables"), data.get("operationName"), data.get("extensions"))
        if not isinstance(request.query, str) or not isinstance(request.operation_name, str | None):
            return None
        return (
            request
            if isinstance(request.variables, dict | None) and isinstance(request.extensions, dict | None)
            else None
        )


def malformed(body: bytes | str) -> str | None:
    """What is wrong with a body that is not a JSON object in UTF-8; None for one that is. Such a
    body is answered here (400): Strawberry's view raised on it (a 500, and a traceback)."""
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except UnicodeDecodeError:
        return "The request body is not UTF-8."
    except ValueError:
        return "The request body is not JSON."
    return None if isinstance(data, dict) else "The request body must be a JSON object."


async def bad_request(send: Send, message: str) -> None:
    """A 400 in the GraphQL-over-HTTP shape: `{"errors": [{"message": ...}]}`."""
    payload = json.dumps({"errors": [{"message": message}]}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def upload_operations(operations: object, files_map: object, files: Mapping[str, Any]) -> dict[str, Any]:
    """The operations of a multipart upload (the GraphQL multipart request spec) with its files in
    place; `ValueError` with what is wrong otherwise: operations that are no JSON object, a map
    that is no object of lists of paths, a file the map does not name or an entry without its
    file, a path the operations do not have. Strawberry's view took some of these for granted (a
    500 for `null` operations or a list as the map) and ignored a file without a map entry."""
    if not isinstance(operations, dict):
        raise ValueError("The operations must be a JSON object.")
    if not isinstance(files_map, dict) or not all(
        isinstance(paths, list) and all(isinstance(path, str) for path in paths) for paths in files_map.values()
    ):
        raise ValueError("The map must be a JSON object of lists of paths.")
    files = {name: value for name, value in files.items() if not isinstance(value, str)}  # the form's text fields
    if set(files_map) != set(files):
        raise ValueError("Every file needs an entry in the map, and every entry of the map a file.")
    try:
        return replace_placeholders_with_files(operations, files_map, files)
    except (KeyError, IndexError, TypeError, ValueError):
        raise ValueError("The map names a place that the operations do not have.") from None
