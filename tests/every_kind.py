"""A test plugin with one field of every kind, registered as "every_kind" in the session's registry."""

from __future__ import annotations

from rapidly import hookimpl
from rapidly.plugins import Choice, FieldKind, FieldRole, FieldSpec, TenantInfo


def _spec(key: str, kind: FieldKind, **extra: object) -> FieldSpec:
    return FieldSpec(
        key=key,
        kind=kind,
        labels={"fi": f"{key} (fi)", "sv": f"{key} (sv)", "en": f"{key} (en)"},
        purpose={"en": f"Why we ask for {key}."},
        **extra,  # type: ignore[arg-type]
    )


FIELDS = (
    _spec("name", FieldKind.TEXT, role=FieldRole.NAME),
    _spec("story", FieldKind.LONG_TEXT),
    _spec("email", FieldKind.EMAIL, role=FieldRole.EMAIL),
    _spec("phone", FieldKind.PHONE, role=FieldRole.PHONE),
    _spec("count", FieldKind.NUMBER),
    _spec("day", FieldKind.DATE),
    _spec("colour", FieldKind.CHOICE, choices=(Choice("cq_choice_red", {"en": "Red"}), Choice("blue", {"en": "Blue"}))),
    _spec("extras", FieldKind.MULTI_CHOICE, choices=(Choice("cq_multi_a", {"en": "A"}), Choice("b", {"en": "B"}))),
    _spec("agree", FieldKind.BOOLEAN),
    _spec("photos", FieldKind.IMAGE),
)


class EveryKind:
    @hookimpl
    def contact_fields(self, tenant: TenantInfo) -> list[FieldSpec]:
        return list(FIELDS)
