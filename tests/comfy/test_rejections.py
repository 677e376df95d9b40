"""ComfyUI's refusals and execution errors, as errors in plain words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wan_worker.comfy.rejections import execution_error, graph_error, issues_from_rejection
from wan_worker.errors import (
    ExecutionFailed,
    MissingModels,
    MissingNodes,
    ValidationFailed,
    WanWorkerError,
)

TRACES = Path(__file__).parents[1] / "testing" / "traces"
REFUSALS: dict[str, Any] = json.loads((TRACES / "prompt_validation_errors.json").read_text())


def _error(case: str, **kwargs: Any) -> WanWorkerError:
    return graph_error(issues_from_rejection(REFUSALS[case]["body"]), **kwargs)


@pytest.mark.parametrize(
    ("case", "error_type", "words"),
    [
        ("wrong_link_type", ValidationFailed, "linked to an output of type CLIP, but needs MODEL"),
        ("missing_required_input", ValidationFailed, "required input 'cfg' is missing"),
        ("out_of_range_min", ValidationFailed, "'width' is 8, below the minimum 16"),
        ("out_of_range_max", ValidationFailed, "'cfg' is 1000.0, above the maximum 100.0"),
        ("bad_combo_value", ValidationFailed, "'sampler_name' is 'euler_fancy', which is not"),
        ("wrong_value_type", ValidationFailed, "'steps' must be INT, not 'twenty'"),
        ("link_to_missing_node", ValidationFailed, "points at a node or output that does not"),
        ("missing_input_image", ValidationFailed, "Invalid image file: does_not_exist.png"),
        ("no_output_node", ValidationFailed, "no output node"),
        ("model_not_in_list", MissingModels, "fp16.safetensors"),
        ("unknown_class_type", MissingNodes, "ModelSamplingSD4"),
    ],
)
def test_a_refusal_becomes_one_error_in_plain_words(
    case: str, error_type: type[WanWorkerError], words: str
) -> None:
    error = _error(case)
    assert isinstance(error, error_type)
    assert words in error.problems[0].message
    assert words in str(error)


def test_each_node_problem_names_node_class_and_input() -> None:
    problem = _error("out_of_range_min").problems[0]
    assert (problem.node_id, problem.class_type, problem.field) == ("8", "WanImageToVideo", "width")
    assert problem.value == 8
    assert problem.suggestion == 16


def test_every_node_error_is_listed() -> None:
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "x"},
        "node_errors": {
            "a": {
                "class_type": "K",
                "errors": [
                    {"type": "required_input_missing", "extra_info": {"input_name": "cfg"}},
                    {"type": "required_input_missing", "extra_info": {"input_name": "seed"}},
                ],
            },
            "b": {
                "class_type": "V",
                "errors": [{"type": "required_input_missing", "extra_info": {"input_name": "vae"}}],
            },
        },
    }
    error = graph_error(issues_from_rejection(body))
    assert [p.field for p in error.problems] == ["cfg", "seed", "vae"]
    assert "3 problems" in error.message


def test_a_missing_model_names_its_folder_and_the_callers_download_hint() -> None:
    error = _error("model_not_in_list", model_source=lambda f: f"https://models.example/{f}")
    assert isinstance(error, MissingModels)
    model = error.details["models"][0]
    assert model["file"] == "wan2.2_i2v_high_noise_14B_fp16.safetensors"
    assert model["folder"] == "diffusion_models"
    assert model["download"].endswith("wan2.2_i2v_high_noise_14B_fp16.safetensors")
    assert "download it from https://models.example/" in error.problems[0].message
    assert "models/diffusion_models" in str(error)


def test_a_missing_custom_node_names_its_pack() -> None:
    body = {
        "error": {
            "type": "missing_node_type",
            "message": "Node 'VHS_VideoCombine' not found.",
            "extra_info": {"node_id": "9", "class_type": "VHS_VideoCombine"},
        },
        "node_errors": {},
    }
    error = graph_error(issues_from_rejection(body))
    assert isinstance(error, MissingNodes)
    assert "install the custom node pack ComfyUI-VideoHelperSuite" in error.problems[0].message
    assert "VHS_VideoCombine (from ComfyUI-VideoHelperSuite)" in str(error)
    assert error.details["class_types"] == ["VHS_VideoCombine"]


def test_an_execution_error_carries_node_type_and_message_but_not_the_traceback() -> None:
    trace = json.loads((TRACES / "run_execution_error_wan_i2v.json").read_text())
    data = next(m["data"] for m in trace["ws"] if m["type"] == "execution_error")
    error = execution_error(data)
    assert isinstance(error, ExecutionFailed)
    assert error.details["node_id"] == "4"
    assert error.details["node_type"] == "VAELoader"
    assert error.details["exception_type"].endswith("SafetensorError")
    assert "header too small" in error.message
    assert "traceback" not in json.dumps(error.as_dict())
