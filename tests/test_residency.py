"""The EU/EEA residency guard: real S3 (moto's server over HTTP), real Settings, no mocked boto."""

from __future__ import annotations

import os
import time

import pytest

from rapidly.config import Settings
from rapidly.residency import (
    EEA_COUNTRIES,
    ResidencyError,
    assert_resident,
    check_residency,
    match_host,
    normalize_bucket_location,
    region_country,
    run_check,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Settings and boto3 read the environment; make every test independent of it."""
    for name in list(os.environ):
        if (name.startswith("RAPIDLY_") and not name.startswith("RAPIDLY_TEST_")) or name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def s3_settings(endpoint: str, bucket: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "storage": "s3",
        "s3_bucket": bucket,
        "s3_endpoint_url": endpoint,
        "storage_country": "FI",
        "database_country": "FI",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# -- countries and tables ------------------------------------------------------------------------------------


def test_eea_is_the_27_eu_states_plus_iceland_liechtenstein_norway() -> None:
    # given
    eu27 = {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    }  # fmt: skip

    # when
    eea = set(EEA_COUNTRIES)

    # then
    assert eea == eu27 | {"IS", "LI", "NO"}
    assert len(eea) == 30
    assert not eea & {"GB", "CH", "US", "EL", "UK"}


@pytest.mark.parametrize(
    ("provider", "region", "country"),
    [
        ("AWS", "eu-west-2", "GB"),
        ("AWS", "eu-central-2", "CH"),
        ("GCP", "europe-west2", "GB"),
        ("GCP", "europe-west6", "CH"),
        ("Azure", "uksouth", "GB"),
        ("Azure", "ukwest", "GB"),
        ("Azure", "switzerlandnorth", "CH"),
        ("Azure", "switzerlandwest", "CH"),
        ("Exoscale", "ch-gva-2", "CH"),
        ("Exoscale", "ch-dk-2", "CH"),
        ("UpCloud", "uk-lon1", "GB"),
        ("OVHcloud", "uk", "GB"),
        ("OVHcloud", "UK1", "GB"),
        ("IONOS", "gb-lhr", "GB"),
    ],
)
def test_european_looking_regions_outside_the_eea_are_known_as_such(provider: str, region: str, country: str) -> None:
    # when
    found = region_country(provider, region)

    # then
    assert found == country
    assert found not in EEA_COUNTRIES


@pytest.mark.parametrize(
    ("provider", "region", "country"),
    [
        ("AWS", "eu-north-1", "SE"),
        ("GCP", "europe-north1", "FI"),
        ("Azure", "swedencentral", "SE"),
        ("Scaleway", "pl-waw", "PL"),
        ("OVHcloud", "GRA7", "FR"),
        ("Hetzner", "hel1", "FI"),
        ("Exoscale", "at-vie-1", "AT"),
        ("IONOS", "eu-central-2", "DE"),  # Berlin at IONOS, whereas AWS eu-central-2 is Zurich
        ("UpCloud", "fi-hel2", "FI"),
    ],
)
def test_eea_regions_map_to_their_country(provider: str, region: str, country: str) -> None:
    # when
    found = region_country(provider, region)

    # then
    assert found == country
    assert found in EEA_COUNTRIES


@pytest.mark.parametrize(
    ("host", "provider", "region"),
    [
        ("s3.eu-north-1.amazonaws.com", "AWS", "eu-north-1"),
        ("bucket.s3.eu-west-2.amazonaws.com", "AWS", "eu-west-2"),
        ("s3-eu-west-1.amazonaws.com", "AWS", "eu-west-1"),
        ("db.abc123xyz.eu-north-1.rds.amazonaws.com", "AWS", "eu-north-1"),
        ("email-smtp.eu-west-1.amazonaws.com", "AWS", "eu-west-1"),
        ("s3.amazonaws.com", "AWS", None),
        ("s3.fr-par.scw.cloud", "Scaleway", "fr-par"),
        ("my-db.rdb.fr-par.scw.cloud", "Scaleway", "fr-par"),
        ("fsn1.your-objectstorage.com", "Hetzner", "fsn1"),
        ("sos-ch-gva-2.exo.io", "Exoscale", "ch-gva-2"),
        ("s3.gra.io.cloud.ovh.net", "OVHcloud", "gra"),
        ("s3.eu-central-1.ionoscloud.com", "IONOS", "eu-central-1"),
        ("s3-eu-central-1.ionoscloud.com", "IONOS", "eu-central-1"),
        ("media.fi-hel2.upcloudobjects.com", "UpCloud", "fi-hel2"),
        ("gatewayapi.eu", "GatewayAPI", "eu"),
        ("minio.internal.example", None, None),
    ],
)
def test_endpoint_hosts_reveal_provider_and_region(host: str, provider: str | None, region: str | None) -> None:
    # when
    found = match_host(host)

    # then
    assert ((found.provider, found.region) if found else (None, None)) == (provider, region)


def test_aws_bucket_locations_follow_aws_conventions_but_custom_endpoints_do_not() -> None:
    # when / then: AWS reports us-east-1 as null and eu-west-1 as the legacy "EU"
    assert normalize_bucket_location(None, aws=True) == "us-east-1"
    assert normalize_bucket_location("", aws=True) == "us-east-1"
    assert normalize_bucket_location("EU", aws=True) == "eu-west-1"
    assert normalize_bucket_location("eu-north-1", aws=True) == "eu-north-1"
    # an empty location from MinIO and the like carries no information
    assert normalize_bucket_location(None, aws=False) is None
    assert normalize_bucket_location("", aws=False) is None


# -- storage: buckets on a real S3 server --------------------------------------------------------------------


@pytest.mark.parametrize(("bucket", "country"), [("rapidly-london", "GB"), ("rapidly-zurich", "CH")])
async def test_buckets_in_london_or_zurich_are_rejected_naming_the_country(
    s3_endpoint: str, bucket: str, country: str
) -> None:
    # given a custom endpoint with a declared EEA country
    settings = s3_settings(s3_endpoint, bucket, storage_country="FI")

    # when
    report = await check_residency(settings)

    # then the bucket's own region wins over the declaration
    verdict = report.get("storage")
    assert not report.ok
    assert verdict.status == "OUTSIDE EEA"
    assert verdict.location == country
    assert verdict.setting == "RAPIDLY_S3_BUCKET"
    assert country in verdict.message and "RAPIDLY_S3_BUCKET" in verdict.message


async def test_stockholm_bucket_with_declared_finland_is_accepted(s3_endpoint: str) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-stockholm", storage_country="FI")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert report.ok
    assert (verdict.status, verdict.location) == ("ok", "FI")
    assert "eu-north-1" in verdict.how


async def test_versioned_bucket_is_accepted(s3_endpoint: str) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-versioned")

    # when
    report = await check_residency(settings)

    # then
    assert report.get("storage").ok
    assert report.get("storage").location == "FI"


async def test_bucket_without_region_on_custom_endpoint_relies_on_declared_country(s3_endpoint: str) -> None:
    # given a bucket reporting an empty location (MinIO's default), which is not us-east-1 on a custom endpoint
    settings = s3_settings(s3_endpoint, "rapidly-default", storage_country="SE")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert verdict.ok
    assert verdict.location == "SE"
    assert "no region" in verdict.how


async def test_missing_bucket_is_an_unreachable_failure(s3_endpoint: str) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-no-such-bucket")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert not report.ok
    assert verdict.status == "UNREACHABLE"
    assert verdict.setting == "RAPIDLY_S3_BUCKET"
    assert "does not exist" in verdict.message
    assert "testing" not in verdict.message  # no credentials in messages


async def test_unreachable_endpoint_fails_quickly(unused_tcp_port: int) -> None:
    # given nothing listens on the endpoint
    settings = s3_settings(f"http://127.0.0.1:{unused_tcp_port}", "rapidly-stockholm")

    # when
    started = time.monotonic()
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert verdict.status == "UNREACHABLE"
    assert "could not connect" in verdict.message
    assert time.monotonic() - started < 25


async def test_custom_endpoint_without_declared_country_is_undeclared(s3_endpoint: str) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-stockholm", storage_country=None)

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert verdict.status == "UNDECLARED"
    assert verdict.setting == "RAPIDLY_STORAGE_COUNTRY"
    assert "RAPIDLY_STORAGE_COUNTRY" in verdict.message


async def test_swiss_exoscale_endpoint_is_rejected_without_contacting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given no credentials at all: any attempt to reach the endpoint would end as UNREACHABLE
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    settings = s3_settings("https://sos-ch-gva-2.exo.io", "rapidly-media", storage_country="DE")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert verdict.status == "OUTSIDE EEA"
    assert verdict.location == "CH"
    assert verdict.setting == "RAPIDLY_S3_ENDPOINT_URL"
    assert "Exoscale region ch-gva-2" in verdict.how


@pytest.mark.parametrize(
    ("endpoint", "country"),
    [
        ("https://s3.eu-west-2.amazonaws.com", "GB"),
        ("https://s3.eu-central-2.amazonaws.com", "CH"),
        ("https://sos-ch-dk-2.exo.io", "CH"),
        ("https://s3.uk.io.cloud.ovh.net", "GB"),
        ("https://uk-lon1.upcloudobjects.com", "GB"),
    ],
)
async def test_known_endpoints_outside_the_eea_are_rejected(endpoint: str, country: str) -> None:
    # given
    settings = s3_settings(endpoint, "rapidly-media")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert (verdict.status, verdict.location, verdict.setting) == (
        "OUTSIDE EEA",
        country,
        "RAPIDLY_S3_ENDPOINT_URL",
    )


@pytest.mark.parametrize(
    ("region", "country"),
    [
        ("europe-west6", "CH"),
        ("switzerlandnorth", "CH"),
        ("uk-lon1", "GB"),
        ("eu-central-2", "CH"),
        ("uksouth", "GB"),
    ],
)
async def test_look_alike_s3_region_names_are_rejected(s3_endpoint: str, region: str, country: str) -> None:
    # given RAPIDLY_S3_REGION names a European-looking region outside the EEA
    settings = s3_settings(s3_endpoint, "rapidly-stockholm", s3_region=region)

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert (verdict.status, verdict.location, verdict.setting) == (
        "OUTSIDE EEA",
        country,
        "RAPIDLY_S3_REGION",
    )
    assert region in verdict.message


async def test_unknown_region_is_rejected_as_unknown() -> None:
    # given an AWS-shaped endpoint whose region is in no table
    settings = s3_settings("https://s3.eu-mars-1.amazonaws.com", "rapidly-media")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("storage")
    assert verdict.status == "UNKNOWN"
    assert not verdict.ok
    assert "eu-mars-1" in verdict.message and "not in Rapidly's region table" in verdict.message


# -- database, smtp, sms, local storage ------------------------------------------------------------------------


async def test_declared_switzerland_is_rejected_naming_the_country() -> None:
    # given
    settings = Settings(database_country="CH", storage_country="FI")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("database")
    assert (verdict.status, verdict.location, verdict.setting) == (
        "OUTSIDE EEA",
        "CH",
        "RAPIDLY_DATABASE_COUNTRY",
    )
    assert "CH (Switzerland)" in verdict.message


async def test_embedded_database_without_declared_country_is_undeclared() -> None:
    # given
    settings = Settings(storage_country="FI")

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("database")
    assert not report.ok
    assert verdict.status == "UNDECLARED"
    assert verdict.setting == "RAPIDLY_DATABASE_COUNTRY"
    assert "RAPIDLY_DATABASE_COUNTRY" in verdict.message
    assert "embedded PostgreSQL" in verdict.how


async def test_local_storage_declared_in_finland_and_unset_smtp_sms_are_fine() -> None:
    # given
    settings = Settings(storage="local", storage_country="FI", database_country="FI")

    # when
    report = await check_residency(settings)

    # then
    assert report.ok
    assert (report.get("storage").location, report.get("storage").status) == ("FI", "ok")
    for backend in ("smtp", "sms"):
        assert report.get(backend).ok
        assert report.get(backend).how == "not configured"


async def test_rds_host_in_stockholm_needs_no_declared_country() -> None:
    # given
    settings = Settings(
        database_url="postgresql://app:hunter2secret@rapidly.c9akciq32.eu-north-1.rds.amazonaws.com:5432/rapidly",
        secret_key="s" * 40,
        storage_country="FI",
    )

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("database")
    assert (verdict.ok, verdict.location) == (True, "SE")
    assert verdict.how == "database host, AWS region eu-north-1"
    assert "hunter2secret" not in report.format_table()


async def test_rds_host_in_london_is_rejected() -> None:
    # given
    settings = Settings(
        database_url="postgresql://app@rapidly.c9akciq32.eu-west-2.rds.amazonaws.com/rapidly",
        secret_key="s" * 40,
        database_country="FI",
        storage_country="FI",
    )

    # when
    verdict = (await check_residency(settings)).get("database")

    # then the declared country does not override a host that names its region
    assert (verdict.status, verdict.location, verdict.setting) == (
        "OUTSIDE EEA",
        "GB",
        "RAPIDLY_DATABASE_URL",
    )


async def test_custom_smtp_host_needs_declared_country_and_never_shows_the_password() -> None:
    # given
    settings = Settings(
        smtp_url="smtps://mailer:topsecretpw@mail.example.org:465",
        database_country="FI",
        storage_country="FI",
    )

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("smtp")
    assert verdict.status == "UNDECLARED"
    assert verdict.setting == "RAPIDLY_SMTP_COUNTRY"
    assert "topsecretpw" not in verdict.message + verdict.how + report.format_table()
    assert "mailer" not in verdict.message


async def test_ses_smtp_and_gatewayapi_sms_are_located_by_host() -> None:
    # given
    settings = Settings(
        smtp_url="smtp+starttls://AKIAEXAMPLE:pw@email-smtp.eu-west-1.amazonaws.com:587",
        sms_url="https://gatewayapi.eu/rest/mtsms",
        database_country="FI",
        storage_country="FI",
    )

    # when
    report = await check_residency(settings)

    # then
    assert report.ok
    assert report.get("smtp").location == "IE"
    assert report.get("sms").location == "DK"


async def test_local_sms_gateway_declared_in_norway_is_fine() -> None:
    # given
    settings = Settings(
        sms_url="http://127.0.0.1:9090/send", sms_country="NO", database_country="FI", storage_country="FI"
    )

    # when
    verdict = (await check_residency(settings)).get("sms")

    # then
    assert (verdict.ok, verdict.location) == (True, "NO")
    assert "local SMS gateway host 127.0.0.1" in verdict.how


# -- the traces' collector (RAPIDLY_OTEL_ENDPOINT) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "country", "status", "setting"),
    [
        ("https://otlp.example.eu:4318", None, "UNDECLARED", "RAPIDLY_OTEL_COUNTRY"),
        ("http://127.0.0.1:4318", None, "UNDECLARED", "RAPIDLY_OTEL_COUNTRY"),
        ("https://otlp.example.eu:4318", "US", "OUTSIDE EEA", "RAPIDLY_OTEL_COUNTRY"),
        ("https://otel.us-east-1.amazonaws.com", None, "OUTSIDE EEA", "RAPIDLY_OTEL_ENDPOINT"),
        ("https://otel.eu-west-2.amazonaws.com", "FI", "OUTSIDE EEA", "RAPIDLY_OTEL_ENDPOINT"),
    ],
    ids=["custom host undeclared", "loopback undeclared", "declared US", "AWS Virginia", "AWS London, FI declared"],
)
async def test_a_collector_outside_the_eea_or_undeclared_is_refused_naming_the_setting(
    endpoint: str, country: str | None, status: str, setting: str
) -> None:
    # given
    settings = Settings(database_country="FI", storage_country="FI", otel_endpoint=endpoint, otel_country=country)

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("traces")
    assert (verdict.ok, verdict.status, verdict.setting) == (False, status, setting)
    assert setting in verdict.message
    with pytest.raises(ResidencyError, match=setting):
        await assert_resident(settings)


@pytest.mark.parametrize(
    ("endpoint", "country", "location", "how"),
    [
        ("https://otlp.example.eu:4318", "FI", "FI", "custom OTLP collector host otlp.example.eu"),
        ("http://127.0.0.1:4318", "SE", "SE", "local OTLP collector host 127.0.0.1"),
        ("https://otel.eu-north-1.amazonaws.com", None, "SE", "AWS region eu-north-1"),
    ],
)
async def test_a_collector_known_or_declared_in_the_eea_is_accepted(
    endpoint: str, country: str | None, location: str, how: str
) -> None:
    # given
    settings = Settings(database_country="FI", storage_country="FI", otel_endpoint=endpoint, otel_country=country)

    # when
    verdict = (await check_residency(settings)).get("traces")

    # then
    assert (verdict.ok, verdict.location) == (True, location)
    assert how in verdict.how


# -- report, run_check, assert_resident ------------------------------------------------------------------------


async def test_format_table_shows_every_backend_with_its_verdict(s3_endpoint: str) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-london", database_country=None, smtp_url="smtp://mail.example.org")

    # when
    table = (await check_residency(settings)).format_table()

    # then
    lines = table.splitlines()
    assert lines[0].split() == ["backend", "location", "how", "determined", "verdict"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"database", "storage", "smtp", "sms", "traces"}
    assert rows["database"].endswith("UNDECLARED")
    assert rows["storage"].endswith("OUTSIDE EEA") and " GB " in rows["storage"]
    assert rows["smtp"].endswith("UNDECLARED")
    assert rows["sms"].endswith("ok")
    assert rows["traces"].endswith("ok") and "not configured" in rows["traces"]


def test_run_check_fails_naming_country_and_setting(s3_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-london")

    # when
    code = run_check(settings)

    # then
    out = capsys.readouterr().out
    assert code == 1
    assert "storage: OUTSIDE EEA" in out
    assert "GB (United Kingdom)" in out
    assert "RAPIDLY_S3_BUCKET" in out


def test_run_check_passes_when_everything_is_in_the_eea(s3_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    settings = s3_settings(s3_endpoint, "rapidly-stockholm", database_country="SE")

    # when
    code = run_check(settings)

    # then
    out = capsys.readouterr().out
    assert code == 0
    assert "OUTSIDE EEA" not in out and "Fix:" not in out


async def test_assert_resident_names_every_failing_backend(s3_endpoint: str) -> None:
    # given two failures: storage in Zurich, database undeclared
    settings = s3_settings(s3_endpoint, "rapidly-zurich", database_country=None)

    # when
    with pytest.raises(ResidencyError) as caught:
        await assert_resident(settings)

    # then
    message = str(caught.value)
    assert "storage: OUTSIDE EEA" in message and "CH (Switzerland)" in message and "RAPIDLY_S3_BUCKET" in message
    assert "database: UNDECLARED" in message and "RAPIDLY_DATABASE_COUNTRY" in message
    assert [v.backend for v in caught.value.report.failures] == ["database", "storage"]


async def test_assert_resident_returns_the_report_when_all_is_well() -> None:
    # given
    settings = Settings(database_country="FI", storage_country="FI")

    # when
    report = await assert_resident(settings)

    # then
    assert report.ok
    assert [v.backend for v in report.verdicts] == ["database", "storage", "smtp", "sms", "traces"]


# -- the root key's KMS (RAPIDLY_KMS_*) ----------------------------------------------------------------------

KMS_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
#: A KMS on loopback that speaks the AWS API (moto, LocalStack): a custom endpoint, located by declaration.
LOCAL_KMS = "http://127.0.0.1:4566"


def kms_arn(region: str) -> str:
    return f"arn:aws:kms:{region}:111122223333:key/{KMS_KEY}"


def kms_settings(**kms: object) -> Settings:
    values: dict[str, object] = {"database_country": "FI", "storage_country": "FI", "kms_key_id": KMS_KEY}
    values.update(kms)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kms", "status", "country", "setting"),
    [
        pytest.param({"kms_region": "us-east-1"}, "OUTSIDE EEA", "US", "RAPIDLY_KMS_REGION", id="AWS Virginia"),
        pytest.param({"kms_region": "eu-west-2"}, "OUTSIDE EEA", "GB", "RAPIDLY_KMS_REGION", id="AWS London"),
        pytest.param({"kms_region": "eu-central-2"}, "OUTSIDE EEA", "CH", "RAPIDLY_KMS_REGION", id="AWS Zurich"),
        pytest.param(
            {"kms_region": "eu-central-2", "kms_endpoint_url": LOCAL_KMS, "kms_country": "FI"},
            "OUTSIDE EEA", "CH", "RAPIDLY_KMS_REGION", id="Zurich's name on a custom endpoint, FI declared",
        ),
        pytest.param(
            {"kms_region": "eu-north-1", "kms_endpoint_url": "https://kms.eu-west-2.amazonaws.com"},
            "OUTSIDE EEA", "GB", "RAPIDLY_KMS_ENDPOINT_URL", id="London endpoint host",
        ),
        pytest.param(
            {"kms_key_id": kms_arn("us-east-1")}, "OUTSIDE EEA", "US", "RAPIDLY_KMS_KEY_ID", id="key ARN in Virginia"
        ),
        pytest.param(
            {"kms_region": "eu-north-1", "kms_endpoint_url": LOCAL_KMS},
            "UNDECLARED", None, "RAPIDLY_KMS_COUNTRY", id="custom endpoint undeclared",
        ),
        pytest.param(
            {"kms_endpoint_url": "https://kms.example.eu", "kms_country": "US"},
            "OUTSIDE EEA", "US", "RAPIDLY_KMS_COUNTRY", id="custom endpoint declared US",
        ),
        pytest.param({}, "UNDECLARED", None, "RAPIDLY_KMS_REGION", id="no region"),
        pytest.param({"kms_region": "eu-mars-1"}, "UNKNOWN", None, "RAPIDLY_KMS_REGION", id="unknown region"),
    ],
)  # fmt: skip
async def test_a_kms_outside_the_eea_or_of_unknown_place_is_refused_naming_the_setting(
    kms: dict[str, object], status: str, country: str | None, setting: str
) -> None:
    # given
    settings = kms_settings(**kms)

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("kms")
    assert (verdict.ok, verdict.status, verdict.location, verdict.setting) == (False, status, country, setting)
    assert setting in verdict.message
    with pytest.raises(ResidencyError, match=setting):
        await assert_resident(settings)


@pytest.mark.parametrize(
    ("kms", "location", "how"),
    [
        pytest.param(
            {"kms_region": "eu-north-1"}, "SE", "RAPIDLY_KMS_REGION, AWS region eu-north-1", id="AWS Stockholm"
        ),
        pytest.param({"kms_key_id": kms_arn("eu-west-3")}, "FR", "AWS region eu-west-3", id="key ARN in Paris"),
        pytest.param(
            {"kms_endpoint_url": "https://kms.eu-central-1.amazonaws.com"},
            "DE", "endpoint host, AWS region eu-central-1", id="Frankfurt endpoint host",
        ),
        pytest.param(
            {"kms_region": "eu-north-1", "kms_endpoint_url": LOCAL_KMS, "kms_country": "fi"},
            "FI", "declared RAPIDLY_KMS_COUNTRY (KMS endpoint 127.0.0.1)", id="custom endpoint declared FI",
        ),
    ],
)  # fmt: skip
async def test_a_kms_known_or_declared_in_the_eea_is_accepted(kms: dict[str, object], location: str, how: str) -> None:
    # given
    settings = kms_settings(**kms)

    # when
    report = await check_residency(settings)

    # then
    verdict = report.get("kms")
    assert (verdict.ok, verdict.location) == (True, location)
    assert how in verdict.how
    assert report.ok


async def test_the_kms_is_a_backend_only_when_a_kms_key_is_set() -> None:
    # given
    without = Settings(database_country="FI", storage_country="FI")
    with_kms = kms_settings(kms_region="eu-north-1", kms_access_key_id="AKIAKMSKEYID", kms_secret_access_key="hush-kms")

    # when
    plain, kms = await check_residency(without), await check_residency(with_kms)

    # then the table has a kms row, after storage, which never shows the credentials
    assert [v.backend for v in plain.verdicts] == ["database", "storage", "smtp", "sms", "traces"]
    assert [v.backend for v in kms.verdicts] == ["database", "storage", "kms", "smtp", "sms", "traces"]
    table = kms.format_table()
    assert " SE " in next(line for line in table.splitlines() if line.startswith("kms "))
    assert "hush-kms" not in table and "AKIAKMSKEYID" not in table
