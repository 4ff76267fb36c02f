"""Who may see what: staff-only fields, and fields whose value is the same for every viewer."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission


class IsStaff(BasePermission):
    message = "Staff sign-in required."

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return await info.context.staff() is not None


#: How a live stream ends when its credentials no longer hold, or when it fell too far behind.
SESSION_ENDED = "The session has ended; sign in again."
OVERFLOW = "Events arrived faster than this client read them; subscribe again."

#: The metadata key of `shared()`, read by `rapidly.schema.fanout`.
SHARED = "rapidly.shared"
#: Who may see a shared subscription's events: the tenant's staff, or the contact itself.
TENANT, CONTACT = "tenant", "contact"


def shared(scope: str | None = None) -> dict[str, str]:
    """Field metadata: the field's value is the same for every viewer who may see its event, so a
    live event that selects only such fields is executed once for all of them (`rapidly.schema.fanout`).
    On a subscription field, `scope` says who may see its events (`TENANT` or `CONTACT`). Declare it
    only of a value that reads nothing of the viewer's and nothing that reading would audit."""
    return {SHARED: scope or "field"}
