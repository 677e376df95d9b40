"""``wan-worker generate MODE INPUTS... -o out.mp4``: one video from the terminal.

The inputs (local files or http(s) URLs) and the request flags (the same as ``wan-worker
workflow``) become one job request, run one of three ways with the same result:
``--comfyui URL`` runs the job pipeline in this process, ``--server URL`` submits to the
self-hosted API, ``--endpoint ID`` to a RunPod serverless endpoint. Progress is shown while it
runs, Ctrl-C cancels the job where it runs, and the MP4 is saved however it comes back.
Exit status: 0 saved, 2 invalid input, 3 the server refused or failed, 4 timeout or cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp

from wan_worker.cli.outcome import EXIT_OK, JobFailed, failure
from wan_worker.cli.progress_bar import ProgressBar, Update
from wan_worker.cli.remote import RemoteJobs, RemoteSettings, RemoteTarget
from wan_worker.cli.workflow import REQUEST_FLAGS, add_request_flags
from wan_worker.delivery import VideoInfo, probe_video
from wan_worker.errors import WanWorkerError
from wan_worker.media import InputLimits
from wan_worker.service import JobProgress, ServiceSettings, Worker, error_response
from wan_worker.service.schema import MODE_NAMES, MODE_SLOTS, REQUIRED_SLOTS, Slot
from wan_worker.workflows import Mode

_T = TypeVar("_T")
Via = Literal["comfyui", "server", "endpoint"]

INPUT_USAGE = {
    "i2v": "IMAGE",
    "t2v": "(no inputs)",
    "flf2v": "START END",
    "ti2v": "[IMAGE]",
    "s2v": "IMAGE AUDIO",
}
"""The positional inputs of each mode, as the usage text shows them."""
_SLOT_FLAGS = frozenset({"image", "end_image", "audio"})
"""Request flags of ``workflow`` that are positional inputs here."""

EPILOG = """\
inputs: i2v IMAGE | t2v | flf2v START END | ti2v [IMAGE] | s2v IMAGE AUDIO
  (local files or http(s) URLs)
where it runs (one of):
  --comfyui URL   the job pipeline in this process, on that ComfyUI (default: COMFYUI_URL)
  --server URL    the self-hosted API (token: --token or API_TOKEN)
  --endpoint ID   a RunPod serverless endpoint (key: RUNPOD_API_KEY)
exit status: 0 saved, 2 invalid input, 3 the server refused or failed, 4 timeout or cancelled
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``generate`` sub-command; its handler is ``args.handler``."""
    parser = commands.add_parser(
        "generate",
        help="make a video: in-process on ComfyUI, on the self-hosted API or on RunPod",
        description="Make one video and save it as an MP4, showing progress while it runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mode", choices=list(MODE_NAMES))
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="see 'inputs' below")
    request = parser.add_argument_group("request (as 'wan-worker workflow')")
    add_request_flags(request, skip=_SLOT_FLAGS)
    request.add_argument(
        "--use-lora",
        dest="use_lora",
        action="store_const",
        const=True,
        default=None,
        help="first draft's name for --preset lightning",
    )
    request.add_argument(
        "--diffusion-model",
        dest="diffusion_model",
        default=None,
        help="first draft's name for --high-noise-model (14B) or --model",
    )
    request.add_argument("--fit", choices=["cover", "contain", "stretch"], default=None)
    request.add_argument(
        "--resolution", choices=["480p", "720p"], default=None, help="size tier without --width"
    )
    request.add_argument(
        "--timeout", dest="timeout_s", type=float, default=None, metavar="S", help="job deadline"
    )
    where = parser.add_argument_group("where it runs").add_mutually_exclusive_group()
    where.add_argument("--comfyui", metavar="URL", help="run in-process on this ComfyUI")
    where.add_argument("--server", metavar="URL", help="submit to the self-hosted API")
    where.add_argument("--endpoint", metavar="ID", help="submit to this RunPod endpoint")
    parser.add_argument("--token", default=None, help="bearer token for --server")
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, metavar="S", help="status polling (remote)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="MP4 file or folder (default: ./<mode>-<seed>.mp4)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--verbose", action="store_true", help="log what the worker does")
    parser.set_defaults(handler=run_generate)


@dataclass(frozen=True)
class Plan:
    """What to run, where, and where the MP4 goes."""

    mode: str
    request: dict[str, Any]
    via: Via
    folder: Path
    output: Path | None
    """The file named with ``-o``; None: a name from the mode and seed, in ``folder``."""
    force: bool
    service: ServiceSettings
    target: RemoteTarget | None
    poll_interval_s: float = 0.5


def run_generate(args: argparse.Namespace) -> int:
    """The handler: plan, run with Ctrl-C wired to cancel, save, report."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        plan = make_plan(args, os.environ)
    except JobFailed as failed:
        return report_failure(failed, json_output=args.json)
    except WanWorkerError as err:
        return report_failure(JobFailed(error_response(err)), json_output=args.json)
    bar = ProgressBar(sys.stderr if args.json else sys.stdout)
    try:
        return asyncio.run(_generate(plan, bar, json_output=args.json))
    finally:
        bar.close()


def make_plan(args: argparse.Namespace, env: Mapping[str, str]) -> Plan:
    """Check the arguments and read the inputs into a request; JobFailed (exit 2) if wrong."""
    if args.poll_interval <= 0:
        raise failure(
            "invalid_input", "--poll-interval must be more than 0 seconds", field="poll_interval"
        )
    service = ServiceSettings.from_env(env)
    via: Via = "server" if args.server else "endpoint" if args.endpoint else "comfyui"
    target = None
    if args.server:
        target = RemoteTarget.server(
            args.server, args.token or RemoteSettings.from_env(env).api_token
        )
    elif args.endpoint:
        target = RemoteTarget.runpod(args.endpoint, RemoteSettings.from_env(env))
    elif args.comfyui:
        service = replace(service, comfyui_url=args.comfyui)
    mode: Mode = args.mode
    request: dict[str, Any] = {"action": mode}
    request.update(_inputs(mode, args.inputs, service.input_limits))
    for _, field, _, _ in REQUEST_FLAGS:
        if field not in _SLOT_FLAGS and getattr(args, field) is not None:
            request[field] = getattr(args, field)
    for field in ("loras", "use_lora", "diffusion_model", "fit", "resolution", "timeout_s"):
        if getattr(args, field) is not None:
            request[field] = getattr(args, field)
    folder, output = _destination(args.output, args.force)
    return Plan(mode, request, via, folder, output, args.force, service, target, args.poll_interval)


def _inputs(mode: Mode, given: list[str], limits: InputLimits) -> dict[str, str]:
    """``<slot>_url`` for URLs, ``<slot>_base64`` for local files (read under the size caps)."""
    slots, required = MODE_SLOTS[mode], len(REQUIRED_SLOTS[mode])
    if not required <= len(given) <= len(slots):
        raise failure(
            "invalid_input",
            f"{mode} takes {INPUT_USAGE[mode]}, got {len(given)} input(s)",
            field="inputs",
        )
    fields: dict[str, str] = {}
    for slot, value in zip(slots, given, strict=False):
        if value.startswith(("http://", "https://")):
            fields[f"{slot}_url"] = value
            continue
        fields[f"{slot}_base64"] = _read_input(slot, Path(value), limits)
    return fields


def _read_input(slot: Slot, path: Path, limits: InputLimits) -> str:
    """A local input file as base64, refused when missing, unreadable or over its cap."""
    what = f"the {slot.replace('_', ' ')} file {path}"
    cap = limits.max_audio_bytes if slot == "audio" else limits.max_image_bytes
    if not path.is_file():
        reason = "is not a file" if path.exists() else "does not exist"
        raise failure("invalid_input", f"{what} {reason}", field=slot)
    size = path.stat().st_size
    if size > cap:
        raise failure(
            "input_too_large", f"{what} is {size} bytes, over the {cap}-byte cap", field=slot
        )
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as err:
        raise failure(
            "invalid_input", f"{what} cannot be read: {err.strerror or err}", field=slot
        ) from None


def _destination(output: Path | None, force: bool) -> tuple[Path, Path | None]:
    """The output folder and the named file (None when the name comes from the seed)."""
    if output is None:
        return Path(), None
    if output.is_dir():
        return output, None
    if output.exists() and not force:
        raise failure(
            "invalid_input",
            f"{output} exists; give another -o or --force to replace it",
            field="output",
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise failure(
            "invalid_input",
            f"cannot make the folder {output.parent}: {err.strerror or err}",
            field="output",
        ) from None
    return output.parent, output


async def _generate(plan: Plan, bar: ProgressBar, *, json_output: bool) -> int:
    try:
        staging = Path(tempfile.mkdtemp(prefix=".wan-worker-", dir=plan.folder))
    except OSError as err:
        return report_failure(
            failure("invalid_input", f"cannot write in {plan.folder}: {err.strerror or err}"),
            json_output=json_output,
        )
    try:
        try:
            response, video = await _cancel_on_sigint(_ticking(bar, _run(plan, staging, bar)))
            info = await asyncio.to_thread(probe_video, video)
            expected = (response.get("video_info") or {}).get("sha256")
            if expected and expected != info.sha256:
                raise failure(
                    "download_failed", "the saved video does not match the sha256 the job gave"
                )
            saved = place(video, plan, response.get("seed"))
        except JobFailed as failed:
            bar.close()
            return report_failure(failed, json_output=json_output)
        except WanWorkerError as err:
            bar.close()
            return report_failure(JobFailed(error_response(err)), json_output=json_output)
        except _Interrupted:
            bar.close()
            where = "ComfyUI prompt" if plan.via == "comfyui" else "remote job"
            return report_failure(
                failure("cancelled", f"interrupted (Ctrl-C); the {where} was cancelled"),
                json_output=json_output,
            )
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    bar.update(Update("saved", 100.0))
    bar.close()
    result: dict[str, Any] = {"file": str(saved.resolve()), "via": plan.via}
    result.update({k: v for k, v in response.items() if k != "video"})
    result["video_info"] = info.as_dict()
    if json_output:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(summary(saved, info, response))
    return EXIT_OK


async def _run(plan: Plan, staging: Path, bar: ProgressBar) -> tuple[dict[str, Any], Path]:
    """Run the job where the plan says; its response and the MP4 inside ``staging``."""
    if plan.target is None:
        return await _in_process(plan, staging, bar.update)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        jobs = RemoteJobs(plan.target, session, poll_interval_s=plan.poll_interval_s)
        job_id = await jobs.submit(plan.request)
        bar.update(Update("queued", 0.0))
        response = await jobs.follow(job_id, on_update=bar.update)
        video = staging / "video.mp4"
        await jobs.save_video(response, video)
    return response, video


async def _in_process(
    plan: Plan, staging: Path, on_update: Callable[[Update], None]
) -> tuple[dict[str, Any], Path]:
    """The shared pipeline on ComfyUI; the video comes back as a file in ``staging``."""
    delivery = replace(
        plan.service.delivery,
        durable_dir=staging,
        inline_budget_bytes=0,
        s3=None,
        local_fallback=True,
    )
    worker = Worker(replace(plan.service, delivery=delivery))

    def progress(update: JobProgress) -> None:
        on_update(Update(update.stage, update.percent, update.step, update.steps))

    try:
        response = await worker.respond(
            plan.request, job_id=f"cli-{uuid.uuid4().hex[:12]}", on_progress=progress
        )
    finally:
        await worker.close()
    if "error" in response:
        raise JobFailed(response)
    return response, Path(response["video"])


async def _ticking(bar: ProgressBar, work: Awaitable[_T]) -> _T:
    """Await ``work`` while a terminal's progress line redraws each second (a moving clock)."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(1.0)
            bar.tick()

    ticker = asyncio.create_task(tick()) if bar.tty else None
    try:
        return await work
    finally:
        if ticker is not None:
            ticker.cancel()


class _Interrupted(Exception):
    """Ctrl-C: the job was cancelled where it ran."""


async def _cancel_on_sigint(work: Awaitable[_T]) -> _T:
    """Await ``work``; SIGINT cancels it (which cancels the job) and raises _Interrupted."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    # Signals reach only the main thread (a caller running main() in a thread keeps its own).
    handles_sigint = threading.current_thread() is threading.main_thread()
    if handles_sigint:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await task
    except asyncio.CancelledError:
        if interrupted:
            raise _Interrupted() from None
        raise
    finally:
        if handles_sigint:
            loop.remove_signal_handler(signal.SIGINT)


def place(video: Path, plan: Plan, seed: Any) -> Path:
    """Move the finished MP4 to its name; an existing file is replaced only with --force."""
    wanted = plan.output
    if wanted is None:
        tag = str(seed) if isinstance(seed, int) else time.strftime("%Y%m%d-%H%M%S")
        wanted = plan.folder / f"{plan.mode}-{tag}.mp4"
    if plan.force:
        os.replace(video, wanted)
        return wanted
    candidate, n = wanted, 1
    while True:
        try:
            _claim(video, candidate)
        except FileExistsError:
            n += 1
            candidate = wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}")
            continue
        if candidate != wanted:
            print(f"generate: {wanted} appeared meanwhile; saved as {candidate}", file=sys.stderr)
        return candidate


def _claim(source: Path, destination: Path) -> None:
    """Move ``source`` to ``destination`` unless that exists (FileExistsError)."""
    try:
        os.link(source, destination)
    except FileExistsError:
        raise
    except OSError:
        with source.open("rb") as reader, destination.open("xb") as writer:
            shutil.copyfileobj(reader, writer)
    source.unlink()


def summary(path: Path, info: VideoInfo, response: Mapping[str, Any]) -> str:
    """What a person wants to know of the saved video, one fact a line."""
    timings = response.get("timings") or {}
    parts = [
        f"{name.removesuffix('_s').replace('_', ' ')} {value:.1f} s"
        for name, value in timings.items()
        if name != "total_s" and isinstance(value, int | float) and value >= 0.05
    ]
    total = timings.get("total_s")
    lines = [
        f"saved {path}",
        f"  resolution  {info.width}x{info.height}",
        f"  frames      {info.frames} at {info.fps:g} fps",
        f"  duration    {info.duration_s:.2f} s" + (", with audio" if info.has_audio else ""),
        f"  size        {_size_text(info.bytes)}",
        f"  seed        {response.get('seed')}",
    ]
    if isinstance(total, int | float):
        lines.append(f"  time        {total:.1f} s" + (f" ({', '.join(parts)})" if parts else ""))
    return "\n".join(lines)


def _size_text(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} KB"
    return f"{size / 1_000_000:.1f} MB"


def report_failure(failed: JobFailed, *, json_output: bool) -> int:
    """The error on stderr (and as JSON on stdout with --json); its exit status."""
    response = failed.response
    print(f"generate: {response.get('error')}", file=sys.stderr)
    details = response.get("details") or {}
    for problem in details.get("problems") or []:
        print(f"  - {problem.get('message')}", file=sys.stderr)
    if details.get("field") and not details.get("problems"):
        print(f"  (field: {details['field']})", file=sys.stderr)
    if json_output:
        print(json.dumps(response, indent=2, ensure_ascii=False))
    return failed.exit_status
