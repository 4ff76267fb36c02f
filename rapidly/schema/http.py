"""JSON queries and mutations over HTTP, run on graphql-core directly.

Strawberry's HTTP view and extension runner cost more CPU than the whole `saveField` they carry
(bench/save_field.py), and a JSON POST of a valid query or mutation is the one request shape that
is hot. This ASGI layer runs exactly that shape on the schema Strawberry built (same resolvers,
permission classes, context, limits, error log and masking) and leaves everything else to
Strawberry's router, untouched and with the body replayed: bodies that are not a JSON object with a
`query`, documents that do not parse or validate, subscriptions, uploads, WebSockets, GraphiQL. So
every unusual request still gets Strawberry's answer, and only valid documents are cached.
"""

from __future__ import annotations

import json
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
from rapidly.errors import RETRY_AFTER_SECONDS
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
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == PATH
            and media_type(scope) == b"application/json"
        ):
            await self.app(scope, receive, send)
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
            await self.app(scope, _replay(body, receive), send)
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
        payload = json.dumps(process_result(result), separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if status == 503:
            headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        headers += SECURITY_HEADERS
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


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
