"""RunPod serverless entry point: a RunPod job in, the shared pipeline, its response out.

Thin by design: everything a job does lives in ``wan_worker.service``. Here: progress updates
(at most one a second), RunPod's cancel and timeout (the job's task is cancelled, which interrupts
the ComfyUI prompt), and ``refresh_worker`` when ComfyUI is gone for good. ``python handler.py``
runs ``test_input.json`` locally, as RunPod's SDK does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import runpod  # type: ignore[import-untyped]

from wan_worker.errors import ComfyUIUnavailable
from wan_worker.logs import configure_logging, job_context
from wan_worker.service import JobProgress, ProgressThrottle, ServiceSettings, Worker

log = logging.getLogger("wan_worker.handler")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
ProgressSender = Callable[[dict[str, Any], Any], None]

_worker: Worker | None = None


async def default_worker() -> Worker:
    """The process's worker, configured from the environment on the first job."""
    global _worker  # noqa: PLW0603 - one worker per RunPod process
    if _worker is None:
        worker = Worker(ServiceSettings.from_env())
        if worker.settings.warm_up:
            await worker.warm_up()
        _worker = worker
    return _worker


def make_handler(
    get_worker: Callable[[], Awaitable[Worker]] = default_worker,
    *,
    send_progress: ProgressSender = runpod.serverless.progress_update,
    clock: Callable[[], float] = time.monotonic,
) -> Handler:
    """An async RunPod handler running jobs on the worker ``get_worker`` gives."""

    async def handler(job: dict[str, Any]) -> dict[str, Any]:
        worker = await get_worker()
        request = job.get("input")
        if isinstance(request, dict) and job.get("s3Config") and "s3Config" not in request:
            request = {**request, "s3Config": job["s3Config"]}
        throttle = ProgressThrottle(1.0, clock=clock)

        def on_progress(update: JobProgress) -> None:
            if throttle.ready():
                send_progress(job, update.as_dict())

        with job_context(str(job["id"])):
            response = await worker.respond(request, job_id=str(job["id"]), on_progress=on_progress)
            if response.get("error_code") == ComfyUIUnavailable.code and not (
                await worker.comfyui_recovers()
            ):
                log.error("ComfyUI is gone and did not come back; asking RunPod for a new worker")
                response["refresh_worker"] = True
        return response

    return handler


handler = make_handler()

if __name__ == "__main__":
    settings = ServiceSettings.from_env()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    runpod.serverless.start({"handler": handler})
