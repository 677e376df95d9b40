"""``wan-worker serve`` as a process: the API on a managed fake ComfyUI (crash, restart, stop),
on a ComfyUI given by COMFYUI_URL, and refused when no ComfyUI is named."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.api.conftest import probe_mp4
from tests.managed.conftest import WAIT_S, eventually, free_port, process_exists
from tests.service.conftest import double
from wan_worker import catalogue
from wan_worker.cli.serve import NO_COMFYUI, make_plan, model_roots
from wan_worker.testing import ComfyUIDouble
from wan_worker.testing.fake_comfyui import set_control, starts, write_checkout

__all__ = ["double"]


def small_t2v(seed: int) -> dict[str, Any]:
    """A small t2v job; each job of a test gets its own seed, else ComfyUI serves it from cache."""
    return {"action": "t2v", "width": 64, "height": 64, "frames": 5, "seed": seed}


TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
# Variables of the developer's shell that would change what serve does.
_OURS = ("COMFYUI_", "API_", "MODELS_DIR", "JOB_", "OUTPUT_", "WORK_DIR", "DURABLE_", "BUCKET_")


@dataclass
class Serve:
    """A running ``wan-worker serve`` process and a client for its API."""

    process: asyncio.subprocess.Process
    url: str
    log_path: Path
    session: aiohttp.ClientSession

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.url}{path}") as response:
            return response.status, await response.json()

    async def until_ready(self) -> dict[str, Any]:
        """Poll /ready until it answers 200 (the API may not listen yet)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                assert self.process.returncode is None, self.log()
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    status, body = await self.get("/ready")
                    if status == 200:
                        ready: dict[str, Any] = body
                        return ready
                await asyncio.sleep(0.05)

    async def run(self, job_input: Mapping[str, Any]) -> str:
        async with self.session.post(f"{self.url}/v2/x/run", json={"input": job_input}) as answer:
            body = await answer.json()
            assert answer.status == 200, body
            job_id: str = body["id"]
            return job_id

    async def until(self, job_id: str, condition: Any) -> dict[str, Any]:
        """Poll the job's status until ``condition`` holds or the job ended."""
        async with asyncio.timeout(WAIT_S):
            while True:
                status, body = await self.get(f"/v2/x/status/{job_id}")
                assert status == 200, body
                if condition(body) or body["status"] in TERMINAL:
                    found: dict[str, Any] = body
                    return found
                await asyncio.sleep(0.05)

    async def finished(self, job_id: str) -> dict[str, Any]:
        return await self.until(job_id, lambda s: s["status"] in TERMINAL)

    async def terminate(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), WAIT_S)


async def eventually_sampling(comfyui: str, serve: Serve) -> None:
    """Poll ComfyUI's /queue until it runs a prompt (the job is sampling there)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            async with serve.session.get(f"{comfyui}/queue") as answer:
                if (await answer.json())["queue_running"]:
                    return
            await asyncio.sleep(0.05)


def base_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """This environment without our settings, plus quiet defaults under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(
        API_HOST="127.0.0.1",
        API_PORT=str(free_port()),
        JOB_DB_PATH=str(tmp_path / "api" / "jobs.sqlite3"),
        OUTPUT_DIR=str(tmp_path / "api" / "outputs"),
        WORK_DIR=str(tmp_path / "work"),
        DURABLE_OUTPUT_DIR=str(tmp_path / "kept"),
        MODELS_DIR=str(tmp_path / "models"),
    )
    env.update(values)
    return env


def install_catalogue(models_dir: Path) -> None:
    """Every catalogue model as an empty file where ComfyUI looks for it (the double needs no
    weights: it lists and validates by name)."""
    for model in catalogue.all_models():
        path = models_dir / model.folder / model.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@contextlib.asynccontextmanager
async def serving(env: Mapping[str, str], log_path: Path) -> AsyncIterator[Serve]:
    """``wan-worker serve`` in a process with ``env``; its output goes to ``log_path``."""
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wan_worker.cli",
            "serve",
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as session:
            yield Serve(process, f"http://127.0.0.1:{env['API_PORT']}", log_path, session)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return write_checkout(tmp_path / "comfyui")


@pytest.fixture
def managed_env(tmp_path: Path, checkout: Path) -> dict[str, str]:
    install_catalogue(tmp_path / "models")
    return base_env(
        tmp_path,
        COMFYUI_PATH=str(checkout),
        COMFYUI_PYTHON=sys.executable,
        COMFYUI_PORT=str(free_port()),
        COMFYUI_READY_TIMEOUT_S=str(WAIT_S),
    )


async def test_a_crash_fails_the_running_job_and_later_jobs_complete_on_the_restarted_comfyui(
    managed_env: dict[str, str], checkout: Path, tmp_path: Path
) -> None:
    async with serving(managed_env, tmp_path / "serve.log") as serve:
        assert (await serve.until_ready())["comfyui"] is True
        first = await serve.finished(await serve.run(small_t2v(1)))
        assert first["status"] == "COMPLETED", first
        assert probe_mp4(base64.b64decode(first["output"]["video"]))[:3] == (64, 64, 5)

        set_control(checkout, step_delay=WAIT_S)
        doomed = await serve.run(small_t2v(2))
        running = await serve.until(doomed, lambda s: "step" in s.get("output", {}))
        assert running["status"] == "IN_PROGRESS", running
        comfyui = f"http://127.0.0.1:{managed_env['COMFYUI_PORT']}"
        async with serve.session.get(f"{comfyui}/queue") as answer:
            assert len((await answer.json())["queue_running"]) == 1, "sampling in ComfyUI"
        set_control(checkout)
        crashed = starts(checkout)[-1]["pid"]
        os.kill(crashed, signal.SIGKILL)

        failed = await serve.finished(doomed)
        assert failed["status"] == "FAILED", failed
        assert failed["output"]["error_code"] == "comfyui_unavailable"
        assert f"ComfyUI (pid {crashed}) was killed by signal SIGKILL" in failed["error"]

        assert (await serve.until_ready())["comfyui"] is True
        later = await serve.finished(await serve.run(small_t2v(3)))
        assert later["status"] == "COMPLETED", later
        assert probe_mp4(base64.b64decode(later["output"]["video"]))[:3] == (64, 64, 5)
        restarted = starts(checkout)[-1]["pid"]
        assert restarted != crashed

        assert await serve.terminate() == 0
        assert not process_exists(restarted)
    log = serve.log()
    assert "[comfyui] Starting server" in log
    assert "restarting ComfyUI in" in log


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for a parent that never reaps it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_a_serve_killed_outright_takes_its_comfyui_with_it(
    managed_env: dict[str, str], checkout: Path, tmp_path: Path
) -> None:
    async with serving(managed_env, tmp_path / "serve.log") as serve:
        assert (await serve.until_ready())["comfyui"] is True
        comfyui = starts(checkout)[-1]["pid"]
        assert running(comfyui)
        serve.process.kill()
        await serve.process.wait()
        await eventually(lambda: not running(comfyui))


async def test_a_job_queued_behind_a_crashed_one_waits_for_the_restart_and_completes(
    managed_env: dict[str, str], checkout: Path, tmp_path: Path
) -> None:
    async with serving(managed_env, tmp_path / "serve.log") as serve:
        await serve.until_ready()
        set_control(checkout, step_delay=WAIT_S)
        doomed = await serve.run(small_t2v(1))
        waiting = await serve.run(small_t2v(2))
        await serve.until(doomed, lambda s: s["status"] == "IN_PROGRESS")
        await eventually_sampling(f"http://127.0.0.1:{managed_env['COMFYUI_PORT']}", serve)
        # The restarted ComfyUI hangs before listening until the test lets it come up.
        set_control(checkout, never_listen=True)
        crashed = starts(checkout)[-1]["pid"]
        os.kill(crashed, signal.SIGKILL)

        failed = await serve.finished(doomed)
        assert failed["status"] == "FAILED", failed
        assert f"ComfyUI (pid {crashed}) was killed by signal SIGKILL" in failed["error"]
        await eventually(lambda: len(starts(checkout)) == 2)
        await eventually(lambda: "hangs before listening" in serve.log())
        held = (await serve.get(f"/v2/x/status/{waiting}"))[1]
        assert held["status"] == "IN_QUEUE", held
        assert (await serve.get("/ready"))[0] == 503

        set_control(checkout)
        os.kill(starts(checkout)[-1]["pid"], signal.SIGKILL)
        done = await serve.finished(waiting)
        assert done["status"] == "COMPLETED", done
        assert probe_mp4(base64.b64decode(done["output"]["video"]))[:3] == (64, 64, 5)
        assert len(starts(checkout)) == 3
        assert await serve.terminate() == 0


async def test_managed_comfyui_listens_on_loopback_with_our_model_paths_and_folders(
    managed_env: dict[str, str], checkout: Path, tmp_path: Path
) -> None:
    async with serving(managed_env, tmp_path / "serve.log") as serve:
        await serve.until_ready()
        [run] = starts(checkout)
        assert await serve.terminate() == 0
        assert not process_exists(run["pid"])

    argv = run["argv"]
    assert argv[:4] == ["--listen", "127.0.0.1", "--port", managed_env["COMFYUI_PORT"]]
    config_path = Path(argv[argv.index("--extra-model-paths-config") + 1])
    assert not await asyncio.to_thread(config_path.exists), "the runtime folder is removed"
    assert "--input-directory" not in argv


async def test_once_the_supervisor_gives_up_ready_and_health_fail_and_jobs_stay_queued(
    managed_env: dict[str, str], checkout: Path, tmp_path: Path
) -> None:
    set_control(checkout, exit_at_start=3)
    env = {**managed_env, "COMFYUI_MAX_RESTARTS": "0"}
    async with serving(env, tmp_path / "serve.log") as serve:
        await eventually(lambda: "not restarting it again" in serve.log())
        status, body = await serve.get("/ready")
        assert (status, body["comfyui"]) == (503, False)
        status, body = await serve.get("/health")
        assert (status, body["error_code"]) == (503, "comfyui_unavailable"), body
        job_id = await serve.run(small_t2v(1))
        await eventually(lambda: "queued jobs wait for ComfyUI: the managed ComfyUI" in serve.log())
        assert (await serve.get(f"/v2/x/status/{job_id}"))[1]["status"] == "IN_QUEUE"
        assert await serve.terminate() == 0
    assert "[comfyui] fake ComfyUI exits with code 3" in serve.log()


async def test_with_comfyui_url_serve_uses_it_and_starts_nothing(
    double: ComfyUIDouble, checkout: Path, tmp_path: Path
) -> None:
    install_catalogue(tmp_path / "models")
    env = base_env(tmp_path, COMFYUI_URL=double.url, COMFYUI_PATH=str(checkout))
    async with serving(env, tmp_path / "serve.log") as serve:
        assert (await serve.until_ready())["comfyui"] is True
        done = await serve.finished(await serve.run(small_t2v(1)))
        assert done["status"] == "COMPLETED", done
        await double.stop()
        assert await serve.get("/health") == (200, {"status": "ok"})
        assert await serve.terminate() == 0
    assert len(double.received_prompts) == 1
    assert starts(checkout) == []
    assert "[comfyui]" not in serve.log()


def run_serve(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wan_worker.cli", "serve"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )


def test_without_comfyui_url_or_path_serve_exits_2_saying_what_to_set(tmp_path: Path) -> None:
    done = run_serve(base_env(tmp_path))
    assert done.returncode == 2
    assert NO_COMFYUI in done.stderr


def test_bad_settings_exit_2_naming_the_variable_before_comfyui_starts(
    managed_env: dict[str, str], checkout: Path
) -> None:
    done = run_serve({**managed_env, "COMFYUI_ARGS": "--listen 0.0.0.0"})
    assert done.returncode == 2
    assert "COMFYUI_ARGS: COMFYUI_ARGS may not set --listen" in done.stderr
    exposed = run_serve({**managed_env, "API_HOST": "0.0.0.0"})
    assert exposed.returncode == 2
    assert "API_TOKEN" in exposed.stderr
    assert starts(checkout) == []


def test_a_busy_comfyui_port_stops_serve_with_exit_2_naming_it(
    managed_env: dict[str, str], checkout: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(managed_env["COMFYUI_PORT"])))
        squatter.listen()
        done = run_serve(managed_env)
    assert done.returncode == 2
    assert f"port {managed_env['COMFYUI_PORT']} on 127.0.0.1 is already in use" in done.stderr
    assert starts(checkout) == []


def plan_args(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(host=values.get("host"), port=values.get("port"))


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "runpod-volume"
    (folder / "models").mkdir(parents=True)
    yield folder


def test_model_paths_name_models_dir_first_then_a_mounted_volume(
    tmp_path: Path, volume: Path
) -> None:
    assert model_roots(tmp_path / "models", volume) == (tmp_path / "models", volume / "models")
    assert model_roots(volume / "models", volume) == (volume / "models",)
    assert model_roots(tmp_path / "models", tmp_path / "absent") == (tmp_path / "models",)


def test_the_plan_takes_host_and_port_flags_over_the_environment(
    tmp_path: Path, checkout: Path, volume: Path
) -> None:
    env = {"COMFYUI_PATH": str(checkout), "API_PORT": "9000", "API_TOKEN": "t"}
    plan = make_plan(plan_args(host="0.0.0.0", port=9100), env, runpod_volume=volume)
    assert plan is not None
    assert (plan.api.host, plan.api.port) == ("0.0.0.0", 9100)
    assert plan.comfyui.managed
    assert plan.model_roots == (volume / "models",)
    assert plan.comfyui_env is not None and "API_TOKEN" not in plan.comfyui_env


def test_the_fake_comfyui_reads_model_folders_as_comfyui_does(tmp_path: Path) -> None:
    from wan_worker.models import write_extra_model_paths
    from wan_worker.testing.fake_comfyui import model_folders

    config = write_extra_model_paths(tmp_path / "extra.yaml", [tmp_path / "a", tmp_path / "b"])
    relative = tmp_path / "relative.yaml"
    relative.write_text(yaml.safe_dump({"mine": {"loras": "my_loras\nmore_loras"}}))

    folders = model_folders([config, relative], tmp_path / "comfyui")

    assert folders["vae"] == [tmp_path / "a" / "vae", tmp_path / "b" / "vae"]
    assert folders["loras"][-2:] == [tmp_path / "my_loras", tmp_path / "more_loras"]
