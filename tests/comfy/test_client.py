"""Contract tests of the ComfyUI client: each runs against the double and, given COMFYUI_URL,
against a real ComfyUI, with graphs that need no model weights."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from wan_worker.comfy import ComfyClient, Progress
from wan_worker.errors import (
    Cancelled,
    ExecutionFailed,
    MissingModels,
    MissingNodes,
    Timeout,
    ValidationFailed,
)
from wan_worker.testing.validation_cases import wan_i2v_graph
from wan_worker.workflows.graph import ApiGraph

from .conftest import Server, audio_graph, both_graph, video_graph


def _slow(server: Server, graph_frames: int = 8) -> ApiGraph:
    """A graph that runs for seconds: the double is slowed down, a real server gets more work."""
    if server.double is not None:
        server.double.faults.step_delay = 20.0
        return video_graph(graph_frames, prefix="slow")
    graph = video_graph(4000, prefix="slow")
    graph["scale"]["inputs"].update(width=1280, height=720, upscale_method="bicubic")
    return graph


class Watcher:
    """A progress callback that records every update and notes when execution began."""

    def __init__(self) -> None:
        self.seen: list[Progress] = []
        self.started = asyncio.Event()

    def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)
        if progress.stage != "queued":
            self.started.set()


async def _queue_is_empty(comfy: ComfyClient) -> bool:
    state = await comfy.queue_state()
    return not state.running and not state.pending


async def test_wait_ready_reports_the_servers_versions_and_devices(server: Server) -> None:
    async with server.client() as comfy:
        info = await comfy.wait_ready(10)
    assert info.comfyui_version
    assert info.python_version
    assert info.devices
    assert info.devices[0].type


async def test_a_weight_free_graph_runs_and_every_output_is_fetched(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    async with server.client() as comfy:
        result = await comfy.run_prompt(both_graph(), output_dir=out, uploads=inputs)
    kinds = {o.kind: o for o in result.outputs}
    assert set(kinds) == {"video", "audio"}
    assert kinds["video"].mime_type == "video/mp4"
    assert kinds["audio"].mime_type == "audio/flac"
    for output in result.outputs:
        data = output.path.read_bytes()
        assert output.path.parent == out
        assert output.size == len(data) > 0
        assert output.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == sorted(o.path.name for o in result.outputs)


async def test_outputs_are_the_files_comfyui_wrote(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    async with server.client() as comfy:
        result = await comfy.run_prompt(
            audio_graph(), output_dir=tmp_path / "out", uploads={"tone.wav": inputs["tone.wav"]}
        )
    (audio,) = result.outputs
    assert (audio.node_id, audio.source.subfolder, audio.source.type) == (
        "save_audio",
        f"wan-worker/{result.job_id}/audio",
        "output",
    )
    if server.output_dir is not None:
        written = server.output_dir / audio.source.subfolder / audio.filename
        assert written.read_bytes() == audio.path.read_bytes()


async def test_the_same_graph_twice_saves_a_fresh_file_each_time(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """ComfyUI caches an identical graph; the per-job output prefix makes its save node run."""
    async with server.client() as comfy:
        results = []
        for _ in range(2):
            result = await comfy.run_prompt(
                audio_graph(), output_dir=tmp_path / "out", uploads={"tone.wav": inputs["tone.wav"]}
            )
            results.append(result.outputs[0].sha256)
            await comfy.cleanup(result)
    assert results[0] == results[1]


async def test_run_result_records_the_prompt_and_the_time_of_each_stage(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    async with server.client() as comfy:
        result = await comfy.run_prompt(
            video_graph(), output_dir=tmp_path, uploads={"ref.png": inputs["ref.png"]}, job_id="j1"
        )
    assert result.job_id == "j1"
    assert len(result.prompt_id) == 36
    assert result.prompt_id == result.prompt_id.lower()
    timings = result.timings
    stages = (timings.upload_s, timings.queue_wait_s, timings.execution_s, timings.download_s)
    assert all(t >= 0 for t in stages)
    assert timings.total_s >= timings.execution_s


async def test_uploads_go_to_a_per_job_subfolder_and_the_graph_points_at_them(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    async with server.client() as comfy:
        result = await comfy.run_prompt(
            both_graph(), output_dir=tmp_path / "out", uploads=inputs, job_id="job-42"
        )
    assert result.uploads == {
        "ref.png": "wan-worker/job-42/ref.png",
        "tone.wav": "wan-worker/job-42/tone.wav",
    }
    if server.input_dir is not None:
        folder = server.input_dir / "wan-worker" / "job-42"
        assert sorted(p.name for p in folder.iterdir()) == ["ref.png", "tone.wav"]
        assert (folder / "ref.png").read_bytes() == inputs["ref.png"].read_bytes()


async def test_progress_moves_forward_through_stages_and_ends_at_100(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    seen: list[Progress] = []
    async with server.client() as comfy:
        result = await comfy.run_prompt(
            both_graph(), output_dir=tmp_path, uploads=inputs, on_progress=seen.append
        )
    assert {p.prompt_id for p in seen} == {result.prompt_id}
    assert seen[0].stage == "queued"
    assert seen[-1].stage == "done"
    assert seen[-1].percent == 100.0
    assert [p.percent for p in seen] == sorted(p.percent for p in seen)
    assert {"loading", "saving"} <= {p.stage for p in seen}


async def test_an_async_progress_callback_is_awaited(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    seen: list[str] = []

    async def record(progress: Progress) -> None:
        await asyncio.sleep(0)
        seen.append(progress.stage)

    async with server.client() as comfy:
        await comfy.run_prompt(
            audio_graph(),
            output_dir=tmp_path,
            uploads={"tone.wav": inputs["tone.wav"]},
            on_progress=record,
        )
    assert seen[-1] == "done"


async def test_a_failing_progress_callback_does_not_fail_the_job(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    def broken(progress: Progress) -> None:
        raise RuntimeError("the progress sink is down")

    async with server.client() as comfy:
        result = await comfy.run_prompt(
            audio_graph(),
            output_dir=tmp_path,
            uploads={"tone.wav": inputs["tone.wav"]},
            on_progress=broken,
        )
    assert result.outputs


async def test_an_unknown_node_type_is_missing_nodes_and_nothing_is_queued(
    server: Server, tmp_path: Path
) -> None:
    graph = video_graph()
    graph["repeat"]["class_type"] = "NoSuchNodeForTests"
    graph["video"]["class_type"] = "VHS_NoSuchNodeForTests"
    async with server.client() as comfy:
        with pytest.raises(MissingNodes) as caught:
            await comfy.run_prompt(graph, output_dir=tmp_path)
    error = caught.value
    assert error.details["class_types"] == ["NoSuchNodeForTests", "VHS_NoSuchNodeForTests"]
    assert "ComfyUI-VideoHelperSuite" in str(error)
    if server.double is not None:
        assert server.double.received_prompts == []


async def test_missing_model_files_name_their_folder_and_the_callers_download_hint(
    server: Server, tmp_path: Path
) -> None:
    graph = wan_i2v_graph()
    for node in graph.values():
        if node["class_type"] == "UNETLoader":
            node["inputs"]["unet_name"] = f"no_such_model_{node['inputs']['unet_name']}"
    async with server.client() as comfy:
        with pytest.raises(MissingModels) as caught:
            await comfy.preflight(
                graph,
                uploaded=["ref.png"],
                model_source=lambda name: f"https://models.example/{name}",
            )
    models = {m["file"]: m for m in caught.value.details["models"]}
    unet = [m for name, m in models.items() if name.startswith("no_such_model_")]
    assert len(unet) == 2
    assert all(m["folder"] == "diffusion_models" for m in unet)
    assert all(m["download"] == f"https://models.example/{m['file']}" for m in unet)


@pytest.mark.parametrize("preflight", [True, False], ids=["preflight", "server"])
async def test_values_out_of_bounds_fail_with_one_problem_in_plain_words_each(
    server: Server, inputs: dict[str, Path], tmp_path: Path, preflight: bool
) -> None:
    graph = video_graph()
    graph["repeat"]["inputs"]["amount"] = 0
    graph["video"]["inputs"]["fps"] = 500.0
    async with server.client() as comfy:
        with pytest.raises(ValidationFailed) as caught:
            await comfy.run_prompt(
                graph,
                output_dir=tmp_path,
                uploads={"ref.png": inputs["ref.png"]},
                preflight=preflight,
            )
        assert await _queue_is_empty(comfy)
    problems = {(p.node_id, p.class_type, p.field): p.message for p in caught.value.problems}
    assert problems == {
        ("repeat", "RepeatImageBatch", "amount"): (
            "node repeat (RepeatImageBatch): input 'amount' is 0, below the minimum 1"
        ),
        ("video", "CreateVideo", "fps"): (
            "node video (CreateVideo): input 'fps' is 500.0, above the maximum 120.0"
        ),
    }


async def test_a_link_of_the_wrong_type_is_a_validation_failure(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = both_graph()
    graph["video"]["inputs"]["audio"] = ["repeat", 0]
    async with server.client() as comfy:
        with pytest.raises(ValidationFailed) as caught:
            await comfy.run_prompt(graph, output_dir=tmp_path, uploads=inputs)
    (problem,) = caught.value.problems
    assert problem.field == "audio"
    assert "linked to an output of type IMAGE, but needs AUDIO" in problem.message


async def test_a_partially_accepted_graph_fails_and_leaves_nothing_queued(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = both_graph()
    graph["audio"]["inputs"]["audio"] = "not_uploaded_anywhere.wav"
    async with server.client() as comfy:
        with pytest.raises(ValidationFailed) as caught:
            await comfy.run_prompt(
                graph,
                output_dir=tmp_path / "out",
                uploads={"ref.png": inputs["ref.png"]},
                preflight=False,
            )
        assert await _queue_is_empty(comfy)
    (problem,) = caught.value.problems
    assert (problem.node_id, problem.field) == ("audio", "audio")
    assert "not_uploaded_anywhere.wav" in problem.message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


async def test_an_execution_error_carries_node_type_and_message(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = video_graph()
    graph["save_video"]["inputs"]["format"] = "gif"
    async with server.client() as comfy:
        with pytest.raises(ExecutionFailed) as caught:
            await comfy.run_prompt(
                graph, output_dir=tmp_path, uploads={"ref.png": inputs["ref.png"]}
            )
    details = caught.value.details
    assert (details["node_id"], details["node_type"]) == ("save_video", "SaveVideo")
    assert details["exception_type"] == "TypeError"
    assert "format" in details["exception_message"]
    assert "node save_video (SaveVideo) failed: TypeError" in str(caught.value)


async def test_a_deadline_interrupts_the_prompt_and_frees_the_queue(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = _slow(server)
    async with server.client() as comfy:
        with pytest.raises(Timeout) as caught:
            await comfy.run_prompt(
                graph, output_dir=tmp_path, uploads={"ref.png": inputs["ref.png"]}, timeout_s=1.0
            )
        assert await _queue_is_empty(comfy)
    assert "1 s deadline" in str(caught.value)
    if server.double is not None:
        assert [i["prompt_id"] for i in server.double.interrupts] == [
            caught.value.details["prompt_id"]
        ]


async def test_an_explicit_cancel_interrupts_the_prompt_and_raises_cancelled(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = _slow(server)
    watcher = Watcher()
    async with server.client() as comfy:
        job = asyncio.create_task(
            comfy.run_prompt(
                graph,
                output_dir=tmp_path,
                uploads={"ref.png": inputs["ref.png"]},
                job_id="to-cancel",
                on_progress=watcher,
            )
        )
        await watcher.started.wait()
        assert comfy.cancel("to-cancel")
        with pytest.raises(Cancelled):
            await job
        assert await _queue_is_empty(comfy)
        assert not comfy.cancel("to-cancel")


async def test_cancelling_the_calling_task_interrupts_the_prompt(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = _slow(server)
    watcher = Watcher()
    async with server.client() as comfy:
        job = asyncio.create_task(
            comfy.run_prompt(
                graph,
                output_dir=tmp_path,
                uploads={"ref.png": inputs["ref.png"]},
                on_progress=watcher,
            )
        )
        await watcher.started.wait()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert await _queue_is_empty(comfy)


async def test_two_concurrent_prompts_on_one_client_are_told_apart(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    seen: dict[str, list[Progress]] = {"a": [], "b": []}
    async with server.client() as comfy:
        a, b = await asyncio.gather(
            comfy.run_prompt(
                video_graph(6, prefix="first"),
                output_dir=tmp_path / "a",
                uploads={"ref.png": inputs["ref.png"]},
                on_progress=seen["a"].append,
            ),
            comfy.run_prompt(
                audio_graph(prefix="second"),
                output_dir=tmp_path / "b",
                uploads={"tone.wav": inputs["tone.wav"]},
                on_progress=seen["b"].append,
            ),
        )
    assert [o.filename.split("_")[0] for o in a.outputs] == ["first"]
    assert [o.filename.split("_")[0] for o in b.outputs] == ["second"]
    assert {p.prompt_id for p in seen["a"]} == {a.prompt_id}
    assert {p.prompt_id for p in seen["b"]} == {b.prompt_id}
    assert seen["a"][-1].stage == seen["b"][-1].stage == "done"


async def test_cleanup_removes_local_outputs_and_the_jobs_server_files(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    async with server.client() as comfy:
        result = await comfy.run_prompt(
            both_graph(), output_dir=tmp_path / "out", uploads=inputs, job_id="tidy"
        )
        await comfy.cleanup(result)
    assert not any(o.path.exists() for o in result.outputs)
    if server.input_dir is not None:
        assert not (server.input_dir / "wan-worker" / "tidy").exists()
    if server.output_dir is not None:
        for output in result.outputs:
            assert not (server.output_dir / output.source.server_path()).exists()


async def test_keep_files_retains_everything_for_debugging(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    async with server.client(keep_files=True) as comfy:
        result = await comfy.run_prompt(
            audio_graph(),
            output_dir=tmp_path,
            uploads={"tone.wav": inputs["tone.wav"]},
            job_id="kept",
        )
        await comfy.cleanup(result)
    assert all(o.path.exists() for o in result.outputs)
    if server.input_dir is not None:
        assert (server.input_dir / "wan-worker" / "kept" / "tone.wav").exists()


async def test_a_failed_job_removes_its_uploads(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    graph = video_graph()
    graph["save_video"]["inputs"]["format"] = "gif"
    async with server.client() as comfy:
        with pytest.raises(ExecutionFailed):
            await comfy.run_prompt(
                graph, output_dir=tmp_path, uploads={"ref.png": inputs["ref.png"]}, job_id="bad"
            )
    if server.input_dir is not None:
        assert not (server.input_dir / "wan-worker" / "bad").exists()


async def test_free_and_the_queue_answer(server: Server) -> None:
    async with server.client() as comfy:
        await comfy.free()
        assert await _queue_is_empty(comfy)
    if server.double is not None:
        assert server.double.frees == [{"unload_models": True, "free_memory": True}]


async def test_object_info_is_fetched_once_and_cached(server: Server) -> None:
    async with server.client() as comfy:
        first = await comfy.schemas()
        second = await comfy.schemas()
        refreshed = await comfy.schemas(refresh=True)
    assert first is second
    assert refreshed is not first
    assert "SaveVideo" in first


async def test_a_duplicate_job_id_on_one_client_is_refused(
    server: Server, inputs: dict[str, Path], tmp_path: Path
) -> None:
    from wan_worker.errors import InvalidInput

    graph = _slow(server)
    watcher = Watcher()
    async with server.client() as comfy:
        first = asyncio.create_task(
            comfy.run_prompt(
                graph,
                output_dir=tmp_path / "1",
                uploads={"ref.png": inputs["ref.png"]},
                job_id="same",
                on_progress=watcher,
            )
        )
        await watcher.started.wait()
        with pytest.raises(InvalidInput):
            await comfy.run_prompt(graph, output_dir=tmp_path / "2", job_id="same")
        comfy.cancel("same")
        with pytest.raises(Cancelled):
            await first
