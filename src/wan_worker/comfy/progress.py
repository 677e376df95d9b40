"""Progress a person can read, computed from a prompt's websocket events.

The bar is weighted by sampler steps, read from the graph before it runs: ``KSamplerAdvanced``
runs ``min(end_at_step, steps) - start_at_step`` steps, ``KSampler`` runs ``steps``. Samplers
share 90% of the bar and every other node the remaining 10%, so a two-stage sampler or a chain
of sampling chunks moves one bar forward, never back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal[
    "queued",
    "preparing",
    "loading",
    "encoding_text",
    "sampling",
    "decoding",
    "saving",
    "other",
    "done",
]
"""Where a prompt is: waiting in ComfyUI's queue, then the kind of node running, then done."""

ProgressCallback = Callable[["Progress"], Awaitable[None] | None]
"""Receives each progress update; may be a plain or an async function."""

SAMPLER_CLASSES = frozenset(
    {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"}
)
_SAMPLER_SHARE = 0.9
_DEFAULT_STEPS = 20
_SAVING_CLASSES = frozenset({"CreateVideo", "VHS_VideoCombine", "PreviewImage", "PreviewAudio"})


@dataclass(frozen=True)
class Progress:
    """One snapshot of a running prompt."""

    prompt_id: str
    stage: Stage
    percent: float
    node_id: str | None = None
    class_type: str | None = None
    step: int | None = None
    steps: int | None = None
    sampler_index: int | None = None
    sampler_count: int = 0
    elapsed_s: float = 0.0

    @property
    def message(self) -> str:
        """A line for a log or a terminal, e.g. ``sampling stage 1/2, step 3/10 (34%)``."""
        words = self.stage.replace("_", " ")
        if self.stage == "sampling" and self.sampler_index is not None and self.sampler_count:
            words += f" stage {self.sampler_index}/{self.sampler_count}"
        if self.step is not None and self.steps:
            words += f", step {self.step}/{self.steps}"
        if self.class_type and self.stage not in ("queued", "done"):
            words += f" [{self.class_type} #{self.node_id}]"
        return f"{words} ({self.percent:.0f}%)"


def stage_of(class_type: str) -> Stage:
    """The stage a node belongs to, judged from its class name alone."""
    if class_type in SAMPLER_CLASSES:
        return "sampling"
    if class_type.startswith("VAEDecode"):
        return "decoding"
    if "TextEncode" in class_type:
        return "encoding_text"
    if "Loader" in class_type or class_type.startswith(("Load", "VHS_Load")):
        return "loading"
    if class_type.startswith("Save") or class_type in _SAVING_CLASSES:
        return "saving"
    if any(word in class_type for word in ("Encode", "Latent", "ToVideo", "ModelSampling")):
        return "preparing"
    return "other"


def sampler_steps(node: dict[str, Any], graph: dict[str, dict[str, Any]]) -> int:
    """How many steps a sampler node will run, resolving values linked from primitive nodes."""
    inputs = node.get("inputs", {})
    steps = _int_input(inputs.get("steps"), graph)
    if node.get("class_type") == "KSamplerAdvanced" and steps is not None:
        start = _int_input(inputs.get("start_at_step"), graph) or 0
        end = _int_input(inputs.get("end_at_step"), graph)
        last = steps if end is None else min(end, steps)
        return max(last - start, 0)
    return steps if steps is not None and steps > 0 else _DEFAULT_STEPS


def _int_input(value: Any, graph: dict[str, dict[str, Any]]) -> int | None:
    """An integer input, following one link to a node with a single ``value`` input."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        source = graph.get(value[0], {}).get("inputs", {})
        value = source.get("value")
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    return None


@dataclass
class ProgressTracker:
    """Folds a prompt's events into :class:`Progress` snapshots; percent never decreases."""

    prompt_id: str
    graph: dict[str, dict[str, Any]]
    started_at: float = field(default_factory=time.monotonic)
    _weights: dict[str, int] = field(init=False)
    _others: list[str] = field(init=False)
    _finished: set[str] = field(init=False, default_factory=set)
    _samplers_started: list[str] = field(init=False, default_factory=list)
    _current: str | None = field(init=False, default=None)
    _fraction: float = field(init=False, default=0.0)
    _step: int | None = field(init=False, default=None)
    _steps: int | None = field(init=False, default=None)
    _stage: Stage = field(init=False, default="queued")
    _percent: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._weights = {
            node_id: sampler_steps(node, self.graph)
            for node_id, node in self.graph.items()
            if node.get("class_type") in SAMPLER_CLASSES
        }
        self._others = [node_id for node_id in self.graph if node_id not in self._weights]

    @property
    def sampler_count(self) -> int:
        return len(self._weights)

    def snapshot(self) -> Progress:
        """The current state, as a record."""
        node = self._current
        class_type = self.graph.get(node, {}).get("class_type") if node else None
        index = (
            self._samplers_started.index(node) + 1
            if node is not None and node in self._samplers_started
            else None
        )
        return Progress(
            prompt_id=self.prompt_id,
            stage=self._stage,
            percent=round(self._percent, 1),
            node_id=node,
            class_type=class_type,
            step=self._step,
            steps=self._steps,
            sampler_index=index,
            sampler_count=self.sampler_count,
            elapsed_s=time.monotonic() - self.started_at,
        )

    def update(self, event_type: str, data: dict[str, Any]) -> Progress | None:
        """Apply one event; returns a new snapshot when something visible changed."""
        before = (self._stage, self._current, self._step, round(self._percent, 1))
        if event_type == "execution_start":
            self._stage = "preparing"
        elif event_type == "execution_cached":
            self._finished.update(str(n) for n in data.get("nodes") or [])
        elif event_type == "executing":
            node = data.get("node")
            if node is None:
                return None
            self._enter(str(node))
        elif event_type == "progress":
            self._on_step(data)
        elif event_type == "execution_success":
            self._finish_current()
            self._stage = "done"
            self._current = None
            self._step = self._steps = None
            self._percent = 100.0
        else:
            return None
        self._recompute()
        after = (self._stage, self._current, self._step, round(self._percent, 1))
        return self.snapshot() if after != before else None

    def _enter(self, node_id: str) -> None:
        self._finish_current()
        self._current = node_id
        self._fraction = 0.0
        self._step = self._steps = None
        class_type = self.graph.get(node_id, {}).get("class_type", "")
        self._stage = stage_of(str(class_type))
        if node_id in self._weights and node_id not in self._samplers_started:
            self._samplers_started.append(node_id)
            self._steps = self._weights[node_id]
            self._step = 0

    def _on_step(self, data: dict[str, Any]) -> None:
        node = data.get("node")
        if node is not None and str(node) != self._current:
            self._enter(str(node))
        value, maximum = data.get("value"), data.get("max")
        if (
            not isinstance(value, int | float)
            or not isinstance(maximum, int | float)
            or maximum <= 0
        ):
            return
        self._fraction = min(max(float(value) / float(maximum), 0.0), 1.0)
        self._step, self._steps = int(value), int(maximum)

    def _finish_current(self) -> None:
        if self._current is not None:
            self._finished.add(self._current)
        self._fraction = 0.0

    def _recompute(self) -> None:
        if self._stage == "done":
            return
        total_steps = sum(self._weights.values())
        done_steps = float(sum(w for n, w in self._weights.items() if n in self._finished))
        if self._current in self._weights:
            done_steps += self._weights[self._current] * self._fraction
        others_done = sum(1 for n in self._others if n in self._finished)
        if total_steps > 0:
            share = _SAMPLER_SHARE * done_steps / total_steps
            share += (1 - _SAMPLER_SHARE) * others_done / max(len(self._others), 1)
        else:
            share = others_done / max(len(self._others), 1)
        self._percent = max(self._percent, min(share * 100, 99.0))
