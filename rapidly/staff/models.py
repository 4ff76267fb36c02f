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
    #: A mobile number of their own for notifications (E.164), set once they proved they hold it
    #: (`rapidly.staff.reach`).
    sms_number = fields.CharField(max_length=20, null=True)
    #: Their password alone no longer signs them in while they have a passkey (a passkey as the
    #: second factor, for one person; `Tenant.require_passkey` is the company's).
    passkey_only = fields.BooleanField(default=False, db_default=SqlDefault("false"))
    #: Their own choice of channels per staff event ({"NEW_CONTACT": ["sms"]}); an event not in it
    #: follows the company's choice.
    message_channels = fields.JSONField(null=True)

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
    #: Signed in by password where the company requires a passkey and the staff member has none:
    #: the session may only add one (`rapidly.staff.passkeys`), then it is a session like any other.
    enrolling = fields.BooleanField(default=False, db_default=SqlDefault("false"))

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


class StaffPasskey(Model):
    """A staff member's passkey (a discoverable WebAuthn credential): its public key and signature
    counter. The credential's ID is unique platform-wide, as an email is: signing in with a passkey
    names no one, and the ID finds the account."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="staff_passkeys", on_delete=fields.CASCADE)
    staff = fields.ForeignKeyField("rapidly.StaffUser", related_name="passkeys", on_delete=fields.CASCADE)
    #: base64url, as the browser names it (at most 1,023 bytes by the specification).
    credential_id = fields.CharField(max_length=1400, unique=True)
    public_key = fields.BinaryField()
    sign_count = fields.BigIntField(default=0)
    #: The staff member's own name for it ("Work laptop").
    name = fields.CharField(max_length=100)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_passkey"


class PasskeyChallenge(Model):
    """A WebAuthn challenge waiting for its answer: used once (deleted as it is checked), within
    five minutes. Only its SHA-256 is kept. A sign-in's is no tenant's (the platform's, as a
    platform-wide rate limit is); a registration's is its staff member's tenant's."""

    id = fields.UUIDField(primary_key=True)
    tenant_id = fields.UUIDField()
    challenge_hash = fields.CharField(max_length=64, unique=True)
    #: Set for a registration: whose passkey it will be.
    staff_id = fields.UUIDField(null=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "passkey_challenge"


class SmsNumberCheck(Model):
    """A mobile number a staff member asked to be reached at, waiting for the code sent to it: one per
    staff member (a new number replaces it). The code is made when the text message is sent, and only
    its keyed digest is kept; five wrong codes or its time over, and a new one must be asked for."""

    id = fields.UUIDField(primary_key=True)
    tenant = fields.ForeignKeyField("rapidly.Tenant", related_name="sms_number_checks", on_delete=fields.CASCADE)
    staff = fields.OneToOneField("rapidly.StaffUser", related_name="sms_number_check", on_delete=fields.CASCADE)
    number = fields.CharField(max_length=20)
    #: Null until the message with the code is sent.
    code_digest = fields.CharField(max_length=64, null=True)
    #: The code works until then (`CODE_MINUTES` after it was made).
    code_expires_at = fields.DatetimeField(null=True)
    #: Wrong codes so far, whatever the number of codes sent for this number.
    tries = fields.IntField(default=0)
    #: The number waits until then, also for a message the outbox is still retrying.
    expires_at = fields.DatetimeField()

    class Meta:
        table = "sms_number_check"
