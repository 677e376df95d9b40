"""Where model files live: ComfyUI's models folders and the ``extra_model_paths.yaml`` naming them.

A worker can find models in more than one root (the image's own ``ComfyUI/models`` and a RunPod
network volume at ``/runpod-volume/models``); ComfyUI searches every root listed in its
``extra_model_paths.yaml``, so baked-in and volume models both work.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from wan_worker.catalogue import ModelFile
from wan_worker.model_folders import MODEL_FOLDERS

MODEL_SUBFOLDERS = MODEL_FOLDERS
"""Every ComfyUI models folder a wan-worker graph's loaders read (catalogue folders included)."""

RUNPOD_VOLUME = Path("/runpod-volume")
"""Where RunPod mounts a network volume in a serverless worker."""

_HEADER = (
    "# Written by wan-worker: ComfyUI searches each root below for model files.\n"
    "# The first root is the default one (is_default: true).\n"
)


def model_path(root: Path, model: ModelFile) -> Path:
    """Where a catalogue file belongs under a models root: ``<root>/<folder>/<file>``."""
    return root / model.folder / model.file


def extra_model_paths_yaml(roots: Sequence[Path]) -> str:
    """ComfyUI's ``extra_model_paths.yaml`` text naming every models folder under each root.

    Each root becomes one top-level entry with ``base_path`` and one ``folder: folder/`` line per
    models folder; the first root is marked ``is_default`` so ComfyUI prefers it.
    """
    if not roots:
        raise ValueError("extra_model_paths.yaml needs at least one models root")
    config: dict[str, dict[str, object]] = {}
    for index, root in enumerate(roots):
        entry: dict[str, object] = {"base_path": f"{Path(root).absolute()}/"}
        if index == 0:
            entry["is_default"] = True
        entry.update({folder: f"{folder}/" for folder in MODEL_SUBFOLDERS})
        config[_entry_name(Path(root), config)] = entry
    return _HEADER + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def write_extra_model_paths(destination: Path, roots: Sequence[Path]) -> Path:
    """Write :func:`extra_model_paths_yaml` to ``destination`` atomically; returns the path."""
    text = extra_model_paths_yaml(roots)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return destination


def _entry_name(root: Path, taken: dict[str, dict[str, object]]) -> str:
    """A unique YAML key for a root, e.g. ``wan_worker_runpod_volume_models``."""
    slug = re.sub(r"[^a-z0-9]+", "_", str(root).lower()).strip("_") or "root"
    name = f"wan_worker_{slug}"
    suffix = 2
    while name in taken:
        name = f"wan_worker_{slug}_{suffix}"
        suffix += 1
    return name
