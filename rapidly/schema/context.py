"""The per-request context: settings, plugins, the caller's address and credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from rapidly.config import Settings
from rapidly.plugins import PluginRegistry
from rapidly.staff import service as staff_service
from rapidly.staff.models import StaffUser

_UNSET = object()


@dataclass
class Context(BaseContext):
    settings: Settings
    plugins: PluginRegistry
    client_ip: str
    bearer: str | None
    _staff: object = field(default=_UNSET, repr=False)

    def __post_init__(self) -> None:
        super().__init__()

    async def staff(self) -> StaffUser | None:
        """The authenticated staff member, resolved once per request."""
        if self._staff is _UNSET:
            self._staff = await staff_service.staff_for_token(self.bearer) if self.bearer else None
        return self._staff  # type: ignore[return-value]


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def get_context(connection: HTTPConnection) -> Context:
    state = connection.app.state
    return Context(
        settings=state.settings,
        plugins=state.plugins,
        client_ip=connection.client.host if connection.client else "unknown",
        bearer=bearer_token(connection.headers.get("authorization")),
    )
