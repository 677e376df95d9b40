"""Real pieces for delivery tests: small MP4s made with PyAV, a moto S3 server and a PUT recorder,
all on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import boto3
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer
from PIL import Image

from wan_worker.delivery import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def write_video(
    path: Path,
    *,
    frames: int = 17,
    fps: int = 16,
    width: int = 64,
    height: int = 48,
    audio: bool = False,
    container_format: str | None = None,
) -> Path:
    """Encode ``frames`` flat-colour H.264 frames (and a second of silent AAC when ``audio``)."""
    with av.open(str(path), "w", format=container_format) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono") if audio else None
        for index in range(frames):
            image = Image.new("RGB", (width, height), (index * 7 % 256, 80, 160))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            for start in range(0, 16000, 1024):
                chunk = av.AudioFrame(format="fltp", layout="mono", samples=1024)
                chunk.planes[0].update(bytes(4096))
                chunk.sample_rate, chunk.pts, chunk.time_base = 16000, start, Fraction(1, 16000)
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


VideoWriter = Callable[..., Path]


@pytest.fixture
def make_video() -> VideoWriter:
    return write_video


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A 17-frame 64x48 H.264 MP4 at 16 fps in a job's output folder."""
    out = tmp_path / "out"
    out.mkdir()
    return write_video(out / "clip.mp4")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_settings(moto_endpoint: str, bucket: str) -> S3Settings:
    """Credentials for ``bucket`` on the moto server."""
    return S3Settings(
        bucket=bucket,
        access_key_id="AKIATESTDELIVERY",
        secret_access_key="secret-never-logged",
        endpoint_url=moto_endpoint,
        region="us-east-1",
    )


@pytest.fixture(scope="session")
def s3(moto_endpoint: str) -> S3Client:
    """A plain boto3 client for the moto server, to inspect what was uploaded."""
    return moto_client(moto_endpoint)


def moto_client(endpoint: str) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIATESTDELIVERY",
        aws_secret_access_key="secret-never-logged",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3: S3Client) -> str:
    """A fresh, empty bucket on the shared moto server."""
    name = f"videos-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@dataclass
class RecordedPut:
    method: str
    path: str
    query: str
    content_type: str | None
    content_length: str | None
    transfer_encoding: str | None
    body_bytes: int
    body_sha256: str


@dataclass
class PutRecorder:
    """A presigned-PUT stand-in: answers from ``statuses`` in turn (then the last one forever)."""

    base_url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[RecordedPut] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        total = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            digest.update(chunk)
            total += len(chunk)
        self.requests.append(
            RecordedPut(
                method=request.method,
                path=request.path,
                query=request.query_string,
                content_type=request.headers.get("Content-Type"),
                content_length=request.headers.get("Content-Length"),
                transfer_encoding=request.headers.get("Transfer-Encoding"),
                body_bytes=total,
                body_sha256=digest.hexdigest(),
            )
        )
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        body = "" if status < 300 else "<Error><Code>SignatureDoesNotMatch</Code></Error>"
        return web.Response(status=status, text=body)


@pytest.fixture
async def put_server() -> AsyncIterator[PutRecorder]:
    recorder = PutRecorder()
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recorder
    await runner.cleanup()
