"""Jobs end to end through the HTTP API on the ComfyUI double: every action and input form,
every delivery, progress in status and events, cancel, timeout and webhooks."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from tests.managed.conftest import eventually
from tests.service.conftest import FileServer, MapResolver, b64, png_bytes, wav_bytes
from wan_worker.api.store import JobStore
from wan_worker.api.webhooks import SIGNATURE_HEADER, verify
from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble

from .conftest import Api, api_settings, probe_mp4, running_api

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def small(action: str, **extra: Any) -> dict[str, Any]:
    return {"action": action, "width": 64, "height": 64, "frames": 5, "seed": 3, **extra}


async def test_i2v_from_base64_completes_with_an_inline_mp4(api: Api) -> None:
    job_id = await api.run(small("comfyui_i2v", image_base64=b64(png_bytes()), fps=24))
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    output = status["output"]
    assert output["delivery"] == {"mode": "inline"}
    assert output["job_id"] == job_id
    assert probe_mp4(base64.b64decode(output["video"])) == (64, 64, 5, 24.0, False)
    assert status["executionTime"] >= 0 and status["delayTime"] >= 0


async def test_t2v_needs_no_input(api: Api) -> None:
    job_id = await api.run(small("t2v", width=96, frames=9))
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    assert probe_mp4(base64.b64decode(status["output"]["video"]))[:3] == (96, 64, 9)


async def test_flf2v_takes_a_url_start_and_a_path_end(
    api: Api, file_server: FileServer, allowed_root: Path
) -> None:
    file_server.files["start.png"] = png_bytes()
    (allowed_root / "end.png").write_bytes(png_bytes())
    job_id = await api.run(
        small(
            "comfyui_flf2v",
            image_url=file_server.url("start.png"),
            end_image_path=str(allowed_root / "end.png"),
        )
    )
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    assert file_server.requests == ["/files/start.png"]
    inputs = status["output"]["inputs"]
    assert (inputs["image"]["form"], inputs["end_image"]["form"]) == ("url", "path")
    assert probe_mp4(base64.b64decode(status["output"]["video"]))[:3] == (64, 64, 5)


async def test_ti2v_runs_at_24_fps(api: Api) -> None:
    job_id = await api.run(small("ti2v", width=128, height=96, image_base64=b64(png_bytes())))
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    assert probe_mp4(base64.b64decode(status["output"]["video"])) == (128, 96, 5, 24.0, False)


async def test_s2v_muxes_the_audio(api: Api) -> None:
    request = {
        "action": "s2v",
        "image_base64": b64(png_bytes()),
        "audio_base64": b64(wav_bytes(1.5)),
        "width": 64,
        "height": 64,
    }
    job_id = await api.run(request)
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    assert probe_mp4(base64.b64decode(status["output"]["video"])) == (64, 64, 80, 16.0, True)


async def test_job_level_s3config_uploads_to_the_bucket(
    api: Api, s3: S3Client, moto_endpoint: str
) -> None:
    bucket = f"api-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3_config = {
        "accessId": "AKIATESTSERVICE",
        "accessSecret": "secret-service",
        "bucketName": bucket,
        "endpointUrl": moto_endpoint,
    }
    job_id = await api.run(small("t2v"), s3Config=s3_config)
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    output = status["output"]
    assert output["delivery"]["mode"] == "s3"
    assert output["video"].startswith(moto_endpoint)
    stored = s3.get_object(Bucket=bucket, Key=output["delivery"]["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == output["video_info"]["sha256"]
    assert "secret-service" not in json.dumps(status)


async def test_a_presigned_put_url_receives_the_video(api: Api, s3: S3Client) -> None:
    bucket = f"put-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "out.mp4"}, ExpiresIn=600
    )
    job_id = await api.run(small("t2v", upload_url=put_url))
    status = await api.finished(job_id)
    assert status["status"] == "COMPLETED", status
    assert status["output"]["delivery"]["mode"] == "put"
    stored = s3.get_object(Bucket=bucket, Key="out.mp4")["Body"].read()
    assert probe_mp4(stored)[:3] == (64, 64, 5)


async def test_a_finished_job_leaves_no_secret_in_the_job_database(
    tmp_path: Path,
    settings: ServiceSettings,
    resolver: MapResolver,
    s3: S3Client,
    moto_endpoint: str,
) -> None:
    bucket = f"forget-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "out.mp4"}, ExpiresIn=600
    )
    access_secret = f"secret-{uuid.uuid4().hex}"
    s3_config = {
        "accessId": "AKIATESTFORGET",
        "accessSecret": access_secret,
        "bucketName": bucket,
        "endpointUrl": moto_endpoint,
    }
    image = b64(png_bytes())
    config = api_settings(tmp_path)
    async with running_api(config, settings, resolver=resolver) as api:
        job_id = await api.run(
            small("comfyui_i2v", image_base64=image, upload_url=put_url), s3Config=s3_config
        )
        status = await api.finished(job_id)
        assert status["status"] == "COMPLETED", status
        assert status["output"]["delivery"]["mode"] == "put"
        with sqlite3.connect(config.job_db_path) as db:
            [row] = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchall()
        stored = repr(row)
        secrets = [access_secret, urlsplit(put_url).query, image[: len(image) // 2]]
        for secret in secrets:
            assert secret not in stored
        wal = config.job_db_path.with_name(config.job_db_path.name + "-wal")
        on_disk = config.job_db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        for secret in secrets:
            assert secret.encode() not in on_disk
        record = api.runner.store.get(job_id)
        assert record is not None and record.s3_config is None
        assert record.input["action"] == "comfyui_i2v" and record.input["seed"] == 3
        assert record.input["redacted"] == ["image_base64", "upload_url"]
        assert (await api.get(f"/v2/test/status/{job_id}"))[1] == status


async def test_a_video_over_the_budget_with_nowhere_to_go_is_served_by_the_api(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver
) -> None:
    tight = dataclasses.replace(
        settings, delivery=dataclasses.replace(settings.delivery, inline_budget_bytes=2000)
    )
    async with running_api(api_settings(tmp_path), tight, resolver=resolver) as api:
        job_id = await api.run(small("t2v"))
        status = await api.finished(job_id)
        assert status["status"] == "COMPLETED", status
        output = status["output"]
        assert output["delivery"]["mode"] == "served"
        link = output["video"]
        assert link.startswith(f"{api.url}/v2/test/outputs/{job_id}/")
        async with api.session.get(link) as response:
            assert response.status == 200
            assert response.content_type == "video/mp4"
            data = await response.read()
        assert hashlib.sha256(data).hexdigest() == output["video_info"]["sha256"]
        assert probe_mp4(data)[:3] == (64, 64, 5)
        async with aiohttp.ClientSession() as anonymous, anonymous.get(link) as response:
            assert response.status == 401
        assert list(settings.delivery.durable_dir.glob("*")) == []
        code, missing = await api.get(f"/v2/test/outputs/{job_id}/other.mp4")
        assert (code, missing["error_code"]) == (404, "not_found")


async def test_progress_shows_in_status_while_the_job_runs(api: Api, comfy: ComfyUIDouble) -> None:
    comfy.faults.step_delay = 0.3
    job_id = await api.run(small("t2v", steps=6))
    running = await api.until(
        job_id, lambda s: s["status"] == "IN_PROGRESS" and s.get("output", {}).get("step")
    )
    progress = running["output"]
    assert progress["stage"] == "sampling"
    assert {"percent", "message", "step", "steps"} <= set(progress)
    comfy.faults.step_delay = 0.0
    assert (await api.finished(job_id))["status"] == "COMPLETED"


async def test_events_stream_progress_then_the_final_status(api: Api) -> None:
    job_id = await api.run(small("t2v"))
    events: list[tuple[str, dict[str, Any]]] = []
    async with api.session.get(f"{api.url}/v2/test/events/{job_id}") as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        kind = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "status" and kinds.count("status") == 1
    assert events[-1][1]["status"] == "COMPLETED"
    progress = [data for kind, data in events if kind == "progress"]
    assert progress and progress[-1]["stage"] == "delivering"
    assert [p["percent"] for p in progress] == sorted(p["percent"] for p in progress)


async def test_events_of_a_finished_job_give_its_status_and_close(api: Api) -> None:
    job_id = await api.run(small("t2v"))
    await api.finished(job_id)
    async with api.session.get(f"{api.url}/v2/test/events/{job_id}") as response:
        text = await response.text()
    assert text.startswith("event: status\n")
    assert text.count("event: ") == 1


async def test_cancelling_a_queued_job_cancels_it_at_once(api: Api, comfy: ComfyUIDouble) -> None:
    comfy.faults.step_delay = 0.5
    first = await api.run(small("t2v"))
    second = await api.run(small("t2v", seed=4))
    code, body = await api.post(f"/v2/test/cancel/{second}")
    assert code == 200
    assert body["status"] == "CANCELLED"
    assert body["output"]["error_code"] == "cancelled"
    await api.post(f"/v2/test/cancel/{first}")
    await api.finished(first)
    assert len(comfy.received_prompts) <= 1


async def test_cancelling_a_running_job_interrupts_its_prompt(
    api: Api, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 0.5
    job_id = await api.run(small("t2v", steps=8))
    await api.until(job_id, lambda s: s["status"] == "IN_PROGRESS")
    await comfy.wait_until_running()
    running = comfy.running_prompt_id
    code, body = await api.post(f"/v2/test/cancel/{job_id}")
    assert code == 200
    assert body["status"] == "CANCELLED", body
    assert body["error"].startswith("cancelled: ")
    assert [i.get("prompt_id") for i in comfy.interrupts] == [running]
    code, again = await api.post(f"/v2/test/cancel/{job_id}")
    assert (code, again["status"]) == (200, "CANCELLED")


async def test_a_deadline_ends_timed_out(api: Api, comfy: ComfyUIDouble) -> None:
    comfy.faults.step_delay = 2.0
    job_id = await api.run(small("t2v", timeout_s=0.5))
    status = await api.finished(job_id)
    assert status["status"] == "TIMED_OUT", status
    assert status["output"]["error_code"] == "timeout"
    assert status["error"].startswith("timeout: ")


async def test_a_failing_node_fails_the_job_naming_it(api: Api, comfy: ComfyUIDouble) -> None:
    comfy.faults.fail_at_node = "sampler_high_noise"
    job_id = await api.run(small("t2v"))
    status = await api.finished(job_id)
    assert status["status"] == "FAILED"
    assert status["output"]["error_code"] == "execution_failed"
    assert status["output"]["details"]["node_id"] == "sampler_high_noise"
    assert "sampler_high_noise" in status["error"]


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records each body with its signature header."""

    port: int
    received: list[tuple[bytes, str | None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks: list[tuple[bytes, str | None]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        hooks.append((await request.read(), request.headers.get(SIGNATURE_HEADER)))
        arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Receiver(int(runner.addresses[0][1]), hooks, arrived)
    await runner.cleanup()


async def test_the_webhook_gets_the_final_status_signed(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, receiver: Receiver
) -> None:
    limits = dataclasses.replace(
        settings.input_limits,
        allowed_origins=(*settings.input_limits.allowed_origins, receiver.origin),
    )
    service = dataclasses.replace(settings, input_limits=limits)
    secret = "whsec-test-4242"
    async with running_api(
        api_settings(tmp_path, webhook_secret=secret), service, resolver=resolver
    ) as api:
        job_id = await api.run(small("t2v"), webhook=f"{receiver.origin}/hook")
        await api.finished(job_id)
        async with asyncio.timeout(30):
            await receiver.arrived.wait()
    [(body, signature)] = receiver.received
    assert signature is not None
    assert verify(secret, signature, body)
    assert not verify("another-secret", signature, body)
    payload = json.loads(body)
    assert (payload["id"], payload["status"]) == (job_id, "COMPLETED")
    assert payload["output"]["delivery"]["mode"] == "inline"
    assert {"delayTime", "executionTime"} <= set(payload)


async def test_a_webhook_to_a_refused_address_is_rejected_at_submission(api: Api) -> None:
    code, body = await api.post(
        "/v2/test/run", {"input": small("t2v"), "webhook": "http://169.254.169.254/latest"}
    )
    assert code == 400
    assert body["error_code"] == "invalid_input"
    assert body["details"]["field"] == "webhook"


async def test_runpods_policy_execution_timeout_sets_the_deadline(
    api: Api, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 2.0
    job_id = await api.run(small("t2v"), policy={"executionTimeout": 500})
    status = await api.finished(job_id)
    assert status["status"] == "TIMED_OUT", status
    record = api.runner.store.get(job_id)
    assert record is not None and record.input["timeout_s"] == 0.5


async def test_purging_jobs_queued_before_a_restart_calls_each_ones_webhook(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, receiver: Receiver
) -> None:
    limits = dataclasses.replace(
        settings.input_limits,
        allowed_origins=(*settings.input_limits.allowed_origins, receiver.origin),
    )
    service = dataclasses.replace(settings, input_limits=limits)
    config = api_settings(tmp_path)
    comfyui_down = asyncio.Event()

    async def held() -> None:
        await comfyui_down.wait()  # never set: the runner takes no job

    async with running_api(config, service, resolver=resolver, wait_until_ready=held) as api:
        queued = [
            await api.run(small("t2v", seed=seed), webhook=f"{receiver.origin}/hook")
            for seed in (1, 2, 3)
        ]
    async with running_api(config, service, resolver=resolver, wait_until_ready=held) as api:
        assert api.runner.store.queued_ids() == queued
        code, body = await api.post("/v2/test/purge-queue")
        assert (code, body) == (200, {"removed": 3, "status": "completed"})
        await eventually(lambda: len(receiver.received) >= 3)
    payloads = [json.loads(body) for body, _ in receiver.received]
    assert sorted((p["id"], p["status"]) for p in payloads) == sorted(
        (job_id, "CANCELLED") for job_id in queued
    )
    assert {p["output"]["error_code"] for p in payloads} == {"cancelled"}


async def test_a_job_failed_by_a_restart_calls_its_webhook(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, receiver: Receiver
) -> None:
    limits = dataclasses.replace(
        settings.input_limits,
        allowed_origins=(*settings.input_limits.allowed_origins, receiver.origin),
    )
    service = dataclasses.replace(settings, input_limits=limits)
    config = api_settings(tmp_path)
    crashed = JobStore(config.job_db_path)
    crashed.add("lost-job", small("t2v"), webhook=f"{receiver.origin}/hook")
    crashed.claim_next()
    crashed.close()
    async with running_api(config, service, resolver=resolver):
        async with asyncio.timeout(30):
            await receiver.arrived.wait()
    [(body, signature)] = receiver.received
    assert signature is None  # no WEBHOOK_SECRET: unsigned
    payload = json.loads(body)
    assert (payload["id"], payload["status"]) == ("lost-job", "FAILED")
    assert payload["output"]["error_code"] == "execution_failed"
