"""``wan-worker generate --server`` (the self-hosted API under uvicorn on 127.0.0.1) and
``--endpoint`` (the same server as a RunPod endpoint base URL), on the ComfyUI double."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from tests.cli.conftest import IMAGE, MODE_INPUTS, SMALL, names, no_new_files, run_cli, run_main
from wan_worker.api import create_app
from wan_worker.api.settings import ApiSettings
from wan_worker.delivery import DeliveryConfig, probe_video
from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble

TOKEN = "cli-test-token"


@dataclasses.dataclass
class Server:
    url: str
    comfy: ComfyUIDouble


def service_settings(
    tmp_path: Path, comfy: ComfyUIDouble, *, inline_budget_bytes: int = 9_000_000
) -> ServiceSettings:
    return ServiceSettings(
        comfyui_url=comfy.url,
        comfyui_input_dir=comfy.input_dir,
        comfyui_output_dir=comfy.output_dir,
        comfyui_ready_timeout_s=0.5,
        work_dir=tmp_path / "api-work",
        delivery=DeliveryConfig(
            durable_dir=tmp_path / "api-kept", inline_budget_bytes=inline_budget_bytes
        ),
        stall_timeout_s=None,
    )


async def serve(tmp_path: Path, service: ServiceSettings) -> AsyncIterator[str]:
    """The self-hosted API under real uvicorn on 127.0.0.1 (a free port); yields its URL."""
    api = ApiSettings(
        host="127.0.0.1",
        port=0,
        token=TOKEN,
        job_db_path=tmp_path / "api" / "jobs.sqlite3",
        output_dir=tmp_path / "api" / "outputs",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(api, service), host="127.0.0.1", port=0, log_config=None, lifespan="on"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not serving.done(), "uvicorn stopped before it started"
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def server(tmp_path: Path, comfy: ComfyUIDouble) -> AsyncIterator[Server]:
    """The API answering videos inline (they fit its default budget)."""
    async for url in serve(tmp_path, service_settings(tmp_path, comfy)):
        yield Server(url, comfy)


@pytest.fixture
async def serving_server(tmp_path: Path, comfy: ComfyUIDouble) -> AsyncIterator[Server]:
    """The API with no inline budget: videos come back as links to its served outputs."""
    async for url in serve(tmp_path, service_settings(tmp_path, comfy, inline_budget_bytes=1)):
        yield Server(url, comfy)


@pytest.mark.parametrize("mode", ["flf2v", "s2v"])
async def test_server_mode_saves_the_inline_video(
    mode: str,
    server: Server,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = out_dir / "remote.mp4"
    run = await run_main(
        [
            *("generate", mode, *MODE_INPUTS[mode], *SMALL, "--seed", "11"),
            *("--server", server.url, "--token", TOKEN, "-o", str(output), "--json"),
        ],
        capsys,
    )

    assert run.status == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["via"], result["seed"], result["delivery"]["mode"]) == ("server", 11, "inline")
    info = probe_video(output)
    assert (info.width, info.height, info.frames) == (320, 192, result["parameters"]["frames"])
    assert info.sha256 == result["video_info"]["sha256"]
    assert names(out_dir) == ["remote.mp4"]


async def test_a_served_video_is_downloaded_with_the_token(
    serving_server: Server,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = await run_main(
        [
            *("generate", "i2v", IMAGE, *SMALL, "--frames", "9", "--seed", "5"),
            *("--server", serving_server.url, "--token", TOKEN, "-o", str(out_dir), "--json"),
        ],
        capsys,
    )

    assert run.status == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["delivery"]["mode"] == "served"
    assert result["file"] == str((out_dir / "i2v-5.mp4").resolve())
    assert probe_video(out_dir / "i2v-5.mp4").frames == 9


async def test_progress_from_the_server_shows_on_a_plain_stdout(
    server: Server, out_dir: Path, cli_env: dict[str, str]
) -> None:
    server.comfy.faults.step_delay = 0.3
    run = await run_cli(
        [
            *("generate", "t2v", *SMALL, "--frames", "5", "--poll-interval", "0.05"),
            *("--server", server.url, "-o", str(out_dir / "t2v.mp4")),
        ],
        env={**cli_env, "API_TOKEN": TOKEN},
    )

    assert run.status == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("queued")
    assert any(line.startswith("sampling") and "step " in line for line in lines)
    assert f"saved {out_dir / 't2v.mp4'}" in lines
    assert "  frames      5 at 16 fps" in lines


async def test_a_request_the_server_refuses_exits_2_naming_the_field(
    server: Server, out_dir: Path, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with no_new_files(out_dir):
        run = await run_main(
            [
                *("generate", "t2v", "--frames", "0", "--server", server.url),
                *("--token", TOKEN, "-o", str(out_dir), "--json"),
            ],
            capsys,
        )
    assert run.status == 2
    error = json.loads(run.stdout)
    assert (error["error_code"], error["details"]["field"]) == ("invalid_input", "frames")
    assert server.comfy.received_prompts == []


async def test_a_wrong_token_exits_3(
    server: Server, out_dir: Path, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with no_new_files(out_dir):
        run = await run_main(
            ["generate", "t2v", "--server", server.url, "--token", "wrong", "-o", str(out_dir)],
            capsys,
        )
    assert run.status == 3
    assert "refused the token (HTTP 401: the API token is not valid); check --token" in run.stderr
    assert "wrong" not in run.stderr


async def test_a_job_that_fails_on_the_server_exits_3_naming_the_node(
    server: Server, out_dir: Path, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server.comfy.faults.fail_at_node = "decode"
    with no_new_files(out_dir):
        run = await run_main(
            [
                *("generate", "t2v", *SMALL, "--frames", "5", "--poll-interval", "0.05"),
                *("--server", server.url, "--token", TOKEN, "-o", str(out_dir), "--json"),
            ],
            capsys,
        )
    assert run.status == 3
    error = json.loads(run.stdout)
    assert error["error_code"] == "execution_failed"
    assert error["details"]["node_id"] == "decode"
    assert "execution_failed: " in run.stderr


async def test_a_job_past_its_deadline_on_the_server_exits_4(
    server: Server, out_dir: Path, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server.comfy.faults.step_delay = 5.0
    with no_new_files(out_dir):
        run = await run_main(
            [
                *("generate", "t2v", *SMALL, "--frames", "5", "--timeout", "2"),
                *("--poll-interval", "0.05", "--server", server.url, "--token", TOKEN),
                *("-o", str(out_dir)),
            ],
            capsys,
        )
    assert run.status == 4
    assert "timeout: " in run.stderr
    # Sampling takes 20 s here: any prompt that reached ComfyUI before the deadline was
    # interrupted (on a slow machine the deadline may pass before one is queued).
    assert len(server.comfy.interrupts) == len(server.comfy.received_prompts)


async def test_ctrl_c_cancels_the_remote_job(
    server: Server, out_dir: Path, cli_env: dict[str, str]
) -> None:
    server.comfy.faults.step_delay = 5.0
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wan_worker.cli",
        *("generate", "t2v", *SMALL, "--frames", "5", "--poll-interval", "0.05"),
        *("--server", server.url, "-o", str(out_dir / "never.mp4")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**cli_env, "API_TOKEN": TOKEN},
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the progress stopped before sampling"
            if line.startswith("sampling"):
                break
        process.send_signal(signal.SIGINT)
        _, stderr = await process.communicate()

    assert process.returncode == 4
    assert "the remote job was cancelled" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    async with asyncio.timeout(30):
        await server.comfy.wait_until_done(server.comfy.received_prompts[-1]["prompt_id"])
    assert server.comfy.interrupts
    assert names(out_dir) == []


async def test_endpoint_mode_talks_to_a_runpod_base_url_with_the_api_key(
    server: Server, out_dir: Path, cli_env: dict[str, str]
) -> None:
    env = {
        **cli_env,
        "RUNPOD_ENDPOINT_BASE_URL": f"{server.url}/v2",
        "RUNPOD_API_KEY": TOKEN,
    }
    run = await run_cli(
        [
            *("generate", "ti2v", IMAGE, *SMALL, "--frames", "9", "--seed", "8"),
            *("--endpoint", "wan-worker", "--poll-interval", "0.05", "-o", str(out_dir)),
        ],
        env=env,
    )

    assert run.status == 0, run.stderr
    assert probe_video(out_dir / "ti2v-8.mp4").frames == 9

    without_key = {k: v for k, v in env.items() if k != "RUNPOD_API_KEY"}
    refused = await run_cli(["generate", "t2v", "--endpoint", "abc"], env=without_key)
    assert refused.status == 2
    assert "RUNPOD_API_KEY" in refused.stderr
