"""Staff: `login` and `viewer`."""

from __future__ import annotations

from typing import Annotated

import strawberry

from rapidly.schema.errors import AuthError, RateLimitedError, returns_errors
from rapidly.staff import service
from rapidly.staff.models import StaffUser


@strawberry.type(name="Tenant")
class TenantType:
    id: strawberry.ID
    slug: str
    name: str
    retention_days: int | None = strawberry.field(
        description="Contacts inactive for longer are erased; null keeps them until erased."
    )
    allowed_origins: list[str] = strawberry.field(
        description="Websites whose pages may use the form and the API from a browser, e.g. "
        '"https://www.example.fi" (`rapidly tenant origins`); Rapidly\'s own pages always may.'
    )


@strawberry.type
class Staff:
    id: strawberry.ID
    email: str
    locale: str
    tenant: TenantType

    @classmethod
    def from_model(cls, staff: StaffUser) -> Staff:
        tenant = staff.tenant
        return cls(
            id=strawberry.ID(str(staff.id)),
            email=staff.email,
            locale=staff.locale,
            tenant=TenantType(
                id=strawberry.ID(str(tenant.id)),
                slug=tenant.slug,
                name=tenant.name,
                retention_days=tenant.retention_days,
                allowed_origins=list(tenant.allowed_origins or []),
            ),
        )


@strawberry.type
class LoginSuccess:
    token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    staff: Staff


LoginResult = Annotated[LoginSuccess | AuthError | RateLimitedError, strawberry.union("LoginResult")]


@strawberry.type
class StaffQuery:
    @strawberry.field(description="The signed-in staff member; null without a valid staff token.")
    async def viewer(self, info: strawberry.Info) -> Staff | None:
        staff = await info.context.staff()
        return Staff.from_model(staff) if staff else None


@strawberry.type
class StaffMutation:
    @strawberry.mutation(description="Same `AuthError` for an unknown email and a wrong password.")
    @returns_errors
    async def login(self, info: strawberry.Info, email: str, password: str) -> LoginResult:
        ctx = info.context
        result = await service.login(
            ctx.settings, email=email, password=password, client_ip=ctx.client_ip, origin=ctx.origin
        )
        return LoginSuccess(token=result.token, staff=Staff.from_model(result.staff))
