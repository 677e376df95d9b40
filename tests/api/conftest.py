"""The HTTP API under real uvicorn on 127.0.0.1, on the ComfyUI double, with the service tests'
file server, moto S3 server and test resolver; clients are aiohttp and RunPod's own SDK."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI

from tests.service.conftest import (
    MapResolver,
    allowed_root,
    double,
    file_server,
    moto_endpoint,
    new_worker,
    probe_mp4,
    resolver,
    s3,
    settings,
)
from wan_worker.api import ApiSettings, JobRunner, create_app
from wan_worker.api.app import GRACEFUL_SHUTDOWN_S, KEEP_ALIVE_S
from wan_worker.api.jobs import ReadyGate
from wan_worker.service import ServiceSettings, Worker
from wan_worker.testing import ComfyUIDouble

__all__ = [
    "allowed_root",
    "double",
    "file_server",
    "moto_endpoint",
    "probe_mp4",
    "resolver",
    "s3",
    "settings",
]

TOKEN = "test-api-token-5f1c"
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


@dataclass
class Api:
    """A running API: its base URL, an authorised aiohttp session, and the app's runner."""

    url: str
    app: FastAPI
    session: aiohttp.ClientSession
    token: str | None

    @property
    def runner(self) -> JobRunner:
        runner: JobRunner = self.app.state.runner
        return runner

    @property
    def v2(self) -> str:
        """RunPod's endpoint base URL for the SDK (``RUNPOD_ENDPOINT_BASE_URL``)."""
        return f"{self.url}/v2"

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(f"{self.url}{path}", json=body, **kwargs) as response:
            return response.status, await response.json()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.get(f"{self.url}{path}", **kwargs) as response:
            return response.status, await response.json()

    async def run(self, job_input: dict[str, Any], **extra: Any) -> str:
        status, body = await self.post("/v2/test/run", {"input": job_input, **extra})
        assert status == 200, body
        job_id: str = body["id"]
        return job_id

    async def until(
        self, job_id: str, done: Callable[[dict[str, Any]], bool], timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """Poll the job's status until ``done(status)`` holds."""
        async with asyncio.timeout(timeout_s):
            while True:
                code, body = await self.get(f"/v2/test/status/{job_id}")
                assert code == 200, body
                if done(body):
                    status: dict[str, Any] = body
                    return status
                await asyncio.sleep(0.02)

    async def finished(self, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return await self.until(job_id, lambda s: s["status"] in TERMINAL, timeout_s)


def api_settings(tmp_path: Path, **changes: Any) -> ApiSettings:
    """Settings for a test API: loopback, a token, its store and outputs under ``tmp_path``."""
    base = ApiSettings(
        host="127.0.0.1",
        port=0,
        token=TOKEN,
        job_db_path=tmp_path / "api" / "jobs.sqlite3",
        output_dir=tmp_path / "api" / "outputs",
        webhook_attempts=2,
    )
    return dataclasses.replace(base, **changes)


def served_worker(settings: ServiceSettings, resolver: MapResolver | None = None) -> Worker:
    """A quick-retrying worker whose over-budget videos are kept for the API to serve."""
    return new_worker(
        dataclasses.replace(
            settings, delivery=dataclasses.replace(settings.delivery, local_fallback=True)
        ),
        resolver,
    )


@contextlib.asynccontextmanager
async def running_api(
    api: ApiSettings,
    service: ServiceSettings,
    *,
    resolver: MapResolver | None = None,
    comfyui_ready: Callable[[], Awaitable[bool]] | None = None,
    wait_until_ready: ReadyGate | None = None,
    comfyui_alive: Callable[[], bool] | None = None,
) -> AsyncIterator[Api]:
    """The app under real uvicorn on 127.0.0.1 (a free port), in the test's event loop."""
    app = create_app(
        api,
        service,
        worker=served_worker(service, resolver),
        resolver=resolver,
        comfyui_ready=comfyui_ready,
        wait_until_ready=wait_until_ready,
        comfyui_alive=comfyui_alive,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if serving.done():
                    serving.result()
                    raise AssertionError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            yield Api(f"http://127.0.0.1:{port}", app, session, api.token)
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def api(
    tmp_path: Path, settings: ServiceSettings, resolver: MapResolver
) -> AsyncIterator[Api]:
    """The API on the double (one job at a time), reached with the token."""
    async with running_api(api_settings(tmp_path), settings, resolver=resolver) as running:
        yield running


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def comfy(double: ComfyUIDouble) -> ComfyUIDouble:
    """The double the API's ComfyUI is (a clearer name in API tests)."""
    return double
