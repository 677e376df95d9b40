"""Delivery: probe the finished video, return it inline or upload it, and never lose it."""

from wan_worker.delivery.config import (
    DEFAULT_INLINE_BUDGET_BYTES,
    RUNPOD_RUN_LIMIT_BYTES,
    RUNPOD_RUNSYNC_LIMIT_BYTES,
    DeliveryConfig,
    S3Settings,
)
from wan_worker.delivery.deliver import (
    Delivery,
    DeliveryMode,
    DeliveryTarget,
    deliver_video,
    inline_response_bytes,
)
from wan_worker.delivery.probe import VideoInfo, probe_video

__all__ = [
    "DEFAULT_INLINE_BUDGET_BYTES",
    "RUNPOD_RUNSYNC_LIMIT_BYTES",
    "RUNPOD_RUN_LIMIT_BYTES",
    "Delivery",
    "DeliveryConfig",
    "DeliveryMode",
    "DeliveryTarget",
    "S3Settings",
    "VideoInfo",
    "deliver_video",
    "inline_response_bytes",
    "probe_video",
]
