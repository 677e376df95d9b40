"""The ComfyUI client's own cost: time per job beyond execution, and memory while fetching.

Not a test. Run: .venv/bin/python benchmarks/comfy_client_overhead.py [--jobs 50] [--mb 500]

1. Runs ``--jobs`` small prompts (LoadAudio -> SaveAudio, one upload, one output) one after the
   other on the ComfyUI double, and reports per job the wall time of ``run_prompt`` minus the
   execution the server recorded (``execution_start`` to ``execution_success`` timestamps in
   ``/history``), with the client's own stage timings. The double runs in this process, so the
   figures include its request handling too: an upper bound on the client's overhead.
2. Writes a ``--mb`` MB file into the double's output folder and fetches it through ``/view``,
   reporting the growth of this process's peak RSS (VmHWM, reset through /proc/self/clear_refs)
   and the tracemalloc peak of Python allocations.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import struct
import tempfile
import time
import tracemalloc
import wave
from pathlib import Path
from typing import Any

from wan_worker.comfy import ComfyClient, OutputRef
from wan_worker.comfy.outputs import download
from wan_worker.testing.comfyui_double import ComfyUIDouble
from wan_worker.testing.memory import reset_peak_rss, rss_kib
from wan_worker.workflows.graph import ApiGraph, Graph


def _audio_graph() -> ApiGraph:
    g = Graph()
    audio = g.node("LoadAudio", "audio", audio="tone.wav")
    g.node("SaveAudio", "save_audio", audio=audio.out(0), filename_prefix="audio/bench")
    return g.finalize()


def _tone(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 16000
    with wave.open(str(path), "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(rate)
        sink.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(rate)
            )
        )


def _server_execution_s(entry: dict[str, Any]) -> float:
    stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
    return float(stamps["execution_success"] - stamps["execution_start"]) / 1000


async def overhead(root: Path, jobs: int, *, preflight: bool) -> dict[str, float]:
    tone = root / "tone.wav"
    _tone(tone)
    async with ComfyUIDouble(root=root / "comfyui") as double, ComfyClient(double.url) as comfy:
        await comfy.wait_ready(10)
        rows: list[dict[str, float]] = []
        for index in range(jobs + 1):
            began = time.perf_counter()
            result = await comfy.run_prompt(
                _audio_graph(),
                output_dir=root / "out",
                uploads={"tone.wav": tone},
                job_id=f"bench-{index}",
                preflight=preflight,
            )
            wall = time.perf_counter() - began
            entry = await comfy.history(result.prompt_id)
            assert entry is not None
            executed = _server_execution_s(entry)
            await comfy.cleanup(result)
            if index == 0:
                continue  # the first job opens the websocket and fetches /object_info
            t = result.timings
            rows.append(
                {
                    "wall": wall,
                    "overhead": wall - executed,
                    "upload": t.upload_s,
                    "preflight": t.preflight_s,
                    "queue_wait": t.queue_wait_s,
                    "download": t.download_s,
                }
            )
    return {
        key: statistics.median(r[key] for r in rows) * 1000
        for key in ("wall", "overhead", "upload", "preflight", "queue_wait", "download")
    } | {"p95_overhead": sorted(r["overhead"] for r in rows)[int(0.95 * len(rows)) - 1] * 1000}


async def big_fetch(root: Path, megabytes: int) -> dict[str, float]:
    async with ComfyUIDouble(root=root / "comfyui") as double, ComfyClient(double.url) as comfy:
        source = double.output_dir / "video" / "big_00001_.mp4"
        source.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(1024 * 1024)
        with source.open("wb") as sink:
            for _ in range(megabytes):
                sink.write(block)
        ref = OutputRef("9", "video", source.name, "video", "output")
        reset_peak_rss()
        before = rss_kib("VmHWM")
        tracemalloc.start()
        began = time.perf_counter()
        fetched = await download(comfy.http, ref, root / "fetched" / source.name)
        seconds = time.perf_counter() - began
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = rss_kib("VmHWM")
        assert fetched.size == megabytes * 1024 * 1024
    return {
        "seconds": seconds,
        "mb_per_s": megabytes / seconds,
        "peak_rss_growth_mib": (after - before) / 1024,
        "tracemalloc_peak_mib": traced_peak / 1024 / 1024,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--mb", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for preflight in (True, False):
            figures = await overhead(root / f"jobs-{preflight}", args.jobs, preflight=preflight)
            print(f"{args.jobs} jobs, preflight={preflight}, medians in ms:")
            for key, value in figures.items():
                print(f"  {key:14} {value:8.1f}")
        fetch = await big_fetch(root / "fetch", args.mb)
        print(f"fetch of {args.mb} MB through /view:")
        for key, value in fetch.items():
            print(f"  {key:22} {value:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
