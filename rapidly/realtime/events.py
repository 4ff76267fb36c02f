"""What travels: an event is a sequence number, two IDs, a kind and a time. Nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

#: The one PostgreSQL NOTIFY channel all processes listen on.
CHANNEL = "rapidly_events"
#: Where credentials' changes are announced (migration 0013's triggers): a kind and an ID.
CREDENTIALS_CHANNEL = "rapidly_credentials"


class EventKind(StrEnum):
    CREATED = "CREATED"
    FIELD_SAVED = "FIELD_SAVED"
    MEDIA_ADDED = "MEDIA_ADDED"
    CHAT_MESSAGE = "CHAT_MESSAGE"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """Something happened to a contact; subscribers fetch what changed through the API."""

    seq: int
    tenant_id: UUID
    contact_id: UUID
    kind: EventKind
    at: datetime

    def payload(self) -> str:
        """The compact NOTIFY payload: `{"seq":1,"t":"…","c":"…","k":"FIELD_SAVED","at":"…Z"}`."""
        return json.dumps(
            {
                "seq": self.seq,
                "t": str(self.tenant_id),
                "c": str(self.contact_id),
                "k": self.kind.value,
                "at": self.at.isoformat().replace("+00:00", "Z"),
            },
            separators=(",", ":"),
        )

    @staticmethod
    def seq_of(payload: str) -> int:
        """Only the sequence number of a NOTIFY payload (raises like `from_payload`)."""
        return int(json.loads(payload)["seq"])

    @classmethod
    def from_payload(cls, payload: str) -> ContactEvent:
        """Parse a NOTIFY payload; raises ValueError (or KeyError/TypeError) on anything malformed."""
        data = json.loads(payload)
        return cls(
            seq=int(data["seq"]),
            tenant_id=UUID(data["t"]),
            contact_id=UUID(data["c"]),
            kind=EventKind(data["k"]),
            at=datetime.fromisoformat(data["at"]),
        )

    @classmethod
    def from_row(cls, row: object) -> ContactEvent:
        """From a `contact_event` row (asyncpg Record or dict with id, tenant_id, contact_id, kind, created_at)."""
        return cls(
            seq=row["id"],  # type: ignore[index]
            tenant_id=row["tenant_id"],  # type: ignore[index]
            contact_id=row["contact_id"],  # type: ignore[index]
            kind=EventKind(row["kind"]),  # type: ignore[index]
            at=row["created_at"],  # type: ignore[index]
        )
