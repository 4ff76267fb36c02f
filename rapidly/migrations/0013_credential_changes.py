from tortoise import migrations
from tortoise.migrations import operations as ops

#: The channel the triggers below notify (`rapidly.realtime.credentials`).
CHANNEL = "rapidly_credentials"

#: A live stream checks its credentials again when the database says they changed, not per event
#: (issue 28): a staff member's session deleted (signed out, password reset, expired and purged,
#: the account or tenant removed: cascades fire row triggers too), a contact's token deleted, or a
#: tenant's allowed origins changed. The payload is a kind and an ID: never a token or its hash.
_FUNCTION = f"""
CREATE OR REPLACE FUNCTION rapidly_credentials_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $f$
BEGIN
    IF TG_TABLE_NAME = 'staff_session' THEN
        PERFORM pg_notify('{CHANNEL}', 'staff:' || OLD.staff_id);
    ELSIF TG_TABLE_NAME = 'contact_token' THEN
        PERFORM pg_notify('{CHANNEL}', 'contact:' || OLD.contact_id);
    ELSE
        PERFORM pg_notify('{CHANNEL}', 'tenant:' || NEW.id);
    END IF;
    RETURN NULL;
END
$f$
"""
_TRIGGERS = {
    "staff_session_ended": "AFTER DELETE ON staff_session",
    "contact_token_ended": "AFTER DELETE ON contact_token",
    "tenant_origins_changed": "AFTER UPDATE OF allowed_origins ON tenant",
}
_WHEN = {"tenant_origins_changed": " WHEN (OLD.allowed_origins IS DISTINCT FROM NEW.allowed_origins)"}


class Migration(migrations.Migration):
    """Credentials' changes announced to the live streams that rely on them."""

    dependencies = [("rapidly", "0012_blind_index")]

    initial = False

    operations = [
        ops.RunSQL(
            [
                _FUNCTION,
                *(
                    f"CREATE TRIGGER {name} {when} FOR EACH ROW{_WHEN.get(name, '')} "
                    "EXECUTE FUNCTION rapidly_credentials_changed()"
                    for name, when in _TRIGGERS.items()
                ),
            ],
            reverse_sql=[
                *(f"DROP TRIGGER IF EXISTS {name} ON {when.rsplit(' ', 1)[1]}" for name, when in _TRIGGERS.items()),
                "DROP FUNCTION IF EXISTS rapidly_credentials_changed()",
            ],
        )
    ]
