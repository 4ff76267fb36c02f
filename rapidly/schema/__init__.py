"""The GraphQL schema: one module per domain, merged here, with limits and error masking."""

from __future__ import annotations

import logging
import traceback
import uuid

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from rapidly.schema.staff import StaffMutation, StaffQuery

log = logging.getLogger("rapidly.graphql")

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2_000


def is_unexpected(error: GraphQLError) -> bool:
    """Exceptions from resolvers; validation and permission errors are GraphQLErrors and pass."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


class RapidlySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log unexpected errors under a reference, by type and stack only.

        An exception's message can quote submitted values (e.g. a database constraint error), so
        it never reaches the log; the client gets the reference (see `MaskUnexpectedErrors`).
        """
        for error in errors:
            if not is_unexpected(error):
                continue
            reference = uuid.uuid4().hex[:16]
            error.extensions = {**(error.extensions or {}), "reference": reference}
            exc = error.original_error
            stack = "".join(traceback.format_tb(exc.__traceback__)) if exc else ""
            log.error("unexpected %s at %s (reference %s)\n%s", type(exc).__name__, error.path, reference, stack)


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        reference = (error.extensions or {}).get("reference", "")
        return GraphQLError(
            message=f"Unexpected error. Reference: {reference}",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL", "reference": reference},
        )


class DepthLimit(QueryDepthLimiter):
    def __init__(self) -> None:
        super().__init__(max_depth=MAX_DEPTH)


class AliasLimit(MaxAliasesLimiter):
    def __init__(self) -> None:
        super().__init__(max_alias_count=MAX_ALIASES)


class TokenLimit(MaxTokensLimiter):
    def __init__(self) -> None:
        super().__init__(max_token_count=MAX_TOKENS)


Query = merge_types("Query", (StaffQuery,))
Mutation = merge_types("Mutation", (StaffMutation,))

#: Passed as classes: Strawberry then makes a fresh instance per operation.
EXTENSIONS = [TokenLimit, DepthLimit, AliasLimit, MaskUnexpectedErrors]

schema = RapidlySchema(query=Query, mutation=Mutation, extensions=EXTENSIONS)
