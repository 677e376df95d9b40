"""The client under injected faults: dropped websockets, HTTP 500s, slow downloads, restarts."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from wan_worker.comfy import ComfyClient, Progress
from wan_worker.comfy.events import Backoff
from wan_worker.errors import Cancelled, ComfyUIUnavailable, ExecutionFailed, Timeout
from wan_worker.testing.comfyui_double import ComfyUIDouble

from .conftest import FAST_RECONNECT, FAST_RETRY, audio_graph, both_graph, video_graph


def _client(double: ComfyUIDouble, **kwargs: object) -> ComfyClient:
    options: dict[str, object] = {
        "input_dir": double.input_dir,
        "output_dir": double.output_dir,
        "retry": FAST_RETRY,
        "reconnect": FAST_RECONNECT,
        "reconnect_timeout_s": 10.0,
    }
    options.update(kwargs)
    return ComfyClient(double.url, **options)  # type: ignore[arg-type]


class Watcher:
    """A progress callback that notes when execution began."""

    def __init__(self) -> None:
        self.seen: list[Progress] = []
        self.queued = asyncio.Event()
        self.started = asyncio.Event()

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)
        self.queued.set()
        if progress.stage != "queued":
            self.started.set()


async def test_a_job_completes_after_a_websocket_drop(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.drop_ws_after_events = 4
    double.faults.step_delay = 0.5
    watcher = Watcher()
    async with _client(double) as comfy:
        result = await comfy.run_prompt(
            both_graph(), output_dir=tmp_path, uploads=inputs, on_progress=watcher
        )
    assert {o.kind for o in result.outputs} == {"video", "audio"}
    assert watcher.seen[-1].percent == 100.0
    assert double.faults.drop_ws_after_events is None


async def test_a_completion_during_the_drop_is_read_from_the_history(
    double: ComfyUIDouble,
    inputs: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wan_worker.comfy")
    double.faults.drop_ws_after_events = 3
    slow_reconnect = Backoff(first_s=1.0, max_s=1.0)
    async with _client(double, reconnect=slow_reconnect) as comfy:
        result = await comfy.run_prompt(
            audio_graph(), output_dir=tmp_path, uploads={"tone.wav": inputs["tone.wav"]}
        )
    assert [o.kind for o in result.outputs] == ["audio"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("dropped" in m for m in messages)
    assert any("reconnected" in m for m in messages)


async def test_http_500s_on_reads_are_retried(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.http_500 = {
        "/system_stats": 1,
        "/object_info": 1,
        "/upload/image": 1,
        "/history": 2,
        "/view": 1,
    }
    async with _client(double) as comfy:
        await comfy.wait_ready(5)
        result = await comfy.run_prompt(
            audio_graph(), output_dir=tmp_path, uploads={"tone.wav": inputs["tone.wav"]}
        )
    assert [o.kind for o in result.outputs] == ["audio"]
    assert all(count == 0 for count in double.faults.http_500.values())


async def test_a_500_on_post_prompt_is_retried_without_queueing_twice(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.http_500 = {"/prompt": 1}
    async with _client(double) as comfy:
        result = await comfy.run_prompt(
            audio_graph(), output_dir=tmp_path, uploads={"tone.wav": inputs["tone.wav"]}
        )
    assert [p["prompt_id"] for p in double.received_prompts] == [result.prompt_id]


async def test_a_server_that_keeps_answering_500_is_unavailable_with_a_clear_message(
    double: ComfyUIDouble, tmp_path: Path
) -> None:
    double.faults.http_500 = {"/prompt": 100}
    async with _client(double) as comfy:
        with pytest.raises(ComfyUIUnavailable) as caught:
            await comfy.run_prompt(audio_graph(), output_dir=tmp_path, preflight=False)
    message = str(caught.value)
    assert double.url in message
    assert "POST /prompt" in message
    assert "HTTP 500" in message


async def test_an_execution_error_names_node_type_exception_and_message(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.fail_at_node = "repeat"
    double.faults.fail_exception_type = "torch.OutOfMemoryError"
    double.faults.fail_message = "CUDA out of memory"
    async with _client(double) as comfy:
        with pytest.raises(ExecutionFailed) as caught:
            await comfy.run_prompt(
                video_graph(), output_dir=tmp_path, uploads={"ref.png": inputs["ref.png"]}
            )
    error = caught.value
    assert error.details["node_id"] == "repeat"
    assert error.details["node_type"] == "RepeatImageBatch"
    assert error.details["exception_type"] == "torch.OutOfMemoryError"
    assert error.details["exception_message"] == "CUDA out of memory"
    assert error.problems[0].node_id == "repeat"
    assert "traceback" not in error.details


async def test_a_slow_download_past_the_deadline_is_a_timeout_that_leaves_no_partial_file(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.view_delay = 30.0
    out = tmp_path / "out"
    async with _client(double) as comfy:
        with pytest.raises(Timeout) as caught:
            await comfy.run_prompt(
                audio_graph(),
                output_dir=out,
                uploads={"tone.wav": inputs["tone.wav"]},
                timeout_s=1.5,
            )
    assert "deadline" in str(caught.value)
    assert list(out.iterdir()) == []


async def test_a_server_restarted_mid_job_is_reported_as_losing_the_prompt(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.step_delay = 20.0
    watcher = Watcher()
    async with _client(double) as comfy:
        job = asyncio.create_task(
            comfy.run_prompt(
                video_graph(),
                output_dir=tmp_path,
                uploads={"ref.png": inputs["ref.png"]},
                on_progress=watcher,
            )
        )
        await watcher.started.wait()
        await double.restart()
        with pytest.raises(ComfyUIUnavailable) as caught:
            await job
    assert "lost prompt" in str(caught.value)
    assert "restarted" in str(caught.value)


async def test_a_server_that_stays_down_is_reported_after_the_reconnect_limit(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.step_delay = 20.0
    watcher = Watcher()
    async with _client(double, reconnect_timeout_s=0.5) as comfy:
        job = asyncio.create_task(
            comfy.run_prompt(
                video_graph(),
                output_dir=tmp_path,
                uploads={"ref.png": inputs["ref.png"]},
                on_progress=watcher,
            )
        )
        await watcher.started.wait()
        await double.stop()
        with pytest.raises(ComfyUIUnavailable) as caught:
            await job
    assert "lost the connection" in str(caught.value)
    assert double.url in str(caught.value)


async def test_a_prompt_deleted_behind_the_clients_back_is_found_by_the_stall_check(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.step_delay = 20.0
    blocker, waiter = Watcher(), Watcher()
    async with _client(double) as comfy:
        first = asyncio.create_task(
            comfy.run_prompt(
                video_graph(),
                output_dir=tmp_path / "1",
                uploads={"ref.png": inputs["ref.png"]},
                on_progress=blocker,
                job_id="blocker",
            )
        )
        await blocker.started.wait()
        second = asyncio.create_task(
            comfy.run_prompt(
                audio_graph(),
                output_dir=tmp_path / "2",
                uploads={"tone.wav": inputs["tone.wav"]},
                on_progress=waiter,
                stall_timeout_s=0.3,
            )
        )
        await waiter.queued.wait()
        await comfy.http.post_ok("/queue", {"clear": True})
        with pytest.raises(ComfyUIUnavailable) as caught:
            await second
        assert "lost prompt" in str(caught.value)
        comfy.cancel("blocker")
        with pytest.raises(Cancelled):
            await first


async def test_a_prompt_waiting_behind_another_is_not_a_stall(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.step_delay = 3.0
    async with _client(double) as comfy:
        first, second = await asyncio.gather(
            comfy.run_prompt(
                video_graph(), output_dir=tmp_path / "1", uploads={"ref.png": inputs["ref.png"]}
            ),
            comfy.run_prompt(
                audio_graph(),
                output_dir=tmp_path / "2",
                uploads={"tone.wav": inputs["tone.wav"]},
                stall_timeout_s=0.2,
            ),
        )
    assert first.outputs
    assert second.outputs


async def test_wait_ready_names_the_url_and_the_last_error_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with ComfyClient(url, retry=FAST_RETRY) as comfy:
        with pytest.raises(ComfyUIUnavailable) as caught:
            await comfy.wait_ready(0.3)
    assert url in str(caught.value)
    assert caught.value.details["last_error"]


async def test_wait_ready_waits_for_a_server_that_starts_late(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late = ComfyUIDouble(root=tmp_path / "late", port=port)

    async def start_later() -> None:
        await asyncio.sleep(0.3)
        await late.start()

    starter = asyncio.create_task(start_later())
    try:
        async with ComfyClient(late.url, retry=FAST_RETRY) as comfy:
            info = await comfy.wait_ready(10)
        assert info.comfyui_version == "0.33.0"
    finally:
        await starter
        await late.stop()
