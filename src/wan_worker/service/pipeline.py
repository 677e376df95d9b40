"""The one job pipeline every front shares: request in, delivered video (or one error) out.

    validate (schema) -> fetch and fit inputs (media) -> build the graph (workflows)
      -> run it (comfy) -> probe and deliver the MP4 (delivery) -> response

Each job works in its own temporary folder, removed when the job ends whatever happens; a video
whose upload failed is the only thing kept, in the durable folder the error names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wan_worker import catalogue
from wan_worker.comfy import ComfyClient, OutputFile, Progress, RunResult
from wan_worker.comfy.events import Backoff
from wan_worker.comfy.transport import RetryPolicy
from wan_worker.delivery import Delivery, DeliveryTarget, S3Settings, deliver_video, probe_video
from wan_worker.errors import (
    ComfyUIUnavailable,
    InvalidInput,
    OutputMissing,
    Problem,
    Timeout,
    WanWorkerError,
)
from wan_worker.media import (
    HostResolver,
    InputForm,
    InputSource,
    SystemResolver,
    derive_size,
    load_audio,
    load_image,
    load_input,
)
from wan_worker.media.fetch import parse_url, vetted_addresses
from wan_worker.service.progress import DELIVERING, INPUTS, JobProgress, JobProgressCallback
from wan_worker.service.schema import (
    PLACEHOLDER_FILES,
    DeliveryOptions,
    GenerationJob,
    Job,
    RawJob,
    Slot,
    default_budget,
    parse_job,
)
from wan_worker.service.settings import ServiceSettings
from wan_worker.workflows import build
from wan_worker.workflows.params import MODE_DEFAULTS, nearest_multiple
from wan_worker.workflows.s2v import MAX_AUDIO_SECONDS

log = logging.getLogger(__name__)

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_UNLIMITED = 2**62


@dataclass(frozen=True)
class JobResult:
    """A finished job; ``as_dict()`` is the response every front returns."""

    job_id: str
    action: str
    prompt_id: str
    delivery: Delivery
    seed: int | None
    parameters: dict[str, Any]
    inputs: dict[str, Any]
    timings: dict[str, float]
    models: list[dict[str, str]]
    comfyui_version: str

    def as_dict(self) -> dict[str, Any]:
        out = self.envelope()
        out["video"] = self.delivery.video_base64 or self.delivery.url or self.delivery.path
        return out

    def envelope(self) -> dict[str, Any]:
        """The response without the video itself (what the inline budget is measured on)."""
        delivery: dict[str, Any] = {"mode": self.delivery.mode}
        for name in ("key", "note"):
            if getattr(self.delivery, name) is not None:
                delivery[name] = getattr(self.delivery, name)
        return {
            "job_id": self.job_id,
            "action": self.action,
            "prompt_id": self.prompt_id,
            "delivery": delivery,
            "video_info": self.delivery.video.as_dict(),
            "seed": self.seed,
            "parameters": self.parameters,
            "inputs": self.inputs,
            "timings": self.timings,
            "models": self.models,
            "comfyui_version": self.comfyui_version,
        }


def error_response(error: BaseException, *, job_id: str | None = None) -> dict[str, Any]:
    """The one error shape: ``{"error": "<code>: <sentence>", "error_code", "details"}``.

    A failure that is not a :class:`WanWorkerError` is a bug: its traceback goes to the log and
    the caller gets ``internal_error`` without it.
    """
    if not isinstance(error, WanWorkerError):
        log.error("job %s failed unexpectedly", job_id, exc_info=error)
        error = WanWorkerError(
            f"the worker failed unexpectedly ({type(error).__name__}); "
            f"its log has the details of job {job_id}"
        )
    details: dict[str, Any] = dict(error.details)
    if error.problems:
        details["problems"] = [p.as_dict() for p in error.problems]
        first = error.problems[0]
        if first.field is not None:
            details.setdefault("field", first.field)
        if first.node_id is not None:
            details.setdefault("node_id", first.node_id)
            if first.class_type is not None:
                details.setdefault("class_type", first.class_type)
    return {"error": str(error), "error_code": error.code, "details": details}


@dataclass
class _Prepared:
    """What the input stage hands to the graph stage."""

    graph: dict[str, dict[str, Any]]
    uploads: dict[str, Path]
    inputs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    models: list[dict[str, str]] = field(default_factory=list)


async def run_job(
    request: object,
    *,
    job_id: str,
    settings: ServiceSettings,
    comfy: ComfyClient,
    on_progress: JobProgressCallback | None = None,
    resolver: HostResolver | None = None,
) -> JobResult:
    """Run one job end to end on ``comfy``; raises a WanWorkerError (or CancelledError).

    ``resolver`` replaces the system DNS for input URLs (tests map names to addresses).
    """
    began = time.monotonic()
    job = parse_job(request)
    options: DeliveryOptions = job.request if isinstance(job, RawJob) else job.options
    timeout_s = _deadline(options, settings)
    target = _target(options)
    await _vet_targets(target, settings, resolver)
    system = await comfy.system_info()

    settings.work_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(
        tempfile.mkdtemp(prefix=f"{_UNSAFE_ID.sub('_', job_id)}-", dir=settings.work_dir)
    )
    try:
        await _notify(on_progress, INPUTS, job_id)
        try:
            async with asyncio.timeout(timeout_s):
                prepared = await _prepare(job, settings, workdir / "inputs", resolver)
        except TimeoutError:
            raise Timeout(
                f"job {job_id} ran past its {timeout_s:g} s deadline while fetching inputs",
                details={"job_id": job_id, "timeout_s": timeout_s},
            ) from None
        inputs_done = time.monotonic()

        def progress(update: Progress) -> Awaitable[None] | None:
            return _notify(on_progress, JobProgress.from_comfy(update), job_id)

        result = await comfy.run_prompt(
            prepared.graph,
            output_dir=workdir / "outputs",
            job_id=job_id,
            uploads=prepared.uploads,
            on_progress=progress,
            timeout_s=max(timeout_s - (inputs_done - began), 0.001),
            stall_timeout_s=settings.stall_timeout_s,
            model_source=catalogue.download_hint,
        )
        try:
            await _notify(on_progress, DELIVERING, job_id)
            delivered_at = time.monotonic()
            video = _video_output(result)
            info = await asyncio.to_thread(probe_video, video.path)
            partial = JobResult(
                job_id=job_id,
                action=_action(job),
                prompt_id=result.prompt_id,
                delivery=Delivery(mode="inline", video=info),
                seed=prepared.seed,
                parameters=prepared.parameters,
                inputs=prepared.inputs,
                timings={},
                models=prepared.models,
                comfyui_version=system.comfyui_version,
            )
            timings = _timings(result, input_s=inputs_done - began, delivery_s=0.0, total_s=0.0)
            overhead = len(json.dumps({**partial.envelope(), "timings": timings, "video": ""}))
            delivery = await deliver_video(
                video.path,
                info,
                config=settings.delivery,
                target=target,
                response_overhead_bytes=overhead,
                object_name=f"{_UNSAFE_ID.sub('_', job_id)}-{video.path.name}",
            )
        finally:
            await comfy.cleanup(result, keep=settings.keep_files)
        finished = time.monotonic()
        timings = _timings(
            result,
            input_s=inputs_done - began,
            delivery_s=finished - delivered_at,
            total_s=finished - began,
        )
        log.info("job %s delivered %s in %.1f s", job_id, delivery.mode, finished - began)
        return JobResult(
            job_id=job_id,
            action=_action(job),
            prompt_id=result.prompt_id,
            delivery=delivery,
            seed=prepared.seed,
            parameters=prepared.parameters,
            inputs=prepared.inputs,
            timings=timings,
            models=prepared.models,
            comfyui_version=system.comfyui_version,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


def _job_folder(work_dir: Path, job_id: str) -> Path:
    """A new private folder for one job, with its inputs folder."""
    work_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{_UNSAFE_ID.sub('_', job_id)}-", dir=work_dir))
    (folder / "inputs").mkdir()
    return folder


def _action(job: Job) -> str:
    return "comfyui_workflow" if isinstance(job, RawJob) else f"comfyui_{job.mode}"


def _deadline(options: DeliveryOptions, settings: ServiceSettings) -> float:
    timeout_s = options.timeout_s or settings.job_timeout_s
    if timeout_s > settings.max_job_timeout_s:
        raise InvalidInput(
            f"timeout_s={timeout_s:g} is over this worker's limit of "
            f"{settings.max_job_timeout_s:g} s",
            problems=[
                Problem(
                    message="over the worker's limit",
                    field="timeout_s",
                    value=timeout_s,
                    suggestion=settings.max_job_timeout_s,
                )
            ],
        )
    return timeout_s


def _target(options: DeliveryOptions) -> DeliveryTarget | None:
    s3 = None
    if options.s3Config is not None:
        s3 = S3Settings.from_runpod_s3_config(options.s3Config.model_dump(exclude_none=True))
    if options.upload_url is None and s3 is None:
        return None
    return DeliveryTarget(upload_url=options.upload_url, download_url=options.download_url, s3=s3)


async def _vet_targets(
    target: DeliveryTarget | None, settings: ServiceSettings, resolver: HostResolver | None
) -> None:
    """A caller's upload destinations are user URLs: the input URLs' address policy applies.

    Checked before any work, so a refused destination costs no GPU time. The worker's own
    bucket (BUCKET_* settings) is trusted configuration and not checked.
    """
    if target is None:
        return
    destinations = [("upload_url", target.upload_url)]
    if target.s3 is not None:
        destinations.append(("s3Config.endpointUrl", target.s3.endpoint_url))
    for field_name, text in destinations:
        if text is None:
            continue
        url = parse_url(text, field=field_name, where="")
        await vetted_addresses(
            url,
            field=field_name,
            limits=settings.input_limits,
            resolver=resolver or SystemResolver(),
            where="",
        )


def _timings(
    result: RunResult, *, input_s: float, delivery_s: float, total_s: float
) -> dict[str, float]:
    t = result.timings
    return {
        name: round(value, 3)
        for name, value in (
            ("input_s", input_s),
            ("upload_s", t.upload_s),
            ("preflight_s", t.preflight_s),
            ("queue_wait_s", t.queue_wait_s),
            ("execution_s", t.execution_s),
            ("download_s", t.download_s),
            ("delivery_s", delivery_s),
            ("total_s", total_s),
        )
    }


def _video_output(result: RunResult) -> OutputFile:
    videos = result.of_kind("video")
    if not videos:
        kinds = sorted({o.kind for o in result.outputs})
        raise OutputMissing(
            f"prompt {result.prompt_id} produced no video (outputs: {', '.join(kinds) or 'none'})",
            details={"prompt_id": result.prompt_id, "output_kinds": kinds},
        )
    return videos[-1]


async def _notify(callback: JobProgressCallback | None, update: JobProgress, job_id: str) -> None:
    if callback is None:
        return
    try:
        outcome = callback(update)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception:
        log.exception("the progress callback of job %s failed; the job goes on", job_id)


# -- inputs -------------------------------------------------------------------------------------


async def _prepare(
    job: Job, settings: ServiceSettings, folder: Path, resolver: HostResolver | None
) -> _Prepared:
    if isinstance(job, RawJob):
        return await _prepare_raw(job, settings, folder, resolver)
    return await _prepare_generation(job, settings, folder, resolver)


async def _prepare_generation(
    job: GenerationJob, settings: ServiceSettings, folder: Path, resolver: HostResolver | None
) -> _Prepared:
    """Fetch, decode and fit the inputs, then build the graph on the sizes they settled."""
    mode, options, limits = job.mode, job.options, settings.input_limits
    grid = MODE_DEFAULTS[mode].grid
    budget = default_budget(mode, options.resolution)
    params: dict[str, Any] = dict(job.parameters)
    uploads: dict[str, Path] = {}
    inputs: dict[str, Any] = {}
    # Fit images to the size the workflow will use: the request's rounded to the grid.
    width = None if job.width is None else nearest_multiple(job.width, grid)
    height = None if job.height is None else nearest_multiple(job.height, grid)

    slot: Slot
    for slot in ("image", "end_image"):
        source = job.inputs.get(slot)
        if source is None:
            continue
        image = await load_image(
            source,
            field=f"{slot}_{source.form}",
            limits=limits,
            dest_dir=folder,
            width=width,
            height=height,
            budget_pixels=budget,
            grid=grid,
            fit=options.fit,
            resolver=resolver,
        )
        if width is None or height is None:
            params.setdefault("width", image.width)
            params.setdefault("height", image.height)
            width, height = image.width, image.height
        uploads[PLACEHOLDER_FILES[slot]] = image.path
        params[slot] = PLACEHOLDER_FILES[slot]
        inputs[slot] = {
            "form": source.form,
            "width": image.width,
            "height": image.height,
            "source_width": image.source_width,
            "source_height": image.source_height,
            "fit": options.fit,
        }
    if (
        "image" not in job.inputs
        and options.resolution is not None
        and job.width is None
        and job.height is None
    ):
        params["width"], params["height"] = derive_size(16, 9, budget_pixels=budget, grid=grid)

    audio_source = job.inputs.get("audio")
    if audio_source is not None:
        audio = await load_audio(
            audio_source,
            field=f"audio_{audio_source.form}",
            limits=limits,
            dest_dir=folder,
            resolver=resolver,
        )
        uploads[PLACEHOLDER_FILES["audio"]] = audio.path
        params["audio"] = PLACEHOLDER_FILES["audio"]
        if "audio_seconds" not in params and "chunks" not in params:
            if audio.duration_s > MAX_AUDIO_SECONDS:
                field_name = f"audio_{audio_source.form}"
                raise InvalidInput(
                    f"{field_name}: the audio lasts {audio.duration_s:.1f} s, longer than the "
                    f"{MAX_AUDIO_SECONDS:g} s s2v renders at most; trim it, or give "
                    "audio_seconds to animate only its start",
                    problems=[
                        Problem(
                            message="longer than s2v renders",
                            field=field_name,
                            value=round(audio.duration_s, 3),
                            rule="max_audio_seconds",
                            suggestion=MAX_AUDIO_SECONDS,
                        )
                    ],
                )
            params["audio_seconds"] = round(audio.duration_s, 3)
        inputs["audio"] = {
            "form": audio_source.form,
            "duration_s": round(audio.duration_s, 3),
            "sample_rate": audio.sample_rate,
            "channels": audio.channels,
        }

    built = build(mode, params)
    parameters = {
        k: v for k, v in built.effective_parameters().items() if k not in PLACEHOLDER_FILES
    }
    return _Prepared(
        graph=built.graph,
        uploads=uploads,
        inputs=inputs,
        parameters=parameters,
        seed=built.seed,
        models=[{"file": m.file, "folder": m.folder} for m in built.models],
    )


async def _prepare_raw(
    job: RawJob, settings: ServiceSettings, folder: Path, resolver: HostResolver | None
) -> _Prepared:
    """Fetch the raw request's files as they are; the graph loads them by their names."""
    uploads: dict[str, Path] = {}
    files: list[tuple[str, str, str, str]] = [
        (f"images.{i}.image", "image", item.name, item.image)
        for i, item in enumerate(job.request.images)
    ]
    files += [
        (f"audio.{i}.audio", "audio", item.name, item.audio)
        for i, item in enumerate(job.request.audio)
    ]
    for field_name, kind, name, value in files:
        if name in uploads:
            raise InvalidInput(
                f"{field_name}: the name {name!r} is given twice",
                problems=[Problem(message="duplicate name", field=field_name, value=name)],
            )
        form: InputForm = "url" if value.startswith(("http://", "https://")) else "base64"
        uploads[name] = await load_input(
            InputSource(form, value),
            field=field_name,
            kind="image" if kind == "image" else "audio",
            limits=settings.input_limits,
            dest_dir=folder,
            resolver=resolver,
        )
    return _Prepared(
        graph=job.request.workflow,
        uploads=uploads,
        inputs={name: {"form": "raw"} for name in uploads},
    )


# -- a long-lived worker ------------------------------------------------------------------------


class Worker:
    """One ComfyUI client and the settings, shared by every job a front runs."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        resolver: HostResolver | None = None,
        retry: RetryPolicy | None = None,
        reconnect: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self._retry = retry
        self._reconnect = reconnect
        self._comfy: ComfyClient | None = None

    async def comfy(self) -> ComfyClient:
        """The shared client, opened on first use (inside the running event loop)."""
        if self._comfy is None:
            client = ComfyClient(
                self.settings.comfyui_url,
                input_dir=self.settings.comfyui_input_dir,
                output_dir=self.settings.comfyui_output_dir,
                keep_files=self.settings.keep_files,
                retry=self._retry,
                reconnect=self._reconnect,
            )
            await client.open()
            self._comfy = client
        return self._comfy

    async def warm_up(self) -> dict[str, Any] | None:
        """Wait for ComfyUI and load its node schemas, so the first job starts at once; then
        run the settings' ``warm_up_request``, if any, so its models are loaded as well.

        Returns that job's response (its video dropped), or None without one. A failed warm-up
        job is logged, not raised: real jobs will report the same problem in their own answers.
        """
        comfy = await self.comfy()
        info = await comfy.wait_ready(self.settings.comfyui_ready_timeout_s)
        await comfy.object_info()
        log.info("ComfyUI %s is ready at %s", info.comfyui_version, self.settings.comfyui_url)
        if self.settings.warm_up_request is None:
            return None
        # Its video stays in memory and is dropped: never uploaded to the worker's bucket.
        quiet = dataclasses.replace(
            self.settings,
            delivery=dataclasses.replace(
                self.settings.delivery, s3=None, inline_budget_bytes=_UNLIMITED
            ),
        )
        response = await self.respond(
            self.settings.warm_up_request, job_id="warm-up", settings=quiet
        )
        response.pop("video", None)
        if "error" in response:
            log.warning("the warm-up job failed: %s", response["error"])
        else:
            log.info(
                "the warm-up job ran in %.1f s; its models are loaded",
                response["timings"]["total_s"],
            )
        return response

    async def respond(
        self,
        request: object,
        *,
        job_id: str,
        on_progress: JobProgressCallback | None = None,
        settings: ServiceSettings | None = None,
    ) -> dict[str, Any]:
        """Run a job and answer with its response or its error (cancellation propagates).

        ``settings`` replaces the worker's own for this job (the warm-up job's delivery)."""
        try:
            result = await run_job(
                request,
                job_id=job_id,
                settings=settings or self.settings,
                comfy=await self.comfy(),
                on_progress=on_progress,
                resolver=self.resolver,
            )
        except WanWorkerError as err:
            log.warning("job %s failed: %s", job_id, err)
            return error_response(err, job_id=job_id)
        except Exception as err:
            return error_response(err, job_id=job_id)
        return result.as_dict()

    async def comfyui_recovers(self, timeout_s: float | None = None) -> bool:
        """Whether ComfyUI answers again within ``timeout_s`` (default: the ready timeout)."""
        try:
            await (await self.comfy()).wait_ready(
                self.settings.comfyui_ready_timeout_s if timeout_s is None else timeout_s
            )
        except ComfyUIUnavailable:
            return False
        return True

    async def close(self) -> None:
        if self._comfy is not None:
            await self._comfy.close()
            self._comfy = None
