"""Peak memory while delivering a large video: probe, upload to S3 (moto), PUT, refuse inline.

Not a test. Run: .venv/bin/python benchmarks/delivery_memory.py [--mb 500]
Writes a real lossless H.264 video of about --mb megabytes to a temporary folder, starts a moto S3
server in a child process on 127.0.0.1 (so the bucket's copy is not counted here) and a PUT sink
in this process, then reports for each phase the growth of this process's peak RSS (VmHWM, reset
before each phase through /proc/self/clear_refs) and the tracemalloc peak of Python allocations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import boto3
from aiohttp import web
from PIL import Image

from wan_worker.delivery import (
    DeliveryConfig,
    DeliveryTarget,
    S3Settings,
    VideoInfo,
    deliver_video,
    probe_video,
)
from wan_worker.errors import UploadFailed
from wan_worker.testing.memory import reset_peak_rss, rss_kib

MIB = 1024 * 1024


def write_noise_video(path: Path, megabytes: int) -> None:
    """Lossless 1080p noise compresses to ~3.8 MB a frame: a real video of the wanted size."""
    width, height = 1920, 1080
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=16, options={"preset": "ultrafast", "qp": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        written = 0
        while written < megabytes * 1_000_000:
            image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            for packet in stream.encode(frame):
                written += packet.size
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def measure(name: str, work: Callable[[], Awaitable[Any]]) -> Any:
    exact = reset_peak_rss()
    before = rss_kib("VmRSS")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = await work()
    finally:
        elapsed = time.perf_counter() - started
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    peak = rss_kib("VmHWM")
    note = "" if exact else " (VmHWM not reset: process-lifetime peak)"
    print(
        f"{name:<34} {elapsed:6.1f} s   peak RSS +{(peak - before) / 1024:7.1f} MiB   "
        f"tracemalloc peak {traced_peak / MIB:7.1f} MiB{note}"
    )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return child, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    child.kill()
    raise RuntimeError("moto server did not start")


async def start_put_sink() -> tuple[web.AppRunner, str]:
    async def sink(request: web.Request) -> web.Response:
        async for _ in request.content.iter_chunked(1 << 16):
            pass
        return web.Response(status=200)

    app = web.Application(client_max_size=1 << 40)
    app.router.add_put("/{tail:.*}", sink)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def main(megabytes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as scratch:
        root = Path(scratch)
        video = root / "big.mp4"
        print(f"writing a ~{megabytes} MB noise video ...", flush=True)
        write_noise_video(video, megabytes)
        moto, endpoint = start_moto()
        runner, put_base = await start_put_sink()
        try:
            settings = S3Settings(
                bucket="bench",
                access_key_id="bench",
                secret_access_key="bench",
                endpoint_url=endpoint,
            )
            boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                region_name="us-east-1",
            ).create_bucket(Bucket="bench")
            config = DeliveryConfig(durable_dir=root / "kept", s3=settings)
            print(
                f"video: {video.stat().st_size / 1e6:.1f} MB; inline budget "
                f"{config.inline_budget_bytes} bytes; multipart chunk "
                f"{config.multipart_chunk_bytes // MIB} MiB x {config.multipart_concurrency}"
            )

            async def probe() -> VideoInfo:
                return await asyncio.to_thread(probe_video, video)

            info: VideoInfo = await measure("probe (demux + sha256)", probe)
            print(f"  {info.width}x{info.height} {info.frames} frames {info.codec}")

            async def to_s3() -> None:
                delivery = await deliver_video(video, info, config=config)
                assert delivery.mode == "s3"

            await measure("upload to S3 (moto, multipart)", to_s3)

            async def to_put() -> None:
                target = DeliveryTarget(upload_url=f"{put_base}/bench.mp4?X-Amz-Signature=x")
                delivery = await deliver_video(video, info, config=config, target=target)
                assert delivery.mode == "put"

            await measure("PUT to a presigned URL (local)", to_put)

            small = root / "small.mp4"
            with video.open("rb") as source, small.open("wb") as sink:
                sink.write(source.read(6_700_000))
            small_info = replace(info, bytes=small.stat().st_size)

            async def inline() -> None:
                delivery = await deliver_video(small, small_info, config=config)
                assert delivery.mode == "inline"

            await measure(f"inline {small_info.bytes / 1e6:.1f} MB (9 MB budget)", inline)

            async def refuse() -> str:
                bare = replace(config, s3=None)
                try:
                    await deliver_video(video, info, config=bare)
                except UploadFailed as exc:
                    return str(exc.details["kept_at"])
                raise AssertionError("a 500 MB video went inline")

            kept = await measure("refuse inline, keep in durable_dir", refuse)
            kept_bytes = await asyncio.to_thread(os.path.getsize, kept)
            print(f"  kept at {kept}: {kept_bytes / 1e6:.1f} MB")
        finally:
            await runner.cleanup()
            moto.terminate()
            moto.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=500, help="size of the video in megabytes")
    asyncio.run(main(parser.parse_args().mb))
