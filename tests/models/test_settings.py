"""ModelSettings from the environment: where models go, which hub, the token kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_worker.errors import InvalidInput
from wan_worker.models import ModelSettings


def test_models_dir_wins(tmp_path: Path) -> None:
    volume = tmp_path / "runpod-volume"
    volume.mkdir()
    env = {"MODELS_DIR": "/data/models", "COMFYUI_PATH": "/comfyui"}
    settings = ModelSettings.from_env(env, runpod_volume=volume)
    assert settings.models_dir == Path("/data/models")


def test_a_mounted_volume_comes_before_comfyui(tmp_path: Path) -> None:
    volume = tmp_path / "runpod-volume"
    volume.mkdir()
    settings = ModelSettings.from_env({"COMFYUI_PATH": "/comfyui"}, runpod_volume=volume)
    assert settings.models_dir == volume / "models"


def test_without_a_volume_comfyui_models_then_the_working_directory(tmp_path: Path) -> None:
    absent = tmp_path / "no-volume"
    with_comfyui = ModelSettings.from_env({"COMFYUI_PATH": "/comfyui"}, runpod_volume=absent)
    assert with_comfyui.models_dir == Path("/comfyui/models")
    assert ModelSettings.from_env({}, runpod_volume=absent).models_dir == Path("models")


def test_hub_endpoint_and_token(tmp_path: Path) -> None:
    settings = ModelSettings.from_env(
        {"HF_ENDPOINT": "http://127.0.0.1:9/", "HF_TOKEN": "hf_secret", "MODELS_DIR": "m"},
        runpod_volume=tmp_path / "none",
    )
    assert settings.hf_endpoint == "http://127.0.0.1:9"
    assert settings.hf_token == "hf_secret"
    assert "hf_secret" not in repr(settings)


def test_the_default_endpoint_is_the_hub(tmp_path: Path) -> None:
    settings = ModelSettings.from_env({}, runpod_volume=tmp_path / "none")
    assert settings.hf_endpoint == "https://huggingface.co"
    assert settings.hf_token is None


def test_a_bad_endpoint_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        ModelSettings.from_env({"HF_ENDPOINT": "ftp://x"}, runpod_volume=tmp_path / "none")
    assert err.value.problems[0].field == "HF_ENDPOINT"
