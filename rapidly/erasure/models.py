from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Requester(StrEnum):
    """Who asked for an erasure."""

    END_USER = "END_USER"
    STAFF = "STAFF"
    RETENTION = "RETENTION"


class Erasure(Model):
    """The ledger: one row per erased contact. IDs, times and counts only, never personal data.

    It outlives the contact on purpose: it is the receipt, it lets an interrupted erasure be
    finished, and after a backup is restored it names the contacts to erase again.
    """

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="erasures", on_delete=fields.CASCADE)
    contact_id = fields.UUIDField()
    requested_by = fields.CharEnumField(Requester, max_length=20)
    requested_at = fields.DatetimeField()
    #: Null while a store (object storage, say) still holds data; set when every store is empty.
    completed_at = fields.DatetimeField(null=True)
    #: {store: items removed}, summed over the attempts.
    removed = fields.JSONField(default=dict)
    #: Stores still to be erased, retried with backoff until they succeed.
    pending = fields.JSONField(default=list)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)

    class Meta:
        table = "erasure"
        unique_together = (("tenant", "contact_id"),)
        indexes = (("completed_at", "next_attempt_at"),)
