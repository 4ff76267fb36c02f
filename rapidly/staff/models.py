from enum import StrEnum

from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model


class StaffRole(StrEnum):
    """What a staff member may do: an admin also runs the company's account (its staff, its settings)."""

    ADMIN = "ADMIN"
    STAFF = "STAFF"


class StaffUser(Model):
    """A tenant's employee. The email is unique platform-wide, the one unique key without tenant_id:
    `login(email, password)` names no tenant, so an address must point at exactly one account."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="staff", on_delete=fields.CASCADE)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=200)
    locale = fields.CharField(max_length=5, default="fi")
    role = fields.CharEnumField(StaffRole, max_length=10, default=StaffRole.STAFF, db_default=SqlDefault("'STAFF'"))
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_user"


class StaffSession(Model):
    """A login. Only the token's SHA-256 is kept."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="staff_sessions", on_delete=fields.CASCADE)
    staff = fields.ForeignKeyField("rapidly.StaffUser", related_name="sessions", on_delete=fields.CASCADE)
    token_hash = fields.CharField(max_length=64, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "staff_session"
        unique_together = (("tenant", "token_hash"),)


class StaffInvitation(Model):
    """An admin's invitation to join the company as staff, by email: one per address and company
    (a newer one replaces it). Its link's token is made when the email is sent (none waits in the
    outbox) and only its SHA-256 is kept. Accepted, withdrawn, replaced, or past its time (swept), the
    row is deleted: the address is not kept once the invitation is over."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="staff_invitations", on_delete=fields.CASCADE)
    email = fields.CharField(max_length=254)
    role = fields.CharEnumField(StaffRole, max_length=10)
    #: The admin who invited (no foreign key: the invitation goes with their removal or demotion).
    invited_by = fields.UUIDField()
    token_hash = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "staff_invitation"
        unique_together = (("tenant", "email"),)
