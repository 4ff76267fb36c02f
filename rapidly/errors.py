"""Domain errors raised by services and mapped by `rapidly.schema` to typed GraphQL results.

Messages are shown to clients and may be logged: they never carry personal data, tokens or
submitted values, only field names and codes.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass


class DomainError(Exception):
    """An expected failure that the client can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """Absent, or belonging to another tenant: the two are indistinguishable on purpose."""

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class NotPermitted(DomainError):
    def __init__(self, message: str = "Not permitted.") -> None:
        super().__init__(message)


class OriginNotAllowed(NotPermitted):
    """A browser request came from a website that the credential's (or the named) tenant does not list."""

    def __init__(self) -> None:
        super().__init__(
            "This website may not use this company's Rapidly: its origin is not among the company's allowed origins."
        )


class AuthFailed(DomainError):
    """Missing, unknown or expired credentials; the same answer whatever the reason."""

    def __init__(self, message: str = "Authentication failed.") -> None:
        super().__init__(message)


class RateLimited(DomainError):
    def __init__(self, retry_after_seconds: int, message: str = "Too many attempts; try again later.") -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, int(retry_after_seconds))


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    code: str
    message: str


class InputInvalid(DomainError):
    """One or more inputs were rejected; nothing was changed."""

    def __init__(self, *problems: FieldProblem, message: str = "The input was not accepted.") -> None:
        super().__init__(message)
        self.problems = list(problems)

    @classmethod
    def one(cls, field: str, code: str, message: str) -> InputInvalid:
        return cls(FieldProblem(field, code, message))

    def __str__(self) -> str:
        return "; ".join(f"{p.field}: {p.code}" for p in self.problems) or self.message


#: SQLSTATEs of a database that cannot serve now: connection exceptions (class 08), shutting down or
#: starting up (57P01-57P03), too many connections (53300).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_unavailable(exc: BaseException) -> bool:
    """The exception (or one it came from) says that a backend cannot be reached now: the client
    should retry. A refused or missing socket, a timeout, a dropped connection (`OSError` in all its
    forms: services catch the OSErrors that are about the input, e.g. an undecodable image), a
    database going down or starting up, an object store out of reach."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return True
        if str(getattr(current, "sqlstate", "") or "").startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if any(_is_botocore_connection_error(c) for c in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_botocore_connection_error(cls: type) -> bool:
    """botocore's connection errors (endpoint unreachable, timeouts), without importing botocore here."""
    return cls.__name__ == "ConnectionError" and cls.__module__ == "botocore.exceptions"


def for_the_log(exc: BaseException) -> str:
    """An unexpected exception as it may be logged: its type and stack, never its message, which
    can quote submitted values (a database constraint error quotes the row)."""
    return f"{type(exc).__name__}\n{''.join(traceback.format_tb(exc.__traceback__))}".rstrip()
