"""Audio inputs: decoded with PyAV, measured by their samples, written as 16-bit PCM WAV."""

from __future__ import annotations

import base64
import struct
import wave
from pathlib import Path

import av
import pytest

from wan_worker.errors import WanWorkerError
from wan_worker.media import InputSource, load_audio, prepare_audio

from .helpers import leftovers, png_bytes, small_limits, write_tone

ENCODINGS = [
    ("wav", "wav", "pcm_s16le", 44100),
    ("mp3", "mp3", "libmp3lame", 44100),
    ("flac", "flac", "flac", 44100),
    ("ogg", "ogg", "libvorbis", 44100),
    ("opus", "ogg", "libopus", 48000),
    ("m4a", "ipod", "aac", 44100),
]
AVAILABLE = [e for e in ENCODINGS if e[2] in av.codecs_available]


def test_every_format_we_promise_has_an_encoder_here_to_test_it() -> None:
    assert AVAILABLE == ENCODINGS


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize(("suffix", "container", "codec", "rate"), AVAILABLE)
def test_supported_formats_decode_with_their_measured_duration(
    *, suffix: str, container: str, codec: str, rate: int, layout: str, tmp_path: Path
) -> None:
    raw = write_tone(
        tmp_path / f"in.{suffix}",
        container=container,
        codec=codec,
        seconds=1.0,
        rate=rate,
        layout=layout,
    )
    info = prepare_audio(raw, field="audio", limits=small_limits(), dest_dir=tmp_path / "out")
    channels = 1 if layout == "mono" else 2
    assert abs(info.duration_s - 1.0) < 0.05
    assert (info.sample_rate, info.channels) == (rate, channels)
    with wave.open(str(info.path), "rb") as out:
        assert out.getsampwidth() == 2
        assert (out.getframerate(), out.getnchannels()) == (rate, channels)
        assert out.getnframes() == round(info.duration_s * rate)
    assert leftovers(tmp_path / "out") == [info.path.name]


def test_the_sample_rate_is_kept(tmp_path: Path) -> None:
    raw = write_tone(
        tmp_path / "in.wav", container="wav", codec="pcm_s16le", seconds=0.5, rate=22050
    )
    info = prepare_audio(raw, field="audio", limits=small_limits(), dest_dir=tmp_path / "out")
    assert info.sample_rate == 22050


def test_surround_sound_is_mixed_down_to_stereo(tmp_path: Path) -> None:
    raw = write_tone(
        tmp_path / "in.flac", container="flac", codec="flac", seconds=0.5, layout="5.1"
    )
    info = prepare_audio(raw, field="audio", limits=small_limits(), dest_dir=tmp_path / "out")
    assert info.channels == 2


def assert_refused(error: WanWorkerError, code: str, out: Path) -> None:
    assert error.code == code
    assert error.problems[0].field == "audio"
    assert not out.exists() or leftovers(out) == []


def test_audio_longer_than_the_cap_is_too_large(tmp_path: Path) -> None:
    raw = write_tone(tmp_path / "in.flac", container="flac", codec="flac", seconds=3.0)
    out = tmp_path / "out"
    with pytest.raises(WanWorkerError) as caught:
        prepare_audio(raw, field="audio", limits=small_limits(), dest_dir=out)
    assert_refused(caught.value, "input_too_large", out)
    assert caught.value.details["max_audio_seconds"] == 2.0


def test_length_is_measured_by_decoding_not_read_from_the_header(tmp_path: Path) -> None:
    # A streaming-style WAV: RIFF and data sizes say "unknown", the samples run for 3 s.
    raw = write_tone(tmp_path / "in.wav", container="wav", codec="pcm_s16le", seconds=3.0)
    data = bytearray(raw.read_bytes())
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    raw.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(WanWorkerError) as caught:
        prepare_audio(raw, field="audio", limits=small_limits(), dest_dir=out)
    assert_refused(caught.value, "input_too_large", out)


def _empty_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
    return path


def _video_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=8)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame(32, 32, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _bad_audio(case: str, folder: Path) -> Path:
    path = folder / "in.bin"
    if case == "aiff container":
        return write_tone(path, container="aiff", codec="pcm_s16be", seconds=0.2)
    if case == "matroska container":
        return write_tone(path, container="matroska", codec="pcm_s16le", seconds=0.2)
    if case == "a-law codec in wav":
        return write_tone(path, container="wav", codec="pcm_alaw", seconds=0.2, rate=8000)
    if case == "video without audio":
        return _video_only(path)
    if case == "wav without samples":
        return _empty_wav(path)
    contents = {
        "text": b"this is not audio",
        "empty": b"",
        "png image": png_bytes(),
        "riff header only": b"RIFF\x24\x00\x00\x00WAVE",
    }
    path.write_bytes(contents[case])
    return path


@pytest.mark.parametrize(
    "case",
    [
        "aiff container",
        "matroska container",
        "a-law codec in wav",
        "video without audio",
        "wav without samples",
        "text",
        "empty",
        "png image",
        "riff header only",
    ],
)
def test_unsupported_or_undecodable_audio_is_invalid_input(case: str, tmp_path: Path) -> None:
    raw = _bad_audio(case, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(WanWorkerError) as caught:
        prepare_audio(raw, field="audio", limits=small_limits(), dest_dir=out)
    assert_refused(caught.value, "invalid_input", out)


async def test_loading_audio_leaves_only_the_wav(tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.mp3", container="mp3", codec="libmp3lame", seconds=0.5)
    job = tmp_path / "job"
    info = await load_audio(
        InputSource("base64", base64.b64encode(tone.read_bytes()).decode()),
        field="audio_base64",
        limits=small_limits(),
        dest_dir=job,
    )
    assert leftovers(job) == [info.path.name]
    assert info.path.suffix == ".wav"


async def test_a_failed_audio_input_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(WanWorkerError) as caught:
        await load_audio(
            InputSource("base64", base64.b64encode(b"noise, not audio").decode()),
            field="audio_base64",
            limits=small_limits(),
            dest_dir=tmp_path,
        )
    assert caught.value.code == "invalid_input"
    assert str(caught.value).startswith("invalid_input: audio_base64 ")
    assert leftovers(tmp_path) == []
