"""The HTTP layer of the API: auth, body limits, refusals at submission, the queue limit,
readiness, RunPod's health/purge/runsync/stream routes, metrics, docs and job-tagged logs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.service.conftest import MapResolver, b64, png_bytes
from wan_worker.api import ApiSettings, is_loopback
from wan_worker.errors import InvalidInput
from wan_worker.logs import configure_logging
from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble

from .conftest import TOKEN, Api, api_settings, running_api


def small(**extra: Any) -> dict[str, Any]:
    return {"action": "t2v", "width": 64, "height": 64, "frames": 5, **extra}


async def raw(
    api: Api, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, Any, dict[str, str]]:
    """A request without the session's token; (status, JSON body, headers)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{api.url}{path}", headers=headers, **kwargs) as response,
    ):
        body = await response.json(content_type=None)
        return response.status, body, dict(response.headers)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/test/run"),
        ("POST", "/v2/test/runsync"),
        ("GET", "/v2/test/status/some-id"),
        ("POST", "/v2/test/cancel/some-id"),
        ("GET", "/v2/test/stream/some-id"),
        ("GET", "/v2/test/events/some-id"),
        ("GET", "/v2/test/health"),
        ("POST", "/v2/test/purge-queue"),
        ("GET", "/v2/test/outputs/some-id/video.mp4"),
        ("GET", "/metrics"),
    ],
)
async def test_every_job_route_needs_the_token(api: Api, method: str, path: str) -> None:
    code, body, headers = await raw(api, method, path)
    assert code == 401
    assert body["error_code"] == "unauthorized"
    assert headers["WWW-Authenticate"] == "Bearer"
    code, body, _ = await raw(api, method, path, {"Authorization": "Bearer wrong-token"})
    assert (code, body["error_code"]) == (401, "unauthorized")


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", TOKEN, f"bearer {TOKEN}"])
async def test_the_token_is_accepted_bare_or_as_bearer(api: Api, header: str) -> None:
    code, body, _ = await raw(api, "GET", "/v2/test/health", {"Authorization": header})
    assert code == 200, body


async def test_liveness_readiness_and_docs_need_no_token(api: Api) -> None:
    assert (await raw(api, "GET", "/health"))[:2] == (200, {"status": "ok"})
    code, body, _ = await raw(api, "GET", "/ready")
    assert code == 200
    assert body["ready"] is True and body["comfyui"] is True
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api.url}/docs") as response:
            assert response.status == 200
            assert "swagger" in (await response.text()).lower()
        async with session.get(f"{api.url}/openapi.json") as response:
            schema = await response.json()
    components = schema["components"]["schemas"]
    run_body = schema["paths"]["/v2/{endpoint}/run"]["post"]["requestBody"]
    assert run_body["content"]["application/json"]["schema"]["$ref"].endswith("/RunRequest")
    actions = [branch["title"] for branch in components["JobInput"]["oneOf"]]
    assert "comfyui_s2v" in actions
    assert "#/$defs/" not in str(schema)


async def test_ready_is_false_while_comfyui_is_down(api: Api, comfy: ComfyUIDouble) -> None:
    await comfy.stop()
    code, body, _ = await raw(api, "GET", "/ready")
    assert code == 503
    assert body["comfyui"] is False and body["ready"] is False


async def test_health_stays_ok_while_a_comfyui_given_by_url_is_down(
    api: Api, comfy: ComfyUIDouble
) -> None:
    await comfy.stop()
    assert (await raw(api, "GET", "/health"))[:2] == (200, {"status": "ok"})


async def test_health_fails_once_comfyui_is_given_up_for_good(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver
) -> None:
    given_up = False
    async with running_api(
        api_settings(tmp_path), settings, resolver=resolver, comfyui_alive=lambda: not given_up
    ) as api:
        assert (await raw(api, "GET", "/health"))[:2] == (200, {"status": "ok"})
        given_up = True
        code, body, _ = await raw(api, "GET", "/health")
    assert code == 503
    assert body["error_code"] == "comfyui_unavailable"
    assert body["error"].startswith("comfyui_unavailable: ComfyUI is down for good")
    assert body["details"] == {}


async def test_bad_json_is_invalid_input(api: Api) -> None:
    async with api.session.post(f"{api.url}/v2/test/run", data=b"{not json") as response:
        assert response.status == 400
        body = await response.json()
    assert body["error_code"] == "invalid_input"
    assert body["details"]["field"] == "body"
    assert body["error"].startswith("invalid_input: ")


@pytest.mark.parametrize("body", [{"action": "t2v"}, {"input": "t2v"}, [1, 2]])
async def test_a_body_without_an_input_object_is_refused(api: Api, body: Any) -> None:
    code, answer = await api.post("/v2/test/run", body)
    assert code == 400
    assert (answer["error_code"], answer["details"]["field"]) == ("invalid_input", "input")


async def test_an_invalid_input_is_refused_before_it_is_queued(api: Api) -> None:
    code, body = await api.post("/v2/test/run", {"input": small(width="wide")})
    assert code == 400
    assert body["error_code"] == "invalid_input"
    assert body["details"]["field"] == "width"
    code, body = await api.post("/v2/test/run", {"input": {"action": "comfyui_v2v"}})
    assert (code, body["error_code"]) == (400, "unsupported_action")
    code, health = await api.get("/v2/test/health")
    assert health["jobs"]["inQueue"] == 0 and health["jobs"]["completed"] == 0


async def test_a_body_over_the_limit_is_refused_with_413(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver
) -> None:
    limited = api_settings(tmp_path, max_body_bytes=4096)
    async with running_api(limited, settings, resolver=resolver) as api:
        request = {"input": small(action="i2v", image_base64="A" * 8000)}
        code, body = await api.post("/v2/test/run", request)
        assert code == 413
        assert body["error_code"] == "input_too_large"
        assert body["details"]["max_body_bytes"] == 4096

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1024

        async with api.session.post(f"{api.url}/v2/test/run", data=chunks()) as response:
            assert response.status == 413


async def test_past_the_queue_depth_run_answers_429_and_ready_turns_false(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 0.5
    shallow = api_settings(tmp_path, max_queue_depth=2)
    async with running_api(shallow, settings, resolver=resolver) as api:
        first = await api.run(small(steps=8))
        await api.until(first, lambda s: s["status"] == "IN_PROGRESS")
        await api.run(small(seed=1))
        await api.run(small(seed=2))
        code, body, headers = await raw(
            api, "POST", "/v2/test/run", {"Authorization": f"Bearer {TOKEN}"}, json={"input": {}}
        )
        assert code == 429
        assert body["error_code"] == "queue_full"
        assert int(headers["Retry-After"]) >= 1
        code, _ = await api.post("/v2/test/runsync", {"input": small()})
        assert code == 429
        ready_code, ready, _ = await raw(api, "GET", "/ready")
        assert ready_code == 503
        assert ready == {"ready": False, "comfyui": True, "queue_depth": 2, "max_queue_depth": 2}
        code, purged = await api.post("/v2/test/purge-queue")
        assert (code, purged) == (200, {"removed": 2, "status": "completed"})
        assert (await raw(api, "GET", "/ready"))[0] == 200
        await api.post(f"/v2/test/cancel/{first}")


async def test_runsync_answers_the_finished_job(api: Api) -> None:
    code, body = await api.post("/v2/test/runsync", {"input": small()})
    assert code == 200
    assert body["status"] == "COMPLETED"
    assert body["id"].startswith("sync-")
    assert body["output"]["delivery"]["mode"] == "inline"


async def test_runsync_answers_the_status_when_the_wait_runs_out(
    api: Api, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 0.5
    code, body = await api.post("/v2/test/runsync?wait=50", {"input": small(steps=8)})
    assert code == 200
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    await api.post(f"/v2/test/cancel/{body['id']}")


async def test_a_failed_runsync_carries_the_error_and_its_details(
    api: Api, comfy: ComfyUIDouble
) -> None:
    comfy.faults.fail_at_node = "sampler_high_noise"
    code, body = await api.post("/v2/test/runsync", {"input": small()})
    assert code == 200
    assert body["status"] == "FAILED"
    assert body["error"] == body["output"]["error"]
    assert body["output"]["error_code"] == "execution_failed"


async def test_stream_gives_progress_items_then_the_output_once(api: Api) -> None:
    job_id = await api.run(small())
    await api.finished(job_id)
    code, first = await api.get(f"/v2/test/stream/{job_id}")
    assert code == 200
    assert first["status"] == "COMPLETED"
    outputs = [item["output"] for item in first["stream"]]
    assert outputs[0]["stage"] == "inputs"
    assert outputs[-1]["delivery"]["mode"] == "inline"
    code, second = await api.get(f"/v2/test/stream/{job_id}")
    assert second["stream"] == []


async def test_an_unknown_job_is_not_found(api: Api) -> None:
    for method, path in [
        ("GET", "/v2/test/status/nope"),
        ("POST", "/v2/test/cancel/nope"),
        ("GET", "/v2/test/stream/nope"),
        ("GET", "/v2/test/events/nope"),
    ]:
        async with api.session.request(method, f"{api.url}{path}") as response:
            body = await response.json()
        assert (response.status, body["error_code"]) == (404, "not_found")
        assert body["details"]["id"] == "nope"


async def test_health_counts_jobs_like_runpod(api: Api, comfy: ComfyUIDouble) -> None:
    await api.finished(await api.run(small()))
    comfy.faults.fail_at_node = "sampler_high_noise"
    await api.finished(await api.run(small(seed=9)))
    code, health = await api.get("/v2/test/health")
    assert code == 200
    assert health["jobs"] == {
        "completed": 1,
        "failed": 1,
        "inProgress": 0,
        "inQueue": 0,
        "retried": 0,
    }
    assert health["workers"]["idle"] == 1 and health["workers"]["running"] == 0


async def test_metrics_count_jobs_and_show_the_queue_and_comfyui(api: Api) -> None:
    await api.finished(await api.run(small()))
    async with api.session.get(f"{api.url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert 'wan_worker_jobs_total{status="COMPLETED"} 1.0' in text
    assert 'wan_worker_job_stage_seconds_count{stage="execution"} 1.0' in text
    assert "wan_worker_jobs_in_progress 0.0" in text
    assert "wan_worker_queue_depth 0.0" in text
    assert "wan_worker_comfyui_up 1.0" in text


async def test_every_log_line_of_a_job_carries_its_id(api: Api) -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(level="DEBUG", stream=buffer)
    try:
        job_id = await api.run(small())
        await api.finished(job_id)
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    lines = [line for line in buffer.getvalue().splitlines() if " wan_worker." in line]
    naming_it = [line for line in lines if job_id in line]
    assert naming_it and all(f"[{job_id}]" in line for line in naming_it)
    assert any(f"job {job_id} started" in line for line in naming_it)
    delivery = [line for line in lines if " wan_worker.delivery." in line]
    assert delivery and all(f"[{job_id}]" in line for line in delivery)
    assert TOKEN not in buffer.getvalue()


async def test_a_server_shutdown_leaves_queued_jobs_for_the_next_start(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 0.5
    api = api_settings(tmp_path)
    async with running_api(api, settings, resolver=resolver) as first:
        running = await first.run(small(steps=8))
        await first.until(running, lambda s: s["status"] == "IN_PROGRESS")
        queued = await first.run(small(seed=5))
        await comfy.wait_until_running()
    assert comfy.interrupts, "closing interrupts the running prompt"
    comfy.faults.step_delay = 0.0
    async with running_api(api, settings, resolver=resolver) as second:
        failed = await second.finished(running)
        assert failed["status"] == "FAILED"
        assert "server stopped" in failed["error"]
        assert (await second.finished(queued))["status"] == "COMPLETED"


def test_settings_read_the_environment() -> None:
    settings = ApiSettings.from_env(
        {
            "API_HOST": "0.0.0.0",
            "API_PORT": "9000",
            "API_TOKEN": "s3cret-token",
            "JOBS_CONCURRENCY": "2",
            "MAX_QUEUE_DEPTH": "7",
            "PUBLIC_URL": "https://videos.example.com/",
        }
    )
    assert (settings.host, settings.port, settings.jobs_concurrency) == ("0.0.0.0", 9000, 2)
    assert settings.max_queue_depth == 7
    assert settings.public_url == "https://videos.example.com"
    assert "s3cret-token" not in repr(settings)


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(InvalidInput) as refused:
        ApiSettings.from_env({"API_HOST": "0.0.0.0"})
    assert refused.value.problems[0].field == "API_TOKEN"
    with pytest.raises(InvalidInput, match="API_TOKEN"):
        ApiSettings(host="192.168.1.20").check_exposure()
    ApiSettings(host="::1").check_exposure()
    ApiSettings(host="localhost").check_exposure()
    assert not is_loopback("0.0.0.0")


async def test_serve_refuses_a_public_host_without_a_token(settings: ServiceSettings) -> None:
    from wan_worker.api import serve

    with pytest.raises(InvalidInput, match="API_TOKEN"):
        await asyncio.wait_for(serve(ApiSettings(host="0.0.0.0"), settings), 10)


def test_bad_settings_are_reported_together() -> None:
    with pytest.raises(InvalidInput) as refused:
        ApiSettings.from_env({"JOBS_CONCURRENCY": "0", "API_PORT": "x", "MAX_QUEUE_DEPTH": "-3"})
    fields = {p.field for p in refused.value.problems}
    assert fields == {"JOBS_CONCURRENCY", "API_PORT", "MAX_QUEUE_DEPTH"}


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("image_url", "http://10.0.0.5/start.png"),
        ("upload_url", "http://169.254.169.254/out.mp4"),
    ],
)
async def test_a_url_to_a_refused_address_is_refused_at_submission(
    api: Api, field: str, url: str
) -> None:
    job_input = small(action="i2v", **{field: url})
    if field != "image_url":
        job_input["image_base64"] = b64(png_bytes())
    code, body = await api.post("/v2/test/run", {"input": job_input})
    assert code == 400, body
    assert (body["error_code"], body["details"]["field"]) == ("invalid_input", field)


async def test_serve_runs_the_api_and_hands_the_app_over_first(
    tmp_path: Path, settings: ServiceSettings
) -> None:
    from fastapi import FastAPI

    from wan_worker.api import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handed: list[FastAPI] = []
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    serving = asyncio.create_task(
        serve(api_settings(tmp_path, port=port), settings, on_app=handed.append)
    )
    try:
        async with asyncio.timeout(30), aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        [app] = handed
        assert await app.state.runner.fail_running("nothing runs yet") == []
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    with pytest.raises(sqlite3.ProgrammingError):
        app.state.runner.store.queue_depth()  # the lifespan closed the store: a graceful stop
