"""Every graph we build passes ComfyUI's own validation rules against the real node schemas.

The schemas are the trimmed ``/object_info`` fixture of a real ComfyUI 0.33.0 server; model and
input lists are filled with the files each graph names, as on a server that has them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wan_worker.comfy.schema import NodeSchemas, validate_graph
from wan_worker.errors import InvalidInput, UnsupportedAction
from wan_worker.workflows import PRESETS, BuiltWorkflow, build
from wan_worker.workflows.params import MAX_SEED, SAMPLERS, SCHEDULERS

_SCHEMAS = NodeSchemas.from_object_info(
    json.loads(
        resources.files("wan_worker.testing").joinpath("object_info.json").read_text("utf-8")
    )
)


def _issues(built: BuiltWorkflow) -> list[str]:
    models: dict[str, list[str]] = defaultdict(list)
    for ref in built.models:
        models[ref.folder].append(ref.file)
    inputs = [
        node["inputs"][name]
        for node in built.graph.values()
        for name in ("image", "audio")
        if node["class_type"] in ("LoadImage", "LoadAudio") and name in node["inputs"]
    ]
    schemas = _SCHEMAS.with_models(models).with_input_files(inputs)
    return [
        f"{i.node_id} {i.class_type}.{i.input_name}: {i.message}"
        for i in validate_graph(built.graph, schemas)
    ]


def _defaults(mode: str) -> dict[str, Any]:
    return {"audio": "voice.wav", "chunks": 3} if mode == "s2v" else {}


@pytest.mark.parametrize(("mode", "preset"), list(PRESETS))
def test_every_preset_graph_validates_against_the_real_node_schemas(mode: str, preset: str) -> None:
    assert _issues(build(mode, _defaults(mode) | {"preset": preset})) == []


def test_ti2v_with_an_image_validates() -> None:
    assert _issues(build("ti2v", {"image": "photo.png"})) == []


def test_a_graph_whose_model_is_missing_on_the_server_fails_validation() -> None:
    built = build("i2v", {})
    issues = validate_graph(built.graph, _SCHEMAS.with_input_files(["example.png"]))
    assert {i.kind for i in issues} == {"value_not_in_list"}
    assert {i.class_type for i in issues} >= {"UNETLoader", "CLIPLoader", "VAELoader"}


_names = st.from_regex(r"[a-z0-9_]{1,12}\.safetensors", fullmatch=True)
_loras = st.lists(
    st.fixed_dictionaries(
        {"name": _names},
        optional={
            "strength": st.floats(-100, 100, allow_nan=False),
            "stage": st.sampled_from(["high", "both"]),
        },
    ),
    max_size=3,
)


def _valid_params(mode: str) -> st.SearchStrategy[dict[str, Any]]:
    common: dict[str, st.SearchStrategy[Any]] = {
        "prompt": st.text(max_size=50),
        "width": st.integers(1, 2048),
        "height": st.integers(1, 2048),
        "seed": st.integers(-1, MAX_SEED),
        "cfg": st.floats(0, 100, allow_nan=False),
        "shift": st.floats(0, 100, allow_nan=False),
        "sampler": st.sampled_from(SAMPLERS),
        "scheduler": st.sampled_from(SCHEDULERS),
        "loras": _loras,
        "vae": _names,
        "weight_dtype": st.sampled_from(["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]),
    }
    if mode == "s2v":
        common |= {
            "preset": st.sampled_from(["standard", "lightning"]),
            "steps": st.integers(1, 40),
            "model": _names,
        }
        return st.fixed_dictionaries(
            {"audio": st.just("a.wav"), "chunks": st.integers(1, 5)}, optional=common
        )
    if mode == "ti2v":
        common |= {
            "steps": st.integers(1, 40),
            "frames": st.integers(1, 400),
            "fps": st.floats(1, 120, allow_nan=False),
            "image": st.just("in.png"),
        }
        return st.fixed_dictionaries({}, optional=common)
    common |= {
        "preset": st.sampled_from(["standard", "lightning"]),
        "frames": st.integers(1, 400),
        "fps": st.floats(1, 120, allow_nan=False),
        "high_noise_model": _names,
        "low_noise_model": _names,
    }
    steps_and_split = st.integers(2, 40).flatmap(
        lambda n: st.fixed_dictionaries(
            {"steps": st.just(n)}, optional={"split_step": st.integers(1, n - 1)}
        )
    )
    return st.tuples(st.fixed_dictionaries({}, optional=common), steps_and_split).map(
        lambda pair: pair[0] | pair[1]
    )


@pytest.mark.parametrize("mode", ["i2v", "t2v", "flf2v", "ti2v", "s2v"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_valid_request_yields_a_valid_graph(mode: str, data: st.DataObject) -> None:
    params = data.draw(_valid_params(mode))
    built = build(mode, params)
    assert _issues(built) == []
    assert built.settings.frames % 4 == 1 or mode == "s2v"
    grid = 32 if mode == "ti2v" else 16
    assert built.settings.width % grid == 0 and built.settings.height % grid == 0


_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_fields = st.sampled_from(
    [
        "preset", "prompt", "negative_prompt", "width", "height", "frames", "fps", "seed", "steps",
        "cfg", "split_step", "shift", "sampler", "scheduler", "image", "end_image", "audio",
        "audio_seconds", "chunks", "high_noise_model", "low_noise_model", "model", "vae",
        "text_encoder", "audio_encoder", "weight_dtype", "loras", "filename_prefix", "use_lora",
        "cfg_scale", "num_frames", "lora_name", "diffusion_model", "bogus",
    ]
)  # fmt: skip


@pytest.mark.parametrize("mode", ["i2v", "t2v", "flf2v", "ti2v", "s2v", "v2v"])
@settings(max_examples=60, deadline=None)
@given(params=st.dictionaries(_fields, _anything, max_size=6))
def test_any_request_yields_a_valid_graph_or_a_clear_error(
    mode: str, params: dict[str, Any]
) -> None:
    try:
        built = build(mode, params)
    except (InvalidInput, UnsupportedAction) as exc:
        assert exc.problems, "an error names what is wrong"
        assert all(p.message for p in exc.problems)
        return
    assert _issues(built) == []
