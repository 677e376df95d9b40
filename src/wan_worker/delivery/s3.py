"""Upload a file to an S3-compatible bucket with boto3 (in a thread) and presign a GET for it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from wan_worker.delivery.config import DeliveryConfig, S3Settings
from wan_worker.delivery.retry import AttemptFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client(settings: S3Settings, config: DeliveryConfig) -> S3Client:
    """A client whose own retries (botocore "standard" mode: jittered exponential backoff per
    request, so one failed part of a multipart upload is retried alone) use the configured count."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region or "us-east-1",
        config=Config(
            signature_version="s3v4",
            connect_timeout=config.connect_timeout_s,
            read_timeout=config.read_timeout_s,
            retries={"mode": "standard", "total_max_attempts": max(1, config.upload_attempts)},
            s3={"addressing_style": settings.addressing_style},
        ),
    )


async def upload_to_s3(
    path: Path, key: str, settings: S3Settings, *, config: DeliveryConfig
) -> str:
    """Upload ``path`` as ``key`` (video/mp4, multipart above the threshold); returns a presigned
    GET URL valid for ``config.presign_expiry_s``. Raises AttemptFailed with a loggable reason."""
    transfer = TransferConfig(
        multipart_threshold=config.multipart_threshold_bytes,
        multipart_chunksize=config.multipart_chunk_bytes,
        max_concurrency=config.multipart_concurrency,
        preferred_transfer_client="classic",
    )

    def upload() -> str:
        client = s3_client(settings, config)
        client.upload_file(
            str(path),
            settings.bucket,
            key,
            ExtraArgs={"ContentType": "video/mp4"},
            Config=transfer,
        )
        return client.generate_presigned_url(
            "get_object",
            Params={"Bucket": settings.bucket, "Key": key},
            ExpiresIn=config.presign_expiry_s,
        )

    try:
        return await asyncio.to_thread(upload)
    except (Boto3Error, BotoCoreError, ClientError) as exc:
        # boto's messages name the endpoint, bucket and key, never the credentials.
        raise AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=False) from None
