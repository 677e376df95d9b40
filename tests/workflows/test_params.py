"""Rules, presets, defaults and legacy names of the request models."""

from __future__ import annotations

from typing import Any

import pytest

from wan_worker.errors import InvalidInput, UnsupportedAction
from wan_worker.workflows import build
from wan_worker.workflows.params import (
    NEGATIVE_PROMPT,
    NEGATIVE_PROMPT_T2V,
    RANDOM_SEED_BOUND,
    nearest_frames,
    nearest_multiple,
)


def _problem(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, Any]:
    assert exc.value.code == "invalid_input"
    assert exc.value.problems, "an invalid input names the field at fault"
    return exc.value.problems[0].as_dict()


@pytest.mark.parametrize(
    ("requested", "used"),
    [(1, 1), (2, 1), (3, 5), (49, 49), (50, 49), (51, 53), (80, 81), (81, 81), (82, 81)],
)
def test_frames_round_to_the_nearest_4n_plus_1(requested: int, used: int) -> None:
    assert nearest_frames(requested) == used


@pytest.mark.parametrize(
    ("value", "grid", "used"),
    [(640, 16, 640), (650, 16, 656), (647, 16, 640), (1, 16, 16), (700, 32, 704)],
)
def test_sizes_round_to_the_models_grid(value: int, grid: int, used: int) -> None:
    assert nearest_multiple(value, grid) == used


def test_a_rounded_value_is_reported_never_silent() -> None:
    built = build("i2v", {"frames": 50, "width": 650, "height": 640})
    assert built.settings.frames == 49
    assert built.settings.width == 656
    reported = {a.field: (a.requested, a.used) for a in built.adjustments}
    assert reported == {"frames": (50, 49), "width": (650, 656)}


def test_ti2v_sizes_are_on_a_32_pixel_grid() -> None:
    built = build("ti2v", {"width": 1280, "height": 720})
    assert (built.settings.width, built.settings.height) == (1280, 736)
    assert built.adjustments[0].rule == "a multiple of 32 for this model"


@pytest.mark.parametrize(
    ("mode", "preset", "expected"),
    [
        ("i2v", "standard", (20, 3.5, 10, 5.0, "euler", "simple")),
        ("i2v", "lightning", (4, 1.0, 2, 5.0, "euler", "simple")),
        ("t2v", "standard", (20, 3.5, 10, 5.0, "euler", "simple")),
        ("t2v", "lightning", (4, 1.0, 2, 5.0, "euler", "simple")),
        ("flf2v", "standard", (20, 4.0, 10, 8.0, "euler", "simple")),
        ("flf2v", "lightning", (4, 1.0, 2, 5.0, "euler", "simple")),
        ("ti2v", "standard", (20, 5.0, None, 8.0, "uni_pc", "simple")),
        ("s2v", "standard", (20, 6.0, None, 8.0, "uni_pc", "simple")),
        ("s2v", "lightning", (4, 1.0, None, 8.0, "uni_pc", "simple")),
    ],
)
def test_presets_take_the_official_templates_settings(
    mode: str, preset: str, expected: tuple[Any, ...]
) -> None:
    s = build(
        mode,
        {"preset": preset, "audio": "a.wav", "chunks": 1} if mode == "s2v" else {"preset": preset},
    ).settings
    assert (s.steps, s.cfg, s.split_step, s.shift, s.sampler, s.scheduler) == expected


def test_lightning_preset_splits_at_step_2() -> None:
    graph = build("i2v", {"preset": "lightning"}).graph
    assert graph["sampler_high_noise"]["inputs"]["end_at_step"] == 2
    assert graph["sampler_low_noise"]["inputs"]["start_at_step"] == 2


def test_the_default_split_keeps_the_presets_proportion_when_steps_change() -> None:
    assert build("i2v", {"preset": "standard", "steps": 30}).settings.split_step == 15


@pytest.mark.parametrize("split", [0, 4, 9])
def test_a_split_outside_the_step_range_is_rejected_with_the_nearest_valid_value(
    split: int,
) -> None:
    with pytest.raises(InvalidInput) as exc:
        build("i2v", {"steps": 4, "split_step": split})
    problem = _problem(exc)
    assert problem["field"] == "split_step"
    assert problem["suggestion"] in (1, 3)


def test_two_stage_sampling_needs_two_steps() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("t2v", {"steps": 1})
    assert _problem(exc)["field"] == "steps"


def test_ti2v_has_no_lightning_preset() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("ti2v", {"preset": "lightning"})
    problem = _problem(exc)
    assert problem["field"] == "preset"
    assert problem["suggestion"] == "standard"


def test_an_unknown_sampler_suggests_the_closest_one() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("i2v", {"sampler": "eulr"})
    assert _problem(exc) | {} == {
        "message": "sampler='eulr': must be one of 44 known values; nearest valid value: euler",
        "field": "sampler",
        "value": "eulr",
        "rule": "must be one of 44 known values",
        "suggestion": "euler",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"width": 0}, "width"),
        ({"width": 20000}, "width"),
        ({"frames": 0}, "frames"),
        ({"steps": 0}, "steps"),
        ({"cfg": -1}, "cfg"),
        ({"cfg": 101}, "cfg"),
        ({"shift": 200}, "shift"),
        ({"fps": 0}, "fps"),
        ({"fps": 500}, "fps"),
        ({"seed": -2}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"weight_dtype": "fp4"}, "weight_dtype"),
        ({"preset": "turbo"}, "preset"),
        ({"loras": [{"name": "x.safetensors", "strength": 101}]}, "loras.0.strength"),
        ({"loras": [{"name": "../../etc/passwd"}]}, "loras.0.name"),
        ({"loras": [{"name": "x.safetensors", "stage": "middle"}]}, "loras.0.stage"),
        ({"filename_prefix": "../outside"}, "filename_prefix"),
        ({"filename_prefix": "/abs"}, "filename_prefix"),
        ({"image": "../secret.png"}, "image"),
        ({"vae": "a/../../b.safetensors"}, "vae"),
        ({"prompt": "x" * 20001}, "prompt"),
        ({"chunks": 3}, "chunks"),
        ({"steps": "many"}, "steps"),
    ],
)
def test_out_of_bounds_and_unsafe_values_are_rejected_with_their_field(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        build("i2v", params)
    assert _problem(exc)["field"] == field


def test_a_bound_violation_suggests_the_bound() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("i2v", {"cfg": 101})
    assert _problem(exc)["suggestion"] == 100


def test_an_unknown_mode_is_an_unsupported_action() -> None:
    with pytest.raises(UnsupportedAction) as exc:
        build("v2v", {})
    assert exc.value.problems[0].field == "mode"


def test_seed_minus_one_picks_a_random_seed_that_is_reported() -> None:
    built = build("i2v", {"seed": -1})
    assert 0 <= built.seed < RANDOM_SEED_BOUND
    assert built.graph["sampler_high_noise"]["inputs"]["noise_seed"] == built.seed
    assert built.effective_parameters()["seed"] == built.seed


def test_an_explicit_seed_is_used_as_given() -> None:
    assert (
        build("t2v", {"seed": 2**64 - 1}).graph["sampler_high_noise"]["inputs"]["noise_seed"]
        == 2**64 - 1
    )


def test_the_negative_prompt_defaults_to_the_official_one() -> None:
    assert build("i2v", {}).graph["negative_prompt"]["inputs"]["text"] == NEGATIVE_PROMPT
    assert build("t2v", {}).graph["negative_prompt"]["inputs"]["text"] == NEGATIVE_PROMPT_T2V
    assert NEGATIVE_PROMPT_T2V.endswith("，裸露，NSFW")
    custom = build("i2v", {"negative_prompt": "blurry"}).graph["negative_prompt"]["inputs"]["text"]
    assert custom == "blurry"


@pytest.mark.parametrize(
    ("legacy", "modern"),
    [
        ({"use_lora": True}, {"preset": "lightning"}),
        ({"use_lora": False}, {"preset": "standard"}),
        ({"cfg_scale": 2.5}, {"cfg": 2.5}),
        ({"num_frames": 49}, {"frames": 49}),
        ({"vae_model": "v.safetensors"}, {"vae": "v.safetensors"}),
        ({"split": 3, "steps": 6}, {"split_step": 3, "steps": 6}),
        (
            {"lora_name": "style.safetensors", "lora_strength": 0.7},
            {"loras": [{"name": "style.safetensors", "strength": 0.7}]},
        ),
        ({"diffusion_model": "h.safetensors"}, {"high_noise_model": "h.safetensors"}),
    ],
)
def test_the_first_drafts_field_names_map_onto_ours(
    legacy: dict[str, Any], modern: dict[str, Any]
) -> None:
    base = {"seed": 1}
    assert build("i2v", base | legacy).graph == build("i2v", base | modern).graph


def test_diffusion_model_is_the_single_model_in_single_model_modes() -> None:
    graph = build("ti2v", {"diffusion_model": "mine.safetensors"}).graph
    assert graph["model"]["inputs"]["unet_name"] == "mine.safetensors"


@pytest.mark.parametrize(
    "params",
    [
        {"cfg_scale": 2, "cfg": 3},
        {"use_lora": True, "preset": "standard"},
        {"use_lora": "yes"},
        {"num_frames": 49, "frames": 49},
    ],
)
def test_contradicting_legacy_and_modern_names_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        build("i2v", params)


def test_a_parameter_of_another_mode_is_rejected_by_name() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("t2v", {"image": "x.png"})
    problem = _problem(exc)
    assert problem["field"] == "image"
    assert "not a parameter of this mode" in problem["message"]


def test_single_model_modes_refuse_a_low_noise_lora() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("ti2v", {"loras": [{"name": "x.safetensors", "stage": "low"}]})
    assert _problem(exc)["field"] == "loras.0.stage"


def test_every_rule_violation_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as exc:
        build("i2v", {"steps": 4, "split_step": 7, "sampler": "nope", "scheduler": "nope"})
    assert [p.field for p in exc.value.problems] == ["split_step", "sampler", "scheduler"]
