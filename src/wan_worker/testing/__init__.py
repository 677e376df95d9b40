"""Test support shipped with the package: a faithful ComfyUI double and its schema fixture."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_object_info() -> dict[str, Any]:
    """The real ``/object_info`` of ComfyUI 0.33, trimmed to the node classes WAN graphs use."""
    text = resources.files(__package__).joinpath("object_info.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


from wan_worker.testing.comfyui_double import ComfyUIDouble, Faults  # noqa: E402

__all__ = ["ComfyUIDouble", "Faults", "load_object_info"]
