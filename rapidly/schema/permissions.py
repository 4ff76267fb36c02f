from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission


class IsStaff(BasePermission):
    message = "Staff sign-in required."

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return await info.context.staff() is not None
