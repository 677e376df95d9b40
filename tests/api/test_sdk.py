"""RunPod's own Python SDK, unchanged, against the API: ``RUNPOD_ENDPOINT_BASE_URL`` (the SDK's
``endpoint_url_base``) points at the server and ``runpod.api_key`` is the API token."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import runpod  # type: ignore[import-untyped]

from wan_worker.testing import ComfyUIDouble

from .conftest import Api, probe_mp4


def small(**extra: Any) -> dict[str, Any]:
    return {"action": "t2v", "width": 64, "height": 64, "frames": 5, **extra}


@pytest.fixture
def sdk(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The SDK configured for the API (its module globals, as RUNPOD_ENDPOINT_BASE_URL sets)."""
    monkeypatch.setattr(runpod, "endpoint_url_base", api.v2)
    monkeypatch.setattr(runpod, "api_key", api.token)
    yield api


async def test_run_status_and_output_through_the_sdk(sdk: Api) -> None:
    endpoint = runpod.Endpoint("wan")
    job = await asyncio.to_thread(endpoint.run, small())
    assert await asyncio.to_thread(job.status) in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    output = await asyncio.to_thread(job.output, 60)
    assert output["delivery"]["mode"] == "inline"
    assert probe_mp4(base64.b64decode(output["video"]))[:3] == (64, 64, 5)
    assert await asyncio.to_thread(job.status) == "COMPLETED"


async def test_run_sync_returns_the_output(sdk: Api) -> None:
    endpoint = runpod.Endpoint("wan")
    output = await asyncio.to_thread(endpoint.run_sync, {"input": small()}, 60)
    assert output["action"] == "comfyui_t2v"
    assert output["video_info"]["frames"] == 5


async def test_a_failed_job_gives_the_structured_error_as_its_output(
    sdk: Api, comfy: ComfyUIDouble
) -> None:
    comfy.faults.fail_at_node = "sampler_high_noise"
    job = await asyncio.to_thread(runpod.Endpoint("wan").run, small())
    output = await asyncio.to_thread(job.output, 60)
    assert await asyncio.to_thread(job.status) == "FAILED"
    assert output["error_code"] == "execution_failed"
    assert output["details"]["node_id"] == "sampler_high_noise"


async def test_stream_yields_progress_then_the_output(sdk: Api) -> None:
    job = await asyncio.to_thread(runpod.Endpoint("wan").run, small())
    chunks = await asyncio.to_thread(lambda: list(job.stream()))
    assert chunks[0]["stage"] == "inputs"
    assert any(chunk.get("stage") == "sampling" for chunk in chunks)
    assert chunks[-1]["delivery"]["mode"] == "inline"


async def test_cancel_health_and_purge_through_the_sdk(sdk: Api, comfy: ComfyUIDouble) -> None:
    comfy.faults.step_delay = 0.5
    endpoint = runpod.Endpoint("wan")
    running = await asyncio.to_thread(endpoint.run, small(steps=8))
    await sdk.until(running.job_id, lambda s: s["status"] == "IN_PROGRESS")
    await asyncio.to_thread(endpoint.run, small(seed=1))
    await asyncio.to_thread(endpoint.run, small(seed=2))
    health = await asyncio.to_thread(endpoint.health)
    assert (health["jobs"]["inProgress"], health["jobs"]["inQueue"]) == (1, 2)
    assert await asyncio.to_thread(endpoint.purge_queue) == {"removed": 2, "status": "completed"}
    cancelled = await asyncio.to_thread(running.cancel, 30)
    assert cancelled["status"] == "CANCELLED"
    assert comfy.interrupts


async def test_the_sdk_with_a_wrong_key_is_told_it_is_unauthorized(
    sdk: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runpod, "api_key", "not-the-token")
    with pytest.raises(RuntimeError, match="401 Unauthorized"):
        await asyncio.to_thread(runpod.Endpoint("wan").run, small())


async def test_the_asyncio_sdk_runs_cancels_and_checks_health(
    sdk: Api, comfy: ComfyUIDouble
) -> None:
    async with aiohttp.ClientSession() as session:
        endpoint = runpod.AsyncioEndpoint("wan", session)
        job = await endpoint.run(small())
        output = await job.output(timeout=60)
        assert output["video_info"]["frames"] == 5
        assert await job.status() == "COMPLETED"

        comfy.faults.step_delay = 0.5
        slow = await endpoint.run(small(steps=8, seed=4))
        await sdk.until(slow.job_id, lambda s: s["status"] == "IN_PROGRESS")
        cancelled = await slow.cancel()
        assert cancelled["status"] == "CANCELLED"
        health = await endpoint.health()
        assert health["jobs"]["completed"] == 1
        assert await endpoint.purge_queue() == {"removed": 0, "status": "completed"}
