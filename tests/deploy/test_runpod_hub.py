"""The RunPod Hub files: the fields the Hub requires, and a test job that really generates.

The Hub builds the image from a release, starts an endpoint with tests.json's config and sends
each test input; a 200 answer passes. The input must therefore be a real, valid, short job on
the default mode and preset, never a shortcut the handler answers without a GPU.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.fakes import REPO_ROOT
from wan_worker.models import required_models
from wan_worker.service import GenerationJob, parse_job

HUB_DIR = REPO_ROOT / ".runpod"
CATEGORIES = {"audio", "embedding", "language", "video", "image"}
GPU_POOLS = {
    "AMPERE_16", "AMPERE_24", "ADA_24", "ADA_32_PRO", "AMPERE_48", "ADA_48_PRO",
    "AMPERE_80", "ADA_80_PRO", "HOPPER_141", "BLACKWELL_96", "BLACKWELL_180",
}  # fmt: skip


def load(name: str) -> dict[str, Any]:
    data = json.loads((HUB_DIR / name).read_text())
    assert isinstance(data, dict)
    return data


def env_entries() -> dict[str, dict[str, Any]]:
    return {entry["key"]: entry for entry in load("hub.json")["config"]["env"]}


def model_specs(spec: str) -> list[tuple[str, str | None]]:
    """DOWNLOAD_MODELS / BAKE_MODELS items as (mode, preset), as docker/download-models.sh reads."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    return [(m, p or None) for m, _, p in (item.partition(":") for item in items)]


def test_hub_json_has_every_required_field() -> None:
    hub = load("hub.json")
    assert hub["title"].strip() and hub["description"].strip()
    assert hub["type"] == "serverless"
    assert hub["category"] in CATEGORIES
    config = hub["config"]
    assert config["runsOn"] == "GPU"
    assert isinstance(config["containerDiskInGb"], int)
    assert isinstance(config["gpuCount"], int) and config["gpuCount"] >= 1
    pools = config["gpuIds"].split(",")
    assert pools and set(pools) <= GPU_POOLS
    assert all(re.fullmatch(r"\d+\.\d+", v) for v in config["allowedCudaVersions"])


def test_hub_env_entries_are_static_values_or_well_formed_inputs() -> None:
    for key, entry in env_entries().items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key)
        assert ("value" in entry) != ("input" in entry), key
        if "input" not in entry:
            continue
        field = entry["input"]
        assert field["name"] and field["description"], key
        assert field["type"] in {"string", "number", "boolean", "huggingface"}, key
        if field["type"] == "boolean":
            assert isinstance(field["default"], bool)
            assert {field["trueValue"], field["falseValue"]} == {"true", "false"}
        if field["type"] == "number":
            assert field["min"] <= field["default"] <= field["max"], key


def test_hub_presets_only_set_declared_variables_with_valid_model_lists() -> None:
    env = env_entries()
    presets = load("hub.json")["config"]["presets"]
    assert presets
    for preset in presets:
        assert preset["name"]
        assert set(preset["defaults"]) <= set(env), preset["name"]
        for mode, name in model_specs(preset["defaults"].get("DOWNLOAD_MODELS", "")):
            assert required_models(mode, name), preset["name"]


def test_the_container_disk_holds_the_default_models() -> None:
    hub = load("hub.json")
    default = env_entries()["DOWNLOAD_MODELS"]["input"]["default"]
    assert model_specs(default) == [("i2v", "lightning")]
    models_gb = sum(m.approx_bytes or 0 for m in required_models("i2v", "lightning")) / 1e9
    image_gb = 15  # CUDA runtime, PyTorch and ComfyUI's requirements, with room to spare
    assert hub["config"]["containerDiskInGb"] >= models_gb + image_gb


def test_tests_json_has_the_hub_fields() -> None:
    tests = load("tests.json")
    assert tests["tests"]
    for case in tests["tests"]:
        assert case["name"] and isinstance(case["input"], dict)
        assert isinstance(case["timeout"], int)
    config = tests["config"]
    assert config["gpuTypeId"].startswith("NVIDIA ")
    assert config["gpuCount"] == 1
    assert all(set(entry) == {"key", "value"} for entry in config["env"])
    assert config["allowedCudaVersions"] == load("hub.json")["config"]["allowedCudaVersions"]


@pytest.mark.parametrize("case", load("tests.json")["tests"], ids=lambda c: c["name"])
def test_the_hub_test_is_a_real_short_generation_our_schema_accepts(case: dict[str, Any]) -> None:
    job = parse_job(case["input"])

    assert isinstance(job, GenerationJob)
    assert job.mode == "i2v"
    assert case["input"]["preset"] == "lightning"
    assert case["input"]["frames"] <= 33 and job.width is not None and job.height is not None
    assert job.width * job.height <= 480 * 480
    assert case["input"]["timeout_s"] * 1000 < case["timeout"], "the job's deadline comes first"


def test_the_hub_test_image_is_the_committed_sample() -> None:
    (case,) = load("tests.json")["tests"]
    header, _, data = case["input"]["image_base64"].partition(",")
    assert header == "data:image/png;base64"
    try:
        image = base64.b64decode(data, validate=True)
    except binascii.Error as exc:  # pragma: no cover - a failure message, not a branch
        raise AssertionError("image_base64 is not base64") from exc
    assert image == (REPO_ROOT / "samples" / "lighthouse.png").read_bytes()


def test_the_hub_test_endpoint_downloads_the_models_the_test_needs() -> None:
    env = {e["key"]: e["value"] for e in load("tests.json")["config"]["env"]}
    downloaded = {m.file for mode, p in model_specs(env["DOWNLOAD_MODELS"])
                  for m in required_models(mode, p)}  # fmt: skip
    (case,) = load("tests.json")["tests"]
    needed = {m.file for m in required_models("i2v", case["input"]["preset"])}
    assert needed <= downloaded


def test_compose_downloads_a_valid_model_list_by_default() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    (service,) = compose["services"].values()
    default = re.fullmatch(
        r"\$\{DOWNLOAD_MODELS:-(.+)\}", service["environment"]["DOWNLOAD_MODELS"]
    )
    assert default is not None
    for mode, preset in model_specs(default.group(1)):
        assert required_models(mode, preset)


def test_handler_and_dockerfile_are_where_the_hub_looks() -> None:
    for name in ("handler.py", "Dockerfile", "README.md"):
        assert (REPO_ROOT / name).is_file() or (HUB_DIR / name).is_file(), name
    assert not (HUB_DIR / "Dockerfile").exists(), "one Dockerfile: the root one"
    assert Path(REPO_ROOT / "test_input.json").is_file()
