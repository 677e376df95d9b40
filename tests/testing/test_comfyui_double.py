"""The ComfyUI double answers like the recorded server, writes real media and injects faults."""

from __future__ import annotations

import asyncio
import io
import json
import math
import struct
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from PIL import Image

from wan_worker.testing import ComfyUIDouble
from wan_worker.testing.validation_cases import (
    VALIDATION_CASES,
    WAN_I2V_MODELS,
    case_graph,
    wan_i2v_graph,
)

TRACES = Path(__file__).resolve().parent / "traces"


def _trace(name: str) -> Any:
    return json.loads((TRACES / f"{name}.json").read_text())


def _png(width: int = 96, height: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _wav(seconds: float = 3.0, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (int(8000 * math.sin(i / 8)) for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buf.getvalue()


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[ComfyUIDouble]:
    async with ComfyUIDouble(root=tmp_path, models=WAN_I2V_MODELS) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _upload(http: aiohttp.ClientSession, url: str, name: str, data: bytes) -> Any:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=name)
    form.add_field("overwrite", "true")
    async with http.post(f"{url}/upload/image", data=form) as response:
        return response.status, await response.json()


async def _inputs(http: aiohttp.ClientSession, url: str) -> None:
    await _upload(http, url, "ref.png", _png())
    await _upload(http, url, "tone.wav", _wav())


def _small_no_weights_graph() -> dict[str, Any]:
    graph: dict[str, Any] = _trace("graph_no_weights")
    graph["2"]["inputs"].update(width=64, height=48)
    return graph


def _small_wan_graph(length: int = 9) -> dict[str, Any]:
    graph = wan_i2v_graph()
    graph["8"]["inputs"].update(width=64, height=64, length=length)
    for sampler in ("11", "12"):
        graph[sampler]["inputs"]["steps"] = 4
    graph["11"]["inputs"]["end_at_step"] = 2
    graph["12"]["inputs"]["start_at_step"] = 2
    return graph


class Client:
    """A websocket plus HTTP session bound to one client id."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url, self.id = http, url, str(uuid.uuid4())
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> dict[str, Any]:
        self.ws = await self.http.ws_connect(f"{self.url}/ws?clientId={self.id}")
        first: dict[str, Any] = await self.ws.receive_json()
        return first

    async def post(self, graph: dict[str, Any], **extra: Any) -> tuple[int, Any]:
        body = {"prompt": graph, "client_id": self.id, **extra}
        async with self.http.post(f"{self.url}/prompt", json=body) as response:
            return response.status, await response.json()

    async def events_until_done(self, prompt_id: str) -> list[dict[str, Any]]:
        assert self.ws is not None
        events: list[dict[str, Any]] = []
        while True:
            event = await asyncio.wait_for(self.ws.receive_json(), 30)
            events.append(event)
            data = event["data"]
            done = data.get("node") is None and data.get("prompt_id") == prompt_id
            if event["type"] == "executing" and done:
                return events

    async def run(self, graph: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        status, body = await self.post(graph)
        assert status == 200, body
        return body["prompt_id"], await self.events_until_done(body["prompt_id"])

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.url}{path}") as response:
            return await response.json()


async def _client(http: aiohttp.ClientSession, double: ComfyUIDouble) -> Client:
    client = Client(http, double.url)
    await client.connect()
    return client


def _shape(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    shape: list[tuple[str, Any]] = []
    for event in events:
        data = event["data"]
        if event["type"] == "progress_state":
            nodes = data["nodes"]
            shape.append(("progress_state", {k: v["state"] for k, v in nodes.items()}))
        elif event["type"] in ("executing", "executed", "progress"):
            shape.append((event["type"], data.get("node")))
        else:
            shape.append((event["type"], sorted(data)))
    return shape


def _video(path: Path) -> tuple[int, int, int, float, bool]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        fps = float(stream.average_rate or 0)
        size = stream.codec_context.width, stream.codec_context.height
        return frames, size[0], size[1], fps, bool(container.streams.audio)


async def test_the_no_weights_run_follows_the_recorded_event_order(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    recorded = _trace("run_success_no_weights")
    client = Client(http, double.url)
    first = await client.connect()
    assert first == {
        "type": "status",
        "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client.id},
    }
    await _inputs(http, double.url)
    prompt_id, events = await client.run(_small_no_weights_graph())
    assert _shape(events) == _shape(recorded["ws"][1:])
    history = (await client.get(f"/history/{prompt_id}"))[prompt_id]
    recorded_history = next(iter(recorded["history"].values()))
    assert history["outputs"] == recorded_history["outputs"]
    assert history["meta"] == recorded_history["meta"]
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in recorded_history["status"]["messages"]
    ]
    assert history["prompt"][2]["5"]["inputs"]["fps"] == 16.0
    assert history["prompt"][3]["client_id"] == client.id


async def test_uploads_answer_like_the_recorded_server(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    recorded = _trace("run_success_no_weights")
    assert await _upload(http, double.url, "ref.png", _png()) == tuple(recorded["upload_png"])
    assert await _upload(http, double.url, "tone.wav", _wav()) == tuple(recorded["upload_wav"])
    form = aiohttp.FormData()
    form.add_field("image", _wav(), filename="tone.wav")
    async with http.post(f"{double.url}/upload/image", data=form) as response:
        assert [response.status, await response.json()] == recorded["upload_wav_again_no_overwrite"]
    info = await Client(http, double.url).get("/object_info/LoadAudio")
    assert (
        info["LoadAudio"]["input"]["required"]["audio"]
        == recorded["LoadAudio_options_after_upload"]
    )


async def test_an_upload_outside_the_input_folder_is_refused(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("image", b"x", filename="evil.png")
    form.add_field("subfolder", "../../escape")
    async with http.post(f"{double.url}/upload/image", data=form) as response:
        assert response.status == 400
    assert not (double.root.parent / "escape").exists()


@pytest.mark.parametrize("case", sorted(VALIDATION_CASES))
async def test_refusals_carry_the_recorded_400_body(
    case: str, double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _upload(http, double.url, "ref.png", _png())
    client = Client(http, double.url)
    status, body = await client.post(case_graph(case))
    recorded = _trace("prompt_validation_errors")[case]
    assert (status, body) == (recorded["status"], recorded["body"])


@pytest.mark.parametrize(
    ("case", "payload"),
    [
        ("invalid_json_body", b"{not json"),
        ("prompt_not_dict", json.dumps({"prompt": ["1", "2"]}).encode()),
        ("no_prompt_key", json.dumps({"client_id": "x"}).encode()),
    ],
)
async def test_malformed_bodies_answer_like_the_recorded_server(
    case: str, payload: bytes, double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    recorded = _trace("prompt_validation_errors")[case]
    async with http.post(f"{double.url}/prompt", data=payload) as response:
        assert response.status == recorded["status"]
        if response.status == 500:
            assert response.content_type == "text/plain"
            assert await response.text() == recorded["body"]
        else:
            assert await response.json() == recorded["body"]


async def test_a_prompt_id_must_be_a_lowercase_canonical_uuid(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    recorded = _trace("queue_and_interrupt")["post_b_with_custom_prompt_id"]
    client = Client(http, double.url)
    bad = str(uuid.uuid4()).upper()
    assert list(await client.post(_small_wan_graph(), prompt_id=bad)) == recorded
    good = str(uuid.uuid4())
    await _upload(http, double.url, "ref.png", _png())
    status, body = await client.post(_small_wan_graph(), prompt_id=good)
    assert (status, body["prompt_id"]) == (200, good)


async def test_partial_acceptance_runs_only_the_valid_outputs(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _upload(http, double.url, "ref.png", _png())
    client = await _client(http, double)
    status, body = await client.post(_small_no_weights_graph())
    assert status == 200
    assert body["node_errors"]["4"]["dependent_outputs"] == ["6", "7"]
    await client.events_until_done(body["prompt_id"])
    history = (await client.get(f"/history/{body['prompt_id']}"))[body["prompt_id"]]
    assert history["status"]["status_str"] == "success"
    assert list(history["outputs"]) == ["8"]


async def test_the_wan_graph_writes_an_mp4_of_the_requested_shape(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _upload(http, double.url, "ref.png", _png())
    client = await _client(http, double)
    prompt_id, events = await client.run(_small_wan_graph(length=9))
    progress = [
        (e["data"]["node"], e["data"]["value"], e["data"]["max"])
        for e in events
        if e["type"] == "progress"
    ]
    assert progress == [("11", 1, 2), ("11", 2, 2), ("12", 1, 2), ("12", 2, 2)]
    executing = [e["data"]["node"] for e in events if e["type"] == "executing"]
    assert executing[:-1] == [
        "4",
        "5",
        "3",
        "7",
        "6",
        "8",
        "1",
        "9",
        "11",
        "2",
        "10",
        "12",
        "13",
        "14",
        "15",
    ]
    history = (await client.get(f"/history/{prompt_id}"))[prompt_id]
    saved = history["outputs"]["15"]["images"][0]
    assert saved == {"filename": "wan22_i2v_00001_.mp4", "subfolder": "video", "type": "output"}
    path = double.output_dir / "video" / saved["filename"]
    assert _video(path) == (9, 64, 64, 16.0, False)


async def test_audio_is_muxed_and_cut_to_the_video_length(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    graph = _small_no_weights_graph()
    graph["3"]["inputs"]["amount"] = 16
    await client.run(graph)
    path = double.output_dir / "video" / "harness_00001_.mp4"
    frames, width, height, fps, has_audio = _video(path)
    assert (frames, width, height, fps, has_audio) == (16, 64, 48, 16.0, True)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        seconds = float(audio.duration * (audio.time_base or 0)) if audio.duration else 0.0
    assert 0.9 < seconds < 1.2
    with av.open(str(double.output_dir / "audio" / "harness_00001.flac")) as container:
        assert container.streams.audio[0].codec_context.name == "flac"


async def test_view_serves_outputs_and_refuses_escapes(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    await client.run(_small_no_weights_graph())
    query = "filename=harness_00001_.mp4&subfolder=video&type=output"
    async with http.get(f"{double.url}/view?{query}") as response:
        assert response.status == 200
        assert response.content_type == "video/mp4"
        data = await response.read()
    assert data == (double.output_dir / "video" / "harness_00001_.mp4").read_bytes()
    async with http.get(
        f"{double.url}/api/view?filename=harness_00001.flac&subfolder=audio"
    ) as response:
        assert response.content_type == "audio/flac"
    async with http.get(f"{double.url}/view?filename=../input/ref.png") as response:
        assert response.status == 400
    async with http.get(f"{double.url}/view?filename=ref.png&subfolder=../input") as response:
        assert response.status == 403
    async with http.get(f"{double.url}/view?filename=missing.mp4") as response:
        assert response.status == 404


async def test_queue_delete_and_interrupt_behave_like_the_recorded_server(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    double.faults.step_delay = 30.0
    client = await _client(http, double)
    slow = _small_wan_graph()
    _, first = await client.post(slow)
    slow_b = _small_wan_graph()
    slow_b["15"]["inputs"]["filename_prefix"] = "video/b"
    _, second = await client.post(slow_b)
    await double.wait_until_running(first["prompt_id"])
    queue = await client.get("/queue")
    assert [item[1] for item in queue["queue_running"]] == [first["prompt_id"]]
    assert [item[1] for item in queue["queue_pending"]] == [second["prompt_id"]]
    assert queue["queue_running"][0][3]["client_id"] == client.id
    assert queue["queue_running"][0][4] == ["15"]
    assert await client.get("/prompt") == {"exec_info": {"queue_remaining": 2}}
    async with http.post(f"{double.url}/queue", json={"delete": [second["prompt_id"]]}) as response:
        assert (response.status, await response.text()) == (200, "")
    assert (await client.get("/queue"))["queue_pending"] == []
    async with http.post(
        f"{double.url}/interrupt", json={"prompt_id": first["prompt_id"]}
    ) as response:
        assert (response.status, await response.text()) == (200, "")
    events = await client.events_until_done(first["prompt_id"])
    interrupted = next(e for e in events if e["type"] == "execution_interrupted")
    assert sorted(interrupted["data"]) == sorted(
        _trace("queue_and_interrupt")["ws_tail"][-1]["data"]
    )
    assert interrupted["data"]["node_id"] == "4"
    history = (await client.get(f"/history/{first['prompt_id']}"))[first["prompt_id"]]
    assert (history["status"]["status_str"], history["status"]["completed"]) == ("error", False)
    assert [m[0] for m in history["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_interrupted",
    ]
    assert await client.get(f"/history/{second['prompt_id']}") == {}
    assert double.interrupts == [{"prompt_id": first["prompt_id"]}]


async def test_an_interrupt_for_another_prompt_leaves_the_running_one_alone(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    double.faults.step_delay = 0.05
    _, body = await client.post(_small_wan_graph())
    async with http.post(f"{double.url}/interrupt", json={"prompt_id": str(uuid.uuid4())}):
        pass
    events = await client.events_until_done(body["prompt_id"])
    assert "execution_success" in [e["type"] for e in events]


async def test_an_injected_node_failure_is_an_execution_error(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    double.faults.fail_at_node = "4"
    double.faults.fail_exception_type = "safetensors._safetensors_rust.SafetensorError"
    double.faults.fail_message = "Error while deserializing header: header too small"
    client = await _client(http, double)
    prompt_id, events = await client.run(_small_wan_graph())
    recorded = _trace("run_execution_error_wan_i2v")
    assert _shape(events) == _shape(recorded["ws"][1:])
    error = next(e["data"] for e in events if e["type"] == "execution_error")
    recorded_error = next(e["data"] for e in recorded["ws"] if e["type"] == "execution_error")
    assert sorted(error) == sorted(recorded_error)
    for key in (
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "current_inputs",
    ):
        assert error[key] == recorded_error[key]
    assert sorted(error["current_outputs"]) == sorted(recorded_error["current_outputs"])
    history = (await client.get(f"/history/{prompt_id}"))[prompt_id]
    assert (history["status"]["status_str"], history["outputs"]) == ("error", {})


async def test_an_unknown_save_video_format_fails_at_run_time_like_the_recording(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    recorded = _trace("savevideo_format_variants")["bad_format_gif"]
    client = await _client(http, double)
    graph = _small_no_weights_graph()
    graph["6"]["inputs"].update(recorded["inputs"])
    _, events = await client.run(graph)
    error = next(e["data"] for e in events if e["type"] == "execution_error")
    assert {k: error[k] for k in recorded["error"]} == recorded["error"]


@pytest.mark.parametrize(
    ("variant", "extension"),
    [
        ("format_auto_no_codec", "mp4"),
        ("legacy_format_mp4_codec_h264", "mp4"),
        ("nested_mp4_h264", "mp4"),
        ("nested_webm_av1", "webm"),
    ],
)
async def test_save_video_format_variants_write_the_recorded_file_kind(
    variant: str, extension: str, double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    inputs = _trace("savevideo_format_variants")[variant]["inputs"]
    client = await _client(http, double)
    graph = _small_no_weights_graph()
    graph["3"]["inputs"]["amount"] = 4
    for key in ("format", "format.codec"):
        graph["6"]["inputs"].pop(key)
    graph["6"]["inputs"].update(inputs)
    prompt_id, _ = await client.run(graph)
    history = (await client.get(f"/history/{prompt_id}"))[prompt_id]
    filename = history["outputs"]["6"]["images"][0]["filename"]
    assert filename == f"harness_00001_.{extension}"
    assert _video(double.output_dir / "video" / filename)[:3] == (4, 64, 48)


async def test_vhs_video_combine_reports_gifs_with_the_audio_name(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    recorded = _trace("run_success_vhs_videocombine")
    graph = next(iter(recorded["history"].values()))["prompt"][2]
    graph["2"]["inputs"].update(width=64, height=48)
    graph["3"]["inputs"]["amount"] = 8
    client = await _client(http, double)
    prompt_id, events = await client.run(graph)
    assert _shape(events) == _shape(recorded["ws"][1:])
    history = (await client.get(f"/history/{prompt_id}"))[prompt_id]
    entry = history["outputs"]["5"]["gifs"][0]
    recorded_entry = next(iter(recorded["history"].values()))["outputs"]["5"]["gifs"][0]
    assert {k: v for k, v in entry.items() if k != "fullpath"} == {
        k: v for k, v in recorded_entry.items() if k != "fullpath"
    }
    assert Path(entry["fullpath"]) == double.output_dir / "vhs" / "harness_00001-audio.mp4"
    assert _video(Path(entry["fullpath"])) == (8, 64, 48, 16.0, True)


async def test_a_repeated_prompt_is_served_from_cache(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    first_id, _ = await client.run(_small_no_weights_graph())
    second_id, events = await client.run(_small_no_weights_graph())
    cached = next(e["data"]["nodes"] for e in events if e["type"] == "execution_cached")
    assert cached == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert [e["type"] for e in events].count("executing") == 1
    first = (await client.get(f"/history/{first_id}"))[first_id]
    second = (await client.get(f"/history/{second_id}"))[second_id]
    assert second["outputs"] == first["outputs"]
    changed = _small_no_weights_graph()
    changed["3"]["inputs"]["amount"] = 8
    _, events = await client.run(changed)
    cached = next(e["data"]["nodes"] for e in events if e["type"] == "execution_cached")
    assert cached == ["1", "2", "4", "7", "8"]
    assert (double.output_dir / "video" / "harness_00002_.mp4").exists()


async def test_free_memory_clears_the_cache(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    await client.run(_small_no_weights_graph())
    async with http.post(
        f"{double.url}/free", json={"unload_models": True, "free_memory": True}
    ) as response:
        assert (response.status, await response.text()) == (200, "")
    _, events = await client.run(_small_no_weights_graph())
    assert next(e["data"]["nodes"] for e in events if e["type"] == "execution_cached") == []


async def test_websockets_drop_once_after_the_configured_number_of_events(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    double.faults.drop_ws_after_events = 3
    _, body = await client.post(_small_no_weights_graph())
    assert client.ws is not None
    received = []
    async for message in client.ws:
        received.append(json.loads(message.data)["type"])
    prompt_events = [kind for kind in received if kind != "status"]
    assert prompt_events == ["execution_start", "execution_cached", "progress_state"]
    assert double.faults.drop_ws_after_events is None
    await double.wait_until_done(body["prompt_id"])
    reconnected = await client.connect()
    assert reconnected["data"]["sid"] == client.id


async def test_http_500_faults_answer_plain_text_then_recover(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    double.faults.http_500["/system_stats"] = 2
    for path in ("/system_stats", "/api/system_stats"):
        async with http.get(f"{double.url}{path}") as response:
            assert (response.status, response.content_type) == (500, "text/plain")
    async with http.get(f"{double.url}/system_stats") as response:
        stats = await response.json()
    assert stats["system"]["comfyui_version"] == "0.33.0"
    assert double.faults.http_500 == {"/system_stats": 0}


async def test_view_delay_still_serves_every_byte(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    payload = bytes(range(256)) * 1024
    (double.output_dir / "big.png").write_bytes(payload)
    double.faults.view_delay = 0.001
    async with http.get(f"{double.url}/view?filename=big.png") as response:
        assert response.content_type == "image/png"
        assert await response.read() == payload


async def test_a_slow_run_is_interrupted_promptly_mid_step(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    double.faults.step_delay = 600.0
    _, body = await client.post(_small_wan_graph())
    await double.wait_until_running()
    async with http.post(f"{double.url}/api/interrupt"):
        pass
    events = await client.events_until_done(body["prompt_id"])
    assert "execution_interrupted" in [e["type"] for e in events]


async def test_restart_keeps_the_port_and_files_but_loses_history(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    await _inputs(http, double.url)
    client = await _client(http, double)
    prompt_id, _ = await client.run(_small_no_weights_graph())
    url = double.url
    await double.restart()
    assert double.url == url
    assert await client.get(f"/history/{prompt_id}") == {}
    assert await client.get("/queue") == {"queue_running": [], "queue_pending": []}
    assert (double.output_dir / "video" / "harness_00001_.mp4").exists()
    status, body = await client.post(_small_no_weights_graph())
    assert (status, body["number"]) == (200, 0)


async def test_object_info_and_models_list_the_live_folders(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    client = Client(http, double.url)
    unet = (await client.get("/object_info/UNETLoader"))["UNETLoader"]["input"]["required"]
    assert unet["unet_name"][0] == WAN_I2V_MODELS["diffusion_models"]
    double.models["loras"] = ["new_lora.safetensors", "readme.txt"]
    assert await client.get("/models/loras") == ["new_lora.safetensors"]
    assert "audio_encoders" in await client.get("/api/models")
    assert await client.get("/object_info/NoSuchNode") == {}
    everything = await client.get("/object_info")
    assert everything["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0] == [
        "new_lora.safetensors"
    ]
    await _upload(http, double.url, "ref.png", _png())
    image = (await client.get("/object_info/LoadImage"))["LoadImage"]["input"]["required"]
    assert image["image"] == [["ref.png"], {"image_upload": True}]


async def test_front_and_number_order_the_queue(
    double: ComfyUIDouble, http: aiohttp.ClientSession
) -> None:
    recorded = _trace("queue_and_interrupt")["POST /prompt number/front"]
    await _inputs(http, double.url)
    client = Client(http, double.url)
    status, body = await client.post(_small_wan_graph(), number=5)
    assert (status, body["number"]) == (recorded[0], recorded[1]["number"])
