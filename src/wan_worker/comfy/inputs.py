"""Input files of a job: their names on the server, and pointing a graph's loaders at them.

Each job uploads into its own subfolder of ComfyUI's input folder (``wan-worker/<job_id>/``), so
jobs never overwrite each other's files and a job's inputs can be removed in one go. Loader
nodes reference such files as ``"<subfolder>/<name>"``, which ComfyUI resolves under input/.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from wan_worker.errors import InvalidInput

UPLOAD_ROOT = "wan-worker"
"""The subfolder of ComfyUI's input folder that holds every job's uploads."""

FILE_INPUTS: Mapping[str, tuple[str, ...]] = {
    "LoadImage": ("image",),
    "LoadImageMask": ("image",),
    "LoadAudio": ("audio",),
    "LoadVideo": ("file",),
    "VHS_LoadAudioUpload": ("audio",),
    "VHS_LoadVideo": ("video",),
}
"""Loader node types and the inputs that name a file in ComfyUI's input folder."""

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def check_job_id(job_id: str) -> str:
    """``job_id`` when it can name a folder safely (letters, digits, ``_.-``); else InvalidInput."""
    if not _JOB_ID.match(job_id) or ".." in job_id:
        raise InvalidInput(
            f"job id {job_id!r} must be 1-128 letters, digits, '_', '.' or '-'",
            details={"job_id": job_id},
        )
    return job_id


def job_subfolder(job_id: str) -> str:
    """The input subfolder of one job's uploads."""
    return f"{UPLOAD_ROOT}/{check_job_id(job_id)}"


def upload_name(name: str, source: PurePath, taken: set[str]) -> str:
    """A file name for the upload of ``source`` that the graph calls ``name``.

    Keeps the readable stem of ``name`` and the suffix of the real file (loaders sniff content,
    but ComfyUI's file lists filter by suffix), unique within the job.
    """
    stem = _UNSAFE.sub("_", PurePath(name).stem).strip("._") or "input"
    suffix = _UNSAFE.sub("", source.suffix.lower()) or _UNSAFE.sub("", PurePath(name).suffix)
    candidate = f"{stem}{suffix}"
    counter = 2
    while candidate in taken:
        candidate = f"{stem}-{counter}{suffix}"
        counter += 1
    taken.add(candidate)
    return candidate


def prefix_outputs(graph: Mapping[str, Any], job_id: str) -> dict[str, Any]:
    """A copy of ``graph`` whose save nodes write under ``wan-worker/<job_id>/`` in output/.

    Every string ``filename_prefix`` gets the job's subfolder in front. Jobs then never share an
    output file, and an identical graph sent again still saves a fresh file: ComfyUI reuses its
    cached results up to the save node, whose changed prefix makes it run (and write) again,
    where the old output may already have been removed by the previous job's cleanup.
    """
    result: dict[str, Any] = copy.deepcopy(dict(graph))
    folder = job_subfolder(job_id)
    for node in result.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and isinstance(inputs.get("filename_prefix"), str):
            inputs["filename_prefix"] = f"{folder}/{inputs['filename_prefix'].lstrip('/')}"
    return result


def point_inputs(graph: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``graph`` whose loader inputs equal to a key of ``names`` use its value.

    Raises InvalidInput for a name no loader uses: a typo would otherwise run the graph
    with whatever file happens to carry the old name.
    """
    result: dict[str, Any] = copy.deepcopy(dict(graph))
    used: set[str] = set()
    for node in result.values():
        if not isinstance(node, dict):
            continue
        fields = FILE_INPUTS.get(str(node.get("class_type")), ())
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        for field in fields:
            value = inputs.get(field)
            if isinstance(value, str) and value in names:
                inputs[field] = names[value]
                used.add(value)
    unused = sorted(set(names) - used)
    if unused:
        raise InvalidInput(
            "no LoadImage/LoadAudio node of the graph uses " + ", ".join(map(repr, unused)),
            details={"unused": unused},
        )
    return result
