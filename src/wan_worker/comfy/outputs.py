"""Finding a prompt's output files in ``/history`` and streaming them to disk through ``/view``.

ComfyUI reports outputs under several keys: core ``SaveVideo`` uses ``images`` with
``animated: [true]``, ``VHS_VideoCombine`` uses ``gifs``, ``SaveAudio`` uses ``audio``. Each
file is streamed in chunks to a temporary name, hashed on the way, then renamed into place.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import aiohttp

from wan_worker.comfy.transport import ComfyHttp

OutputKind = Literal["video", "image", "audio", "other"]

_CHUNK_BYTES = 1024 * 1024
_VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v"})
_AUDIO_SUFFIXES = frozenset({".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".aac"})
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tiff"})


@dataclass(frozen=True)
class OutputRef:
    """A file ComfyUI wrote, as ``/history`` names it."""

    node_id: str
    kind: OutputKind
    filename: str
    subfolder: str
    type: str

    def view_params(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}

    def server_path(self) -> str:
        """``subfolder/filename`` relative to the server's folder of this ``type``."""
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename


@dataclass(frozen=True)
class OutputFile:
    """An output fetched to a local file."""

    node_id: str
    kind: OutputKind
    filename: str
    path: Path
    mime_type: str
    size: int
    sha256: str
    source: OutputRef


def find_outputs(outputs: Any, *, include_temp: bool = False) -> list[OutputRef]:
    """Every file listed in a ``/history`` entry's ``outputs`` (previews of type temp skipped)."""
    refs: list[OutputRef] = []
    if not isinstance(outputs, dict):
        return refs
    for node_id, node_output in outputs.items():
        if not isinstance(node_output, dict):
            continue
        animated = node_output.get("animated")
        for key, entries in node_output.items():
            if not isinstance(entries, list):
                continue
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
                    continue
                file_type = str(entry.get("type") or "output")
                if file_type == "temp" and not include_temp:
                    continue
                is_animated = (
                    key == "images"
                    and isinstance(animated, list)
                    and index < len(animated)
                    and animated[index] is True
                )
                refs.append(
                    OutputRef(
                        node_id=str(node_id),
                        kind=_kind(key, entry, is_animated),
                        filename=entry["filename"],
                        subfolder=str(entry.get("subfolder") or ""),
                        type=file_type,
                    )
                )
    return refs


def _kind(key: str, entry: dict[str, Any], animated: bool) -> OutputKind:
    if animated:
        return "video"
    if key == "audio":
        return "audio"
    if key == "gifs":
        fmt = str(entry.get("format") or "")
        return "video" if fmt.startswith("video/") else "image"
    suffix = Path(entry["filename"]).suffix.lower()
    if suffix in _VIDEO_SUFFIXES:
        return "video"
    if suffix in _AUDIO_SUFFIXES:
        return "audio"
    if suffix in _IMAGE_SUFFIXES:
        return "image"
    return "other"


def local_name(ref: OutputRef, taken: set[str]) -> str:
    """A file name for ``ref`` in the destination folder, unique among ``taken``."""
    name = Path(ref.filename).name
    if name not in taken:
        return name
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate = f"{stem}-node{ref.node_id}{suffix}"
    counter = 2
    while candidate in taken:
        candidate = f"{stem}-node{ref.node_id}-{counter}{suffix}"
        counter += 1
    return candidate


async def download(http: ComfyHttp, ref: OutputRef, destination: Path) -> OutputFile:
    """Stream one output to ``destination`` (written as a temporary file, then renamed)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        async with http.stream("/view", ref.view_params()) as resp:
            served_type = resp.content_type
            with partial.open("wb") as sink:
                try:
                    async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
                        await asyncio.to_thread(_write_chunk, sink, digest, chunk)
                        size += len(chunk)
                except (aiohttp.ClientError, TimeoutError) as err:
                    reason = f"reading {ref.server_path()} failed: {err or type(err).__name__}"
                    raise http.unavailable("GET", "/view", reason) from err
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    guessed, _ = mimetypes.guess_type(ref.filename)
    if guessed is None and served_type and served_type != "application/octet-stream":
        guessed = served_type
    return OutputFile(
        node_id=ref.node_id,
        kind=ref.kind,
        filename=ref.filename,
        path=destination,
        mime_type=guessed or "application/octet-stream",
        size=size,
        sha256=digest.hexdigest(),
        source=ref,
    )


def _write_chunk(sink: BinaryIO, digest: Any, chunk: bytes) -> None:
    sink.write(chunk)
    digest.update(chunk)
