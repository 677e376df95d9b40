"""Read what a finished video really is: size, rate, length, codec, and a content hash."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from wan_worker.errors import OutputMissing, Problem

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class VideoInfo:
    """Facts about one video file, as the container and its video stream report them."""

    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    codec: str
    has_audio: bool
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_video(path: Path | str) -> VideoInfo:
    """Probe ``path`` with PyAV and hash it; OutputMissing when it is absent or not a video.

    Blocking (disk and demuxer); from async code run it in a thread.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, "the video file does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _missing(path, "the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = stream.frames or _count_frames(container, stream)
            fps = float(rate) if rate else 0.0
            info = VideoInfo(
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=fps,
                frames=frames,
                duration_s=_duration_s(container, stream, frames, rate),
                codec=stream.codec_context.name,
                has_audio=bool(container.streams.audio),
                bytes=path.stat().st_size,
                sha256=sha256_file(path),
            )
    except av.FFmpegError as exc:
        raise _missing(path, f"the file cannot be read as a video ({exc})") from exc
    if info.width <= 0 or info.height <= 0 or info.frames <= 0:
        raise _missing(path, "the video has no frames")
    return info


def sha256_file(path: Path) -> str:
    """Hash a file in 1 MiB reads, so a large video is never held in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _count_frames(container: Any, stream: Any) -> int:
    """Count video packets when the container has no frame count (Matroska/WebM, some MP4s)."""
    return sum(1 for packet in container.demux(stream) if packet.size)


def _duration_s(container: Any, stream: Any, frames: int, rate: Fraction | None) -> float:
    """Frames over rate, exact for constant-rate output; muxers round the stream's own duration
    (encoder delay, edit lists), so it and then the container's are only fallbacks."""
    if rate:
        return float(frames / rate)
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(Fraction(container.duration, av.time_base))
    return 0.0


def _missing(path: Path, reason: str) -> OutputMissing:
    return OutputMissing(
        f"The finished video at {path} is unusable: {reason}.",
        problems=[Problem(message=reason, field="output")],
        details={"path": str(path)},
    )
