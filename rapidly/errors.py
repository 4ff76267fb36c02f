"""Domain errors raised by services and mapped by `rapidly.schema` to typed GraphQL results.

Messages are shown to clients and may be logged: they never carry personal data, tokens or
submitted values, only field names and codes.
"""

from __future__ import annotations

import socket
import ssl
import traceback
from dataclasses import dataclass


class StartupRefused(Exception):
    """The service must not start. The message is one line that names the setting (or the thing) to
    fix and says how; a command prints it, and nothing else, and exits with status 2.

    `reason` is a short name of the refusal, stable across wording changes: the refusals the code
    has are catalogued by it (tests/test_refusals.py exercises each one)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(" ".join(message.split()))
        self.reason = reason


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


class AdminRequired(NotPermitted):
    """A signed-in staff member asked for what only an admin of their company may do."""

    def __init__(self) -> None:
        super().__init__("Only an admin of this company may do this.")


class OriginNotAllowed(NotPermitted):
    """A browser request came from a website that the credential's (or the named) tenant does not list."""

    def __init__(self) -> None:
        super().__init__(
            "This website may not use this company's Rapidly: its origin is not among the company's allowed origins."
        )


class AnotherTenant(NotPermitted):
    """A request already acting for one tenant named another (say, two companies' forms in one
    document): a request acts for one company only (`rapidly.tenancy`)."""

    def __init__(self) -> None:
        super().__init__("This request already acts for another company; send one request per company.")


class AuthFailed(DomainError):
    """Missing, unknown or expired credentials; the same answer whatever the reason."""

    def __init__(self, message: str = "Authentication failed.") -> None:
        super().__init__(message)


class PasskeyRequired(AuthFailed):
    """The password was right, but this staff member has a passkey and must sign in with it: their
    company requires that, or they chose it themselves (a passkey as their second factor)."""

    def __init__(self) -> None:
        super().__init__("This account signs in with a passkey: sign in with yours.")


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


#: `extensions.code` of an error that a retry may cure (a backend is unreachable); HTTP says 503.
UNAVAILABLE = "UNAVAILABLE"
UNAVAILABLE_MESSAGE = "The service is unavailable for a moment; try again shortly."
#: What `Retry-After` says then: long enough for a database restart to be noticed, short for a typist.
RETRY_AFTER_SECONDS = 2

#: SQLSTATEs of a database that cannot serve now: the connection was lost or refused (08000, 08003,
#: 08006, 08001, 08004), the server is shutting down or starting up (57P01-57P03), it has no room for
#: another connection (53300). Not 08P01 (a protocol violation is a bug) nor authentication.
_UNAVAILABLE_SQLSTATES = frozenset({"08000", "08003", "08006", "08001", "08004", "57P01", "57P02", "57P03", "53300"})
#: Where a missing or refused socket means "the database is not there": asyncpg opening a connection.
_CONNECTING = ("asyncpg/connect_utils.py", "asyncpg\\connect_utils.py")


def is_unavailable(exc: BaseException) -> bool:
    """The exception (or one it was raised from) says that a backend cannot be reached now, so the
    client should retry: a refused, reset or timed-out connection, a name that does not resolve, the
    database's socket missing while connecting (PostgreSQL stopped), the database shutting down or
    starting up or full, the object store or the root key's KMS out of reach. Not a TLS failure (a
    misconfiguration, no retry cures it), nor a local file that is missing or not writable (a bug or a
    full disk)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unreachable(current):
            return True
        current = current.__cause__
    return False


def _unreachable(exc: BaseException) -> bool:
    from rapidly.keys.root import KeyServiceUnavailable  # not at the top: the keys package's modules import this one

    if isinstance(exc, ssl.SSLError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | KeyServiceUnavailable):
        return True
    if isinstance(exc, OSError) and _raised_while_connecting(exc):
        return True
    if getattr(exc, "sqlstate", None) in _UNAVAILABLE_SQLSTATES:
        return True
    return any(_is_botocore_connection_error(c) for c in type(exc).__mro__)


def _raised_while_connecting(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename.endswith(_CONNECTING):
            return True
        frame = frame.tb_next
    return False


def _is_botocore_connection_error(cls: type) -> bool:
    """botocore's connection errors (endpoint unreachable, timeouts), without importing botocore here."""
    return cls.__name__ == "ConnectionError" and cls.__module__ == "botocore.exceptions"


def for_the_log(exc: BaseException) -> str:
    """An unexpected exception as it may be logged: its type and stack, never its message, which
    can quote submitted values (a database constraint error quotes the row)."""
    return f"{type(exc).__name__}\n{''.join(traceback.format_tb(exc.__traceback__))}".rstrip()
