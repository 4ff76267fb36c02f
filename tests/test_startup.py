"""`rapidly serve` refuses to start when a guard fails, and says which setting or plugin to fix."""

from __future__ import annotations

import pytest

from tests.conftest import free_port, run_cli
from tests.support.plugins import PURPOSELESS, install_plugin


def serve(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return run_cli(env, "serve", "--port", str(free_port()), timeout=60)


def test_a_plugin_field_without_purpose_stops_the_start_naming_plugin_and_field(env, tmp_path):
    # given
    extra = install_plugin(tmp_path, "purposeless", PURPOSELESS)

    # when
    result = serve({**env, **extra})

    # then
    assert result.returncode != 0
    assert "purposeless" in result.stderr and "shoe_size" in result.stderr
    assert "purpose" in result.stderr
    assert "Application startup complete" not in result.stderr


def test_a_backend_without_a_declared_country_stops_the_start_naming_the_setting(env):
    # given
    without_country = {k: v for k, v in env.items() if k != "RAPIDLY_DATABASE_COUNTRY"}

    # when
    result = serve(without_country)

    # then
    assert result.returncode != 0
    assert "RAPIDLY_DATABASE_COUNTRY" in result.stderr
    assert "Application startup complete" not in result.stderr


def test_a_backend_declared_outside_the_eea_stops_the_start(env):
    # when
    result = serve({**env, "RAPIDLY_STORAGE_COUNTRY": "CH"})

    # then
    assert result.returncode != 0
    assert "CH" in result.stderr and "RAPIDLY_STORAGE_COUNTRY" in result.stderr


@pytest.mark.parametrize(("bucket", "country"), [("rapidly-london", "GB"), ("rapidly-zurich", "CH")])
def test_a_bucket_in_london_or_zurich_fails_check_and_stops_serve(env, s3_endpoint, bucket, country):
    # given: credentials through Rapidly's own settings
    s3 = {
        **env,
        "RAPIDLY_STORAGE": "s3",
        "RAPIDLY_S3_ENDPOINT_URL": s3_endpoint,
        "RAPIDLY_S3_BUCKET": bucket,
        "RAPIDLY_S3_ACCESS_KEY_ID": "testing",
        "RAPIDLY_S3_SECRET_ACCESS_KEY": "testing",
    }

    # when
    checked = run_cli(s3, "check")
    served = serve(s3)

    # then
    assert checked.returncode == 1
    storage_row = next(line for line in checked.stdout.splitlines() if line.startswith("storage"))
    assert country in storage_row and "OUTSIDE EEA" in storage_row
    assert served.returncode != 0
    assert country in served.stderr and "RAPIDLY_S3_BUCKET" in served.stderr


def test_a_swiss_provider_endpoint_fails_check_and_stops_serve_without_contacting_it(env):
    # given
    exoscale = {
        **env,
        "RAPIDLY_STORAGE": "s3",
        "RAPIDLY_S3_ENDPOINT_URL": "https://sos-ch-gva-2.exo.io",
        "RAPIDLY_S3_BUCKET": "media",
    }

    # when
    checked = run_cli(exoscale, "check")
    served = serve(exoscale)

    # then
    assert checked.returncode == 1
    assert "CH" in checked.stdout and "RAPIDLY_S3_ENDPOINT_URL" in checked.stdout
    assert served.returncode != 0
    assert "CH" in served.stderr and "RAPIDLY_S3_ENDPOINT_URL" in served.stderr
