"""Prometheus metrics for the HTTP API, in a registry of their own (no process-global state)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from wan_worker.api.store import TERMINAL_STATUSES

STAGE_BUCKETS_S = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
)  # fmt: skip
"""Stage durations span a 50 ms input decode to an hour-long 720p generation."""


class Metrics:
    """Job outcomes, stage durations, queue depth, jobs running, and whether ComfyUI answers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._jobs = Counter(
            "wan_worker_jobs",
            "Jobs finished, by final status.",
            ["status"],
            registry=self.registry,
        )
        self._stages = Histogram(
            "wan_worker_job_stage_seconds",
            "Seconds each stage of a finished job took (input, queue_wait, execution, total...).",
            ["stage"],
            buckets=STAGE_BUCKETS_S,
            registry=self.registry,
        )
        self._queue_depth = Gauge(
            "wan_worker_queue_depth", "Jobs waiting to start.", registry=self.registry
        )
        self._in_progress = Gauge(
            "wan_worker_jobs_in_progress", "Jobs running now.", registry=self.registry
        )
        self._comfyui_up = Gauge(
            "wan_worker_comfyui_up",
            "1 when ComfyUI answered the last check, else 0.",
            registry=self.registry,
        )
        for status in sorted(TERMINAL_STATUSES):
            self._jobs.labels(status=status)

    def job_finished(self, status: str, timings: Mapping[str, float]) -> None:
        """Count a finished job and observe each ``<stage>_s`` timing it reported."""
        self._jobs.labels(status=status).inc()
        for key, seconds in timings.items():
            if not key.endswith("_s") or isinstance(seconds, bool):
                continue
            if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
                continue
            self._stages.labels(stage=key.removesuffix("_s")).observe(seconds)

    def set_queue_depth(self, n: int) -> None:
        """How many jobs wait to start."""
        self._queue_depth.set(n)

    def set_in_progress(self, n: int) -> None:
        """How many jobs run now."""
        self._in_progress.set(n)

    def set_comfyui_up(self, up: bool) -> None:
        """Whether ComfyUI answered the latest check."""
        self._comfyui_up.set(1 if up else 0)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for a ``/metrics`` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
