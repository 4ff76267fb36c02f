"""The event log that lets a listener catch up after a lost connection."""

from tortoise import fields
from tortoise.models import Model


class ContactEventLog(Model):
    """One published contact event: IDs, kind and time only, never a value.

    The only table whose key is not a UUID: resync after a reconnect needs a monotonic sequence
    (`id` is a bigserial), and the sequence number is the `seq` every event carries. There is
    deliberately no foreign key to `contact`: a DELETED event outlives the erased contact and must
    still be delivered. Rows are pruned after an hour (`rapidly.realtime.prune`).
    """

    id = fields.BigIntField(primary_key=True)
    tenant_id = fields.UUIDField(db_index=True)
    contact_id = fields.UUIDField()
    kind = fields.CharField(max_length=20)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "contact_event"
