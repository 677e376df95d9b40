"""samples/ holds what scripts/make_samples.py makes, and it decodes as documented."""

from __future__ import annotations

import importlib.util
import struct
import sys
import wave
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from wan_worker.media import InputLimits

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"


@pytest.fixture(scope="module")
def make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_samples", REPO_ROOT / "scripts" / "make_samples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_samples_gives_the_committed_content(
    make_samples: ModuleType, tmp_path: Path
) -> None:
    assert make_samples.main(["--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(make_samples.SAMPLES)
    for name in ("lighthouse.png", "lighthouse-night.png"):
        with Image.open(tmp_path / name) as made, Image.open(SAMPLES / name) as committed:
            assert made.tobytes() == committed.tobytes(), name
    assert (tmp_path / "voice.wav").read_bytes() == (SAMPLES / "voice.wav").read_bytes()


@pytest.mark.parametrize("name", ["lighthouse.png", "lighthouse-night.png"])
def test_pictures_are_small_832x480_pngs(name: str) -> None:
    path = SAMPLES / name
    with Image.open(path) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (832, 480), "RGB")
    assert path.stat().st_size < 200_000


def test_voice_is_two_and_a_half_seconds_of_16_khz_mono_audio() -> None:
    path = SAMPLES / "voice.wav"
    with wave.open(str(path)) as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (1, 2, 16000)
        assert clip.getnframes() == 40000
        frames = clip.readframes(clip.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    assert max(abs(s) for s in samples) == 16384
    assert path.stat().st_size < 200_000
    assert path.stat().st_size < InputLimits().max_audio_bytes
