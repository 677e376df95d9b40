"""How finished videos leave the worker: inline budget, buckets, the place of last resort."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from wan_worker.errors import InvalidInput, Problem

AddressingStyle = Literal["auto", "path", "virtual"]

# RunPod caps a job's payload and its result: 10 MB through /run, 20 MB through /runsync.
# 9 MB for the whole response leaves room for RunPod's own envelope on the smaller of the two.
RUNPOD_RUN_LIMIT_BYTES = 10_000_000
RUNPOD_RUNSYNC_LIMIT_BYTES = 20_000_000
DEFAULT_INLINE_BUDGET_BYTES = 9_000_000

# s3.<region>.amazonaws.com, s3-<region>.amazonaws.com, s3.<region>.backblazeb2.com, ...
_S3_REGION_HOST = re.compile(r"(?:^|\.)s3[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.")


@dataclass(frozen=True)
class S3Settings:
    """One S3-compatible bucket and the credentials to write to it; secrets stay out of repr."""

    bucket: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: AddressingStyle = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings | None:
        """Read RunPod's conventional bucket variables; None when no bucket is configured.

        BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY are the names RunPod
        documents. The endpoint may name the bucket in its host (``https://my-bucket.s3.us-east-1.
        amazonaws.com``), as RunPod's docs do; BUCKET_NAME, when set, names it instead.
        BUCKET_REGION and BUCKET_ADDRESSING_STYLE override what the endpoint implies.
        """
        endpoint = env.get("BUCKET_ENDPOINT_URL", "").strip()
        access_key = env.get("BUCKET_ACCESS_KEY_ID", "").strip()
        secret_key = env.get("BUCKET_SECRET_ACCESS_KEY", "").strip()
        bucket = env.get("BUCKET_NAME", "").strip()
        if not (endpoint or access_key or secret_key or bucket):
            return None
        missing = [
            name
            for name, value in (
                ("BUCKET_ENDPOINT_URL", endpoint),
                ("BUCKET_ACCESS_KEY_ID", access_key),
                ("BUCKET_SECRET_ACCESS_KEY", secret_key),
            )
            if not value
        ]
        if missing:
            raise InvalidInput(
                f"Bucket upload is half configured: set {', '.join(missing)} as well.",
                problems=[Problem(message="missing setting", field=name) for name in missing],
            )
        if not bucket:
            bucket, endpoint = _split_bucket_from_endpoint(endpoint)
        style = env.get("BUCKET_ADDRESSING_STYLE", "auto").strip() or "auto"
        if style not in ("auto", "path", "virtual"):
            raise InvalidInput(
                "BUCKET_ADDRESSING_STYLE must be auto, path or virtual.",
                problems=[Problem(message="unknown style", field="BUCKET_ADDRESSING_STYLE")],
            )
        return cls(
            bucket=bucket,
            access_key_id=access_key,
            secret_access_key=secret_key,
            endpoint_url=endpoint,
            region=env.get("BUCKET_REGION", "").strip() or _region_of(endpoint),
            addressing_style=style,  # type: ignore[arg-type]
        )

    @classmethod
    def from_runpod_s3_config(cls, s3_config: Mapping[str, Any]) -> S3Settings:
        """Read a job's ``s3Config`` ({accessId, accessSecret, bucketName, endpointUrl})."""
        required = ("accessId", "accessSecret", "bucketName", "endpointUrl")
        bad = [k for k in required if not isinstance(s3_config.get(k), str) or not s3_config[k]]
        if bad:
            raise InvalidInput(
                f"s3Config needs non-empty strings for {', '.join(bad)}.",
                problems=[
                    Problem(message="missing or not a string", field=f"s3Config.{k}") for k in bad
                ],
            )
        endpoint = str(s3_config["endpointUrl"])
        region = s3_config.get("region")
        return cls(
            bucket=str(s3_config["bucketName"]),
            access_key_id=str(s3_config["accessId"]),
            secret_access_key=str(s3_config["accessSecret"]),
            endpoint_url=endpoint,
            region=region if isinstance(region, str) and region else _region_of(endpoint),
        )


@dataclass(frozen=True)
class DeliveryConfig:
    """Delivery policy; the service's settings object fills it from the environment once."""

    durable_dir: Path
    """Where a video that could not be delivered is kept (moved), so it is never lost."""
    inline_budget_bytes: int = DEFAULT_INLINE_BUDGET_BYTES
    """Ceiling for the WHOLE response, base64 growth included, when the video goes inline."""
    s3: S3Settings | None = None
    """The worker's own bucket (from BUCKET_* variables); used when a video is over budget."""
    key_prefix: str = "wan-worker/"
    presign_expiry_s: int = 3600
    local_fallback: bool = False
    """Over budget with nowhere to upload: keep it in durable_dir and answer mode "local"
    (CLI, a server sharing its disk) instead of failing."""
    upload_attempts: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 15.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    multipart_threshold_bytes: int = 16 * 1024 * 1024
    multipart_chunk_bytes: int = 16 * 1024 * 1024
    multipart_concurrency: int = 4


def strip_query(url: str) -> str:
    """The URL without query or fragment: a presigned URL's signature must not be logged."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _split_bucket_from_endpoint(endpoint: str) -> tuple[str, str]:
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    labels = host.split(".")
    if len(labels) < 3 or all(label.isdigit() for label in labels):
        raise InvalidInput(
            "Set BUCKET_NAME: BUCKET_ENDPOINT_URL does not name a bucket in its host "
            "(expected https://<bucket>.<service host>).",
            problems=[Problem(message="no bucket in the endpoint host", field="BUCKET_NAME")],
        )
    netloc = ".".join(labels[1:]) + (f":{parts.port}" if parts.port else "")
    return labels[0], urlunsplit((parts.scheme, netloc, "", "", ""))


def _region_of(endpoint: str | None) -> str | None:
    match = _S3_REGION_HOST.search(urlsplit(endpoint or "").hostname or "")
    return match.group("region") if match else None
