"""Settings from the environment, the progress throttle, and the one error shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wan_worker.comfy import Progress
from wan_worker.errors import ExecutionFailed, InvalidInput, Problem
from wan_worker.service import JobProgress, ProgressThrottle, ServiceSettings, error_response


def test_an_empty_environment_gives_the_defaults() -> None:
    settings = ServiceSettings.from_env({})
    assert settings.comfyui_url == "http://127.0.0.1:8188"
    assert settings.delivery.s3 is None
    assert settings.input_limits.allowed_path_roots == ()
    assert settings.stall_timeout_s == 600.0


def test_every_variable_is_read() -> None:
    settings = ServiceSettings.from_env(
        {
            "COMFYUI_URL": "http://comfy:8188",
            "COMFYUI_INPUT_DIR": "/comfy/input",
            "JOB_TIMEOUT_S": "90",
            "STALL_TIMEOUT_S": "0",
            "WORK_DIR": "/scratch/jobs",
            "DURABLE_OUTPUT_DIR": "/volume/kept",
            "INPUT_PATH_ROOTS": "/data:/volume/inputs",
            "INPUT_ALLOWED_ORIGINS": "http://127.0.0.1:9000, http://[::1]:9001",
            "INPUT_ALLOW_PRIVATE_NETWORKS": "true",
            "INPUT_MAX_PIXELS": "1000000",
            "INLINE_BUDGET_BYTES": "5000000",
            "BUCKET_ENDPOINT_URL": "https://my-bucket.s3.us-east-1.amazonaws.com",
            "BUCKET_ACCESS_KEY_ID": "AKIA",
            "BUCKET_SECRET_ACCESS_KEY": "secret",
            "WARM_UP": "1",
            "LOG_LEVEL": "debug",
            "LOG_JSON": "yes",
        }
    )
    assert settings.comfyui_url == "http://comfy:8188"
    assert settings.comfyui_input_dir == Path("/comfy/input")
    assert settings.job_timeout_s == 90.0
    assert settings.stall_timeout_s is None
    assert settings.work_dir == Path("/scratch/jobs")
    assert settings.delivery.durable_dir == Path("/volume/kept")
    assert settings.input_limits.allowed_path_roots == (Path("/data"), Path("/volume/inputs"))
    assert settings.input_limits.allowed_origins == ("http://127.0.0.1:9000", "http://[::1]:9001")
    assert settings.input_limits.allow_private_networks is True
    assert settings.input_limits.max_pixels == 1_000_000
    assert settings.delivery.inline_budget_bytes == 5_000_000
    assert settings.delivery.s3 is not None and settings.delivery.s3.bucket == "my-bucket"
    assert settings.warm_up is True
    assert (settings.log_level, settings.log_json) == ("DEBUG", True)


def test_bad_variables_are_all_named_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        ServiceSettings.from_env(
            {"JOB_TIMEOUT_S": "soon", "WARM_UP": "perhaps", "LOG_LEVEL": "chatty"}
        )
    assert [p.field for p in caught.value.problems] == ["JOB_TIMEOUT_S", "WARM_UP", "LOG_LEVEL"]


def test_the_throttle_lets_one_update_through_per_interval() -> None:
    now = [0.0]
    throttle = ProgressThrottle(1.0, clock=lambda: now[0])
    passed = []
    for t in (0.0, 0.2, 0.9, 1.0, 1.5, 2.2):
        now[0] = t
        passed.append(throttle.ready())
    assert passed == [True, False, False, True, False, True]


def test_an_error_answers_with_its_code_sentence_and_node() -> None:
    error = ExecutionFailed(
        "node sampler (KSampler) raised RuntimeError",
        problems=[Problem("boom", node_id="sampler", class_type="KSampler")],
        details={"prompt_id": "p"},
    )
    out = error_response(error)
    assert out["error"] == "execution_failed: node sampler (KSampler) raised RuntimeError"
    assert out["error_code"] == "execution_failed"
    assert out["details"]["node_id"] == "sampler"
    assert out["details"]["prompt_id"] == "p"
    assert out["details"]["problems"][0]["class_type"] == "KSampler"


def test_an_unexpected_failure_answers_internal_error_without_its_traceback() -> None:
    out = error_response(KeyError("secret internals"), job_id="j1")
    assert out["error_code"] == "internal_error"
    assert "secret internals" not in out["error"]
    assert "j1" in out["error"]


def test_comfyuis_progress_fills_the_bar_up_to_delivery() -> None:
    update = JobProgress.from_comfy(
        Progress("p", "sampling", 50.0, step=2, steps=4, sampler_index=1, sampler_count=2)
    )
    assert update.percent == 47.5
    assert update.message == "sampling stage 1/2, step 2/4 (48%)"
    assert update.as_dict()["steps"] == 4


def test_a_warm_up_request_comes_inline_or_from_a_file(tmp_path: Path) -> None:
    job = {"action": "t2v", "frames": 5}
    inline = ServiceSettings.from_env({"WARM_UP_REQUEST": json.dumps(job)})
    assert (inline.warm_up, inline.warm_up_request) == (True, job)
    (tmp_path / "warm.json").write_text(json.dumps(job))
    from_file = ServiceSettings.from_env({"WARM_UP_REQUEST": f"@{tmp_path / 'warm.json'}"})
    assert from_file.warm_up_request == job
    empty = ServiceSettings.from_env({"WARM_UP_REQUEST": " "})
    assert (empty.warm_up, empty.warm_up_request) == (False, None)


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", "@/nonexistent/warm.json"])
def test_a_bad_warm_up_request_names_the_variable(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ServiceSettings.from_env({"WARM_UP_REQUEST": value})
    assert [p.field for p in caught.value.problems] == ["WARM_UP_REQUEST"]
