"""Model files: which ones a mode needs, where they live, and fetching them from the hub.

``required_models`` reads the files off the built graph; ``paths`` knows ComfyUI's models folders
and writes ``extra_model_paths.yaml``; ``download`` fetches with resume and checks; ``verify``
reports what is present, missing or the wrong size.
"""

from __future__ import annotations

from wan_worker.errors import DownloadFailed, NotEnoughSpace
from wan_worker.models.download import (
    DiskUsage,
    DownloadPlan,
    DownloadProgress,
    ModelDownloader,
    human_bytes,
)
from wan_worker.models.paths import (
    MODEL_SUBFOLDERS,
    extra_model_paths_yaml,
    model_path,
    write_extra_model_paths,
)
from wan_worker.models.required import effective_preset, required_models
from wan_worker.models.settings import ModelSettings
from wan_worker.models.verify import FileCheck, FileState, verify_models

__all__ = [
    "MODEL_SUBFOLDERS",
    "DiskUsage",
    "DownloadFailed",
    "DownloadPlan",
    "DownloadProgress",
    "FileCheck",
    "FileState",
    "ModelDownloader",
    "ModelSettings",
    "NotEnoughSpace",
    "effective_preset",
    "extra_model_paths_yaml",
    "human_bytes",
    "model_path",
    "required_models",
    "verify_models",
    "write_extra_model_paths",
]
