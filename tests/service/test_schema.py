"""The request schema: actions and aliases, input slots, pass-through parameters, raw mode, and
the committed JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wan_worker.errors import InvalidInput, UnsupportedAction
from wan_worker.service.schema import (
    ACTIONS,
    GenerationJob,
    RawJob,
    parse_job,
    request_json_schema,
    request_json_schema_text,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def generation(data: dict[str, Any]) -> GenerationJob:
    job = parse_job(data)
    assert isinstance(job, GenerationJob)
    return job


NEEDED_INPUTS: dict[str, dict[str, str]] = {
    "i2v": {"image_base64": "aGk="},
    "t2v": {},
    "flf2v": {"image_base64": "aGk=", "end_image_base64": "aGk="},
    "ti2v": {},
    "s2v": {"image_base64": "aGk=", "audio_base64": "aGk="},
}


@pytest.mark.parametrize("action", [*ACTIONS, *NEEDED_INPUTS])
def test_every_action_and_its_short_alias_is_known(action: str) -> None:
    mode = ACTIONS.get(action, action)
    job = generation({"action": action, **NEEDED_INPUTS[mode]})
    assert job.mode == mode
    assert set(job.inputs) == {key.removesuffix("_base64") for key in NEEDED_INPUTS[mode]}


def test_an_unknown_action_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedAction) as caught:
        parse_job({"action": "comfyui_upscale"})
    assert caught.value.problems[0].suggestion == list(ACTIONS)
    assert "comfyui_i2v" in str(caught.value)


def test_legacy_and_modern_parameters_pass_through_to_the_workflow() -> None:
    job = generation(
        {"action": "comfyui_t2v", "use_lora": False, "cfg_scale": 2.5, "num_frames": 33, "seed": 3}
    )
    assert job.parameters == {"use_lora": False, "cfg_scale": 2.5, "num_frames": 33, "seed": 3}


def test_a_rule_of_the_workflow_is_checked_before_any_input_is_fetched() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_job({"action": "t2v", "sampler": "eulr"})
    assert caught.value.problems[0].field == "sampler"
    assert caught.value.problems[0].suggestion == "euler"


def test_s2v_is_checked_before_its_audio_length_is_known() -> None:
    job = generation({"action": "s2v", "image_url": "http://a.test/i.png", "audio_path": "/a.wav"})
    assert set(job.inputs) == {"image", "audio"}
    assert job.inputs["audio"].form == "path"


def test_the_requested_size_is_kept_for_fitting() -> None:
    job = generation({"action": "i2v", "image_base64": "aGk=", "width": 770})
    assert (job.width, job.height) == (770, None)


def test_a_raw_request_is_known_by_its_workflow() -> None:
    job = parse_job(
        {
            "workflow": {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}},
            "images": [{"name": "a.png", "image": "aGk="}],
            "audio": [{"name": "v.wav", "audio": "https://example.test/v.wav"}],
        }
    )
    assert isinstance(job, RawJob)
    assert job.request.images[0].name == "a.png"


def test_delivery_options_take_runpods_s3config_shape() -> None:
    job = generation(
        {
            "action": "t2v",
            "s3Config": {
                "accessId": "a",
                "accessSecret": "s",
                "bucketName": "b",
                "endpointUrl": "https://s3.test",
            },
        }
    )
    assert job.options.s3Config is not None
    assert job.options.s3Config.bucketName == "b"


def test_the_committed_json_schema_is_the_generated_one() -> None:
    committed = (REPO_ROOT / "docs" / "input-schema.json").read_text(encoding="utf-8")
    assert committed == request_json_schema_text(), (
        "docs/input-schema.json is stale: run "
        "'.venv/bin/python -m wan_worker.service > docs/input-schema.json'"
    )


def test_the_json_schema_has_a_branch_per_action_and_the_raw_form() -> None:
    schema = request_json_schema()
    titles = [branch["title"] for branch in schema["oneOf"]]
    assert titles == [*ACTIONS, "Raw ComfyUI graph"]
    i2v = schema["oneOf"][0]
    assert "image_base64" in i2v["properties"]
    assert "audio_base64" not in i2v["properties"]
    assert "image" not in i2v["properties"]
    assert "cfg_scale" in i2v["properties"]
    assert i2v["properties"]["action"]["enum"] == ["comfyui_i2v", "i2v"]
    json.dumps(schema)
