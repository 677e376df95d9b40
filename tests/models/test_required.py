"""required_models: the files each mode's graph loads, and the catalogue covers every one."""

from __future__ import annotations

from typing import Any

import pytest

from wan_worker import catalogue
from wan_worker.errors import InvalidInput, UnsupportedAction
from wan_worker.models import effective_preset, required_models
from wan_worker.workflows import MODES, PRESETS, build

_EXTRA: dict[str, dict[str, Any]] = {"s2v": {"audio": "a.wav", "chunks": 1}}


def _buildable() -> list[tuple[str, str]]:
    """Every (mode, preset) pair the builders know."""
    return [(mode, preset) for mode, preset in PRESETS]


@pytest.mark.parametrize(("mode", "preset"), _buildable())
def test_every_file_a_graph_references_is_catalogued_with_its_source(
    mode: str, preset: str
) -> None:
    built = build(mode, {"preset": preset, **_EXTRA.get(mode, {})})
    for ref in built.models:
        entry = catalogue.find(ref.file)
        assert entry is not None, f"{ref.file} ({mode}, {preset}) is not in the catalogue"
        assert entry.folder == ref.folder
        assert entry.repository
        assert entry.path.endswith(entry.file)
        assert mode in entry.modes or entry.alternative_to is not None


@pytest.mark.parametrize(("mode", "preset"), _buildable())
def test_required_models_are_exactly_the_graphs_files(mode: str, preset: str) -> None:
    built = build(mode, {"preset": preset, **_EXTRA.get(mode, {})})
    assert [(m.folder, m.file) for m in required_models(mode, preset)] == [
        (r.folder, r.file) for r in built.models
    ]


def test_every_mode_has_a_buildable_default() -> None:
    assert {mode for mode, _ in _buildable()} == set(MODES)
    for mode in MODES:
        assert required_models(mode, None) == required_models(mode, effective_preset(mode))


def test_lightning_i2v_adds_its_two_loras() -> None:
    files = [m.file for m in required_models("i2v", "lightning")]
    assert len(files) == 6
    assert "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors" in files
    assert "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors" in files
    assert not any("lora" in f for f in (m.file for m in required_models("i2v", "standard")))


def test_the_catalogue_only_lists_files_some_graph_or_alternative_uses() -> None:
    used = {m.file for mode, preset in _buildable() for m in required_models(mode, preset)}
    for entry in catalogue.all_models():
        assert entry.file in used or entry.alternative_to in used, entry.file


def test_bad_mode_and_preset_are_the_builders_errors() -> None:
    with pytest.raises(UnsupportedAction):
        required_models("x2v")
    with pytest.raises(InvalidInput):
        required_models("ti2v", "lightning")
