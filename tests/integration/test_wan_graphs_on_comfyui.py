"""Each mode's graph runs end to end on the ComfyUI test double and yields the MP4 it promises.

The graph comes from the workflow library, the client uploads the inputs, preflights, queues and
fetches the output; the double writes a real MP4 of the size, length and frame rate the graph
implies, so a wrong length or size in a builder shows up here as a wrong file.
"""

from __future__ import annotations

import wave
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from wan_worker.comfy import ComfyClient, Progress
from wan_worker.testing import ComfyUIDouble
from wan_worker.workflows import BuiltWorkflow, build


def _image(path: Path) -> Path:
    Image.new("RGB", (96, 64), (200, 120, 40)).save(path)
    return path


def _audio(path: Path, seconds: float) -> Path:
    rate = 16000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x10" * int(rate * seconds))
    return path


def _models(built: BuiltWorkflow) -> dict[str, list[str]]:
    models: dict[str, list[str]] = defaultdict(list)
    for ref in built.models:
        models[ref.folder].append(ref.file)
    return models


def _probe(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        assert video.average_rate is not None
        return {
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "frames": frames,
            "fps": float(video.average_rate),
            "audio": len(container.streams.audio) > 0,
        }


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "i2v",
        {"image": "start.png"},
        {"width": 64, "height": 48, "frames": 17, "fps": 16, "audio": False},
    ),
    (
        "t2v",
        {"preset": "standard"},
        {"width": 48, "height": 64, "frames": 9, "fps": 16, "audio": False},
    ),
    (
        "flf2v",
        {"image": "start.png", "end_image": "end.png"},
        {"width": 64, "height": 64, "frames": 13, "fps": 16, "audio": False},
    ),
    (
        "ti2v",
        {"image": "start.png"},
        {"width": 64, "height": 32, "frames": 21, "fps": 24, "audio": False},
    ),
    ("ti2v", {}, {"width": 32, "height": 64, "frames": 5, "fps": 24, "audio": False}),
    (
        "s2v",
        {"image": "start.png", "audio": "voice.wav", "audio_seconds": 6.0},
        {"width": 64, "height": 48, "frames": 159, "fps": 16, "audio": True},
    ),
]


@pytest.mark.parametrize(("mode", "params", "expected"), CASES)
async def test_the_graph_of_each_mode_yields_the_requested_video(
    mode: str, params: dict[str, Any], expected: dict[str, Any], tmp_path: Path
) -> None:
    request = params | {"seed": 11, "width": expected["width"], "height": expected["height"]}
    if mode != "s2v":
        request["frames"] = expected["frames"]
    built = build(mode, request)
    assert built.settings.frames == expected["frames"]
    uploads: dict[str, Path | str] = {}
    if "image" in params:
        uploads["start.png"] = _image(tmp_path / "start.png")
    if "end_image" in params:
        uploads["end.png"] = _image(tmp_path / "end.png")
    if "audio" in params:
        uploads["voice.wav"] = _audio(tmp_path / "voice.wav", params["audio_seconds"])
    seen: list[Progress] = []

    async with (
        ComfyUIDouble(root=tmp_path / "comfyui", models=_models(built)) as double,
        ComfyClient(double.url) as client,
    ):
        result = await client.run_prompt(
            built.graph,
            output_dir=tmp_path / "out",
            uploads=uploads,
            on_progress=seen.append,
            timeout_s=60,
        )

    (video,) = [o for o in result.outputs if o.kind == "video"]
    assert _probe(video.path) == expected
    percents = [p.percent for p in seen]
    assert percents == sorted(percents), "progress never goes backwards"
    assert percents[-1] == pytest.approx(100)
    samplers = sum(n["class_type"].startswith("KSampler") for n in built.graph.values())
    assert samplers == {"ti2v": 1, "s2v": 2}.get(mode, 2)
    reported = {p.sampler_index for p in seen if p.stage == "sampling"}
    assert reported == set(range(1, samplers + 1)), "each sampling stage is reported"
