"""Erasure: the end user's `deleteMyData` and the staff's `deleteContact`, both answered by a receipt."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from rapidly.erasure.models import Requester
from rapidly.erasure.service import Receipt
from rapidly.errors import AuthFailed, NotFound
from rapidly.plugins import resolve_locale
from rapidly.schema.errors import AuthError, NotFoundError, returns_errors
from rapidly.schema.permissions import IsStaff
from rapidly.selfservice.texts import store_name
from rapidly.validation import parse_id

RequesterType = strawberry.enum(Requester, name="ErasureRequester")


@strawberry.type
class StoreCount:
    store: str = strawberry.field(description='Where the data was, e.g. "field_values".')
    count: int = strawberry.field(description="How many items were removed there.")

    @strawberry.field(description='The store\'s name for people, in `locale` (fi, sv, en): "Saved answers".')
    def name(self, locale: str | None = None) -> str:
        return store_name(self.store, resolve_locale(locale, "en"))


@strawberry.type(description="What an erasure removed. IDs, a time and counts: nothing personal.")
class ErasureReceipt:
    contact_id: strawberry.ID
    erased_at: datetime
    requested_by: RequesterType
    removed: list[StoreCount]
    complete: bool = strawberry.field(
        description="False while a store outside the database (e.g. object storage) is being retried."
    )

    @classmethod
    def of(cls, receipt: Receipt) -> ErasureReceipt:
        return cls(
            contact_id=strawberry.ID(str(receipt.contact_id)),
            erased_at=receipt.erased_at,
            requested_by=receipt.requested_by,  # type: ignore[arg-type]
            removed=[StoreCount(store=s, count=n) for s, n in receipt.removed.items()],
            complete=receipt.complete,
        )


DeleteResult = Annotated[ErasureReceipt | NotFoundError | AuthError, strawberry.union("DeleteResult")]


@strawberry.type
class ErasureMutation:
    @strawberry.mutation(description="Contact token: erase everything stored about me, everywhere.")
    @returns_errors
    async def delete_my_data(self, info: strawberry.Info) -> DeleteResult:
        contact = await info.context.contact()
        if contact is None:
            raise AuthFailed()
        receipt = await info.context.erasure.erase(contact.tenant_id, contact.id, Requester.END_USER)
        return ErasureReceipt.of(receipt)

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Erase a contact of my tenant; erasing it again returns the same receipt.",
    )
    @returns_errors
    async def delete_contact(self, info: strawberry.Info, id: strawberry.ID) -> DeleteResult:
        staff = await info.context.staff()
        contact_id = parse_id(id)
        if contact_id is None:
            raise NotFound("No such contact.")
        receipt = await info.context.erasure.erase(staff.tenant_id, contact_id, Requester.STAFF)
        return ErasureReceipt.of(receipt)
