"""Decode user audio with PyAV, measure its real length, and write a plain WAV for ComfyUI.

The duration comes from counting decoded samples, never from headers, and decoding stops as
soon as the cap is passed. The WAV keeps the source sample rate as 16-bit PCM, mono or stereo
(more channels are mixed down to stereo).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import av

from wan_worker.errors import InputTooLarge, InvalidInput, Problem, WanWorkerError
from wan_worker.media.addresses import HostResolver
from wan_worker.media.fetch import InputSource, load_input
from wan_worker.media.files import discard, new_name, temp_name
from wan_worker.media.limits import InputLimits

AUDIO_CONTAINERS = frozenset({"wav", "mp3", "flac", "ogg", "mov,mp4,m4a,3gp,3g2,mj2"})
"""FFmpeg demuxer names for WAV, MP3, FLAC, Ogg and M4A; other containers are refused."""

AUDIO_CODECS = frozenset(
    {
        "pcm_u8",
        "pcm_s16le",
        "pcm_s24le",
        "pcm_s32le",
        "pcm_f32le",
        "pcm_f64le",
        "mp3",
        "mp3float",
        "flac",
        "vorbis",
        "libvorbis",
        "opus",
        "libopus",
        "aac",
    }
)
"""Decoders an input may reach inside those containers."""

FORMATS_TEXT = "WAV, MP3, FLAC, Ogg (Vorbis, Opus) or M4A (AAC)"


@dataclass(frozen=True)
class AudioInfo:
    """The normalised WAV and what decoding it measured."""

    path: Path
    duration_s: float
    sample_rate: int
    channels: int


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field} {message}", problems=[Problem(message, field=field, rule="audio")]
    )


def _too_long(field: str, max_seconds: float) -> InputTooLarge:
    message = f"is longer than {max_seconds:g} seconds"
    return InputTooLarge(
        f"{field} {message}",
        problems=[Problem(message, field=field, rule="max_audio_seconds")],
        details={"max_audio_seconds": max_seconds},
    )


def prepare_audio(raw: Path, *, field: str, limits: InputLimits, dest_dir: Path) -> AudioInfo:
    """Decode ``raw`` completely and write it as 16-bit PCM WAV into ``dest_dir`` (blocking)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = new_name(dest_dir, field, ".wav")
    temp = temp_name(final)
    try:
        info = _decode_to_wav(raw, temp, field=field, max_seconds=limits.max_audio_seconds)
        os.replace(temp, final)
    except WanWorkerError:
        raise
    except Exception:  # any demuxer or decoder failure on untrusted bytes
        raise _invalid(field, f"could not be decoded as {FORMATS_TEXT}") from None
    finally:
        discard(temp)
    return AudioInfo(final, *info)


def _decode_to_wav(
    raw: Path, temp: Path, *, field: str, max_seconds: float
) -> tuple[float, int, int]:
    with av.open(str(raw), mode="r") as container:
        if container.format.name not in AUDIO_CONTAINERS:
            raise _invalid(field, f"is not {FORMATS_TEXT}")
        if not container.streams.audio:
            raise _invalid(field, "has no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context.name not in AUDIO_CODECS:
            raise _invalid(field, f"uses an unsupported audio codec; send {FORMATS_TEXT}")
        with contextlib.ExitStack() as stack:
            out: wave.Wave_write | None = None
            resampler: av.AudioResampler | None = None
            rate = channels = samples = 0
            for frame in container.decode(stream):
                if out is None or resampler is None:
                    rate = frame.sample_rate
                    channels = 1 if frame.layout.nb_channels == 1 else 2
                    resampler = av.AudioResampler(
                        format="s16", layout="mono" if channels == 1 else "stereo", rate=rate
                    )
                    out = stack.enter_context(wave.open(str(temp), "wb"))
                    out.setnchannels(channels)
                    out.setsampwidth(2)
                    out.setframerate(rate)
                samples += _write_frames(out, resampler.resample(frame), channels)
                if samples > max_seconds * rate:
                    raise _too_long(field, max_seconds)
            if out is None or resampler is None:
                raise _invalid(field, "has no audio samples")
            samples += _write_frames(out, resampler.resample(None), channels)
            if samples > max_seconds * rate:
                raise _too_long(field, max_seconds)
    if samples == 0:
        raise _invalid(field, "has no audio samples")
    return samples / rate, rate, channels


def _write_frames(out: wave.Wave_write, frames: list[av.AudioFrame], channels: int) -> int:
    """Append packed s16 frames; a plane's buffer can be padded, so it is cut to its samples."""
    count = 0
    for frame in frames:
        out.writeframes(bytes(frame.planes[0])[: frame.samples * channels * 2])
        count += frame.samples
    return count


async def load_audio(
    source: InputSource,
    *,
    field: str,
    limits: InputLimits,
    dest_dir: Path,
    resolver: HostResolver | None = None,
) -> AudioInfo:
    """Fetch an audio input and normalise it; only the WAV remains in ``dest_dir``."""
    raw = await load_input(
        source, field=field, kind="audio", limits=limits, dest_dir=dest_dir, resolver=resolver
    )
    try:
        return await asyncio.to_thread(
            prepare_audio, raw, field=field, limits=limits, dest_dir=dest_dir
        )
    finally:
        discard(raw)
