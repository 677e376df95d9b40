"""``wan-worker workflow``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wan_worker.cli import main
from wan_worker.workflows import build


def test_workflow_prints_the_api_graph_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["workflow", "i2v", "--preset", "standard", "--seed", "5", "--prompt", "a fox"])
    out, err = capsys.readouterr()
    assert code == 0
    assert (
        json.loads(out) == build("i2v", {"preset": "standard", "seed": 5, "prompt": "a fox"}).graph
    )
    assert "seed: 5" in err


def test_every_flag_reaches_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "workflow", "flf2v", "--preset", "lightning", "--prompt", "p", "--negative-prompt", "n",
            "--width", "480", "--height", "320", "--frames", "33", "--fps", "12", "--seed", "9",
            "--steps", "6", "--cfg", "1.5", "--split", "3", "--shift", "6", "--sampler", "uni_pc",
            "--scheduler", "beta", "--image", "a.png", "--end-image", "b.png",
            "--high-noise-model", "h.safetensors", "--low-noise-model", "l.safetensors",
            "--vae", "v.safetensors", "--text-encoder", "t.safetensors", "--weight-dtype",
            "fp8_e4m3fn", "--filename-prefix", "video/x", "--lora", "style.safetensors:0.5:low",
        ]
    )  # fmt: skip
    graph = json.loads(capsys.readouterr().out)
    assert code == 0
    expected = build(
        "flf2v",
        {
            "preset": "lightning", "prompt": "p", "negative_prompt": "n", "width": 480,
            "height": 320, "frames": 33, "fps": 12, "seed": 9, "steps": 6, "cfg": 1.5,
            "split_step": 3, "shift": 6, "sampler": "uni_pc", "scheduler": "beta",
            "image": "a.png", "end_image": "b.png", "high_noise_model": "h.safetensors",
            "low_noise_model": "l.safetensors", "vae": "v.safetensors",
            "text_encoder": "t.safetensors", "weight_dtype": "fp8_e4m3fn",
            "filename_prefix": "video/x",
            "loras": [{"name": "style.safetensors", "strength": 0.5, "stage": "low"}],
        },
    ).graph  # fmt: skip
    assert graph == expected


def test_s2v_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "workflow",
            "s2v",
            "--audio",
            "v.wav",
            "--audio-seconds",
            "14",
            "--audio-encoder",
            "w.safetensors",
        ]
    )
    graph = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sum(n["class_type"] == "WanSoundImageToVideoExtend" for n in graph.values()) == 2
    assert graph["audio_encoder"]["inputs"]["audio_encoder_name"] == "w.safetensors"


def test_rounded_values_are_reported_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "t2v", "--frames", "50"]) == 0
    assert "adjusted frames: 50 -> 49 (4n+1 frames)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["workflow", "i2v", "--steps", "4", "--split", "9"], "split_step=9"),
        (["workflow", "t2v", "--image", "x.png"], "image: is not a parameter of this mode"),
        (["workflow", "ti2v", "--preset", "lightning"], "ti2v has no lightning preset"),
        (["workflow", "s2v", "--audio", "a.wav"], "audio_seconds"),
    ],
)
def test_errors_go_to_stderr_with_exit_code_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert needle in err


@pytest.mark.parametrize("bad", ["nocolon.safetensors", "x.safetensors:strong"])
def test_a_malformed_lora_flag_is_a_usage_error(bad: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["workflow", "i2v", "--lora", bad])
    assert exc.value.code == 2


def test_the_console_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wan_worker.cli", "workflow", "ti2v", "--seed", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["video_latent"]["class_type"] == "Wan22ImageToVideoLatent"
