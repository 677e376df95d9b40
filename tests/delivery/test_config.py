from __future__ import annotations

import pytest

from wan_worker.delivery import S3Settings
from wan_worker.errors import InvalidInput

RUNPOD_ENV = {
    "BUCKET_ENDPOINT_URL": "https://wan-videos.s3.eu-central-1.amazonaws.com",
    "BUCKET_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "BUCKET_SECRET_ACCESS_KEY": "very-secret",
}


def test_no_bucket_variables_mean_no_bucket() -> None:
    assert S3Settings.from_env({"HOME": "/root"}) is None


def test_runpod_endpoint_names_the_bucket_and_region_in_its_host() -> None:
    settings = S3Settings.from_env(RUNPOD_ENV)

    assert settings is not None
    assert settings.bucket == "wan-videos"
    assert settings.endpoint_url == "https://s3.eu-central-1.amazonaws.com"
    assert settings.region == "eu-central-1"
    assert settings.access_key_id == "AKIAEXAMPLE"


def test_bucket_name_variable_keeps_the_endpoint_as_given() -> None:
    env = {
        **RUNPOD_ENV,
        "BUCKET_ENDPOINT_URL": "http://127.0.0.1:9000",
        "BUCKET_NAME": "renders",
        "BUCKET_REGION": "auto",
        "BUCKET_ADDRESSING_STYLE": "path",
    }

    settings = S3Settings.from_env(env)

    assert settings == S3Settings(
        bucket="renders",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="very-secret",
        endpoint_url="http://127.0.0.1:9000",
        region="auto",
        addressing_style="path",
    )


def test_an_endpoint_without_a_bucket_asks_for_bucket_name() -> None:
    env = {**RUNPOD_ENV, "BUCKET_ENDPOINT_URL": "http://127.0.0.1:9000"}

    with pytest.raises(InvalidInput, match="Set BUCKET_NAME"):
        S3Settings.from_env(env)


def test_half_configured_bucket_names_what_is_missing() -> None:
    env = {"BUCKET_ENDPOINT_URL": RUNPOD_ENV["BUCKET_ENDPOINT_URL"]}

    with pytest.raises(InvalidInput, match="BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY"):
        S3Settings.from_env(env)


def test_unknown_addressing_style_is_refused() -> None:
    with pytest.raises(InvalidInput, match="BUCKET_ADDRESSING_STYLE"):
        S3Settings.from_env({**RUNPOD_ENV, "BUCKET_ADDRESSING_STYLE": "sideways"})


def test_runpod_s3_config_becomes_settings() -> None:
    settings = S3Settings.from_runpod_s3_config(
        {
            "accessId": "AKIAJOB",
            "accessSecret": "job-secret",
            "bucketName": "job-bucket",
            "endpointUrl": "https://s3.us-west-002.backblazeb2.com",
        }
    )

    assert settings.bucket == "job-bucket"
    assert settings.endpoint_url == "https://s3.us-west-002.backblazeb2.com"
    assert settings.region == "us-west-002"


def test_runpod_s3_config_missing_fields_are_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        S3Settings.from_runpod_s3_config({"accessId": "AKIAJOB", "bucketName": 3})

    fields = [problem.field for problem in caught.value.problems]
    assert fields == ["s3Config.accessSecret", "s3Config.bucketName", "s3Config.endpointUrl"]


def test_settings_repr_hides_the_credentials() -> None:
    settings = S3Settings.from_env(RUNPOD_ENV)

    assert "very-secret" not in repr(settings)
    assert "AKIAEXAMPLE" not in repr(settings)
