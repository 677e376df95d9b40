"""The whole pipeline's cost per job: request in, inline MP4 out, on the ComfyUI double.

Not a test. Run: .venv/bin/python benchmarks/pipeline_overhead.py [--jobs 50] [--double-process]

Runs ``--jobs`` i2v lightning jobs (a small base64 PNG, ``--width``x``--height``, ``--frames``)
one after the other through ``Worker.respond`` (``run_job``: validation, image decode and fit,
graph build, upload, preflight, queue, follow, download, probe, inline base64 delivery) against
the ComfyUI double with no step delay, in this process by default. Per job it records the wall
time, this process's CPU time, and the double's own execution (``execution_start`` to
``execution_success`` in its ``/history``: simulating the nodes and encoding the MP4). Wall minus
that execution is the pipeline's overhead; it still includes the double's HTTP and websocket
handling. With ``--double-process`` the double runs in a child process, so CPU time and peak RSS
(VmHWM, reset after the warm-up job) are the pipeline's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from wan_worker import catalogue
from wan_worker.delivery import DeliveryConfig
from wan_worker.service import ServiceSettings, Worker
from wan_worker.testing import ComfyUIDouble
from wan_worker.testing.memory import reset_peak_rss, rss_kib

Endpoint = tuple[str, Path, Path]
"""The double's URL, input folder and output folder."""


def _png_base64(width: int, height: int) -> str:
    image = Image.new("RGB", (width, height), (40, 90, 160))
    disc = (width // 3, height // 5, width // 3 * 2, height // 5 * 4)
    ImageDraw.Draw(image).ellipse(disc, "gold")
    out = io.BytesIO()
    image.save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def _models() -> dict[str, list[str]]:
    models: dict[str, list[str]] = {}
    for model in catalogue.all_models():
        models.setdefault(model.folder, []).append(model.file)
    return models


def _server_execution_s(entry: dict[str, Any]) -> float:
    stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
    return float(stamps["execution_success"] - stamps["execution_start"]) / 1000


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _serve_double(root: Path, control: Connection) -> None:
    """Child process: run the double, send its endpoint, stop when the parent says so."""

    async def serve() -> None:
        async with ComfyUIDouble(root=root, models=_models()) as double:
            control.send((double.url, double.input_dir, double.output_dir))
            await asyncio.to_thread(control.recv)

    asyncio.run(serve())


@asynccontextmanager
async def _double(root: Path, *, separate: bool) -> AsyncIterator[Endpoint]:
    if not separate:
        async with ComfyUIDouble(root=root, models=_models()) as double:
            yield double.url, double.input_dir, double.output_dir
        return
    context = multiprocessing.get_context("spawn")
    control, child_end = context.Pipe()
    child = context.Process(target=_serve_double, args=(root, child_end), daemon=True)
    child.start()
    try:
        endpoint: Endpoint = await asyncio.to_thread(control.recv)
        yield endpoint
    finally:
        control.send("stop")
        child.join(10)


async def run(root: Path, args: argparse.Namespace) -> tuple[list[dict[str, float]], int]:
    """Per-job figures (seconds) after one warm-up job, and the MP4's size in bytes."""
    image = _png_base64(args.width, args.height)
    rows: list[dict[str, float]] = []
    video_bytes = 0
    async with _double(root / "comfyui", separate=args.double_process) as (url, inputs, outputs):
        settings = ServiceSettings(
            comfyui_url=url,
            comfyui_input_dir=inputs,
            comfyui_output_dir=outputs,
            work_dir=root / "work",
            delivery=DeliveryConfig(durable_dir=root / "kept"),
            stall_timeout_s=None,
        )
        worker = Worker(settings)
        try:
            comfy = await worker.comfy()
            await comfy.wait_ready(30)
            for index in range(args.jobs + 1):
                request = {
                    "action": "comfyui_i2v",
                    "image_base64": image,
                    "prompt": "a sun drifts over the sea",
                    "preset": "lightning",
                    "width": args.width,
                    "height": args.height,
                    "frames": args.frames,
                    "seed": index,
                }
                began, cpu_began = time.perf_counter(), time.process_time()
                response = await worker.respond(request, job_id=f"bench-{index}")
                wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
                if "error" in response:
                    raise SystemExit(f"job {index} failed: {response['error']}")
                entry = await comfy.history(response["prompt_id"])
                assert entry is not None
                if index == 0:
                    reset_peak_rss()  # the first job opens the websocket, fetches /object_info
                    continue
                executed = _server_execution_s(entry)
                video_bytes = response["video_info"]["bytes"]
                stages = {k.removesuffix("_s"): v for k, v in response["timings"].items()}
                rows.append(
                    {"wall": wall, "cpu": cpu, "double_execution": executed}
                    | {"overhead": wall - executed}
                    | stages
                )
        finally:
            await worker.close()
    return rows, video_bytes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument(
        "--double-process", action="store_true", help="run the double in a child process"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows, video_bytes = await run(Path(folder), args)
    where = "a child process" if args.double_process else "this process"
    print(
        f"{args.jobs} i2v lightning jobs, {args.width}x{args.height}, {args.frames} frames, "
        f"{video_bytes / 1024:.0f} KiB MP4 inline, ComfyUI double in {where}; ms per job:"
    )
    print(f"  {'':18} {'median':>8} {'p95':>8}")
    for key in rows[0]:
        values = [row[key] * 1000 for row in rows]
        print(f"  {key:18} {statistics.median(values):8.1f} {_p95(values):8.1f}")
    peak, end = rss_kib("VmHWM") / 1024, rss_kib("VmRSS") / 1024
    print(f"  this process: peak RSS (VmHWM) {peak:.1f} MiB, RSS at the end {end:.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
