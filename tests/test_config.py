"""Settings: contract names, validation messages that name the variable to fix."""

from __future__ import annotations

import pytest

from rapidly.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("RAPIDLY_")]:
        monkeypatch.delenv(name)


def test_contract_names_are_read_from_the_environment(monkeypatch, tmp_path):
    # given
    values = {
        "RAPIDLY_DATABASE_URL": "postgresql://app@db.example:5432/rapidly",
        "RAPIDLY_SECRET_KEY": "s" * 40,
        "RAPIDLY_DATA_DIR": str(tmp_path),
        "RAPIDLY_BASE_URL": "https://intake.example/",
        "RAPIDLY_STORAGE": "s3",
        "RAPIDLY_S3_ENDPOINT_URL": "https://s3.fr-par.scw.cloud",
        "RAPIDLY_S3_REGION": "fr-par",
        "RAPIDLY_S3_BUCKET": "media",
        "RAPIDLY_SMTP_URL": "smtp+starttls://mail.example:587",
        "RAPIDLY_SMS_URL": "https://gatewayapi.eu/rest/mtsms",
        "RAPIDLY_DATABASE_COUNTRY": "fi",
        "RAPIDLY_STORAGE_COUNTRY": "FR",
        "RAPIDLY_SMTP_COUNTRY": "DE",
        "RAPIDLY_SMS_COUNTRY": "DK",
        "RAPIDLY_OTEL_ENDPOINT": "https://otlp.example.eu:4318/",
        "RAPIDLY_OTEL_COUNTRY": "se",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    # when
    settings = load_settings()

    # then
    assert settings.database_url == "postgresql://app@db.example:5432/rapidly"
    assert settings.data_dir == tmp_path
    assert settings.base_url == "https://intake.example"
    assert (settings.storage, settings.s3_bucket, settings.s3_region) == ("s3", "media", "fr-par")
    assert settings.s3_endpoint_url == "https://s3.fr-par.scw.cloud"
    assert settings.smtp_url.startswith("smtp+starttls://")
    assert settings.sms_url.startswith("https://gatewayapi.eu")
    assert (settings.database_country, settings.storage_country, settings.smtp_country, settings.sms_country) == (
        "FI",
        "FR",
        "DE",
        "DK",
    )
    assert (settings.otel_endpoint, settings.otel_country) == ("https://otlp.example.eu:4318", "SE")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RAPIDLY_DATABASE_URL", "mysql://db/x", "RAPIDLY_DATABASE_URL: must start with postgresql://"),
        ("RAPIDLY_STORAGE", "ftp", "RAPIDLY_STORAGE: Input should be 'local' or 's3'"),
        ("RAPIDLY_S3_ENDPOINT_URL", "s3.example", "RAPIDLY_S3_ENDPOINT_URL: must start with https://"),
        ("RAPIDLY_SMTP_URL", "mail.example:25", "RAPIDLY_SMTP_URL: must start with smtp://"),
        ("RAPIDLY_SMS_COUNTRY", "Sweden", "RAPIDLY_SMS_COUNTRY: must be an ISO 3166 alpha-2"),
        ("RAPIDLY_DATABASE_POOL_SIZE", "1", "RAPIDLY_DATABASE_POOL_SIZE: Input should be greater than or equal to 2"),
        ("RAPIDLY_SECRET_KEY", "short", "RAPIDLY_SECRET_KEY: String should have at least 32 characters"),
        ("RAPIDLY_MIGRATE_ON_START", "perhaps", "RAPIDLY_MIGRATE_ON_START: Input should be a valid boolean"),
        ("RAPIDLY_OTEL_ENDPOINT", "otlp.example.eu:4318", "RAPIDLY_OTEL_ENDPOINT: must start with https://"),
        ("RAPIDLY_OTEL_ENDPOINT", "grpc://otlp.example.eu:4317", "RAPIDLY_OTEL_ENDPOINT: must start with https://"),
        ("RAPIDLY_OTEL_ENDPOINT", "https://", "RAPIDLY_OTEL_ENDPOINT: has no host"),
        ("RAPIDLY_OTEL_ENDPOINT", "https://otlp.example.eu:43x8", "RAPIDLY_OTEL_ENDPOINT: Port could not be cast"),
        ("RAPIDLY_OTEL_ENDPOINT", "https://k:secret@otlp.example.eu", "RAPIDLY_OTEL_ENDPOINT: must hold no"),
        ("RAPIDLY_OTEL_ENDPOINT", "https://otlp.example.eu?x=1", "RAPIDLY_OTEL_ENDPOINT: must be a base URL"),
        ("RAPIDLY_OTEL_ENDPOINT", "https://otlp.example.eu/v1/traces", "RAPIDLY_OTEL_ENDPOINT: is the collector"),
        ("RAPIDLY_OTEL_COUNTRY", "Finland", "RAPIDLY_OTEL_COUNTRY: must be an ISO 3166 alpha-2"),
    ],
)
def test_a_malformed_setting_is_named_in_the_error(monkeypatch, name, value, expected):
    # given
    monkeypatch.setenv(name, value)

    # when
    with pytest.raises(ConfigError) as error:
        load_settings()

    # then
    assert expected in str(error.value)


def test_s3_storage_needs_a_bucket(monkeypatch):
    # given
    monkeypatch.setenv("RAPIDLY_STORAGE", "s3")

    # when
    with pytest.raises(ConfigError) as error:
        load_settings()

    # then
    assert "RAPIDLY_S3_BUCKET is required when RAPIDLY_STORAGE=s3" in str(error.value)


def test_secret_values_are_not_echoed_in_errors(monkeypatch):
    # given
    monkeypatch.setenv("RAPIDLY_DATABASE_URL", "mysql://user:hunter2-secret@db/x")

    # when
    with pytest.raises(ConfigError) as error:
        load_settings()

    # then
    assert "hunter2-secret" not in str(error.value)


def test_a_generated_secret_key_is_kept_private_and_stable(tmp_path):
    # given
    settings = load_settings(data_dir=tmp_path)

    # when
    first = settings.signing_key
    second = load_settings(data_dir=tmp_path).signing_key

    # then
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_a_shared_database_needs_a_shared_secret_key(monkeypatch):
    # given: several processes on one database must derive the same app-role password
    monkeypatch.setenv("RAPIDLY_DATABASE_URL", "postgresql://owner@db.example/rapidly")

    # when
    with pytest.raises(ConfigError) as error:
        load_settings()

    # then
    assert "RAPIDLY_SECRET_KEY is required with RAPIDLY_DATABASE_URL" in str(error.value)


def test_a_misspelt_setting_is_an_error_not_a_silent_default(monkeypatch):
    # given
    monkeypatch.setenv("RAPIDLY_DATABSE_URL", "postgresql://owner@db.example/rapidly")

    # when
    with pytest.raises(ConfigError) as error:
        load_settings()

    # then
    assert "RAPIDLY_DATABSE_URL" in str(error.value)


def test_a_setting_that_is_gone_says_what_to_do_instead(monkeypatch):
    # given: RAPIDLY_DEBUG served GraphiQL, which is gone
    monkeypatch.setenv("RAPIDLY_DEBUG", "true")

    # when
    with pytest.raises(ConfigError) as error:
        load_settings()

    # then
    assert "RAPIDLY_DEBUG" in str(error.value) and "/console" in str(error.value)
