"""The service's settings, read from the environment once, in this one place.

Every front (RunPod handler, HTTP API, CLI) builds one :class:`ServiceSettings` with
:meth:`ServiceSettings.from_env` and hands it to the pipeline; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wan_worker.delivery import DEFAULT_INLINE_BUDGET_BYTES, DeliveryConfig, S3Settings
from wan_worker.errors import InvalidInput, Problem
from wan_worker.logs import LOG_LEVELS
from wan_worker.media import InputLimits

_T = TypeVar("_T")

DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _default_root() -> Path:
    return Path(tempfile.gettempdir()) / "wan-worker"


@dataclass(frozen=True)
class ServiceSettings:
    """Where ComfyUI is, how long a job may take, what inputs may be, and where videos go."""

    comfyui_url: str = DEFAULT_COMFYUI_URL
    comfyui_input_dir: Path | None = None
    """ComfyUI's input folder when it is on this machine: job uploads are then removed after."""
    comfyui_output_dir: Path | None = None
    """ComfyUI's output folder when it is on this machine: job outputs are then removed after."""
    comfyui_ready_timeout_s: float = 120.0
    """How long a warm-up or a lost ComfyUI is waited for before the worker gives up on it."""
    job_timeout_s: float = 1800.0
    """Deadline of a job that gives no ``timeout_s``."""
    max_job_timeout_s: float = 7200.0
    """The largest ``timeout_s`` a request may ask for."""
    stall_timeout_s: float | None = 600.0
    """A queued prompt with no event for this long while ComfyUI is not running it fails."""
    work_dir: Path = field(default_factory=lambda: _default_root() / "jobs")
    """Per-job temporary folders are made (and removed) here."""
    input_limits: InputLimits = field(default_factory=InputLimits)
    delivery: DeliveryConfig = field(
        default_factory=lambda: DeliveryConfig(durable_dir=_default_root() / "kept")
    )
    keep_files: bool = False
    """Debugging: keep ComfyUI's copies of inputs and outputs."""
    warm_up: bool = False
    """Wait for ComfyUI and load its node schemas before the first job."""
    warm_up_request: dict[str, Any] | None = None
    """A job run (and its video discarded) during warm-up, so the models are loaded before the
    first real job; setting it implies ``warm_up``."""
    log_level: str = "INFO"
    log_json: bool = False
    """One JSON object per log line instead of plain text (every line carries the job id)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read every setting from ``env`` (default: the process environment); see docs/api.md."""
        env = os.environ if env is None else env
        read = EnvReader(env)
        root = _default_root()
        durable = read.value("DURABLE_OUTPUT_DIR", Path, root / "kept")
        warm_up_request = read.json_object("WARM_UP_REQUEST")
        settings = cls(
            comfyui_url=read.value("COMFYUI_URL", str, DEFAULT_COMFYUI_URL),
            comfyui_input_dir=read.optional("COMFYUI_INPUT_DIR", Path),
            comfyui_output_dir=read.optional("COMFYUI_OUTPUT_DIR", Path),
            comfyui_ready_timeout_s=read.positive("COMFYUI_READY_TIMEOUT_S", 120.0),
            job_timeout_s=read.positive("JOB_TIMEOUT_S", 1800.0),
            max_job_timeout_s=read.positive("MAX_JOB_TIMEOUT_S", 7200.0),
            stall_timeout_s=read.positive("STALL_TIMEOUT_S", 600.0) or None,
            work_dir=read.value("WORK_DIR", Path, root / "jobs"),
            input_limits=InputLimits(
                max_image_bytes=int(read.positive("INPUT_MAX_IMAGE_BYTES", 25 * 1024 * 1024)),
                max_audio_bytes=int(read.positive("INPUT_MAX_AUDIO_BYTES", 50 * 1024 * 1024)),
                max_pixels=int(read.positive("INPUT_MAX_PIXELS", 40_000_000)),
                max_audio_seconds=read.positive("INPUT_MAX_AUDIO_SECONDS", 120.0),
                url_timeout_s=read.positive("INPUT_URL_TIMEOUT_S", 30.0),
                allowed_path_roots=tuple(
                    Path(p) for p in read.value("INPUT_PATH_ROOTS", str, "").split(os.pathsep) if p
                ),
                allow_private_networks=read.flag("INPUT_ALLOW_PRIVATE_NETWORKS"),
                allowed_origins=tuple(
                    o.strip()
                    for o in read.value("INPUT_ALLOWED_ORIGINS", str, "").split(",")
                    if o.strip()
                ),
            ),
            delivery=DeliveryConfig(
                durable_dir=durable,
                inline_budget_bytes=int(
                    read.positive("INLINE_BUDGET_BYTES", DEFAULT_INLINE_BUDGET_BYTES)
                ),
                s3=S3Settings.from_env(env),
                key_prefix=read.value("BUCKET_KEY_PREFIX", str, "wan-worker/"),
                presign_expiry_s=int(read.positive("BUCKET_PRESIGN_EXPIRY_S", 3600)),
            ),
            keep_files=read.flag("KEEP_FILES"),
            warm_up=read.flag("WARM_UP") or warm_up_request is not None,
            warm_up_request=warm_up_request,
            log_level=read.choice("LOG_LEVEL", LOG_LEVELS, "INFO"),
            log_json=read.flag("LOG_JSON"),
        )
        read.raise_if_any()
        return settings


class EnvReader:
    """Parses environment variables, collecting every bad one before failing.

    Every front's own settings (HTTP API, managed ComfyUI, model downloads) read with it too.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def value(self, name: str, kind: Callable[[str], _T], default: _T) -> _T:
        raw = self.env.get(name, "").strip()
        return kind(raw) if raw else default

    def optional(self, name: str, kind: Callable[[str], _T]) -> _T | None:
        raw = self.env.get(name, "").strip()
        return kind(raw) if raw else None

    def positive(self, name: str, default: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value < 0:
            self.problems.append(
                Problem(message=f"{name} must be a number >= 0", field=name, value=raw)
            )
            return default
        return value

    def whole(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        """A whole number from ``low`` to ``high`` (no upper bound when None)."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            limits = f"from {low} to {high}" if high is not None else f">= {low}"
            self.problems.append(
                Problem(message=f"{name} must be a whole number {limits}", field=name, value=raw)
            )
            return default
        return value

    def json_object(self, name: str) -> dict[str, Any] | None:
        """A JSON object given inline, or as ``@path`` to a file holding one."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        try:
            text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
            value = json.loads(text)
        except (OSError, ValueError) as err:
            value = err
        if not isinstance(value, dict):
            reason = str(value) if isinstance(value, Exception) else "not a JSON object"
            self.problems.append(
                Problem(
                    message=f"{name} must be a JSON object or @file holding one ({reason})",
                    field=name,
                )
            )
            return None
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """One of ``choices`` (matched without regard to case)."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        for choice in choices:
            if raw.lower() == choice.lower():
                return choice
        self.problems.append(
            Problem(
                message=f"{name} must be one of {', '.join(choices)}",
                field=name,
                value=raw,
                suggestion=default,
            )
        )
        return default

    def flag(self, name: str) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if raw in _TRUE:
            return True
        if raw not in _FALSE:
            self.problems.append(
                Problem(message=f"{name} must be true or false", field=name, value=raw)
            )
        return False

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidInput(
                "the worker's environment is misconfigured: "
                + "; ".join(p.message for p in self.problems),
                problems=self.problems,
            )
