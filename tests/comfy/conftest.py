"""Fixtures for the ComfyUI client's contract tests: a server, input files, weight-free graphs.

``server`` is the test double by default; the same contract tests run against a real ComfyUI
when ``COMFYUI_URL`` is set (those cases are marked ``real_comfyui`` and skip otherwise).
Fault injection (dropped websockets, HTTP 500, restarts) needs the double and uses ``double``.
"""

from __future__ import annotations

import math
import os
import struct
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from wan_worker.comfy import ComfyClient
from wan_worker.comfy.events import Backoff
from wan_worker.comfy.transport import RetryPolicy
from wan_worker.testing.comfyui_double import ComfyUIDouble
from wan_worker.workflows.graph import ApiGraph, Graph

FAST_RETRY = RetryPolicy(attempts=4, first_delay_s=0.01, max_delay_s=0.05)
FAST_RECONNECT = Backoff(first_s=0.05, max_s=0.2)


@dataclass
class Server:
    """A ComfyUI to test against: its URL, and its folders when they are on this machine."""

    url: str
    input_dir: Path | None
    output_dir: Path | None
    double: ComfyUIDouble | None

    def client(self, **kwargs: Any) -> ComfyClient:
        """A client with quick retries and reconnects, told the server's folders."""
        options: dict[str, Any] = {
            "input_dir": self.input_dir,
            "output_dir": self.output_dir,
            "retry": FAST_RETRY,
            "reconnect": FAST_RECONNECT,
            "reconnect_timeout_s": 10.0,
        }
        options.update(kwargs)
        return ComfyClient(self.url, **options)


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[ComfyUIDouble]:
    """The ComfyUI test double on loopback, with one file in each model folder we use."""
    models = {"diffusion_models": ["present_model.safetensors"]}
    async with ComfyUIDouble(root=tmp_path / "comfyui", models=models) as server:
        yield server


@pytest.fixture(params=["double", pytest.param("real", marks=pytest.mark.real_comfyui)])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """The double, or the real ComfyUI at ``COMFYUI_URL`` (skipped when unset)."""
    if request.param == "real":
        url = os.environ.get("COMFYUI_URL")
        if not url:
            pytest.skip("COMFYUI_URL is not set")
        input_dir = os.environ.get("COMFYUI_INPUT_DIR")
        output_dir = os.environ.get("COMFYUI_OUTPUT_DIR")
        yield Server(
            url,
            Path(input_dir) if input_dir else None,
            Path(output_dir) if output_dir else None,
            None,
        )
        return
    models = {"diffusion_models": ["present_model.safetensors"]}
    async with ComfyUIDouble(root=tmp_path / "comfyui", models=models) as fake:
        yield Server(fake.url, fake.input_dir, fake.output_dir, fake)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A small PNG and a one-second WAV tone, as a job's local input files."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    image = folder / "picture.png"
    Image.new("RGB", (64, 48), (200, 80, 40)).save(image)
    audio = folder / "sound.wav"
    rate = 16000
    with wave.open(str(audio), "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate))
        sink.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return {"ref.png": image, "tone.wav": audio}


def video_graph(frames: int = 8, prefix: str = "contract") -> ApiGraph:
    """LoadImage -> ImageScale -> RepeatImageBatch -> CreateVideo -> SaveVideo: no weights."""
    g = Graph()
    image = g.node("LoadImage", "image", image="ref.png")
    scaled = g.node(
        "ImageScale",
        "scale",
        image=image.out(0),
        upscale_method="bilinear",
        width=64,
        height=48,
        crop="center",
    )
    batch = g.node("RepeatImageBatch", "repeat", image=scaled.out(0), amount=frames)
    video = g.node("CreateVideo", "video", images=batch.out(0), fps=16)
    g.node(
        "SaveVideo",
        "save_video",
        video=video.out(0),
        filename_prefix=f"video/{prefix}",
        format="mp4",
        **{"format.codec": "auto"},
    )
    return g.finalize()


def audio_graph(prefix: str = "contract") -> ApiGraph:
    """LoadAudio -> SaveAudio: no weights."""
    g = Graph()
    audio = g.node("LoadAudio", "audio", audio="tone.wav")
    g.node("SaveAudio", "save_audio", audio=audio.out(0), filename_prefix=f"audio/{prefix}")
    return g.finalize()


def both_graph(frames: int = 8, prefix: str = "contract") -> ApiGraph:
    """The video and the audio graphs as one prompt with two outputs."""
    return {**video_graph(frames, prefix), **audio_graph(prefix)}
