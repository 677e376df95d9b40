"""Hand a finished video to its caller: inline when the response allows, else upload it.

A finished video is never dropped: when no upload works, it is moved into the durable directory
and the error names where it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from wan_worker.delivery.config import DeliveryConfig, S3Settings, strip_query
from wan_worker.delivery.inline import base64_file, base64_length
from wan_worker.delivery.probe import VideoInfo
from wan_worker.delivery.put import put_file
from wan_worker.delivery.retry import AttemptFailed
from wan_worker.delivery.s3 import upload_to_s3
from wan_worker.errors import UploadFailed

log = logging.getLogger(__name__)

DeliveryMode = Literal["inline", "s3", "put", "local"]

PUT_NOTE = (
    "Uploaded to the presigned upload_url; url is that address without its signature and "
    "downloads only if the bucket allows it. Pass download_url to get a link back instead."
)


@dataclass(frozen=True)
class DeliveryTarget:
    """Where one request asks for its video; a request's target wins over the worker's bucket.

    ``upload_url`` is a presigned PUT (``download_url``, if given, is what the response returns
    for it); ``s3`` is a bucket from the job, e.g. RunPod's ``s3Config``.
    """

    upload_url: str | None = field(default=None, repr=False)
    download_url: str | None = field(default=None, repr=False)
    s3: S3Settings | None = None


@dataclass(frozen=True)
class Delivery:
    """How the video was handed over; ``as_dict()`` is its part of the response."""

    mode: DeliveryMode
    video: VideoInfo
    url: str | None = field(default=None, repr=False)
    key: str | None = None
    path: str | None = None
    video_base64: str | None = field(default=None, repr=False)
    note: str | None = None

    @property
    def bytes(self) -> int:
        return self.video.bytes

    @property
    def sha256(self) -> str:
        return self.video.sha256

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "bytes": self.bytes, "sha256": self.sha256}
        for name in ("url", "key", "path", "note", "video_base64"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["video"] = self.video.as_dict()
        return out


async def deliver_video(
    path: Path | str,
    info: VideoInfo,
    *,
    config: DeliveryConfig,
    target: DeliveryTarget | None = None,
    response_overhead_bytes: int = 0,
    object_name: str | None = None,
) -> Delivery:
    """Deliver the video at ``path`` (already probed as ``info``).

    Order: the request's ``upload_url``, then its ``s3`` bucket (a caller who names a target gets
    the video there); otherwise inline while ``response_overhead_bytes`` (the serialised response
    without this delivery) plus this delivery, base64 included, fits ``inline_budget_bytes``;
    otherwise the worker's own bucket; otherwise "local" when allowed, else UploadFailed. Every
    failure keeps the video in ``durable_dir`` and names it. ``object_name`` names the object
    and the kept file (default: a hash prefix and the file name).
    """
    path = Path(path)
    name = object_name or f"{info.sha256[:12]}-{path.name}"
    target = target or DeliveryTarget()
    if target.upload_url:
        return await _deliver_put(path, info, target, config, name)
    if target.s3:
        return await _deliver_s3(
            path, info, target.s3, config, name, source="the request's s3Config"
        )
    if inline_response_bytes(info, response_overhead_bytes) <= config.inline_budget_bytes:
        encoded = await asyncio.to_thread(base64_file, path, info.bytes)
        log.info("delivering %s inline (%d bytes)", path.name, info.bytes)
        return Delivery(mode="inline", video=info, video_base64=encoded)
    if config.s3:
        return await _deliver_s3(path, info, config.s3, config, name, source="the worker's bucket")
    kept = await asyncio.to_thread(keep_video, path, config.durable_dir, name)
    if config.local_fallback:
        log.info("video over the inline budget and no upload target: kept at %s", kept)
        return Delivery(mode="local", video=info, path=str(kept))
    raise UploadFailed(
        f"The video ({info.bytes} bytes) does not fit the {config.inline_budget_bytes}-byte "
        "response budget once base64-encoded, and there is nowhere to upload it: give an "
        f"upload_url or s3Config, or set the BUCKET_* variables. It is kept at {kept}.",
        details={
            "kept_at": str(kept),
            "bytes": info.bytes,
            "response_bytes_needed": inline_response_bytes(info, response_overhead_bytes),
            "inline_budget_bytes": config.inline_budget_bytes,
        },
    )


def inline_response_bytes(info: VideoInfo, response_overhead_bytes: int) -> int:
    """Exact size of the response if the video went inline (base64 text needs no JSON escapes)."""
    shell = Delivery(mode="inline", video=info, video_base64="").as_dict()
    return response_overhead_bytes + len(json.dumps(shell)) + base64_length(info.bytes)


def keep_video(path: Path, durable_dir: Path, name: str) -> Path:
    """Move the video into ``durable_dir``; if that fails, leave it where it is and say so."""
    destination = durable_dir / name
    try:
        durable_dir.mkdir(parents=True, exist_ok=True)
        if destination.exists() and destination.samefile(path):
            return destination
        shutil.move(path, destination)
    except OSError as exc:
        log.error("could not move %s into %s (%s); it stays where it is", path, durable_dir, exc)
        if path.exists() and destination.exists() and not destination.samefile(path):
            destination.unlink()
        return path
    return destination


async def _deliver_put(
    path: Path, info: VideoInfo, target: DeliveryTarget, config: DeliveryConfig, name: str
) -> Delivery:
    assert target.upload_url is not None
    where = strip_query(target.upload_url)
    try:
        attempts = await put_file(target.upload_url, path, info.bytes, config=config)
    except AttemptFailed as exc:
        exc.reason = f"{exc.reason}, after {exc.attempts} attempt(s)"
        raise await _upload_failed(path, config, name, f"upload_url {where}", exc) from None
    log.info("uploaded %s to %s (%d attempts)", path.name, where, attempts)
    if target.download_url:
        return Delivery(mode="put", video=info, url=target.download_url)
    return Delivery(mode="put", video=info, url=where, note=PUT_NOTE)


async def _deliver_s3(
    path: Path,
    info: VideoInfo,
    settings: S3Settings,
    config: DeliveryConfig,
    name: str,
    *,
    source: str,
) -> Delivery:
    key = f"{config.key_prefix}{name}"
    where = f"s3://{settings.bucket}/{key} ({source})"
    try:
        url = await upload_to_s3(path, key, settings, config=config)
    except AttemptFailed as exc:
        raise await _upload_failed(path, config, name, where, exc) from None
    log.info("uploaded %s to %s", path.name, where)
    return Delivery(mode="s3", video=info, url=url, key=key)


async def _upload_failed(
    path: Path, config: DeliveryConfig, name: str, where: str, exc: AttemptFailed
) -> UploadFailed:
    kept = await asyncio.to_thread(keep_video, path, config.durable_dir, name)
    log.error("upload to %s failed: %s; video kept at %s", where, exc.reason, kept)
    return UploadFailed(
        f"Uploading the video to {where} failed ({exc.reason}); it is kept at {kept}.",
        details={"kept_at": str(kept), "target": where, "reason": exc.reason},
    )
