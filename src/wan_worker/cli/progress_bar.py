"""A job's progress in a terminal: one redrawn line on a TTY, plain lines anywhere else.

Each update shows the stage, the sampler step, the percent, the time since the start and an
estimate of the time left (from the pace so far).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

_BAR_CELLS = 20


@dataclass(frozen=True)
class Update:
    """What a front knows of a job at one moment, wherever it came from."""

    stage: str
    percent: float
    step: int | None = None
    steps: int | None = None


def clock_text(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class ProgressBar:
    """Renders updates to ``stream``; ``tty`` decides between one redrawn line and plain lines.

    Plain lines are written only when the stage, the step or the whole percent changed, so a
    log stays short. The terminal line is cut to ``columns`` (default: the terminal's width) so
    it never wraps, and :meth:`tick` redraws it to keep the clock moving between updates.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        columns: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.columns = columns or shutil.get_terminal_size().columns
        self._clock = clock
        self._started = clock()
        self._last: Update | None = None
        self._width = 0

    def update(self, update: Update) -> None:
        last, self._last = self._last, update
        if last is not None and _shown(last) == _shown(update):
            return
        self._draw(update)

    def tick(self) -> None:
        """Redraw the terminal line with the time now (plain output only moves on updates)."""
        if self.tty and self._last is not None:
            self._draw(self._last)

    def _draw(self, update: Update) -> None:
        percent = min(max(update.percent, 0.0), 100.0)
        line = self.line(update, percent)
        if self.tty:
            filled = round(_BAR_CELLS * percent / 100)
            with_bar = f"[{'#' * filled}{'.' * (_BAR_CELLS - filled)}] {line}"
            fits = self.columns - 1
            line = with_bar if len(with_bar) <= fits else line[: max(fits, 10)]
            padding = " " * max(0, self._width - len(line))
            self.stream.write(f"\r{line}{padding}")
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def line(self, update: Update, percent: float) -> str:
        """One line: ``sampling   step 2/4   47%  elapsed 0:03  eta 0:04``."""
        elapsed = self._clock() - self._started
        step = f"step {update.step}/{update.steps}" if update.step and update.steps else ""
        known = percent >= 1 and elapsed >= 1
        eta = clock_text(elapsed * (100 - percent) / percent) if known else "?"
        return (
            f"{update.stage.replace('_', ' '):<13} {step:<12} {percent:3.0f}%  "
            f"elapsed {clock_text(elapsed)}  eta {eta}"
        )

    def close(self) -> None:
        """End the redrawn line so whatever follows starts on its own line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _shown(update: Update) -> tuple[str, int | None, int]:
    """What a line shows of an update, apart from the clock."""
    return (update.stage, update.step, round(min(max(update.percent, 0.0), 100.0)))
