"""The ComfyUI supervisor against a fake ComfyUI process: start, crash, restart, give up, stop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.managed.conftest import WAIT_S, eventually, process_exists
from wan_worker.errors import ComfyUIUnavailable, InvalidInput
from wan_worker.managed import (
    ComfyUIProcess,
    ManagedComfyUISettings,
    ProcessState,
    comfyui_environment,
)
from wan_worker.testing.fake_comfyui import set_control, starts


@dataclasses.dataclass
class Crashes:
    """What the crash callback heard."""

    reasons: list[str] = dataclasses.field(default_factory=list)
    heard: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.heard.set()


@pytest.fixture
def crashes() -> Crashes:
    return Crashes()


@pytest.fixture
async def comfyui(
    managed: ManagedComfyUISettings, crashes: Crashes
) -> AsyncIterator[ComfyUIProcess]:
    """A supervised fake ComfyUI, not yet started; stopped after the test."""
    process = ComfyUIProcess(managed, on_crash=crashes, env=comfyui_environment(os.environ))
    yield process
    await process.stop()


async def system_stats_status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/system_stats") as answer:
        return answer.status


async def test_comfyui_starts_on_loopback_and_is_ready_once_system_stats_answers(
    comfyui: ComfyUIProcess, managed: ManagedComfyUISettings, checkout: Path
) -> None:
    assert not comfyui.ready
    await comfyui.start()

    assert comfyui.ready
    assert comfyui.state is ProcessState.READY
    assert comfyui.url == f"http://127.0.0.1:{managed.port}"
    assert await system_stats_status(comfyui.url) == 200
    assert await comfyui.responsive()
    [run] = starts(checkout)
    assert run["pid"] == comfyui.pid
    assert run["argv"] == ["--listen", "127.0.0.1", "--port", str(managed.port)]


async def test_the_command_line_carries_model_paths_folders_and_extra_flags(
    managed: ManagedComfyUISettings, checkout: Path, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        managed,
        input_dir=tmp_path / "in",
        output_dir=tmp_path / "out",
        extra_args=("--lowvram", "--preview-method", "none"),
    )
    process = ComfyUIProcess(settings, extra_model_paths=tmp_path / "extra_model_paths.yaml")

    assert process.command() == [
        settings.python,
        str(checkout / "main.py"),
        "--listen",
        "127.0.0.1",
        "--port",
        str(settings.port),
        "--extra-model-paths-config",
        str(tmp_path / "extra_model_paths.yaml"),
        "--input-directory",
        str(tmp_path / "in"),
        "--output-directory",
        str(tmp_path / "out"),
        "--lowvram",
        "--preview-method",
        "none",
    ]
    assert process.input_dir == tmp_path / "in"
    assert process.output_dir == tmp_path / "out"


async def test_without_folder_settings_comfyui_uses_the_folders_of_its_checkout(
    managed: ManagedComfyUISettings, checkout: Path
) -> None:
    process = ComfyUIProcess(managed)
    assert process.input_dir == checkout / "input"
    assert process.output_dir == checkout / "output"
    assert "--input-directory" not in process.command()


async def test_comfyui_log_lines_reach_our_log_with_a_prefix(
    comfyui: ComfyUIProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wan_worker.comfyui")
    await comfyui.start()

    def forwarded() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "wan_worker.comfyui"]

    await eventually(lambda: "[comfyui] Starting server" in forwarded())
    assert f"[comfyui] To see the GUI go to: {comfyui.url}" in forwarded()


async def test_a_killed_comfyui_is_reported_restarted_and_ready_again(
    comfyui: ComfyUIProcess, crashes: Crashes, checkout: Path
) -> None:
    await comfyui.start()
    first = comfyui.pid
    assert first is not None

    os.kill(first, signal.SIGKILL)
    await asyncio.wait_for(crashes.heard.wait(), WAIT_S)

    [reason] = crashes.reasons
    assert f"ComfyUI (pid {first}) was killed by signal SIGKILL" in reason
    assert "its last log lines:" in reason and "Starting server" in reason
    await comfyui.wait_ready(WAIT_S)
    assert comfyui.pid not in (None, first)
    assert comfyui.crashes == 1
    assert comfyui.last_error == reason
    assert [run["pid"] for run in starts(checkout)] == [first, comfyui.pid]
    assert not process_exists(first)
    assert await system_stats_status(comfyui.url) == 200


async def test_readiness_is_false_while_comfyui_is_down(
    comfyui: ComfyUIProcess, crashes: Crashes
) -> None:
    await comfyui.start()
    comfyui.settings = dataclasses.replace(comfyui.settings, backoff_initial_s=WAIT_S)
    assert comfyui.pid is not None

    os.kill(comfyui.pid, signal.SIGKILL)
    await asyncio.wait_for(crashes.heard.wait(), WAIT_S)

    assert comfyui.state is ProcessState.RESTARTING
    assert not comfyui.ready
    assert not await comfyui.responsive()


async def test_a_comfyui_that_always_dies_is_given_up_after_the_allowed_restarts(
    comfyui: ComfyUIProcess, crashes: Crashes, checkout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_control(checkout, exit_at_start=3)
    comfyui.settings = dataclasses.replace(comfyui.settings, max_restarts=1)
    await comfyui.start(wait=False)

    with pytest.raises(ComfyUIUnavailable) as caught:
        await comfyui.wait_ready(WAIT_S)

    assert comfyui.state is ProcessState.FAILED
    assert not comfyui.ready
    assert len(crashes.reasons) == 2 == len(starts(checkout))
    assert all("exited with code 3" in reason for reason in crashes.reasons)
    assert "exits with code 3 as its control file says" in crashes.reasons[-1]
    assert "is failed" in caught.value.message and "exited with code 3" in caught.value.message
    gave_up = [r for r in caplog.records if "not restarting it again" in r.getMessage()]
    assert [r.levelno for r in gave_up] == [logging.ERROR]
    assert "COMFYUI_MAX_RESTARTS=1" in gave_up[0].getMessage()


async def test_start_raises_when_the_first_start_never_succeeds(
    managed: ManagedComfyUISettings, checkout: Path
) -> None:
    set_control(checkout, exit_at_start=1)
    process = ComfyUIProcess(dataclasses.replace(managed, max_restarts=0))

    with pytest.raises(ComfyUIUnavailable, match="exited with code 1"):
        await process.start()

    assert process.state is ProcessState.STOPPED
    assert len(starts(checkout)) == 1


async def test_a_python_that_cannot_be_run_is_reported_as_the_reason(
    managed: ManagedComfyUISettings, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-venv" / "bin" / "python")
    process = ComfyUIProcess(dataclasses.replace(managed, python=missing, max_restarts=0))

    with pytest.raises(ComfyUIUnavailable, match="could not be started with") as caught:
        await process.start()

    assert missing in caught.value.message
    assert process.starts == 0


async def test_a_comfyui_that_never_answers_is_ended_after_the_ready_timeout(
    comfyui: ComfyUIProcess, crashes: Crashes, checkout: Path
) -> None:
    set_control(checkout, never_listen=True)
    comfyui.settings = dataclasses.replace(comfyui.settings, ready_timeout_s=2, max_restarts=0)
    await comfyui.start(wait=False)
    await eventually(lambda: comfyui.pid is not None)
    pid = comfyui.pid
    assert pid is not None

    with pytest.raises(ComfyUIUnavailable):
        await comfyui.wait_ready(WAIT_S)

    [reason] = crashes.reasons
    assert "did not answer GET /system_stats within 2 s of starting" in reason
    assert not process_exists(pid)


async def test_stop_ends_comfyui_and_reaps_it(comfyui: ComfyUIProcess, crashes: Crashes) -> None:
    await comfyui.start()
    pid = comfyui.pid
    assert pid is not None

    await comfyui.stop()

    assert not process_exists(pid)
    assert comfyui.state is ProcessState.STOPPED
    assert comfyui.pid is None
    assert crashes.reasons == []


async def test_stop_kills_a_comfyui_that_ignores_sigterm_after_the_grace_period(
    comfyui: ComfyUIProcess, checkout: Path, caplog: pytest.LogCaptureFixture
) -> None:
    set_control(checkout, ignore_sigterm=True)
    comfyui.settings = dataclasses.replace(comfyui.settings, stop_grace_s=0.2)
    await comfyui.start()
    pid = comfyui.pid
    assert pid is not None

    await comfyui.stop()

    assert not process_exists(pid)
    assert any("did not exit within 0.2 s of SIGTERM" in r.getMessage() for r in caplog.records)


async def test_stop_during_the_pause_before_a_restart_starts_nothing_more(
    comfyui: ComfyUIProcess, crashes: Crashes, checkout: Path
) -> None:
    set_control(checkout, exit_at_start=2)
    comfyui.settings = dataclasses.replace(comfyui.settings, backoff_initial_s=WAIT_S * 10)
    await comfyui.start(wait=False)
    await asyncio.wait_for(crashes.heard.wait(), WAIT_S)

    await comfyui.stop()

    assert comfyui.state is ProcessState.STOPPED
    assert len(starts(checkout)) == 1


async def test_a_port_in_use_is_refused_before_anything_is_started(
    comfyui: ComfyUIProcess, managed: ManagedComfyUISettings, checkout: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", managed.port))
        squatter.listen()
        with pytest.raises(InvalidInput, match=f"port {managed.port} on 127.0.0.1 is already"):
            await comfyui.start()
    assert starts(checkout) == []


async def test_a_folder_without_main_py_is_refused(
    managed: ManagedComfyUISettings, tmp_path: Path
) -> None:
    process = ComfyUIProcess(dataclasses.replace(managed, comfyui_path=tmp_path / "empty"))
    with pytest.raises(InvalidInput, match=r"holds no main\.py") as caught:
        await process.start()
    assert caught.value.problems[0].field == "COMFYUI_PATH"


def test_no_checkout_is_refused_with_the_variable_to_set() -> None:
    with pytest.raises(InvalidInput, match="Set COMFYUI_PATH"):
        ComfyUIProcess(ManagedComfyUISettings())


def test_comfyui_gets_our_environment_without_the_worker_secrets() -> None:
    child = comfyui_environment(
        {"PATH": "/usr/bin", "API_TOKEN": "t", "WEBHOOK_SECRET": "w", "HF_TOKEN": "h"}
    )
    assert child == {"PATH": "/usr/bin", "HF_TOKEN": "h", "PYTHONUNBUFFERED": "1"}
