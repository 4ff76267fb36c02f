from tortoise import fields
from tortoise.models import Model


class RateLimit(Model):
    """One counter per key. Keys are scope plus an HMAC, never an address or a name."""

    key = fields.CharField(max_length=200, primary_key=True)
    tenant_id = fields.UUIDField(db_index=True)
    #: Set for limits that count one contact's actions, so that erasure removes them with it.
    contact_id = fields.UUIDField(null=True, db_index=True)
    hits = fields.IntField()
    reset_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "rate_limit"
