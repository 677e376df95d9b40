"""Job progress as fronts report it: the pipeline's own stages around ComfyUI's, and a throttle."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from wan_worker.comfy import Progress

JobStage = Literal[
    "inputs",
    "queued",
    "preparing",
    "loading",
    "encoding_text",
    "sampling",
    "decoding",
    "saving",
    "other",
    "done",
    "delivering",
]
"""``inputs`` (fetch, decode, fit), then ComfyUI's stages, then ``delivering`` the video."""

_PERCENT = re.compile(r"\(\d+%\)$")
_COMFY_SHARE = 95.0
"""ComfyUI's progress fills the bar up to here; delivering is the rest."""


@dataclass(frozen=True)
class JobProgress:
    """One progress update of a job."""

    stage: JobStage
    percent: float
    message: str
    step: int | None = None
    steps: int | None = None
    node_id: str | None = None

    @classmethod
    def from_comfy(cls, progress: Progress) -> JobProgress:
        percent = round(progress.percent * _COMFY_SHARE / 100, 1)
        return cls(
            stage=progress.stage,
            percent=percent,
            message=_PERCENT.sub(f"({percent:.0f}%)", progress.message),
            step=progress.step,
            steps=progress.steps,
            node_id=progress.node_id,
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


INPUTS = JobProgress("inputs", 0.0, "fetching and decoding inputs (0%)")
DELIVERING = JobProgress("delivering", _COMFY_SHARE, f"delivering the video ({_COMFY_SHARE:.0f}%)")

JobProgressCallback = Callable[[JobProgress], Awaitable[None] | None]


class ProgressThrottle:
    """Lets an update through at most once per ``interval_s`` (the first always passes)."""

    def __init__(
        self, interval_s: float = 1.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """Whether an update may be sent now; if so, the interval starts again."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True
