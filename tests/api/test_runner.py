"""The job runner behind the API: first in, first out; restart recovery from the SQLite file;
ComfyUI dying under running jobs; queued jobs held while ComfyUI cannot take them; several slots
at once."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.managed.conftest import eventually
from tests.service.conftest import MapResolver
from wan_worker.api.outputs import OutputStore
from wan_worker.api.store import JobStore
from wan_worker.errors import ComfyUIUnavailable
from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble

from .conftest import Api, api_settings, running_api


def small(seed: int, **extra: Any) -> dict[str, Any]:
    return {"action": "t2v", "width": 64, "height": 64, "frames": 5, "seed": seed, **extra}


def started_at(api: Api, job_id: str) -> float:
    record = api.runner.store.get(job_id)
    assert record is not None and record.started_at is not None
    started: float = record.started_at
    return started


async def test_jobs_run_first_in_first_out_one_at_a_time(api: Api, comfy: ComfyUIDouble) -> None:
    comfy.faults.step_delay = 0.05
    ids = [await api.run(small(seed)) for seed in range(4)]
    statuses = [await api.finished(job_id) for job_id in ids]
    assert [s["status"] for s in statuses] == ["COMPLETED"] * 4
    starts = [started_at(api, job_id) for job_id in ids]
    assert starts == sorted(starts)
    seeds = [
        next(
            node["inputs"]["noise_seed"]
            for node in prompt["prompt"].values()
            if "noise_seed" in node["inputs"]
        )
        for prompt in comfy.received_prompts
    ]
    assert seeds == [0, 1, 2, 3]
    for earlier, later in itertools.pairwise(ids):
        before, after = api.runner.store.get(earlier), api.runner.store.get(later)
        assert before is not None and after is not None
        assert before.finished_at is not None and after.started_at is not None
        assert before.finished_at <= after.started_at


async def test_a_restart_fails_the_job_that_was_running_and_runs_the_queued_ones(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver
) -> None:
    api = api_settings(tmp_path)
    crashed = JobStore(api.job_db_path)
    for name, seed in (("was-running", 1), ("queued-1", 2), ("queued-2", 3)):
        crashed.add(name, small(seed))
    claimed = crashed.claim_next()
    assert claimed is not None and claimed.id == "was-running"
    crashed.close()  # the process "dies" here: one job IN_PROGRESS, two IN_QUEUE

    async with running_api(api, settings, resolver=resolver) as running:
        failed = await running.finished("was-running")
        assert failed["status"] == "FAILED"
        assert "server stopped while this job ran" in failed["error"]
        assert failed["output"]["error_code"] == "execution_failed"
        for queued in ("queued-1", "queued-2"):
            assert (await running.finished(queued))["status"] == "COMPLETED"
        assert started_at(running, "queued-1") <= started_at(running, "queued-2")


async def test_fail_running_fails_jobs_whose_comfyui_died_and_the_queue_goes_on(
    api: Api, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 0.5
    running = await api.run(small(1, steps=8))
    queued = await api.run(small(2))
    await api.until(running, lambda s: s["status"] == "IN_PROGRESS")
    failed = await api.runner.fail_running("ComfyUI exited with code 1; restarting it")
    assert failed == [running]
    status = await api.finished(running)
    assert status["status"] == "FAILED"
    assert status["output"]["error_code"] == "comfyui_unavailable"
    assert "ComfyUI exited with code 1" in status["error"]
    comfy.faults.step_delay = 0.0
    assert (await api.finished(queued))["status"] == "COMPLETED"
    assert await api.runner.fail_running("nothing runs") == []


async def test_two_slots_run_two_jobs_at_once(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, comfy: ComfyUIDouble
) -> None:
    comfy.faults.step_delay = 0.3
    async with running_api(
        api_settings(tmp_path, jobs_concurrency=2), settings, resolver=resolver
    ) as api:
        ids = [await api.run(small(seed, steps=6)) for seed in range(3)]
        async with asyncio.timeout(60):
            while True:
                _, health = await api.get("/v2/test/health")
                if health["jobs"]["inProgress"] == 2:
                    break
                await asyncio.sleep(0.02)
        assert health["jobs"]["inQueue"] == 1
        assert health["workers"]["running"] == 2
        comfy.faults.step_delay = 0.0
        for job_id in ids:
            assert (await api.finished(job_id))["status"] == "COMPLETED"


async def test_the_sweep_removes_expired_job_records_and_served_outputs(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver
) -> None:
    tight = dataclasses.replace(
        settings, delivery=dataclasses.replace(settings.delivery, inline_budget_bytes=2000)
    )
    config = api_settings(tmp_path)
    async with running_api(config, tight, resolver=resolver) as api:
        job_id = await api.run(small(1))
        link = (await api.finished(job_id))["output"]["video"]
        async with api.session.get(link) as response:
            assert response.status == 200
        api.runner.sweep()
        assert (await api.get(f"/v2/test/status/{job_id}"))[0] == 200
        api.runner.retention_s = 0.0
        api.runner.outputs = OutputStore(
            config.output_dir, ttl_s=0.0, budget_bytes=config.output_disk_budget_bytes
        )
        api.runner.sweep()
        async with api.session.get(link) as response:
            assert response.status == 404
        code, body = await api.get(f"/v2/test/status/{job_id}")
        assert (code, body["error_code"]) == (404, "not_found")
        assert [p for p in config.output_dir.rglob("*") if p.is_file()] == []


async def test_a_queued_job_waits_in_the_queue_until_the_gate_says_comfyui_takes_jobs(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver, comfy: ComfyUIDouble
) -> None:
    asked = asyncio.Event()
    comfyui_back = asyncio.Event()

    async def wait_until_ready() -> None:
        asked.set()
        await comfyui_back.wait()

    async with running_api(
        api_settings(tmp_path), settings, resolver=resolver, wait_until_ready=wait_until_ready
    ) as api:
        job_id = await api.run(small(1))
        async with asyncio.timeout(30):
            await asked.wait()
        assert (await api.get(f"/v2/test/status/{job_id}"))[1]["status"] == "IN_QUEUE"
        assert comfy.received_prompts == []
        comfyui_back.set()
        assert (await api.finished(job_id))["status"] == "COMPLETED"
        asked.clear()
        comfyui_back.clear()
        second = await api.run(small(2))
        async with asyncio.timeout(30):
            await asked.wait()
        assert (await api.get(f"/v2/test/status/{second}"))[1]["status"] == "IN_QUEUE"
        comfyui_back.set()
        assert (await api.finished(second))["status"] == "COMPLETED"


async def test_a_gate_that_refuses_holds_the_job_and_asks_again_until_comfyui_is_back(
    tmp_path: Path,
    settings: ServiceSettings,
    resolver: MapResolver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = 0
    comfyui_down = True

    async def wait_until_ready() -> None:
        nonlocal refusals
        if comfyui_down:
            refusals += 1
            raise ComfyUIUnavailable("the managed ComfyUI is restarting")

    caplog.set_level(logging.INFO, logger="wan_worker.api.jobs")
    async with running_api(
        api_settings(tmp_path), settings, resolver=resolver, wait_until_ready=wait_until_ready
    ) as api:
        api.runner.ready_retry_s = 0.01
        job_id = await api.run(small(1))
        await eventually(lambda: refusals >= 3)
        assert (await api.get(f"/v2/test/status/{job_id}"))[1]["status"] == "IN_QUEUE"
        comfyui_down = False
        assert (await api.finished(job_id))["status"] == "COMPLETED"
    held = [r.getMessage() for r in caplog.records if "wait for ComfyUI" in r.getMessage()]
    assert held == ["queued jobs wait for ComfyUI: the managed ComfyUI is restarting"]
    assert any("the queue moves on" in r.getMessage() for r in caplog.records)


async def test_on_a_comfyui_given_by_url_jobs_wait_while_it_is_down_then_run(
    api: Api, comfy: ComfyUIDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wan_worker.api.jobs")
    api.runner.ready_retry_s = 0.01
    await comfy.stop()
    job_id = await api.run(small(1))
    await eventually(lambda: any("wait for ComfyUI" in r.getMessage() for r in caplog.records))
    assert (await api.get(f"/v2/test/status/{job_id}"))[1]["status"] == "IN_QUEUE"
    await comfy.start()
    assert (await api.finished(job_id))["status"] == "COMPLETED"
