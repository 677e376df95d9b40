"""Small real media files for the ComfyUI double: probing inputs, writing MP4/FLAC/PNG outputs.

Frames are a cheap colourful pattern (a hue sweep with a moving square), not generated content;
what matters to the worker is that files are real, with the requested size, frames, fps and audio.
"""

from __future__ import annotations

import array
import colorsys
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class AudioClip:
    """Audio flowing through a graph: a real file (or a synthetic tone when ``path`` is None)."""

    duration: float
    sample_rate: int = 44100
    path: Path | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What ``LoadVideo`` learns from a real file."""

    frames: int
    width: int
    height: int
    fps: float
    audio: AudioClip | None


def image_size(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) of an image file."""
    with Image.open(path) as img:
        return int(getattr(img, "n_frames", 1)), img.width, img.height


def probe_audio(path: Path) -> AudioClip:
    """Duration and rate of an audio (or video-with-audio) file."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = int(stream.rate or 44100)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            samples = sum(frame.samples for frame in container.decode(stream))
            duration = samples / rate
    return AudioClip(duration=duration, sample_rate=rate, path=path)


def probe_video(path: Path) -> VideoInfo:
    """Frames, size, fps and audio of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 16)
        frames = stream.frames or sum(1 for _ in container.decode(stream))
        width, height = stream.codec_context.width, stream.codec_context.height
        has_audio = bool(container.streams.audio)
    audio = probe_audio(path) if has_audio else None
    return VideoInfo(frames=frames, width=width, height=height, fps=fps, audio=audio)


def pattern_frame(index: int, total: int, width: int, height: int) -> Image.Image:
    """Frame ``index`` of a moving test pattern."""
    hue = (index / max(total, 1)) % 1.0
    red, green, blue = (int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.6, 0.9))
    img = Image.new("RGB", (width, height), (red, green, blue))
    side = max(2, min(width, height) // 4)
    x = int((width - side) * (0.5 + 0.5 * math.sin(2 * math.pi * index / max(total, 1))))
    draw = ImageDraw.Draw(img)
    draw.rectangle((x, (height - side) // 2, x + side, (height + side) // 2), fill=(255, 255, 255))
    return img


def write_png(path: Path, width: int, height: int, index: int = 0) -> None:
    pattern_frame(index, 8, max(width, 1), max(height, 1)).save(path, format="PNG")


def _audio_frames(clip: AudioClip, limit: float, rate: int, layout: str) -> list[Any]:
    """The clip's audio resampled to planar float, cut at ``limit`` seconds."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    max_samples = int(limit * rate)
    out: list[Any] = []
    taken = 0
    if clip.path is not None:
        with av.open(str(clip.path)) as source:
            for frame in source.decode(audio=0):
                for converted in resampler.resample(frame):
                    if taken >= max_samples:
                        return out
                    out.append(converted)
                    taken += converted.samples
        return out
    while taken < max_samples:
        count = min(1024, max_samples - taken)
        frame = av.AudioFrame(format="fltp", layout=layout, samples=count)
        frame.sample_rate = rate
        samples = [math.sin(2 * math.pi * 440 * (taken + i) / rate) * 0.2 for i in range(count)]
        data = _floats(samples)
        for plane in frame.planes:
            plane.update(data)
        out.append(frame)
        taken += count
    return out


def _floats(values: list[float]) -> bytes:
    return array.array("f", values).tobytes()


def _video_codec(container_format: str, codec: str) -> str:
    if container_format == "webm":
        candidates = ["libsvtav1", "libaom-av1", "libvpx-vp9"] if codec != "vp9" else ["libvpx-vp9"]
    else:
        candidates = ["libx264", "h264", "mpeg4"]
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
        except Exception:
            continue
        return name
    return "mpeg4"


def write_video(
    path: Path,
    *,
    frames: int,
    width: int,
    height: int,
    fps: float,
    audio: AudioClip | None,
    container_format: str = "mp4",
    codec: str = "auto",
) -> None:
    """Write a real video: yuv420p, the requested frames and fps, AAC/Opus audio cut to length."""
    width, height = max(2, width - width % 2), max(2, height - height % 2)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format=container_format) as container:
        stream: Any = container.add_stream(_video_codec(container_format, codec), rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio_stream: Any = None
        if audio is not None:
            audio_codec = "libopus" if container_format == "webm" else "aac"
            audio_rate = 48000 if container_format == "webm" else audio.sample_rate
            audio_stream = container.add_stream(audio_codec, rate=audio_rate)
            audio_stream.layout = "stereo"
        for index in range(frames):
            video_frame: Any = av.VideoFrame
            frame = video_frame.from_image(pattern_frame(index, frames, width, height))
            frame = frame.reformat(format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None and audio is not None:
            duration = frames / fps
            for chunk in _audio_frames(audio, duration, audio_stream.rate, "stereo"):
                chunk.pts = None
                for packet in audio_stream.encode(chunk):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)


def write_flac(path: Path, clip: AudioClip) -> None:
    """Write the clip as FLAC (what SaveAudio produces)."""
    with av.open(str(path), "w", format="flac") as container:
        stream: Any = container.add_stream("flac", rate=clip.sample_rate)
        stream.layout = "stereo"
        stream.format = "s16"
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=clip.sample_rate)
        for chunk in _audio_frames(clip, clip.duration, clip.sample_rate, "stereo"):
            chunk.pts = None
            for converted in resampler.resample(chunk):
                for packet in stream.encode(converted):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(path: Path, *, frames: int, width: int, height: int, fps: float) -> None:
    images = [pattern_frame(i, frames, width, height) for i in range(max(frames, 1))]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
