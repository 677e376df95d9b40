"""200 jobs at once through the HTTP API: none lost, how long the queue takes, memory growth.

Not a test. Run: .venv/bin/python benchmarks/api_queue_200.py [--jobs 200] [--concurrency 1]

Starts the ComfyUI double (no step delay) and the API under uvicorn on 127.0.0.1 in this process,
runs one warm-up job, then submits ``--jobs`` small t2v jobs at once through ``POST /run`` (the
queue limit raised to fit them) and polls ``/health`` until every one has finished. It then reads
each job's status: every id must be distinct and COMPLETED with an inline MP4. Reported: total
time from the first submission to the last completion, jobs per second, the submission burst's
own time, and the growth of this process's peak RSS (VmHWM, reset after the warm-up). Everything
(client, API, runner, SQLite, the double encoding MP4s) shares one process and one event loop,
so the rate is a lower bound for the API itself.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn

from wan_worker import catalogue
from wan_worker.api import ApiSettings, create_app
from wan_worker.api.app import KEEP_ALIVE_S
from wan_worker.delivery import DeliveryConfig
from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble
from wan_worker.testing.memory import reset_peak_rss, rss_kib

TOKEN = "benchmark-token"


def _job(seed: int) -> dict[str, Any]:
    return {
        "input": {"action": "t2v", "width": 64, "height": 64, "frames": 5, "seed": seed},
    }


async def _wait_all_finished(
    session: aiohttp.ClientSession, base: str, total: int
) -> dict[str, Any]:
    while True:
        async with session.get(f"{base}/v2/bench/health") as response:
            health: dict[str, Any] = await response.json()
        jobs = health["jobs"]
        if jobs["completed"] + jobs["failed"] >= total and jobs["inQueue"] == 0:
            return health
        await asyncio.sleep(0.05)


async def run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    models: dict[str, list[str]] = {}
    for model in catalogue.all_models():
        models.setdefault(model.folder, []).append(model.file)
    async with ComfyUIDouble(root=root / "comfyui", models=models) as double:
        service = ServiceSettings(
            comfyui_url=double.url,
            comfyui_input_dir=double.input_dir,
            comfyui_output_dir=double.output_dir,
            work_dir=root / "work",
            delivery=DeliveryConfig(durable_dir=root / "kept"),
            stall_timeout_s=None,
        )
        api = ApiSettings(
            port=0,
            token=TOKEN,
            job_db_path=root / "api" / "jobs.sqlite3",
            output_dir=root / "api" / "outputs",
            jobs_concurrency=args.concurrency,
            max_queue_depth=args.jobs + 10,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(api, service),
                host="127.0.0.1",
                port=0,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        connector = aiohttp.TCPConnector(limit=args.jobs)
        try:
            async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
                async with session.post(f"{base}/v2/bench/runsync", json=_job(0)) as response:
                    warm = await response.json()
                assert warm["status"] == "COMPLETED", warm
                reset_peak_rss()
                rss_before = rss_kib("VmHWM")

                async def submit(seed: int) -> str:
                    async with session.post(f"{base}/v2/bench/run", json=_job(seed)) as response:
                        body = await response.json()
                        assert response.status == 200, body
                        return str(body["id"])

                began = time.perf_counter()
                ids = await asyncio.gather(*(submit(seed) for seed in range(1, args.jobs + 1)))
                submitted = time.perf_counter()
                health = await _wait_all_finished(session, base, args.jobs + 1)
                finished = time.perf_counter()
                rss_after = rss_kib("VmHWM")

                statuses: dict[str, int] = {}
                videos = 0
                for job_id in ids:
                    async with session.get(f"{base}/v2/bench/status/{job_id}") as response:
                        status = await response.json()
                    statuses[status["status"]] = statuses.get(status["status"], 0) + 1
                    if status["status"] == "COMPLETED" and status["output"].get("video"):
                        videos += 1
        finally:
            server.should_exit = True
            await serving
    return {
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "distinct_ids": len(set(ids)),
        "statuses": statuses,
        "videos": videos,
        "health_jobs": health["jobs"],
        "submit_s": submitted - began,
        "total_s": finished - began,
        "jobs_per_s": args.jobs / (finished - began),
        "peak_rss_growth_mib": (rss_after - rss_before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wan-api-bench-") as tmp:
        result = asyncio.run(run(Path(tmp), args))
    lost = args.jobs - result["statuses"].get("COMPLETED", 0)
    print(f"jobs submitted at once:   {result['jobs']} (JOBS_CONCURRENCY={result['concurrency']})")
    print(f"distinct ids:             {result['distinct_ids']}")
    print(f"final statuses:           {result['statuses']}")
    print(f"completed with a video:   {result['videos']}")
    print(f"lost or failed:           {lost}")
    print(f"submission burst:         {result['submit_s']:.2f} s")
    print(f"first submit to last end: {result['total_s']:.2f} s")
    print(f"throughput:               {result['jobs_per_s']:.1f} jobs/s")
    print(f"peak RSS growth:          {result['peak_rss_growth_mib']:.1f} MiB")
    print(f"/health jobs:             {result['health_jobs']}")


if __name__ == "__main__":
    main()
