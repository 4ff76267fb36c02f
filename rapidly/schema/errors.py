"""Expected failures as union members (`... on InputInvalidError { errors { field code message } }`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import strawberry

from rapidly import errors, metrics

P = ParamSpec("P")
R = TypeVar("R")


@strawberry.interface(description="Every expected failure has a message safe to show to the user.")
class Error:
    message: str


@strawberry.type
class FieldError:
    field: str
    code: str
    message: str


@strawberry.type(description="Nothing was changed; each problem names its input.")
class InputInvalidError(Error):
    errors: list[FieldError]


@strawberry.type(description="Absent, or not yours: the two are indistinguishable.")
class NotFoundError(Error):
    pass


@strawberry.type
class RateLimitedError(Error):
    retry_after_seconds: int


@strawberry.type(description="Missing, unknown or expired credentials, or not permitted.")
class AuthError(Error):
    pass


@strawberry.type(description="Signed in, but this needs the ADMIN role; nothing was changed.")
class AdminRequiredError(Error):
    pass


@strawberry.type(
    description="The password was right, but this account signs in with a passkey: the company requires it, or "
    "its staff member chose it (`setPasskeyOnly`)."
)
class PasskeyRequiredError(Error):
    pass


def error_result(exc: errors.DomainError) -> Error:
    match exc:
        case errors.InputInvalid():
            return InputInvalidError(
                message=exc.message,
                errors=[FieldError(field=p.field, code=p.code, message=p.message) for p in exc.problems],
            )
        case errors.NotFound():
            return NotFoundError(message=exc.message)
        case errors.RateLimited():
            return RateLimitedError(message=exc.message, retry_after_seconds=exc.retry_after_seconds)
        case errors.AdminRequired():
            return AdminRequiredError(message=exc.message)
        case errors.PasskeyRequired():
            return PasskeyRequiredError(message=exc.message)
        case errors.AuthFailed() | errors.NotPermitted():
            return AuthError(message=exc.message)
    raise TypeError(f"unmapped domain error {type(exc).__name__}")


def returns_errors(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn a `DomainError` raised by the services into its union member.

    The resolver's return annotation must be a union that includes the member. `OriginNotAllowed`
    and `AnotherTenant` are not answers of the operation but refusals of the request: they stay
    top-level errors (their `extensions.code` says so) for every operation alike, so no client takes
    one for a dead token.
    """

    @functools.wraps(resolver)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return await resolver(*args, **kwargs)
        except (errors.OriginNotAllowed, errors.AnotherTenant):  # refusals of the request, not answers
            raise
        except errors.DomainError as exc:
            metrics.record_outcome("rejected")
            return error_result(exc)

    wrapper.__signature__ = inspect.signature(resolver)  # type: ignore[attr-defined]
    return wrapper
