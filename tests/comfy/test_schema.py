"""Node schemas and graph validation against the refusals recorded from a real ComfyUI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wan_worker.comfy.schema import (
    MODEL_FOLDERS,
    GraphIssue,
    NodeSchemas,
    check_graph,
    node_pack_for,
    validate_graph,
)
from wan_worker.testing import load_object_info
from wan_worker.testing.validation_cases import (
    VALIDATION_CASES,
    WAN_I2V_INPUT_FILES,
    WAN_I2V_MODELS,
    case_graph,
    wan_i2v_graph,
)

TRACES = Path(__file__).resolve().parents[1] / "testing" / "traces"
SHARED_OBJECT_INFO = Path("/work/shared/comfyui/object_info.json")
RECORDED: dict[str, Any] = json.loads((TRACES / "prompt_validation_errors.json").read_text())


@pytest.fixture(scope="module")
def schemas() -> NodeSchemas:
    base = NodeSchemas.from_object_info(load_object_info())
    return base.with_models(WAN_I2V_MODELS).with_input_files(WAN_I2V_INPUT_FILES)


def _first_node_issue(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    if not body["node_errors"]:
        node_id = body["error"]["extra_info"].get("node_id")
        return body["error"]["type"], node_id, None
    node_id, entry = next(iter(body["node_errors"].items()))
    error = entry["errors"][0]
    return error["type"], node_id, error["extra_info"].get("input_name")


def test_every_recorded_graph_refusal_has_a_case() -> None:
    http_level = {"prompt_not_dict", "no_prompt_key", "invalid_json_body"}
    assert set(RECORDED) - http_level == set(VALIDATION_CASES)


@pytest.mark.parametrize("case", sorted(VALIDATION_CASES))
def test_validation_reproduces_the_recorded_400_body(case: str, schemas: NodeSchemas) -> None:
    check = check_graph(case_graph(case), schemas)
    assert not check.accepted
    assert check.error_body() == RECORDED[case]["body"]


@pytest.mark.parametrize("case", sorted(VALIDATION_CASES))
def test_validate_graph_names_the_recorded_kind_node_and_input(
    case: str, schemas: NodeSchemas
) -> None:
    issues = validate_graph(case_graph(case), schemas)
    kind, node_id, input_name = _first_node_issue(RECORDED[case]["body"])
    assert (issues[0].kind, issues[0].node_id, issues[0].input_name) == (kind, node_id, input_name)


def test_the_valid_wan_graph_has_no_issues(schemas: NodeSchemas) -> None:
    assert validate_graph(wan_i2v_graph(), schemas) == []
    assert check_graph(wan_i2v_graph(), schemas).outputs == ("15",)


def test_the_no_weights_graph_validates_clean_once_its_inputs_exist() -> None:
    graph = json.loads((TRACES / "graph_no_weights.json").read_text())
    base = NodeSchemas.from_object_info(load_object_info())
    assert validate_graph(graph, base.with_input_files(["ref.png", "tone.wav"])) == []
    missing = validate_graph(graph, base.with_input_files(["ref.png"]))
    assert [(i.kind, i.node_id, i.details) for i in missing] == [
        ("custom_validation_failed", "4", "audio - Invalid audio file: tone.wav")
    ]


def test_partial_acceptance_keeps_the_valid_outputs() -> None:
    graph = json.loads((TRACES / "graph_no_weights.json").read_text())
    schemas = NodeSchemas.from_object_info(load_object_info()).with_input_files(["ref.png"])
    check = check_graph(graph, schemas)
    assert check.accepted
    assert check.outputs == ("8",)
    assert check.node_errors["4"].dependent_outputs == ("6", "7")


def test_both_choice_spellings_parse_to_combo_choices() -> None:
    schemas = NodeSchemas.from_object_info(load_object_info())
    legacy = schemas.nodes["KSamplerAdvanced"].inputs["scheduler"]
    modern = schemas.nodes["LatentCut"].inputs["dim"]
    assert (legacy.type, legacy.choices) == (
        "COMBO",
        (
            "simple",
            "sgm_uniform",
            "karras",
            "exponential",
            "ddim_uniform",
            "beta",
            "normal",
            "linear_quadratic",
            "kl_optimal",
        ),
    )
    assert (modern.type, modern.choices) == ("COMBO", ("x", "y", "t"))


def test_a_choice_from_either_spelling_is_checked_against_its_list() -> None:
    schemas = NodeSchemas.from_object_info(load_object_info())
    graph: dict[str, dict[str, Any]] = {
        "1": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {}},
        "2": {
            "class_type": "LatentCut",
            "inputs": {"samples": ["1", 0], "dim": "z", "index": 0, "amount": 1},
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
        "4": {"class_type": "ImageScale", "inputs": {"image": ["5", 0]}},
        "5": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    }
    graph["4"]["inputs"].update(upscale_method="bilinear", width=8, height=8, crop="sideways")
    issues = {(i.node_id, i.kind, i.details) for i in validate_graph(graph, schemas)}
    assert ("4", "value_not_in_list", "crop: 'sideways' not in ['disabled', 'center']") in issues


def test_the_dynamic_format_choice_parses_its_nested_codecs() -> None:
    schemas = NodeSchemas.from_object_info(load_object_info())
    fmt = schemas.nodes["SaveVideo"].inputs["format"]
    assert fmt.type == "COMFY_DYNAMICCOMBO_V3"
    assert fmt.choices == ("auto", "mp4", "mkv", "webm")
    assert fmt.dynamic_options is not None
    codec = fmt.dynamic_options["mp4"]["format.codec"]
    assert codec.required
    assert codec.choices == ("auto", "h264", "av1")
    legacy = schemas.nodes["SaveVideo"].inputs["codec"]
    assert (legacy.required, legacy.type) == (False, "COMFY_DYNAMICCOMBO_V3")


@pytest.mark.parametrize(
    "format_inputs",
    [
        {"format": "auto"},
        {"format": "mp4"},
        {"format": "mp4", "codec": "h264"},
        {"format": "auto", "codec": "auto"},
        {"format": "mp4", "format.codec": "h264"},
        {"format": "webm", "format.codec": "av1"},
        {"format": "gif", "format.codec": "auto"},
    ],
)
def test_save_video_format_spellings_all_pass_validation(
    format_inputs: dict[str, str], schemas: NodeSchemas
) -> None:
    graph = wan_i2v_graph()
    save = graph["15"]["inputs"]
    for key in ("format", "format.codec"):
        save.pop(key)
    save.update(format_inputs)
    assert validate_graph(graph, schemas) == []


def test_with_models_fills_every_loader_from_its_folder() -> None:
    base = NodeSchemas.from_object_info(load_object_info())
    filled = base.with_models(
        {
            folder: [f"b_{folder}.safetensors", f"a_{folder}.safetensors"]
            for folder in set(MODEL_FOLDERS.values())
        }
    )
    for (class_type, input_name), folder in MODEL_FOLDERS.items():
        node = filled.get(class_type)
        if node is None:
            continue
        choices = node.inputs[input_name].choices or ()
        assert choices[:2] == (f"a_{folder}.safetensors", f"b_{folder}.safetensors")
    assert filled.nodes["VAELoader"].inputs["vae_name"].choices == (
        "a_vae.safetensors",
        "b_vae.safetensors",
        "pixel_space",
    )
    assert base.nodes["UNETLoader"].inputs["unet_name"].choices == ()


def test_with_models_updates_the_list_echoed_in_errors() -> None:
    base = NodeSchemas.from_object_info(load_object_info())
    filled = base.with_models({"audio_encoders": ["w2v.safetensors"]})
    spec = filled.nodes["AudioEncoderLoader"].inputs["audio_encoder_name"]
    assert spec.config[0] == "COMBO"
    assert spec.config[1]["options"] == ["w2v.safetensors"]


def test_with_input_files_lists_images_for_load_image_and_audio_for_load_audio() -> None:
    files = ["ref.png", "tone.wav", "clip.mp4", "notes.txt"]
    schemas = NodeSchemas.from_object_info(load_object_info()).with_input_files(files)
    assert schemas.nodes["LoadImage"].inputs["image"].choices == ("ref.png",)
    assert schemas.nodes["LoadAudio"].inputs["audio"].choices == ("clip.mp4", "tone.wav")


def test_an_unknown_node_refuses_the_whole_graph_before_anything_else(
    schemas: NodeSchemas,
) -> None:
    graph = case_graph("wrong_value_type")
    graph["20"] = {"class_type": "VHS_NotInstalled", "inputs": {}, "_meta": {"title": "Combine"}}
    issues = validate_graph(graph, schemas)
    assert issues == [
        GraphIssue(
            kind="missing_node_type",
            message="Node 'Combine' not found. The custom node may not be installed.",
            node_id="20",
            class_type="VHS_NotInstalled",
            details="Node ID '#20'",
            extra_info={"node_id": "20", "class_type": "VHS_NotInstalled", "node_title": "Combine"},
        )
    ]


def test_a_broken_link_on_the_output_node_itself_is_an_exception_during_validation(
    schemas: NodeSchemas,
) -> None:
    graph = wan_i2v_graph()
    graph["15"]["inputs"]["video"] = ["42", 0]
    check = check_graph(graph, schemas)
    assert check.error is not None
    assert check.error.details == "Exception when validating node: '42'"
    assert check.node_errors["15"].errors[0].kind == "exception_during_validation"


def test_an_errors_own_output_reasons_fill_the_details(schemas: NodeSchemas) -> None:
    graph = wan_i2v_graph()
    del graph["15"]["inputs"]["filename_prefix"]
    check = check_graph(graph, schemas)
    assert check.error is not None
    assert check.error.details == "Required input is missing: filename_prefix"


def test_steps_are_not_validated_only_min_and_max(schemas: NodeSchemas) -> None:
    graph = wan_i2v_graph()
    graph["8"]["inputs"].update(width=650, length=82)
    assert validate_graph(graph, schemas) == []


def test_node_packs_name_the_custom_node_source() -> None:
    assert node_pack_for("VHS_VideoCombine") == "ComfyUI-VideoHelperSuite"
    assert node_pack_for("KSampler") is None


def test_trimmed_fixture_equals_the_recorded_object_info() -> None:
    if not SHARED_OBJECT_INFO.exists():
        pytest.skip("the recorded object_info.json is not on this machine")
    recorded = json.loads(SHARED_OBJECT_INFO.read_text())
    trimmed = load_object_info()
    assert trimmed == {name: recorded[name] for name in trimmed}
