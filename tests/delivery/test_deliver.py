from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from yarl import URL

from wan_worker.delivery import (
    DeliveryConfig,
    DeliveryTarget,
    S3Settings,
    VideoInfo,
    deliver_video,
    inline_response_bytes,
    probe_video,
)
from wan_worker.errors import UploadFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .conftest import PutRecorder

SIGNATURE = "X-Amz-Signature=deadbeefsecret"


def config_for(tmp_path: Path, **changes: object) -> DeliveryConfig:
    """Fast retries, a tiny budget unless told otherwise, durable dir inside tmp_path."""
    values: dict[str, object] = {
        "durable_dir": tmp_path / "kept",
        "inline_budget_bytes": 100,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.02,
        "upload_attempts": 3,
    }
    values.update(changes)
    return DeliveryConfig(**values)  # type: ignore[arg-type]


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(URL(url, encoded=True)) as reply:
        assert reply.status == 200
        return await reply.read()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def sha256_of(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def contents(path: Path) -> bytes:
    return path.read_bytes()


def padded_copy(video: Path, destination: Path, extra: int) -> tuple[Path, VideoInfo]:
    """The clip followed by ``extra`` random bytes: a large upload whose facts are the clip's."""
    destination.write_bytes(video.read_bytes() + os.urandom(extra))
    info = dataclasses.replace(
        probe_video(video), bytes=destination.stat().st_size, sha256=sha256_of(destination)
    )
    return destination, info


# inline


async def test_video_under_budget_goes_inline_and_decodes_to_the_file(
    tmp_path: Path, video: Path
) -> None:
    info = probe_video(video)

    delivery = await deliver_video(
        video, info, config=config_for(tmp_path, inline_budget_bytes=9_000_000)
    )

    assert delivery.mode == "inline"
    assert delivery.video_base64 is not None
    assert base64.b64decode(delivery.video_base64) == contents(video)
    assert (delivery.bytes, delivery.sha256) == (info.bytes, info.sha256)
    assert files_under(video.parent) == [video]


async def test_inline_budget_counts_the_whole_response_exactly(
    tmp_path: Path, video: Path, s3_settings: S3Settings
) -> None:
    info = probe_video(video)
    overhead = len(json.dumps({"status": "COMPLETED", "job": "abc", "output": {}}))
    needed = inline_response_bytes(info, overhead)

    fits = await deliver_video(
        video,
        info,
        config=config_for(tmp_path, inline_budget_bytes=needed, s3=s3_settings),
        response_overhead_bytes=overhead,
    )
    one_byte_short = await deliver_video(
        video,
        info,
        config=config_for(tmp_path, inline_budget_bytes=needed - 1, s3=s3_settings),
        response_overhead_bytes=overhead,
    )

    assert fits.mode == "inline"
    assert overhead + len(json.dumps(fits.as_dict())) == needed
    assert needed - overhead > 4 * info.bytes // 3
    assert one_byte_short.mode == "s3"


# over budget with nowhere to go


async def test_over_budget_without_a_target_fails_and_keeps_the_video(
    tmp_path: Path, video: Path
) -> None:
    info = probe_video(video)
    config = config_for(tmp_path)

    with pytest.raises(UploadFailed, match="nowhere to upload it") as caught:
        await deliver_video(video, info, config=config, object_name="job-7.mp4")

    kept = config.durable_dir / "job-7.mp4"
    assert caught.value.code == "upload_failed"
    assert str(kept) in caught.value.message
    assert caught.value.details["kept_at"] == str(kept)
    assert sha256_of(kept) == info.sha256
    assert files_under(video.parent) == []


async def test_local_fallback_answers_with_the_kept_path(tmp_path: Path, video: Path) -> None:
    info = probe_video(video)
    config = config_for(tmp_path, local_fallback=True)

    delivery = await deliver_video(video, info, config=config)

    assert delivery.mode == "local"
    assert delivery.path == str(config.durable_dir / f"{info.sha256[:12]}-clip.mp4")
    assert sha256_of(delivery.path) == info.sha256
    assert delivery.url is None


# the worker's bucket (moto on 127.0.0.1)


async def test_over_budget_uploads_to_the_worker_bucket_and_presigns_a_get(
    tmp_path: Path, video: Path, s3_settings: S3Settings, s3: S3Client
) -> None:
    info = probe_video(video)
    config = config_for(tmp_path, s3=s3_settings, key_prefix="renders/")

    delivery = await deliver_video(video, info, config=config, object_name="job-1.mp4")

    assert delivery.mode == "s3"
    assert delivery.key == "renders/job-1.mp4"
    head = s3.head_object(Bucket=s3_settings.bucket, Key="renders/job-1.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["ContentLength"] == info.bytes
    assert delivery.url is not None and delivery.url.startswith("http://127.0.0.1:")
    assert await download(delivery.url) == contents(video)
    assert files_under(video.parent) == [video]
    assert files_under(tmp_path / "kept") == []


async def test_large_file_goes_up_in_parts(
    tmp_path: Path, s3_settings: S3Settings, s3: S3Client, video: Path
) -> None:
    big, info = padded_copy(video, tmp_path / "big.mp4", 11 * 1024 * 1024)
    mib5 = 5 * 1024 * 1024
    config = config_for(
        tmp_path, s3=s3_settings, multipart_threshold_bytes=mib5, multipart_chunk_bytes=mib5
    )

    delivery = await deliver_video(big, info, config=config)

    assert delivery.key is not None
    head = s3.head_object(Bucket=s3_settings.bucket, Key=delivery.key)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "video/mp4"
    assert delivery.url is not None
    assert hashlib.sha256(await download(delivery.url)).hexdigest() == info.sha256


async def test_request_s3_config_wins_over_the_worker_bucket(
    tmp_path: Path, video: Path, s3_settings: S3Settings, s3: S3Client
) -> None:
    other = f"{s3_settings.bucket}-job"
    s3.create_bucket(Bucket=other)
    job_bucket = S3Settings.from_runpod_s3_config(
        {
            "accessId": "AKIAJOB",
            "accessSecret": "job-secret",
            "bucketName": other,
            "endpointUrl": s3_settings.endpoint_url or "",
        }
    )
    info = probe_video(video)
    config = config_for(tmp_path, s3=s3_settings, inline_budget_bytes=9_000_000)

    delivery = await deliver_video(video, info, config=config, target=DeliveryTarget(s3=job_bucket))

    assert delivery.mode == "s3"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=other)["Contents"]] == [delivery.key]
    assert s3.list_objects_v2(Bucket=s3_settings.bucket)["KeyCount"] == 0


async def test_s3_endpoint_down_fails_and_keeps_the_video(
    tmp_path: Path, video: Path, closed_port: int
) -> None:
    down = S3Settings(
        bucket="videos",
        access_key_id="AKIADOWN",
        secret_access_key="down-secret",
        endpoint_url=f"http://127.0.0.1:{closed_port}",
    )
    info = probe_video(video)
    config = config_for(tmp_path, s3=down, upload_attempts=2)

    with pytest.raises(UploadFailed, match="kept at") as caught:
        await deliver_video(video, info, config=config)

    kept = Path(caught.value.details["kept_at"])
    assert str(kept) in caught.value.message
    assert files_under(tmp_path / "kept") == [kept]
    assert sha256_of(kept) == info.sha256
    assert "down-secret" not in caught.value.message


# a caller's presigned PUT (a recording aiohttp server on 127.0.0.1)


async def test_put_streams_the_file_with_its_type_and_length(
    tmp_path: Path, video: Path, put_server: PutRecorder
) -> None:
    info = probe_video(video)
    upload_url = f"{put_server.base_url}/bucket/job-1.mp4?{SIGNATURE}"

    delivery = await deliver_video(
        video, info, config=config_for(tmp_path), target=DeliveryTarget(upload_url=upload_url)
    )

    [request] = put_server.requests
    assert (request.method, request.path, request.query) == ("PUT", "/bucket/job-1.mp4", SIGNATURE)
    assert request.content_type == "video/mp4"
    assert request.content_length == str(info.bytes)
    assert request.transfer_encoding is None
    assert (request.body_bytes, request.body_sha256) == (info.bytes, info.sha256)
    assert delivery.mode == "put"
    assert delivery.url == f"{put_server.base_url}/bucket/job-1.mp4"
    assert delivery.note is not None and "download_url" in delivery.note


async def test_put_returns_the_callers_download_url(
    tmp_path: Path, video: Path, put_server: PutRecorder
) -> None:
    target = DeliveryTarget(
        upload_url=f"{put_server.base_url}/up?{SIGNATURE}",
        download_url="https://cdn.example/videos/job-1.mp4",
    )

    delivery = await deliver_video(
        video, probe_video(video), config=config_for(tmp_path), target=target
    )

    assert delivery.url == "https://cdn.example/videos/job-1.mp4"
    assert delivery.note is None


async def test_put_retries_transient_failures(
    tmp_path: Path, video: Path, put_server: PutRecorder
) -> None:
    put_server.statuses = [500, 500, 200]
    info = probe_video(video)

    delivery = await deliver_video(
        video,
        info,
        config=config_for(tmp_path),
        target=DeliveryTarget(upload_url=f"{put_server.base_url}/up?{SIGNATURE}"),
    )

    assert delivery.mode == "put"
    assert [r.body_sha256 for r in put_server.requests] == [info.sha256] * 3


async def test_put_that_keeps_failing_raises_and_keeps_only_the_video(
    tmp_path: Path, video: Path, put_server: PutRecorder
) -> None:
    put_server.statuses = [503]
    info = probe_video(video)
    config = config_for(tmp_path)

    with pytest.raises(UploadFailed, match="HTTP 503") as caught:
        await deliver_video(
            video,
            info,
            config=config,
            target=DeliveryTarget(upload_url=f"{put_server.base_url}/up?{SIGNATURE}"),
            object_name="job-9.mp4",
        )

    kept = config.durable_dir / "job-9.mp4"
    assert len(put_server.requests) == 3
    assert "after 3 attempt(s)" in caught.value.message
    assert str(kept) in caught.value.message
    assert SIGNATURE not in str(caught.value.as_dict())
    assert files_under(tmp_path) == [kept]
    assert sha256_of(kept) == info.sha256


async def test_put_refused_by_the_server_is_not_retried(
    tmp_path: Path, video: Path, put_server: PutRecorder
) -> None:
    put_server.statuses = [403]

    with pytest.raises(UploadFailed, match="HTTP 403 SignatureDoesNotMatch"):
        await deliver_video(
            video,
            probe_video(video),
            config=config_for(tmp_path),
            target=DeliveryTarget(upload_url=f"{put_server.base_url}/up?{SIGNATURE}"),
        )

    assert len(put_server.requests) == 1


async def test_put_to_a_closed_port_fails_and_keeps_the_video(
    tmp_path: Path, video: Path, closed_port: int
) -> None:
    config = config_for(tmp_path)

    with pytest.raises(UploadFailed, match="ClientConnectorError") as caught:
        await deliver_video(
            video,
            probe_video(video),
            config=config,
            target=DeliveryTarget(upload_url=f"http://127.0.0.1:{closed_port}/up?{SIGNATURE}"),
        )

    assert files_under(config.durable_dir) == [Path(caught.value.details["kept_at"])]


# secrets


async def test_logs_never_carry_credentials_or_signatures(
    tmp_path: Path,
    video: Path,
    s3_settings: S3Settings,
    put_server: PutRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="wan_worker")
    put_server.statuses = [500, 200]
    info = probe_video(video)
    config = config_for(tmp_path, s3=s3_settings)

    delivered = [
        await deliver_video(video, info, config=config),
        await deliver_video(
            video,
            info,
            config=config,
            target=DeliveryTarget(upload_url=f"{put_server.base_url}/up?{SIGNATURE}"),
        ),
    ]

    assert caplog.records
    for secret in ("secret-never-logged", "AKIATESTDELIVERY", SIGNATURE, "X-Amz-Signature"):
        assert secret not in caplog.text
        assert all(secret not in repr(delivery) for delivery in delivered)


def test_delivery_result_lists_mode_url_key_bytes_hash_and_video(tmp_path: Path) -> None:
    from wan_worker.delivery import Delivery

    info = VideoInfo(64, 48, 16.0, 17, 1.0625, "h264", False, 1234, "ab" * 32)

    shown = Delivery(mode="s3", video=info, url="https://x/y", key="renders/y").as_dict()

    assert shown == {
        "mode": "s3",
        "bytes": 1234,
        "sha256": "ab" * 32,
        "url": "https://x/y",
        "key": "renders/y",
        "video": dataclasses.asdict(info),
    }


async def test_video_stays_in_place_when_the_durable_dir_is_unusable(
    tmp_path: Path, video: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    config = config_for(tmp_path, durable_dir=blocker / "kept")

    with pytest.raises(UploadFailed) as caught:
        await deliver_video(video, probe_video(video), config=config)

    assert caught.value.details["kept_at"] == str(video)
    assert str(video) in caught.value.message
    assert files_under(video.parent) == [video]
