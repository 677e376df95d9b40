"""ComfyUI's extra_model_paths.yaml: written by us, read back the way ComfyUI reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wan_worker import catalogue
from wan_worker.comfy.schema import MODEL_FOLDERS
from wan_worker.models import (
    MODEL_SUBFOLDERS,
    extra_model_paths_yaml,
    model_path,
    write_extra_model_paths,
)


def _search_paths(config: dict[str, dict[str, object]]) -> dict[str, list[Path]]:
    """Every (folder -> paths) pair, resolved the way ComfyUI's load_extra_path_config does."""
    found: dict[str, list[Path]] = {}
    for entry in config.values():
        conf = dict(entry)
        base = Path(str(conf.pop("base_path")))
        conf.pop("is_default", None)
        for folder, value in conf.items():
            assert isinstance(value, str)
            for line in value.split("\n"):
                if line:
                    found.setdefault(folder, []).append(base / line)
    return found


def test_the_yaml_parses_back_to_every_folder_under_every_root(tmp_path: Path) -> None:
    volume, baked = Path("/runpod-volume/models"), tmp_path / "ComfyUI" / "models"
    config = yaml.safe_load(extra_model_paths_yaml([volume, baked]))
    assert len(config) == 2
    first, second = config.values()
    assert first["base_path"] == "/runpod-volume/models/"
    assert first["is_default"] is True
    assert second["base_path"] == f"{baked}/"
    assert "is_default" not in second
    assert _search_paths(config) == {
        folder: [volume / folder, baked / folder] for folder in MODEL_SUBFOLDERS
    }


def test_one_folder_line_per_models_folder() -> None:
    text = extra_model_paths_yaml([Path("/runpod-volume/models")])
    assert "  diffusion_models: diffusion_models/\n" in text
    assert "  audio_encoders: audio_encoders/\n" in text


def test_roots_with_the_same_name_stay_apart() -> None:
    config = yaml.safe_load(extra_model_paths_yaml([Path("/a-b/models"), Path("/a_b/models")]))
    assert [c["base_path"] for c in config.values()] == ["/a-b/models/", "/a_b/models/"]


def test_a_path_with_yaml_syntax_is_quoted(tmp_path: Path) -> None:
    odd = tmp_path / "models: #1"
    config = yaml.safe_load(extra_model_paths_yaml([odd]))
    assert next(iter(config.values()))["base_path"] == f"{odd}/"


def test_no_roots_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        extra_model_paths_yaml([])


def test_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "comfyui" / "extra_model_paths.yaml"
    target.parent.mkdir()
    target.write_text("old: {}\n")
    assert write_extra_model_paths(target, [tmp_path / "models"]) == target
    (entry,) = yaml.safe_load(target.read_text()).values()
    assert entry["base_path"] == f"{tmp_path / 'models'}/"
    assert list(target.parent.iterdir()) == [target]


def test_every_folder_a_loader_or_the_catalogue_uses_is_written() -> None:
    folders = {m.folder for m in catalogue.all_models()} | set(MODEL_FOLDERS.values())
    assert folders <= set(MODEL_SUBFOLDERS)


def test_model_path_is_root_folder_file() -> None:
    entry = catalogue.all_models()[0]
    assert model_path(Path("/m"), entry) == Path("/m") / entry.folder / entry.file
