"""The WAN 2.2 workflow library: request in, exact official ComfyUI graph out (no I/O).

One module per mode, each with a pydantic ``Request`` and ``build(request) -> BuiltWorkflow``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from wan_worker.errors import Problem, UnsupportedAction
from wan_worker.workflows import flf2v, i2v, s2v, t2v, ti2v
from wan_worker.workflows.graph import ApiGraph, Graph, Link, Node, to_json
from wan_worker.workflows.params import DEFAULT_PRESET, PRESETS, Adjustment, Mode, Preset
from wan_worker.workflows.parts import BuiltWorkflow, ModelRef

MODES: dict[str, tuple[type[BaseModel], Callable[[Any], BuiltWorkflow]]] = {
    "i2v": (i2v.Request, i2v.build),
    "t2v": (t2v.Request, t2v.build),
    "flf2v": (flf2v.Request, flf2v.build),
    "ti2v": (ti2v.Request, ti2v.build),
    "s2v": (s2v.Request, s2v.build),
}


def request_model(mode: str) -> type[BaseModel]:
    """The pydantic request model of a mode."""
    return MODES[_check_mode(mode)][0]


def build(mode: str, params: Mapping[str, Any] | BaseModel) -> BuiltWorkflow:
    """Build the graph of ``mode`` for ``params`` (a dict or that mode's ``Request``)."""
    builder = MODES[_check_mode(mode)][1]
    return builder(dict(params) if isinstance(params, Mapping) else params)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UnsupportedAction(
            f"unknown mode {mode!r}; modes: {', '.join(MODES)}",
            problems=[
                Problem(message="unknown mode", field="mode", value=mode, suggestion=list(MODES))
            ],
        )
    return mode


__all__ = [
    "DEFAULT_PRESET",
    "MODES",
    "PRESETS",
    "Adjustment",
    "ApiGraph",
    "BuiltWorkflow",
    "Graph",
    "Link",
    "Mode",
    "ModelRef",
    "Node",
    "Preset",
    "build",
    "request_model",
    "to_json",
]
