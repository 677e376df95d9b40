"""End to end through the RunPod handler: every action and input form, delivery, progress,
cancel, timeout and ComfyUI's failures, against the ComfyUI double on loopback."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from wan_worker.service import ServiceSettings, Worker
from wan_worker.testing import ComfyUIDouble
from wan_worker.workflows import build

from .conftest import (
    FileServer,
    Progress,
    b64,
    leftovers,
    mp3_bytes,
    new_worker,
    png_bytes,
    probe_mp4,
    wav_bytes,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


def job(**request: Any) -> dict[str, Any]:
    return {"id": f"test-{uuid.uuid4().hex[:8]}", "input": request}


def assert_clean(settings: ServiceSettings, double: ComfyUIDouble) -> None:
    """Nothing of the job is left: not its work folder, not its files on the ComfyUI side."""
    assert leftovers(settings.work_dir) == []
    assert leftovers(double.input_dir / "wan-worker") == []
    assert leftovers(double.output_dir) == []


async def test_the_brief_example_comes_back_inline_as_a_real_mp4(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble, progress: Progress
) -> None:
    out = await handler(
        job(
            action="comfyui_i2v",
            image_base64=b64(png_bytes()),
            prompt="a sun drifts",
            steps=4,
            use_lora=True,
            cfg_scale=1.0,
            num_frames=49,
            fps=24,
            width=768,
            height=512,
            seed=7,
        )
    )
    assert "error" not in out, out
    assert out["delivery"] == {"mode": "inline"}
    data = base64.b64decode(out["video"])
    assert probe_mp4(data) == (768, 512, 49, 24.0, False)
    info = out["video_info"]
    assert (info["width"], info["height"], info["frames"], info["codec"]) == (768, 512, 49, "h264")
    assert info["bytes"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert out["seed"] == 7
    params = out["parameters"]
    assert (params["preset"], params["cfg"], params["frames"], params["steps"]) == (
        "lightning",
        1.0,
        49,
        4,
    )
    assert "image" not in params
    assert out["inputs"]["image"]["width"] == 768
    assert set(out["timings"]) == {
        "input_s",
        "upload_s",
        "preflight_s",
        "queue_wait_s",
        "execution_s",
        "download_s",
        "delivery_s",
        "total_s",
    }
    assert {
        "file": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "folder": "diffusion_models",
    } in out["models"]
    assert out["comfyui_version"] == "0.33.0"
    assert out["action"] == "comfyui_i2v"
    assert_clean(settings, double)


async def test_progress_goes_from_inputs_through_sampling_to_delivering(
    handler: Handler, progress: Progress
) -> None:
    out = await handler(job(action="t2v", width=64, height=64, num_frames=5))
    assert "error" not in out, out
    stages = [u["stage"] for u in progress.updates]
    assert stages[0] == "inputs"
    assert stages[-1] == "delivering"
    assert "sampling" in stages
    percents = [u["percent"] for u in progress.updates]
    assert percents == sorted(percents)
    steps = [u for u in progress.updates if u.get("steps")]
    assert steps and all({"step", "steps", "message"} <= set(u) for u in steps)


async def test_progress_is_sent_at_most_once_a_second(handler_module: Any, worker: Worker) -> None:
    sent: list[Any] = []

    async def get_worker() -> Worker:
        return worker

    frozen = handler_module.make_handler(
        get_worker, send_progress=lambda job, update: sent.append(update), clock=lambda: 5.0
    )
    out = await frozen(job(action="t2v", width=64, height=64, num_frames=5))
    assert "error" not in out, out
    assert len(sent) == 1


async def test_a_data_uri_image_without_a_size_gives_its_aspect_at_480p(handler: Handler) -> None:
    uri = "data:image/png;base64," + b64(png_bytes(300, 200))
    out = await handler(job(action="comfyui_i2v", image_base64=uri, num_frames=5))
    assert "error" not in out, out
    width, height = out["video_info"]["width"], out["video_info"]["height"]
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - 1.5) < 0.05
    assert width * height <= 832 * 480
    assert out["parameters"]["width"] == width


async def test_a_720p_tier_gives_a_larger_size(handler: Handler) -> None:
    out = await handler(
        job(action="i2v", image_base64=b64(png_bytes(300, 200)), resolution="720p", num_frames=5)
    )
    assert "error" not in out, out
    assert out["video_info"]["width"] * out["video_info"]["height"] > 832 * 480


async def test_a_width_off_the_grid_is_rounded_and_reported(handler: Handler) -> None:
    out = await handler(
        job(action="i2v", image_base64=b64(png_bytes()), width=130, height=96, num_frames=5)
    )
    assert "error" not in out, out
    assert out["video_info"]["width"] == 128
    assert {"field": "width", "requested": 130, "used": 128}.items() <= out["parameters"][
        "adjustments"
    ][0].items()


async def test_t2v_needs_no_input(handler: Handler) -> None:
    out = await handler(job(action="comfyui_t2v", prompt="waves", width=96, height=64, frames=9))
    assert "error" not in out, out
    assert probe_mp4(base64.b64decode(out["video"]))[:3] == (96, 64, 9)
    assert out["inputs"] == {}


async def test_flf2v_takes_a_url_start_and_a_path_end(
    handler: Handler, file_server: FileServer, allowed_root: Path
) -> None:
    file_server.files["start.png"] = png_bytes()
    (allowed_root / "end.jpg").write_bytes(png_bytes(fmt="JPEG"))
    out = await handler(
        job(
            action="comfyui_flf2v",
            image_url=file_server.url("start.png"),
            end_image_path=str(allowed_root / "end.jpg"),
            width=96,
            height=64,
            num_frames=9,
        )
    )
    assert "error" not in out, out
    assert file_server.requests == ["/files/start.png"]
    assert out["inputs"]["image"]["form"] == "url"
    assert out["inputs"]["end_image"]["form"] == "path"
    assert probe_mp4(base64.b64decode(out["video"]))[:3] == (96, 64, 9)
    assert (allowed_root / "end.jpg").exists()


@pytest.mark.parametrize("with_image", [False, True])
async def test_ti2v_runs_with_and_without_an_image(handler: Handler, with_image: bool) -> None:
    request: dict[str, Any] = {"action": "comfyui_ti2v", "width": 128, "height": 96, "frames": 5}
    if with_image:
        request["image_base64"] = b64(png_bytes())
    out = await handler(job(**request))
    assert "error" not in out, out
    assert out["video_info"]["fps"] == 24.0
    assert ("image" in out["inputs"]) is with_image


@pytest.mark.parametrize("audio_form", ["wav_base64", "mp3_url"])
async def test_s2v_measures_the_audio_and_muxes_it(
    handler: Handler, file_server: FileServer, audio_form: str
) -> None:
    request: dict[str, Any] = {
        "action": "comfyui_s2v",
        "image_base64": b64(png_bytes()),
        "width": 64,
        "height": 64,
    }
    if audio_form == "wav_base64":
        request["audio_base64"] = b64(wav_bytes(1.5))
    else:
        file_server.files["voice.mp3"] = mp3_bytes(1.5)
        request["audio_url"] = file_server.url("voice.mp3")
    out = await handler(job(**request))
    assert "error" not in out, out
    assert abs(out["inputs"]["audio"]["duration_s"] - 1.5) < 0.1
    assert out["parameters"]["chunks"] == 1
    width, height, frames, fps, has_audio = probe_mp4(base64.b64decode(out["video"]))
    assert (width, height, frames, fps, has_audio) == (64, 64, 80, 16.0, True)


async def test_s3config_of_the_job_receives_the_video(
    handler: Handler, s3: S3Client, moto_endpoint: str
) -> None:
    bucket = f"service-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    request = job(action="t2v", width=64, height=64, frames=5)
    request["s3Config"] = {
        "accessId": "AKIATESTSERVICE",
        "accessSecret": "secret-service",
        "bucketName": bucket,
        "endpointUrl": moto_endpoint,
    }
    out = await handler(request)
    assert "error" not in out, out
    assert out["delivery"]["mode"] == "s3"
    assert out["video"].startswith(moto_endpoint)
    stored = s3.get_object(Bucket=bucket, Key=out["delivery"]["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == out["video_info"]["sha256"]
    assert probe_mp4(stored)[:3] == (64, 64, 5)


async def test_a_video_over_the_inline_budget_goes_to_the_workers_bucket(
    settings: ServiceSettings, s3: S3Client, moto_endpoint: str, handler_module: Any
) -> None:
    from wan_worker.delivery import S3Settings

    bucket = f"worker-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    small = dataclasses.replace(
        settings,
        delivery=dataclasses.replace(
            settings.delivery,
            inline_budget_bytes=2000,
            s3=S3Settings(bucket, "AKIATESTSERVICE", "secret-service", moto_endpoint, "us-east-1"),
        ),
    )
    worker = new_worker(small)
    try:

        async def get_worker() -> Worker:
            return worker

        handler = handler_module.make_handler(get_worker, send_progress=lambda j, u: None)
        out = await handler(job(action="t2v", width=64, height=64, frames=5))
    finally:
        await worker.close()
    assert out["delivery"]["mode"] == "s3", out
    assert (
        s3.head_object(Bucket=bucket, Key=out["delivery"]["key"])["ContentLength"]
        == out["video_info"]["bytes"]
    )


async def test_a_failed_upload_keeps_the_video_in_the_durable_folder(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    out = await handler(
        job(action="t2v", width=64, height=64, frames=5, upload_url="http://127.0.0.1:9/put")
    )
    assert out["error_code"] == "upload_failed", out
    kept = Path(out["details"]["kept_at"])
    assert kept.parent == settings.delivery.durable_dir
    assert leftovers(settings.delivery.durable_dir) == [kept]
    assert_clean(settings, double)


async def test_a_cancel_interrupts_the_comfyui_prompt(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    double.faults.step_delay = 0.5
    task = asyncio.create_task(handler(job(action="t2v", width=64, height=64, frames=5)))
    await _until_running(double)
    running = double.running_prompt_id
    assert running is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [i.get("prompt_id") for i in double.interrupts] == [running]
    queue = await _queue(double)
    assert queue["queue_running"] == [] and queue["queue_pending"] == []
    assert_clean(settings, double)


async def _until_running(double: ComfyUIDouble) -> None:
    for _ in range(500):
        if double.running_prompt_id is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the prompt never started")


async def _queue(double: ComfyUIDouble) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{double.url}/queue") as r:
        return await r.json()


async def test_a_deadline_returns_timeout_and_leaves_comfyui_idle(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    double.faults.step_delay = 3.0
    out = await handler(job(action="t2v", width=64, height=64, frames=5, timeout_s=1.0))
    assert out["error_code"] == "timeout", out
    assert out["error"].startswith("timeout: ")
    # On a loaded machine the deadline may pass before the prompt is queued; once queued, it
    # must have been interrupted.
    assert len(double.interrupts) == len(double.received_prompts)
    queue = await _queue(double)
    assert queue["queue_running"] == [] and queue["queue_pending"] == []
    assert_clean(settings, double)


async def test_a_failing_node_returns_execution_failed_naming_it(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    double.faults.fail_at_node = "sampler_high_noise"
    out = await handler(job(action="t2v", width=64, height=64, frames=5))
    assert out["error_code"] == "execution_failed", out
    assert "sampler_high_noise" in out["error"]
    assert "Traceback" not in str(out)
    assert_clean(settings, double)


async def test_missing_models_name_file_folder_and_download_source(
    handler: Handler, double: ComfyUIDouble
) -> None:
    double.models["loras"] = []
    out = await handler(job(action="t2v", width=64, height=64, frames=5))
    assert out["error_code"] == "missing_models", out
    missing = out["details"]["models"]
    lora = next(m for m in missing if "lightx2v" in m["file"])
    assert lora["folder"] == "loras"
    assert "huggingface.co" in lora["download"]
    assert lora["file"] in out["error"]


async def test_a_raw_workflow_runs_with_its_images(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    graph = build("i2v", {"image": "raw_start.png", "width": 64, "height": 64, "frames": 5}).graph
    out = await handler(
        job(workflow=graph, images=[{"name": "raw_start.png", "image": b64(png_bytes(64, 64))}])
    )
    assert "error" not in out, out
    assert out["action"] == "comfyui_workflow"
    assert probe_mp4(base64.b64decode(out["video"]))[:3] == (64, 64, 5)
    assert out["seed"] is None
    assert_clean(settings, double)


async def test_comfyui_gone_for_good_asks_for_a_fresh_worker(
    handler: Handler, double: ComfyUIDouble
) -> None:
    await double.stop()
    out = await handler(job(action="t2v", width=64, height=64, frames=5))
    assert out["error_code"] == "comfyui_unavailable", out
    assert out["refresh_worker"] is True


async def test_every_log_line_of_a_job_carries_its_id(
    handler: Handler, double: ComfyUIDouble
) -> None:
    from wan_worker.logs import configure_logging

    lines = io.StringIO()
    configure_logging(level="INFO", json_logs=True, stream=lines)
    try:
        double.faults.fail_at_node = "sampler_high_noise"
        out = await handler(job(action="t2v", width=64, height=64, frames=5) | {"id": "job-77"})
    finally:
        root = logging.getLogger()
        for installed in [h for h in root.handlers if type(h).__name__ == "_WanWorkerHandler"]:
            root.removeHandler(installed)
    assert out["error_code"] == "execution_failed"
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert len(records) >= 2, "the failed job logged too little"
    assert {record["job_id"] for record in records} == {"job-77"}, records


async def test_the_same_request_twice_gives_the_same_video_twice(
    handler: Handler, settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    """ComfyUI caches an identical graph; each job still gets its own freshly saved file."""
    request = {"action": "t2v", "width": 64, "height": 64, "frames": 5, "seed": 7}
    first = await handler(job(**request))
    second = await handler(job(**request))
    assert "error" not in first, first
    assert "error" not in second, second
    assert first["video_info"]["sha256"] == second["video_info"]["sha256"]
    assert_clean(settings, double)


WARM_UP_JOB = {"action": "t2v", "width": 64, "height": 64, "frames": 5, "seed": 11}


async def test_a_warm_up_job_runs_before_the_first_job_and_its_video_goes_nowhere(
    settings: ServiceSettings, double: ComfyUIDouble, s3: S3Client, moto_endpoint: str
) -> None:
    from wan_worker.delivery import S3Settings

    bucket = f"warm-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    warm = dataclasses.replace(
        settings,
        warm_up=True,
        warm_up_request=WARM_UP_JOB,
        delivery=dataclasses.replace(
            settings.delivery,
            inline_budget_bytes=2000,
            s3=S3Settings(bucket, "AKIATESTSERVICE", "secret-service", moto_endpoint, "us-east-1"),
        ),
    )
    worker = new_worker(warm)
    try:
        response = await worker.warm_up()
        assert len(double.received_prompts) == 1
        first = await worker.respond(WARM_UP_JOB, job_id="first")
    finally:
        await worker.close()
    assert response is not None and "error" not in response, response
    assert "video" not in response
    assert response["delivery"]["mode"] == "inline"
    assert first["delivery"]["mode"] == "s3", "real jobs still go to the bucket"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == [
        first["delivery"]["key"]
    ]
    assert leftovers(settings.delivery.durable_dir) == []
    assert_clean(settings, double)


async def test_a_failed_warm_up_job_is_logged_and_the_worker_still_serves(
    settings: ServiceSettings, double: ComfyUIDouble, caplog: pytest.LogCaptureFixture
) -> None:
    worker = new_worker(dataclasses.replace(settings, warm_up_request=WARM_UP_JOB))
    try:
        double.faults.fail_at_node = "sampler_high_noise"
        response = await worker.warm_up()
        double.faults.fail_at_node = None
        later = await worker.respond(WARM_UP_JOB | {"seed": 12}, job_id="later")
    finally:
        await worker.close()
    assert response is not None and response["error_code"] == "execution_failed"
    assert "the warm-up job failed: execution_failed" in caplog.text
    assert "error" not in later, later
    assert_clean(settings, double)


async def test_a_plain_warm_up_runs_no_job(
    settings: ServiceSettings, double: ComfyUIDouble
) -> None:
    worker = new_worker(dataclasses.replace(settings, warm_up=True))
    try:
        assert await worker.warm_up() is None
    finally:
        await worker.close()
    assert double.received_prompts == []
