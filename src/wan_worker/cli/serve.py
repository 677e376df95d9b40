"""``wan-worker serve``: the self-hosted HTTP API, on a ComfyUI given by URL or run by the worker.

With COMFYUI_URL the API uses that server. Otherwise, with COMFYUI_PATH, the worker runs ComfyUI
itself on loopback (see ``wan_worker.managed``): its model paths point at MODELS_DIR (and a
RunPod volume's models when one is mounted), its crashes fail the jobs running on it, queued jobs
wait while it (re)starts, readiness follows it, liveness (/health) fails once its supervisor gives
up, and it is stopped when the API stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from fastapi import FastAPI

from wan_worker import api as http_api
from wan_worker.api import ApiSettings
from wan_worker.errors import InvalidInput
from wan_worker.logs import configure_logging
from wan_worker.managed import (
    ComfyUIProcess,
    ManagedComfyUISettings,
    ProcessState,
    comfyui_environment,
)
from wan_worker.models import ModelSettings, write_extra_model_paths
from wan_worker.models.paths import RUNPOD_VOLUME
from wan_worker.service import ServiceSettings

EXIT_OK = 0
EXIT_INVALID_INPUT = 2
NO_COMFYUI = (
    "serve: no ComfyUI to run jobs on. Set COMFYUI_URL to the address of a running ComfyUI, "
    "or COMFYUI_PATH to a ComfyUI checkout for wan-worker to run itself."
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServePlan:
    """Everything ``serve`` needs, read from the environment once."""

    api: ApiSettings
    service: ServiceSettings
    comfyui: ManagedComfyUISettings
    model_roots: tuple[Path, ...] = ()
    """Models roots named in the managed ComfyUI's extra_model_paths.yaml."""
    comfyui_env: Mapping[str, str] | None = None
    """The managed ComfyUI's environment."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the self-hosted HTTP API (RunPod's routes) on ComfyUI",
        description=(
            "Serve RunPod's endpoint routes (/v2/<endpoint>/run, /status, ...) for WAN jobs. "
            "ComfyUI is COMFYUI_URL, or is run from COMFYUI_PATH and supervised. "
            "Settings come from the environment; see docs/serve.md and docs/http-api.md."
        ),
    )
    serve.add_argument("--host", help="address to listen on (default: API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: API_PORT or 8000)")
    serve.set_defaults(handler=run)


def make_plan(
    args: argparse.Namespace, env: Mapping[str, str], *, runpod_volume: Path = RUNPOD_VOLUME
) -> ServePlan | None:
    """Read every setting; None when neither COMFYUI_URL nor COMFYUI_PATH says where ComfyUI is.

    Raises InvalidInput for a bad value (all of a settings group's problems at once).
    """
    api = ApiSettings.from_env(env)
    if args.host is not None:
        api = dataclasses.replace(api, host=args.host)
    if args.port is not None:
        api = dataclasses.replace(api, port=args.port)
    api.check_exposure()
    service = ServiceSettings.from_env(env)
    comfyui = ManagedComfyUISettings.from_env(env)
    if comfyui.external_url is not None:
        return ServePlan(api, service, comfyui)
    if comfyui.comfyui_path is None:
        return None
    models = ModelSettings.from_env(env, runpod_volume=runpod_volume)
    return ServePlan(
        api,
        service,
        comfyui,
        model_roots=model_roots(models.models_dir, runpod_volume),
        comfyui_env=comfyui_environment(env),
    )


def model_roots(models_dir: Path, runpod_volume: Path = RUNPOD_VOLUME) -> tuple[Path, ...]:
    """MODELS_DIR first (downloads go there), then a mounted RunPod volume's models folder."""
    roots = [models_dir]
    on_volume = runpod_volume / "models"
    if on_volume.is_dir() and on_volume.resolve() != models_dir.resolve():
        roots.append(on_volume)
    return tuple(roots)


def run(args: argparse.Namespace) -> int:
    try:
        plan = make_plan(args, os.environ)
    except InvalidInput as err:
        print(f"serve: {err.message}", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem.field}: {problem.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if plan is None:
        print(NO_COMFYUI, file=sys.stderr)
        return EXIT_INVALID_INPUT
    configure_logging(level=plan.service.log_level, json_logs=plan.service.log_json)
    if not plan.comfyui.managed:
        if plan.comfyui.comfyui_path is not None:
            log.info("COMFYUI_URL is set: the checkout in COMFYUI_PATH is not started")
        log.info("serving the API on the ComfyUI at %s", plan.service.comfyui_url)
        asyncio.run(_serve(plan, None))
        return EXIT_OK
    runtime = Path(tempfile.mkdtemp(prefix="wan-worker-comfyui-"))
    try:
        config = write_extra_model_paths(runtime / "extra_model_paths.yaml", plan.model_roots)
        log.info(
            "running ComfyUI from %s on %s; models from %s",
            plan.comfyui.comfyui_path,
            plan.comfyui.url,
            ", ".join(str(root) for root in plan.model_roots),
        )
        comfyui = ComfyUIProcess(plan.comfyui, extra_model_paths=config, env=plan.comfyui_env)
        asyncio.run(_serve(plan, comfyui))
    except InvalidInput as err:
        log.error("%s", err.message)
        return EXIT_INVALID_INPUT
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return EXIT_OK


async def _serve(plan: ServePlan, comfyui: ComfyUIProcess | None) -> None:
    """Run the API (and the managed ComfyUI) until SIGINT/SIGTERM; ComfyUI is stopped last."""
    service = plan.service
    ready: Callable[[], Awaitable[bool]] | None = None
    takes_jobs: Callable[[], Awaitable[None]] | None = None
    alive: Callable[[], bool] | None = None
    if comfyui is not None:
        service = dataclasses.replace(
            service,
            comfyui_url=comfyui.url,
            comfyui_input_dir=comfyui.input_dir,
            comfyui_output_dir=comfyui.output_dir,
        )
        ready = comfyui.responsive
        ready_timeout_s = plan.comfyui.ready_timeout_s

        async def takes_jobs() -> None:
            await comfyui.wait_ready(ready_timeout_s)

        def alive() -> bool:
            return comfyui.state is not ProcessState.FAILED

    def wire(app: FastAPI) -> None:
        if comfyui is not None:
            comfyui.on_crash = app.state.runner.fail_running

    async with _stop_signals() as stopping:
        try:
            if comfyui is not None:
                await comfyui.start(wait=False)
            server = asyncio.create_task(
                http_api.serve(
                    plan.api,
                    service,
                    comfyui_ready=ready,
                    wait_until_ready=takes_jobs,
                    comfyui_alive=alive,
                    on_app=wire,
                )
            )
            signalled = asyncio.create_task(stopping.wait())
            await asyncio.wait({server, signalled}, return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            if not server.done():
                # The signal came before uvicorn took SIGINT/SIGTERM over.
                server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
        finally:
            if comfyui is not None:
                await comfyui.stop()


@contextlib.asynccontextmanager
async def _stop_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT/SIGTERM while the API is not handling them itself.

    uvicorn handles both while it serves, then restores the handlers it found and raises the
    signal again: these handlers turn that into an orderly stop that still ends ComfyUI.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stopping.set)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
