"""verify_models: present, missing and wrong-size files across several models roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from wan_worker.catalogue import ModelFile
from wan_worker.models import verify_models


def _model(file: str, folder: str, approx: int | None) -> ModelFile:
    return ModelFile(file, folder, "Test/Repo", f"split_files/{folder}/{file}", approx, "vae", ())


SIZED = _model("sized.safetensors", "vae", 10_000)
UNSIZED = _model("unsized.safetensors", "loras", None)


def _put(root: Path, model: ModelFile, size: int) -> Path:
    path = root / model.folder / model.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def test_missing_files_are_reported_where_they_belong(tmp_path: Path) -> None:
    (check,) = verify_models([SIZED], [tmp_path / "a", tmp_path / "b"])
    assert check.state == "missing"
    assert check.path == tmp_path / "a" / "vae" / SIZED.file
    assert check.actual_bytes is None


def test_a_file_within_one_percent_of_the_catalogue_is_present(tmp_path: Path) -> None:
    _put(tmp_path, SIZED, 10_050)
    (check,) = verify_models([SIZED], [tmp_path])
    assert (check.state, check.actual_bytes, check.size_checked) == ("present", 10_050, True)


@pytest.mark.parametrize("size", [0, 5_000, 10_200])
def test_a_file_of_another_size_is_wrong_size(tmp_path: Path, size: int) -> None:
    _put(tmp_path, SIZED, size)
    (check,) = verify_models([SIZED], [tmp_path])
    assert check.state == "wrong_size"
    assert check.as_dict()["bytes"] == size


def test_an_unknown_size_is_present_but_unchecked(tmp_path: Path) -> None:
    _put(tmp_path, UNSIZED, 3)
    (check,) = verify_models([UNSIZED], [tmp_path])
    assert (check.state, check.size_checked) == ("present", False)


def test_the_first_root_holding_the_file_decides(tmp_path: Path) -> None:
    baked = _put(tmp_path / "baked", SIZED, 10_000)
    _put(tmp_path / "volume", UNSIZED, 1)
    checks = verify_models([SIZED, UNSIZED], [tmp_path / "volume", tmp_path / "baked"])
    assert [(c.state, c.path) for c in checks] == [
        ("present", baked),
        ("present", tmp_path / "volume" / "loras" / UNSIZED.file),
    ]


def test_a_folder_in_place_of_the_file_is_missing(tmp_path: Path) -> None:
    (tmp_path / "vae" / SIZED.file).mkdir(parents=True)
    assert verify_models([SIZED], [tmp_path])[0].state == "missing"
