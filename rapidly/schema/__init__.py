"""The GraphQL schema: one module per domain, merged here, with limits and error masking."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import strawberry
from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from rapidly import logs, metrics, telemetry
from rapidly.errors import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    UNAVAILABLE_MESSAGE,
    DomainError,
    InputInvalid,
    for_the_log,
    is_unavailable,
)
from rapidly.schema.chat import ChatMutation, ChatQuery
from rapidly.schema.contacts import ContactMutation, ContactQuery, ContactSubscription
from rapidly.schema.erasure import ErasureMutation
from rapidly.schema.execution import RapidlyExecutor
from rapidly.schema.media import MediaMutation
from rapidly.schema.messaging import MessagingMutation
from rapidly.schema.notifications import NotificationMutation, NotificationQuery
from rapidly.schema.reach import ReachMutation
from rapidly.schema.selfservice import SelfServiceQuery
from rapidly.schema.staff import StaffMutation, StaffQuery

log = logging.getLogger("rapidly.graphql")

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2_000
#: Distinct documents kept parsed and validated; bounded, so unique query texts cannot grow memory.
PARSE_CACHE_SIZE = 256


def is_unexpected(error: GraphQLError) -> bool:
    """Exceptions from resolvers; validation and permission errors are GraphQLErrors and pass, and so
    do domain errors raised where no union member can carry them."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError | DomainError)


class RapidlySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log unexpected errors under a reference, by type and stack only.

        An exception's message can quote submitted values (e.g. a database constraint error), so
        it never reaches the log; the client gets the reference (see `public_error`).
        """
        for error in errors:
            if not is_unexpected(error):
                metrics.record_outcome("rejected" if error.original_error else "invalid")
                continue
            reference = logs.reference()
            error.extensions = {**(error.extensions or {}), "reference": reference}
            telemetry.failed(error.original_error)  # the operation's span: by type, as here
            if is_unavailable(error.original_error):  # an outage: one line each, not a stack each
                metrics.record_outcome("unavailable")
                log.warning(
                    "unavailable at %s (reference %s): %s", error.path, reference, type(error.original_error).__name__
                )
                continue
            metrics.record_outcome("error")
            log.error(
                "unexpected error at %s (reference %s): %s", error.path, reference, for_the_log(error.original_error)
            )


def public_error(error: GraphQLError) -> GraphQLError:
    """What the client may see: an unreachable backend is `UNAVAILABLE` (retry); other unexpected
    errors become "Unexpected error. Reference: …"; domain
    errors keep their safe message, with `code` and, for invalid input, the `errors` list in the
    extensions; validation and permission errors pass as they are."""
    if isinstance(error.original_error, DomainError):
        return domain_error(error)
    if is_unexpected(error):
        reference = (error.extensions or {}).get("reference", "")
        if is_unavailable(error.original_error):
            return GraphQLError(
                message=UNAVAILABLE_MESSAGE,
                nodes=error.nodes,
                path=error.path,
                extensions={"code": UNAVAILABLE, "retryAfterSeconds": RETRY_AFTER_SECONDS, "reference": reference},
            )
        return GraphQLError(
            message=f"Unexpected error. Reference: {reference}",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "reference": reference},
        )
    return error


def status_of(errors: object) -> int:
    """The HTTP status of an answer with these (public) errors: 503 when a backend was unreachable,
    so that every client, and every proxy, knows to retry; 200 otherwise (GraphQL errors are data)."""
    if isinstance(errors, list):
        for error in errors:
            extensions = error.extensions if isinstance(error, GraphQLError) else (error or {}).get("extensions")
            if (extensions or {}).get("code") == UNAVAILABLE:
                return 503
    return 200


class MaskUnexpectedErrors(MaskErrors):
    """`public_error` for every operation that Strawberry runs (see `rapidly.schema.http` for the rest)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: True)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return public_error(error)


def domain_error(error: GraphQLError) -> GraphQLError:
    exc = error.original_error
    assert isinstance(exc, DomainError)
    extensions: dict[str, object] = {"code": type(exc).__name__}
    if isinstance(exc, InputInvalid):
        extensions["errors"] = [{"field": p.field, "code": p.code, "message": p.message} for p in exc.problems]
        message = " ".join(p.message for p in exc.problems) or exc.message
    else:
        message = exc.message
    return GraphQLError(message=message, nodes=error.nodes, path=error.path, extensions=extensions)


# The limit rules are built once: a rule class made per operation would change the validation
# cache's key every time and make the cache useless.
LIMIT_RULES = (depth_rule(MAX_DEPTH, None), alias_rule(MAX_ALIASES))


class DepthAndAliasLimits(AddValidationRules):
    def __init__(self) -> None:
        super().__init__(list(LIMIT_RULES))


class Parsed(ParserCache):
    def __init__(self) -> None:
        super().__init__(maxsize=PARSE_CACHE_SIZE)


class Validated(ValidationCache):
    def __init__(self) -> None:
        super().__init__(maxsize=PARSE_CACHE_SIZE)


class TokenLimit(MaxTokensLimiter):
    def __init__(self) -> None:
        super().__init__(max_token_count=MAX_TOKENS)


Query = merge_types("Query", (ContactQuery, SelfServiceQuery, ChatQuery, StaffQuery, NotificationQuery))
Mutation = merge_types(
    "Mutation",
    (
        StaffMutation,
        ReachMutation,
        ContactMutation,
        MediaMutation,
        ChatMutation,
        MessagingMutation,
        ErasureMutation,
        NotificationMutation,
    ),
)
Subscription = merge_types("Subscription", (ContactSubscription,))


def operation_of(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation that runs: the one named, or the first."""
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            operation_name is None or (definition.name is not None and definition.name.value == operation_name)
        ):
            return definition
    return None


def root_field(document: DocumentNode, operation_name: str | None) -> str | None:
    """The first root field of the operation that runs: a name of the schema, never one a client chose."""
    if (operation := operation_of(document, operation_name)) is not None:
        for selection in operation.selection_set.selections:
            if isinstance(selection, FieldNode):
                return selection.name.value
    return None


def operation_span(document: DocumentNode, operation_name: str | None) -> AbstractContextManager[object]:
    """The span of the operation that runs (`rapidly.telemetry.operation`): its type and root field."""
    if not telemetry.tracing() or (operation := operation_of(document, operation_name)) is None:
        return nullcontext()
    return telemetry.operation(operation.operation.value, root_field(document, operation_name))


class RecordOperation(SchemaExtension):
    """Names the operation for /metrics (`rapidly.metrics`) and traces it (`rapidly.telemetry`), on
    Strawberry's router and WebSockets. A subscription's span is its start, not each event."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None:
            yield
            return
        if name := root_field(context.graphql_document, context.operation_name):
            metrics.record_operation(name)
        with operation_span(context.graphql_document, context.operation_name):
            yield


class FreshLoaders(SchemaExtension):
    """DataLoaders per operation: a WebSocket keeps one context for all its operations."""

    def on_operation(self) -> Iterator[None]:
        self.execution_context.context.fresh_loaders()
        yield


#: Passed as classes: Strawberry then makes a fresh instance per operation (the two caches live at
#: module level in Strawberry, shared by all instances). Parsing and validating a document costs far
#: more than running a save, and clients send the same few documents over and over.
EXTENSIONS = [TokenLimit, Parsed, DepthAndAliasLimits, Validated, MaskUnexpectedErrors]

schema = RapidlySchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[*EXTENSIONS, FreshLoaders, RecordOperation],
    execution_context_class=RapidlyExecutor,
)
