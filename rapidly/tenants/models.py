from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model


class Tenant(Model):
    """A company using Rapidly. The only table without `tenant_id`: it is the tenant."""

    id = fields.UUIDField(primary_key=True)
    slug = fields.CharField(max_length=63, unique=True)
    name = fields.CharField(max_length=200)
    plugin = fields.CharField(max_length=100)
    default_locale = fields.CharField(max_length=5, default="fi")
    privacy_policy_url = fields.CharField(max_length=500, null=True)
    retention_days = fields.IntField(null=True)
    #: Which messages go out on which channel: {"SELF_SERVICE_LINK": ["email"], ...}; missing
    #: events use the defaults in `rapidly.messaging.service.DEFAULT_CHANNELS`.
    message_channels = fields.JSONField(default=dict)
    #: Websites that may use this tenant's form from the browser: origins such as
    #: "https://www.example.fi" (see `rapidly.tenants.origins`).
    allowed_origins = fields.JSONField(default=list, db_default=SqlDefault("'[]'::jsonb"))
    #: Staff sign in with a passkey; a password alone only lets someone without one add one.
    require_passkey = fields.BooleanField(default=False, db_default=SqlDefault("false"))
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "tenant"
