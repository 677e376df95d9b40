"""``wan-worker doctor`` against the ComfyUI double: complete, missing a model and a node,
unreachable, and an output folder that cannot be written."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cli.conftest import catalogue_models, run_cli, run_main
from wan_worker import catalogue
from wan_worker.testing import ComfyUIDouble, load_object_info

LORA = catalogue.preset_loras("i2v", "lightning")[0]
"""The model file the broken server lacks: a LoRA only the lightning presets load."""
NODE = "WanSoundImageToVideo"
"""The node type the broken server lacks: only s2v uses it."""


@pytest.fixture
async def broken(tmp_path: Path) -> AsyncIterator[ComfyUIDouble]:
    """A ComfyUI without one LoRA file and without the WanSoundImageToVideo node."""
    models = catalogue_models()
    models[LORA.folder].remove(LORA.file)
    info = load_object_info()
    del info[NODE]
    async with ComfyUIDouble(root=tmp_path / "broken", models=models, object_info=info) as server:
        yield server


async def test_a_complete_server_passes_every_mode_and_preset(
    comfy: ComfyUIDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await run_main(["doctor", "--comfyui", comfy.url, "--output-dir", str(tmp_path)], capsys)

    assert run.status == 0, run.stdout
    lines = run.stdout.splitlines()
    assert lines[0] == f"wan-worker doctor: ComfyUI at {comfy.url}"
    assert any(line.startswith("comfyui        ok      version 0.33.0") for line in lines)
    assert any(line.startswith("device 0       ok      cpu (cpu): 12.0 GiB free") for line in lines)
    assert any(line.startswith(f"output folder  ok      {tmp_path}") for line in lines)
    modes = [line.split()[:3] for line in lines if line.split()[:1] in (["i2v"], ["s2v"])]
    assert modes == [
        ["i2v", "standard", "ready"],
        ["i2v", "lightning", "ready"],
        ["s2v", "standard", "ready"],
        ["s2v", "lightning", "ready"],
    ]
    assert lines[-1] == "everything required is present"


async def test_a_missing_model_and_node_are_named_with_where_to_get_them(
    broken: ComfyUIDouble, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    run = await run_cli(
        ["doctor", "--comfyui", broken.url, "--output-dir", str(tmp_path)], env=cli_env
    )

    assert run.status == 1
    lines = run.stdout.splitlines()
    status = {
        tuple(line.split()[:2]): line.split()[2]
        for line in lines
        if " ready " in line or " NOT READY " in line
    }
    assert status[("i2v", "standard")] == "ready"
    assert status[("i2v", "lightning")] == "NOT"
    assert status[("s2v", "standard")] == "NOT"
    lora_users = "i2v/lightning, flf2v/lightning"
    assert f"missing model  models/{LORA.folder}/{LORA.file}  ({lora_users})" in lines
    assert f"               download to models/{LORA.folder}/ from {LORA.url}" in lines
    assert f"missing node   {NODE}  (s2v/standard, s2v/lightning)" in lines
    assert "               a core ComfyUI node: update ComfyUI" in lines
    assert lines[-1].startswith("something required is missing (exit status 1); ready: ")


async def test_json_lists_what_is_missing(
    broken: ComfyUIDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await run_main(
        ["doctor", "--comfyui", broken.url, "--output-dir", str(tmp_path), "--json"], capsys
    )

    assert run.status == 1
    report = json.loads(run.stdout)
    assert set(report) == {"ok", "comfyui", "devices", "output_dir", "modes", "missing"}
    assert report["ok"] is False
    assert report["comfyui"]["reachable"] is True and report["comfyui"]["version"] == "0.33.0"
    assert report["devices"][0]["vram_free"] == 12 * 1024**3
    assert report["output_dir"]["writable"] is True
    assert report["missing"]["nodes"] == [
        {"class_type": NODE, "node_pack": None, "needed_by": ["s2v/standard", "s2v/lightning"]}
    ]
    assert report["missing"]["models"] == [
        {
            "file": LORA.file,
            "folder": LORA.folder,
            "download": f"models/{LORA.folder}/ from {LORA.url}",
            "needed_by": ["i2v/lightning", "flf2v/lightning"],
        }
    ]
    i2v = next(m for m in report["modes"] if (m["mode"], m["preset"]) == ("i2v", "lightning"))
    assert i2v["ready"] is False
    assert [m["file"] for m in i2v["models"] if not m["present"]] == [LORA.file]


async def test_only_the_mode_and_preset_asked_for_count(
    broken: ComfyUIDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["doctor", "--comfyui", broken.url, "--output-dir", str(tmp_path)]
    ready = await run_main([*args, "--mode", "i2v", "--preset", "standard", "--json"], capsys)
    assert ready.status == 0
    assert [(m["mode"], m["preset"]) for m in json.loads(ready.stdout)["modes"]] == [
        ("i2v", "standard")
    ]
    not_ready = await run_main([*args, "--mode", "t2v", "--mode", "s2v"], capsys)
    assert not_ready.status == 1
    assert "ready: t2v/standard, t2v/lightning" in not_ready.stdout


async def test_a_preset_the_mode_lacks_exits_2(
    comfy: ComfyUIDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    run = await run_main(
        ["doctor", "--comfyui", comfy.url, "--mode", "ti2v", "--preset", "lightning"], capsys
    )
    assert run.status == 2
    assert "ti2v has no lightning preset" in run.stderr


async def test_an_unreachable_comfyui_and_an_unwritable_folder_fail(
    comfy: ComfyUIDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = comfy.url
    await comfy.stop()
    missing = tmp_path / "no" / "such" / "folder"
    run = await run_main(["doctor", "--comfyui", url, "--output-dir", str(missing)], capsys)

    assert run.status == 1
    lines = run.stdout.splitlines()
    assert any(re.match(r"comfyui +UNREACHABLE +comfyui_unavailable: ", line) for line in lines)
    assert any(re.match(rf"output folder +NOT WRITABLE +{missing}: ", line) for line in lines)
