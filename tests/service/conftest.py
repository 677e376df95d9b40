"""Real pieces for the service tests, all on 127.0.0.1: the ComfyUI double with every catalogue
model, a file server for URL inputs, a moto S3 server, and the RunPod handler wired to them."""

from __future__ import annotations

import base64
import importlib.util
import io
import ipaddress
import math
import struct
import sys
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import av
import boto3
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer
from PIL import Image, ImageDraw

from tests.media.helpers import TEST_NAMES
from wan_worker import catalogue
from wan_worker.comfy.events import Backoff
from wan_worker.comfy.transport import RetryPolicy
from wan_worker.delivery import DeliveryConfig
from wan_worker.media import InputLimits
from wan_worker.media.addresses import IPAddress
from wan_worker.service import ServiceSettings, Worker
from wan_worker.testing import ComfyUIDouble

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO_ROOT = Path(__file__).resolve().parents[2]


def png_bytes(width: int = 96, height: int = 64, fmt: str = "PNG") -> bytes:
    """A small picture (a yellow disc on blue) encoded as ``fmt``."""
    image = Image.new("RGB", (width, height), (40, 90, 160))
    ImageDraw.Draw(image).ellipse(
        (width // 3, height // 5, width // 3 * 2, height // 5 * 4), "gold"
    )
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def wav_bytes(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """A mono 16-bit sine tone."""
    samples = int(seconds * rate)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(samples)
            )
        )
    return out.getvalue()


def mp3_bytes(seconds: float = 1.5, rate: int = 22050) -> bytes:
    """A mono MP3 tone encoded with PyAV."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        total = int(seconds * rate)
        for start in range(0, total, 1152):
            count = min(1152, total - start)
            frame = av.AudioFrame(format="s16", layout="mono", samples=count)
            frame.planes[0].update(
                b"".join(
                    struct.pack("<h", int(8000 * math.sin(2 * math.pi * 330 * (start + i) / rate)))
                    for i in range(count)
                )
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def probe_mp4(data: bytes) -> tuple[int, int, int, float, bool]:
    """(width, height, frames, fps, has_audio) of an MP4 held in memory, read with PyAV."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        frames = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate or stream.guessed_rate
        assert rate is not None
        return (
            stream.codec_context.width,
            stream.codec_context.height,
            frames,
            float(rate),
            has_audio,
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class MapResolver:
    """A DNS stand-in: answers from a fixed table, records what it was asked."""

    table: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return [ipaddress.ip_address(a) for a in self.table.get(host, [])]


@dataclass
class FileServer:
    """A loopback HTTP server for URL inputs; records every path it was asked for."""

    port: int
    files: dict[str, bytes]
    requests: list[str]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def file_server() -> AsyncIterator[FileServer]:
    files: dict[str, bytes] = {}
    requests: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        requests.append(request.path)
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/files/{name}", serve)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    yield FileServer(port, files, requests)
    await runner.cleanup()


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[ComfyUIDouble]:
    """The ComfyUI double, with every file of the model catalogue installed."""
    models: dict[str, list[str]] = {}
    for model in catalogue.all_models():
        models.setdefault(model.folder, []).append(model.file)
    async with ComfyUIDouble(root=tmp_path / "comfyui", models=models) as server:
        yield server


@pytest.fixture
def allowed_root(tmp_path: Path) -> Path:
    folder = tmp_path / "allowed"
    folder.mkdir()
    return folder


UNREACHABLE_ORIGIN = "http://127.0.0.1:9"
"""The discard port on loopback, where nothing listens: an upload target that always fails."""


@pytest.fixture
def settings(
    tmp_path: Path,
    double: ComfyUIDouble,
    file_server: FileServer,
    allowed_root: Path,
    moto_endpoint: str,
) -> ServiceSettings:
    """Settings for a worker on the double. URLs may reach only the file server, the moto S3
    server and the unreachable discard port: every other loopback address is refused."""
    return ServiceSettings(
        comfyui_url=double.url,
        comfyui_input_dir=double.input_dir,
        comfyui_output_dir=double.output_dir,
        comfyui_ready_timeout_s=0.5,
        work_dir=tmp_path / "work",
        input_limits=InputLimits(
            allowed_path_roots=(allowed_root,),
            allowed_origins=(file_server.origin, moto_endpoint, UNREACHABLE_ORIGIN),
        ),
        delivery=DeliveryConfig(
            durable_dir=tmp_path / "kept",
            upload_attempts=1,
            backoff_initial_s=0.01,
            backoff_max_s=0.01,
        ),
        stall_timeout_s=None,
    )


@pytest.fixture
def resolver() -> MapResolver:
    return MapResolver(dict(TEST_NAMES))


def new_worker(settings: ServiceSettings, resolver: MapResolver | None = None) -> Worker:
    """A worker with quick retries and reconnects; the caller closes it."""
    return Worker(
        settings,
        resolver=resolver,
        retry=RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.02),
        reconnect=Backoff(first_s=0.05, max_s=0.1),
    )


@pytest.fixture
async def worker(settings: ServiceSettings, resolver: MapResolver) -> AsyncIterator[Worker]:
    made = new_worker(settings, resolver)
    yield made
    await made.close()


@pytest.fixture(scope="session")
def handler_module() -> ModuleType:
    """``handler.py`` from the repository root, imported as a module."""
    spec = importlib.util.spec_from_file_location(
        "wan_worker_runpod_handler", REPO_ROOT / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Progress:
    """Progress updates the handler sent, as RunPod would receive them."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    now: float = 0.0

    def send(self, job: dict[str, Any], update: Any) -> None:
        self.updates.append(update)

    def clock(self) -> float:
        """A clock that moves a second per reading: every update passes the throttle."""
        self.now += 1.0
        return self.now


@pytest.fixture
def progress() -> Progress:
    return Progress()


@pytest.fixture
def handler(
    handler_module: ModuleType, worker: Worker, progress: Progress
) -> Callable[[dict[str, Any]], Any]:
    """The RunPod handler, running on the test worker and recording its progress updates."""

    async def get_worker() -> Worker:
        return worker

    made: Callable[[dict[str, Any]], Any] = handler_module.make_handler(
        get_worker, send_progress=progress.send, clock=progress.clock
    )
    return made


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    client: S3Client = boto3.session.Session().client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="AKIATESTSERVICE",
        aws_secret_access_key="secret-service",
        region_name="us-east-1",
    )
    return client


def leftovers(root: Path) -> list[Path]:
    """Every file under ``root`` (a job's work folder must end empty)."""
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
