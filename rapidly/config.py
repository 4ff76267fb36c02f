"""One `Settings` object, read from `RAPIDLY_*` environment variables (DESIGN.md §6)."""

from __future__ import annotations

import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapidly.errors import StartupRefused

ENV_PREFIX = "RAPIDLY_"
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class ConfigError(StartupRefused):
    """Settings are invalid; the message names each `RAPIDLY_*` variable to fix, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__("config", message)


def _check_url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("has no host")
    return value


SMS_TO_FILE = "file:"
#: The privacy page's promise: a backup forgets an erased person within a month.
MAX_BACKUP_RETENTION_DAYS = 30


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # -- contract names (DESIGN.md §6) --------------------------------------------------
    database_url: str | None = None
    data_dir: Path = Path(".rapidly")
    base_url: str = "http://127.0.0.1:8000"
    storage: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_bucket: str | None = None
    smtp_url: str | None = None
    sms_url: str | None = None
    database_country: str | None = None
    storage_country: str | None = None
    smtp_country: str | None = None
    sms_country: str | None = None

    # -- further settings ------------------------------------------------------------------
    #: S3 credentials; unset: the usual AWS chain (AWS_ACCESS_KEY_ID, instance roles, ...).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    #: Largest upload accepted (bytes), counted while it streams in; a field may set less.
    media_max_bytes: int = Field(default=15 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    #: Largest image accepted, in pixels (width x height); bigger ones are refused as decompression bombs.
    media_max_pixels: int = Field(default=50_000_000, ge=10_000, le=200_000_000)
    #: Images one contact may upload, over all its image fields.
    media_per_contact: int = Field(default=30, ge=1, le=1000)
    #: How long a signed media URL works.
    media_url_seconds: int = Field(default=300, ge=10, le=86_400)
    #: How long a continue-on-another-device link works.
    continue_link_minutes: int = Field(default=30, ge=1, le=1440)
    #: The sender address of every email; the display name is the tenant's name.
    mail_from: str = "noreply@rapidly.invalid"
    #: The SMS gateway's API token, and the sender name shown on phones (at most 11 characters).
    sms_token: str | None = None
    sms_sender: str = Field(default="Rapidly", min_length=1, max_length=11)
    #: Another gateway's API: `package.module:Class`, a class taking (settings) with an async
    #: `send(item)` (see docs/plugin_hooks.md, "SMS providers"). Unset: GatewayAPI's EU API.
    sms_provider: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    #: Run the message dispatcher inside `serve` (else run `rapidly worker` processes).
    dispatcher_in_serve: bool = True
    #: Attempts per message before it is marked failed (backoff doubles from 30 s, with jitter).
    message_attempts: int = Field(default=8, ge=1, le=30)
    #: Messages a tenant may send a day; further ones are not sent.
    messages_per_tenant_per_day: int = Field(default=1000, ge=1)
    #: Apply pending migrations when `serve` starts.
    migrate_on_start: bool = True
    #: Connections in the application's pool (Tortoise's default of 5 starves 32 clients).
    database_pool_size: int = Field(default=20, ge=2, le=500)
    #: The runtime role; created and granted by `rapidly migrate`.  Default: `<database>_app`.
    database_app_role: str | None = None
    #: Signs app-level secrets (database app-role password, local media URLs, CSRF).
    #: Unset: generated once and kept in `<data_dir>/secret_key`.
    secret_key: str | None = Field(default=None, min_length=32)
    #: Failed logins allowed per account and per client address in `login_window_seconds`.
    login_attempts_per_account: int = Field(default=10, ge=1)
    login_attempts_per_ip: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    staff_session_days: int = Field(default=14, ge=1, le=365)
    #: New contacts a single client address may start per hour (`startContact` is public).
    contacts_per_ip_per_hour: int = Field(default=60, ge=1)
    contact_token_days: int = Field(default=30, ge=1, le=3650)
    #: Contacts that never got a saved value are removed after this many hours.
    abandoned_contact_hours: int = Field(default=24, ge=1)
    #: Room for a field's largest value (20,000 characters) many times over; more is refused with 413.
    max_request_bytes: int = Field(default=2_000_000, ge=1024)

    # -- operations (contract names, DESIGN.md §6) ----------------------------------------------
    #: The passphrase that backups are encrypted with (at least 32 characters); keep it where neither
    #: the database nor the object storage is. Unset with the embedded database: generated into the data dir.
    backup_key: str | None = Field(default=None, min_length=32)
    #: The root key of contact data's encryption (rapidly/keys): a passphrase of at least 32 characters,
    #: kept where neither the database, its backups nor the object storage is. Unset with the embedded
    #: database: generated into the data dir. Or a KMS (`kms_key_id`, through the `key_provider` hook).
    root_key: str | None = Field(default=None, min_length=32)
    #: The root key before `rapidly keys rotate`, while tenant keys wrapped by it remain.
    previous_root_key: str | None = Field(default=None, min_length=32)
    #: A key of an AWS-API key management service in an EU/EEA region, as the root key instead.
    kms_key_id: str | None = None
    kms_region: str | None = None
    #: A KMS's endpoint other than AWS's own (any AWS-API service); `kms_country` declares where it is.
    kms_endpoint_url: str | None = None
    kms_country: str | None = None
    kms_access_key_id: str | None = None
    kms_secret_access_key: str | None = None
    #: Backups are deleted, with every stored version, this many days after they were made (at most 30).
    backup_retention_days: int = 30
    #: `serve` makes a backup this often; 0 = off, for operators who use their database provider's backups.
    backup_every_hours: int = Field(default=24, ge=0, le=720)
    #: `text` (for people) or `json` (one object a line, for log collectors).
    log_format: Literal["text", "json"] = "text"
    #: How much Rapidly's own loggers say; libraries' loggers say INFO and above at most, whatever this is.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Bearer token that `GET /metrics` asks for (at least 32 characters); unset: no /metrics.
    metrics_token: str | None = Field(default=None, min_length=32)
    #: An OpenTelemetry collector's OTLP/HTTP base URL: traces go to `{it}/v1/traces` (rapidly/telemetry.py).
    #: Unset: no traces. Checked by the residency guard; `otel_country` declares where a custom host is.
    otel_endpoint: str | None = None
    otel_country: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("postgresql", "postgres"))

    @field_validator("s3_endpoint_url", "kms_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("https", "http"))

    @field_validator("sms_url")
    @classmethod
    def _sms_url(cls, value: str | None) -> str | None:
        """The gateway's HTTPS endpoint, or `file:` (the demo: texts go to a file in the data dir)."""
        return value if value == SMS_TO_FILE else _check_url(value, ("https", "http"))

    @field_validator("otel_endpoint")
    @classmethod
    def _otel_endpoint(cls, value: str | None) -> str | None:
        """A base URL, the collector's and nothing more: credentials go in the headers, not in the URL."""
        value = _check_url(value, ("https", "http"))
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise ValueError("must hold no credentials (give them in OTEL_EXPORTER_OTLP_HEADERS)")
        if parts.query or parts.fragment:
            raise ValueError("must be a base URL, without a query or fragment, such as https://otlp.example.eu:4318")
        if parts.path.rstrip("/").endswith("/v1/traces"):
            raise ValueError("is the collector's base URL: leave out /v1/traces, which Rapidly adds")
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("smtp", "smtps", "smtp+starttls"))

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _check_url(value.rstrip("/"), ("https", "http"))  # type: ignore[return-value]

    @field_validator(
        "database_country",
        "storage_country",
        "smtp_country",
        "sms_country",
        "otel_country",
        "kms_country",
        mode="before",
    )
    @classmethod
    def _country(cls, value: object) -> object:
        if value is None or value == "":
            return None
        code = str(value).strip().upper()
        if not _COUNTRY.match(code):
            raise ValueError("must be an ISO 3166 alpha-2 country code such as FI, SE or DE")
        return code

    @field_validator("backup_retention_days")
    @classmethod
    def _backup_retention(cls, value: int) -> int:
        if not 1 <= value <= MAX_BACKUP_RETENTION_DAYS:
            raise ValueError(
                f"must be 1 to {MAX_BACKUP_RETENTION_DAYS}: backups must lose erased data within "
                f"{MAX_BACKUP_RETENTION_DAYS} days (the privacy promise)"
            )
        return value

    @field_validator("database_app_role")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError("must be a lower-case PostgreSQL identifier (a-z, 0-9, _)")
        return value

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("RAPIDLY_S3_BUCKET is required when RAPIDLY_STORAGE=s3")
        return self

    @model_validator(mode="after")
    def _kms_credentials_in_pairs(self) -> Settings:
        if bool(self.kms_access_key_id) != bool(self.kms_secret_access_key):
            raise ValueError(
                "RAPIDLY_KMS_ACCESS_KEY_ID and RAPIDLY_KMS_SECRET_ACCESS_KEY go together: set both, or neither "
                "(then botocore's default chain: environment, profile, role)"
            )
        return self

    @model_validator(mode="after")
    def _shared_database_needs_a_shared_key(self) -> Settings:
        """Every process on one database must derive the same app-role password and rate-limit keys."""
        if self.database_url and not self.secret_key:
            raise ValueError(
                "RAPIDLY_SECRET_KEY is required with RAPIDLY_DATABASE_URL (the same value for every process)"
            )
        return self

    # -- derived ------------------------------------------------------------------------------
    @cached_property
    def signing_key(self) -> bytes:
        """`RAPIDLY_SECRET_KEY`, or (embedded database only) one generated once under the data dir."""
        if self.secret_key:
            return self.secret_key.encode()
        return _generated_secret(self.data_dir, "secret_key")

    @cached_property
    def backup_passphrase(self) -> str | None:
        """`RAPIDLY_BACKUP_KEY`, or (embedded database only) one generated once under the data dir;
        None with an external database and no key (backups then refuse to run)."""
        if self.backup_key:
            return self.backup_key
        if self.database_url:
            return None
        return _generated_secret(self.data_dir, "backup_key").decode()

    @cached_property
    def root_passphrase(self) -> str | None:
        """`RAPIDLY_ROOT_KEY`, or (embedded database only) one generated once under the data dir;
        None with an external database and no key (serve then refuses to start, unless a KMS is set)."""
        if self.root_key:
            return self.root_key
        if self.database_url:
            return None
        return _generated_secret(self.data_dir, "root_key").decode()

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"


def _generated_secret(data_dir: Path, name: str) -> bytes:
    """A random secret kept in `data_dir/name` (mode 0600), made on first use."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{name}.{secrets.token_hex(8)}")
        draft.write_text(secrets.token_urlsafe(48))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic: a concurrent first start reads a complete key or makes its own
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


#: Variables with our prefix that are not settings of the service itself.
NOT_SETTINGS = frozenset({"RAPIDLY_TEST_DATABASE_URL"})
#: Settings that are gone, and what to do instead.
REMOVED = {"RAPIDLY_DEBUG": "it served GraphiQL, which loaded its code from a CDN and is gone: use /console"}


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; a `ConfigError` names every variable to fix.

    An unknown `RAPIDLY_*` variable is an error too: a misspelt `RAPIDLY_DATABSE_URL` must not
    quietly fall back to the embedded database.
    """
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | NOT_SETTINGS
    unknown = sorted(name for name in os.environ if name.startswith(ENV_PREFIX) and name not in known)
    if removed := [f"{name}: {REMOVED[name]}" for name in unknown if name in REMOVED]:
        raise ConfigError("settings no longer used (unset them): " + "; ".join(removed))
    if unknown:
        raise ConfigError("unknown settings (misspelt?): " + ", ".join(unknown))
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper() if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name else message)
    return "invalid configuration: " + "; ".join(lines)
