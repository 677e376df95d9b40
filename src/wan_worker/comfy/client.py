"""An async client for one ComfyUI server: preflight, upload, queue, follow, fetch, clean up.

One :class:`ComfyClient` holds one HTTP session and one websocket, and runs many prompts at
once, telling their events apart by prompt id. It knows ComfyUI, not what the graphs mean:
callers pass hints such as where a model can be downloaded.

    async with ComfyClient("http://127.0.0.1:8188") as comfy:
        await comfy.wait_ready(60)
        result = await comfy.run_prompt(graph, output_dir=out, uploads={"ref.png": path})
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import mimetypes
import shutil
import time
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiohttp
from yarl import URL

from wan_worker.comfy.events import Backoff, EventStream
from wan_worker.comfy.follow import PromptWatch
from wan_worker.comfy.info import SystemInfo
from wan_worker.comfy.inputs import (
    FILE_INPUTS,
    UPLOAD_ROOT,
    check_job_id,
    job_subfolder,
    point_inputs,
    prefix_outputs,
    upload_name,
)
from wan_worker.comfy.outputs import OutputFile, OutputRef, download, find_outputs, local_name
from wan_worker.comfy.progress import Progress, ProgressCallback, ProgressTracker
from wan_worker.comfy.rejections import (
    ModelSource,
    graph_error,
    issues_from_rejection,
    model_folder,
)
from wan_worker.comfy.schema import GraphIssue, NodeSchemas, validate_graph
from wan_worker.comfy.state import QueueState, outcome, read_history, read_queue
from wan_worker.comfy.transport import ComfyHttp, RetryPolicy, ServerError
from wan_worker.errors import (
    Cancelled,
    ComfyUIUnavailable,
    ExecutionFailed,
    InvalidInput,
    OutputMissing,
    Timeout,
    ValidationFailed,
    WanWorkerError,
)

log = logging.getLogger(__name__)

_POLL_S = 0.5


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each stage of one run."""

    upload_s: float = 0.0
    preflight_s: float = 0.0
    queue_wait_s: float = 0.0
    execution_s: float = 0.0
    download_s: float = 0.0

    @property
    def total_s(self) -> float:
        stages = (self.upload_s, self.preflight_s, self.queue_wait_s, self.execution_s)
        return sum(stages) + self.download_s


@dataclass(frozen=True)
class RunResult:
    """A finished prompt: its fetched outputs and where the time went."""

    job_id: str
    prompt_id: str
    outputs: tuple[OutputFile, ...]
    timings: Timings
    uploads: Mapping[str, str] = field(default_factory=dict)
    """Graph name -> the name the graph used on the server (``wan-worker/<job>/<file>``)."""

    def of_kind(self, kind: str) -> list[OutputFile]:
        """The outputs of one kind (``video``, ``image``, ``audio``, ``other``)."""
        return [o for o in self.outputs if o.kind == kind]


@dataclass
class _Job:
    """Book-keeping of one run_prompt call, for cancel and for cleaning up after failure."""

    job_id: str
    task: asyncio.Task[Any] | None
    prompt_id: str | None = None
    queued: bool = False
    settled: bool = False
    cancel_requested: bool = False
    uploaded: bool = False
    downloads: list[Path] = field(default_factory=list)
    queued_at: float = 0.0
    started_at: float | None = None
    progress: Progress | None = None


class ComfyClient:
    """A client of one ComfyUI server; use as ``async with ComfyClient(url) as comfy``.

    ``input_dir`` and ``output_dir`` are the server's own folders when it runs on this machine;
    given them, :meth:`cleanup` also removes a job's uploads and the files ComfyUI wrote.
    ``keep_files`` keeps everything for debugging.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        input_dir: Path | None = None,
        output_dir: Path | None = None,
        keep_files: bool = False,
        request_timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        reconnect: Backoff | None = None,
        reconnect_timeout_s: float = 60.0,
        history_wait_s: float = 10.0,
        interrupt_grace_s: float = 5.0,
    ) -> None:
        self.url = URL(url)
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise InvalidInput(f"ComfyUI URL {url!r} must be http(s)://host[:port]")
        self.client_id = client_id or str(uuid.uuid4())
        self.input_dir = input_dir
        self.output_dir = output_dir
        self.keep_files = keep_files
        self.reconnect_timeout_s = reconnect_timeout_s
        self.history_wait_s = history_wait_s
        self.interrupt_grace_s = interrupt_grace_s
        self._request_timeout_s = request_timeout_s
        self._retry = retry or RetryPolicy()
        self._reconnect = reconnect or Backoff()
        self._session: aiohttp.ClientSession | None = None
        self._http: ComfyHttp | None = None
        self._events: EventStream | None = None
        self._object_info: dict[str, Any] | None = None
        self._schemas: NodeSchemas | None = None
        self._jobs: dict[str, _Job] = {}

    async def __aenter__(self) -> ComfyClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the HTTP session (the websocket opens on the first prompt)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._http = ComfyHttp(
                self._session,
                self.url,
                retry=self._retry,
                request_timeout_s=self._request_timeout_s,
            )

    async def close(self) -> None:
        """Close the websocket and the session."""
        if self._events is not None:
            await self._events.close()
            self._events = None
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._http = None

    @property
    def http(self) -> ComfyHttp:
        if self._http is None:
            raise RuntimeError("ComfyClient is not open; use 'async with ComfyClient(url)'")
        return self._http

    # -- readiness and server info -------------------------------------------------------

    async def system_info(self) -> SystemInfo:
        """The server's versions and devices (``GET /system_stats``)."""
        return SystemInfo.from_system_stats(await self.http.get_json("/system_stats"))

    async def wait_ready(self, timeout_s: float = 60.0) -> SystemInfo:
        """Poll ``/system_stats`` with backoff until it answers or ``timeout_s`` seconds pass."""
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        last_error = "no attempt made"
        while True:
            try:
                return await self.system_info()
            except ComfyUIUnavailable as err:
                last_error = str(err.details.get("reason") or err.message)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ComfyUIUnavailable(
                    f"ComfyUI at {self.url} was not ready within {timeout_s:g} s "
                    f"(last error: {last_error})",
                    details={"url": str(self.url), "last_error": last_error},
                )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 2.0)

    async def free(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """Ask ComfyUI to unload cached models and free memory (``POST /free``)."""
        await self.http.post_ok(
            "/free", {"unload_models": unload_models, "free_memory": free_memory}
        )

    async def queue_state(self) -> QueueState:
        """What ComfyUI is running and has waiting (``GET /queue``)."""
        return await read_queue(self.http)

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The ``/history`` entry of a finished prompt, or None while unknown or running."""
        return await read_history(self.http, prompt_id)

    # -- preflight --------------------------------------------------------------------------

    async def object_info(self, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /object_info``, fetched once and cached until ``refresh``."""
        if self._object_info is None or refresh:
            body = await self.http.get_json("/object_info")
            if not isinstance(body, dict):
                raise self.http.unavailable("GET", "/object_info", "the answer is not an object")
            self._object_info = body
            self._schemas = None
        return self._object_info

    async def schemas(self, *, refresh: bool = False) -> NodeSchemas:
        """The node schemas of the server (cached with :meth:`object_info`)."""
        info = await self.object_info(refresh=refresh)
        if self._schemas is None:
            self._schemas = NodeSchemas.from_object_info(info)
        return self._schemas

    async def preflight(
        self,
        graph: Mapping[str, Any],
        *,
        uploaded: Iterable[str] = (),
        model_source: ModelSource | None = None,
    ) -> None:
        """Check ``graph`` against the server's schemas before queueing it.

        Raises MissingNodes, MissingModels (with ``model_source``'s download hint) or
        ValidationFailed. ``uploaded`` names input files the job has put on the server,
        which the cached schemas cannot list yet. A miss refreshes the schemas once.
        """
        known = set(uploaded)
        issues = self._issues(graph, await self.schemas(), known)
        if any(_may_be_stale(i) for i in issues):
            issues = self._issues(graph, await self.schemas(refresh=True), known)
        if issues:
            raise graph_error(issues, model_source=model_source, source="the preflight")

    def _issues(
        self, graph: Mapping[str, Any], schemas: NodeSchemas, uploaded: set[str]
    ) -> list[GraphIssue]:
        if not all(isinstance(node, Mapping) for node in graph.values()):
            raise ValidationFailed("the graph must map node ids to node objects")
        unknown = [
            GraphIssue(
                kind="missing_node_type",
                message="node type not found",
                node_id=str(node_id),
                class_type=None if node.get("class_type") is None else str(node["class_type"]),
            )
            for node_id, node in graph.items()
            if node.get("class_type") not in schemas
        ]
        if unknown:
            return unknown
        issues = validate_graph(graph, schemas)
        return [i for i in issues if not _is_known_file(i, graph, uploaded)]

    # -- inputs ---------------------------------------------------------------------------

    async def upload(self, path: Path, *, job_id: str, name: str | None = None) -> str:
        """Upload a local file into the job's input subfolder; returns the name for a loader."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"input file {path} does not exist", details={"path": str(path)})
        subfolder = job_subfolder(job_id)
        filename = name or path.name
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        opened: list[IO[bytes]] = []

        def form() -> aiohttp.FormData:
            handle = path.open("rb")
            opened.append(handle)
            data = aiohttp.FormData()
            data.add_field("image", handle, filename=filename, content_type=mime)
            data.add_field("type", "input")
            data.add_field("subfolder", subfolder)
            data.add_field("overwrite", "true")
            return data

        try:
            answer = await self.http.call("POST", "/upload/image", data=form)
        except ServerError as err:
            raise self.http.unavailable(
                "POST", "/upload/image", f"HTTP {err.answer.status}: {err.answer.snippet()}"
            ) from None
        finally:
            for handle in opened:
                handle.close()
        body = answer.json if isinstance(answer.json, dict) else {}
        if answer.status != 200 or not isinstance(body.get("name"), str):
            raise self.http.unavailable(
                "POST", "/upload/image", f"HTTP {answer.status}: {answer.snippet()}"
            )
        stored_sub = str(body.get("subfolder") or "")
        return f"{stored_sub}/{body['name']}" if stored_sub else str(body["name"])

    async def upload_inputs(self, job_id: str, uploads: Mapping[str, Path | str]) -> dict[str, str]:
        """Upload each file; returns graph name -> server name, for :func:`point_inputs`."""
        taken: set[str] = set()
        names: dict[str, str] = {}
        for graph_name, source in uploads.items():
            path = Path(source)
            names[graph_name] = await self.upload(
                path, job_id=job_id, name=upload_name(graph_name, path, taken)
            )
        return names

    # -- queue ----------------------------------------------------------------------------

    async def queue_prompt(
        self,
        graph: Mapping[str, Any],
        *,
        prompt_id: str | None = None,
        model_source: ModelSource | None = None,
    ) -> str:
        """``POST /prompt`` under our client id and prompt id; returns the prompt id.

        A refusal becomes MissingNodes, MissingModels or ValidationFailed listing every node
        error. A 200 that still lists node errors is a failure too: what ComfyUI queued of
        the graph is interrupted and deleted first.
        """
        prompt_id = prompt_id or str(uuid.uuid4())
        body = {"prompt": dict(graph), "client_id": self.client_id, "prompt_id": prompt_id}
        delays = self._retry.delays()
        attempt = 0
        while True:
            try:
                answer = await self.http.call("POST", "/prompt", json_body=body, retry=False)
            except ServerError as err:
                if await self._is_known(prompt_id):
                    return prompt_id
                if attempt >= len(delays):
                    raise self.http.unavailable(
                        "POST", "/prompt", f"HTTP {err.answer.status}: {err.answer.snippet()}"
                    ) from None
                await asyncio.sleep(delays[attempt])
                attempt += 1
                continue
            break
        reply = answer.json if isinstance(answer.json, dict) else None
        if answer.status == 200 and reply is not None:
            issues = issues_from_rejection({"node_errors": reply.get("node_errors")})
            if issues:
                await self.abandon(prompt_id)
                raise graph_error(issues, model_source=model_source)
            return prompt_id
        if answer.status == 400 and reply is not None:
            raise graph_error(issues_from_rejection(reply), model_source=model_source)
        if answer.status == 400:
            raise ValidationFailed(f"ComfyUI refused the graph: {answer.snippet()}")
        raise self.http.unavailable(
            "POST", "/prompt", f"unexpected HTTP {answer.status}: {answer.snippet()}"
        )

    async def _is_known(self, prompt_id: str) -> bool:
        """Whether the server has the prompt queued, running or finished."""
        try:
            return (
                prompt_id in await self.queue_state() or await self.history(prompt_id) is not None
            )
        except ComfyUIUnavailable:
            return False

    # -- interrupt and cancel -------------------------------------------------------------

    async def abandon(self, prompt_id: str) -> None:
        """Delete the prompt from the queue and interrupt it if running; wait until it is gone.

        Only our own prompt is interrupted: the interrupt is sent only while it is the one
        running. Best effort: a server that cannot be reached is logged, not raised.
        """
        deadline = time.monotonic() + self.interrupt_grace_s
        try:
            await self.http.post_ok("/queue", {"delete": [prompt_id]})
            while True:
                state = await self.queue_state()
                if prompt_id not in state:
                    return
                if prompt_id in state.running:
                    await self.http.post_ok("/interrupt", {"prompt_id": prompt_id})
                else:
                    await self.http.post_ok("/queue", {"delete": [prompt_id]})
                if time.monotonic() >= deadline:
                    log.warning("prompt %s is still queued after interrupt and delete", prompt_id)
                    return
                await asyncio.sleep(0.05)
        except ComfyUIUnavailable as err:
            log.warning("could not interrupt prompt %s: %s", prompt_id, err)

    def cancel(self, job_id: str) -> bool:
        """Cancel a running :meth:`run_prompt`; it raises Cancelled. False when no such job."""
        job = self._jobs.get(job_id)
        if job is None or job.task is None or job.task.done():
            return False
        job.cancel_requested = True
        job.task.cancel(f"job {job_id} cancelled")
        return True

    # -- the whole run --------------------------------------------------------------------

    async def run_prompt(
        self,
        graph: Mapping[str, Any],
        *,
        output_dir: Path,
        job_id: str | None = None,
        uploads: Mapping[str, Path | str] | None = None,
        on_progress: ProgressCallback | None = None,
        timeout_s: float | None = None,
        stall_timeout_s: float | None = None,
        model_source: ModelSource | None = None,
        preflight: bool = True,
    ) -> RunResult:
        """Upload, preflight, queue, follow and fetch one graph; the main entry point.

        ``uploads`` maps a file name used by the graph's LoadImage/LoadAudio nodes to a local
        file. ``timeout_s`` bounds the whole run; ``stall_timeout_s`` fails a prompt that sends no
        event for that long while ComfyUI is not running it. On a deadline, a stall, a cancel
        (:meth:`cancel`, or cancelling the calling task) or any failure after queueing, the
        prompt is interrupted and deleted from ComfyUI's queue. Raises Timeout, Cancelled
        (asyncio cancellation itself propagates as CancelledError), or the failure's error.
        """
        job_id = check_job_id(job_id or uuid.uuid4().hex)
        if job_id in self._jobs:
            raise InvalidInput(f"job {job_id} is already running on this client")
        job = _Job(job_id, asyncio.current_task())
        self._jobs[job_id] = job
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                return await self._run(
                    job,
                    graph,
                    output_dir=Path(output_dir),
                    uploads=uploads or {},
                    on_progress=on_progress,
                    stall_timeout=stall_timeout_s,
                    model_source=model_source,
                    preflight=preflight,
                )
        except TimeoutError:
            if not scope.expired():
                raise
            await asyncio.shield(self._give_up(job))
            raise Timeout(
                f"job {job_id} ran past its {timeout_s:g} s deadline {_where(job)} "
                "and was interrupted",
                details={"job_id": job_id, "prompt_id": job.prompt_id, "timeout_s": timeout_s},
            ) from None
        except asyncio.CancelledError:
            await asyncio.shield(self._give_up(job))
            if not job.cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise Cancelled(
                f"job {job_id} was cancelled {_where(job)} and interrupted",
                details={"job_id": job_id, "prompt_id": job.prompt_id},
            ) from None
        except WanWorkerError:
            await asyncio.shield(self._give_up(job))
            raise
        finally:
            self._jobs.pop(job_id, None)

    async def _run(
        self,
        job: _Job,
        graph: Mapping[str, Any],
        *,
        output_dir: Path,
        uploads: Mapping[str, Path | str],
        on_progress: ProgressCallback | None,
        stall_timeout: float | None,
        model_source: ModelSource | None,
        preflight: bool,
    ) -> RunResult:
        began = time.monotonic()
        job.uploaded = bool(uploads)
        names = await self.upload_inputs(job.job_id, uploads)
        ready = prefix_outputs(point_inputs(graph, names) if names else graph, job.job_id)
        uploaded_at = time.monotonic()
        if preflight:
            await self.preflight(ready, uploaded=names.values(), model_source=model_source)
        checked_at = time.monotonic()

        events = await self._event_stream()
        prompt_id = str(uuid.uuid4())
        job.prompt_id = prompt_id
        queue = events.subscribe(prompt_id)
        try:
            await self.queue_prompt(ready, prompt_id=prompt_id, model_source=model_source)
            job.queued = True
            job.queued_at = time.monotonic()
            tracker = ProgressTracker(prompt_id, ready)
            await self._emit(job, on_progress, tracker.snapshot())
            watch = PromptWatch(
                http=self.http,
                events=events,
                prompt_id=prompt_id,
                tracker=tracker,
                emit=lambda progress: self._emit(job, on_progress, progress),
                reconnect_timeout_s=self.reconnect_timeout_s,
                history_wait_s=self.history_wait_s,
                stall_timeout_s=stall_timeout,
            )
            try:
                entry = await watch.run(queue)
            except (ExecutionFailed, Cancelled):
                job.settled = True
                raise
            finally:
                job.started_at = watch.started_at
            job.settled = True
        finally:
            events.unsubscribe(prompt_id)
        finished_at = time.monotonic()

        refs = find_outputs(entry.get("outputs"))
        if not refs:
            raise OutputMissing(
                f"prompt {prompt_id} finished but ComfyUI reported no output files",
                details={"prompt_id": prompt_id, "outputs": entry.get("outputs")},
            )
        files = await self._download_all(job, refs, output_dir)
        started = job.started_at or job.queued_at
        return RunResult(
            job_id=job.job_id,
            prompt_id=prompt_id,
            outputs=tuple(files),
            timings=Timings(
                upload_s=uploaded_at - began,
                preflight_s=checked_at - uploaded_at,
                queue_wait_s=max(started - job.queued_at, 0.0),
                execution_s=finished_at - started,
                download_s=time.monotonic() - finished_at,
            ),
            uploads=names,
        )

    async def _event_stream(self) -> EventStream:
        if self._events is None:
            if self._session is None:
                raise RuntimeError("ComfyClient is not open; use 'async with ComfyClient(url)'")
            ws_url = self.http.url("/ws").with_scheme("wss" if self.url.scheme == "https" else "ws")
            self._events = EventStream(
                self._session, ws_url.with_query(clientId=self.client_id), backoff=self._reconnect
            )
        if not await self._events.wait_connected(self.reconnect_timeout_s):
            raise ComfyUIUnavailable(
                f"ComfyUI at {self.url} did not accept a websocket within "
                f"{self.reconnect_timeout_s:g} s (last error: {self._events.last_error})",
                details={"url": str(self.url), "last_error": self._events.last_error},
            )
        return self._events

    async def _emit(
        self, job: _Job, on_progress: ProgressCallback | None, progress: Progress
    ) -> None:
        job.progress = progress
        if on_progress is None:
            return
        try:
            result = on_progress(progress)
            if inspect.isawaitable(result):
                await _awaited(result)
        except Exception:
            log.exception("the progress callback of job %s failed; the job goes on", job.job_id)

    # -- outputs and cleanup --------------------------------------------------------------

    async def fetch_outputs(self, prompt_id: str, output_dir: Path) -> list[OutputFile]:
        """Fetch every output of a finished prompt into ``output_dir``."""
        entry = await self.history(prompt_id)
        if entry is None:
            raise OutputMissing(f"ComfyUI has no history for prompt {prompt_id}")
        refs = find_outputs(outcome(prompt_id, entry).get("outputs"))
        if not refs:
            raise OutputMissing(f"prompt {prompt_id} finished but ComfyUI reported no outputs")
        return await self._download_all(None, refs, Path(output_dir))

    async def _download_all(
        self, job: _Job | None, refs: list[OutputRef], output_dir: Path
    ) -> list[OutputFile]:
        taken = await asyncio.to_thread(_existing_names, output_dir)
        files: list[OutputFile] = []
        for ref in refs:
            name = local_name(ref, taken)
            taken.add(name)
            if job is not None:
                job.downloads.append(output_dir / name)
            files.append(await download(self.http, ref, output_dir / name))
        return files

    async def cleanup(self, result: RunResult, *, keep: bool | None = None) -> None:
        """Remove a finished job's files: local outputs, and (local server) inputs and outputs.

        ``keep`` (default: the client's ``keep_files``) leaves everything for debugging.
        """
        if self.keep_files if keep is None else keep:
            log.info("keeping the files of job %s", result.job_id)
            return
        for output in result.outputs:
            output.path.unlink(missing_ok=True)
        await asyncio.to_thread(
            self._remove_server_files, result.job_id, [o.source for o in result.outputs]
        )

    async def _give_up(self, job: _Job) -> None:
        """After a failure: stop the prompt and remove what the job left behind."""
        if job.queued and not job.settled and job.prompt_id is not None:
            await self.abandon(job.prompt_id)
        for path in job.downloads:
            path.unlink(missing_ok=True)
        if not self.keep_files:
            await asyncio.to_thread(self._remove_server_files, job.job_id, [])

    def _remove_server_files(self, job_id: str, outputs: list[OutputRef]) -> None:
        if self.input_dir is not None:
            folder = self.input_dir / UPLOAD_ROOT / job_id
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        if self.output_dir is not None:
            root = self.output_dir.resolve()
            for ref in outputs:
                if ref.type != "output":
                    continue
                path = (root / ref.subfolder / ref.filename).resolve()
                if path.is_relative_to(root):
                    path.unlink(missing_ok=True)
            folder = root / UPLOAD_ROOT / job_id
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def _existing_names(folder: Path) -> set[str]:
    """Create ``folder`` if needed; the names already in it."""
    folder.mkdir(parents=True, exist_ok=True)
    return {p.name for p in folder.iterdir()}


def _may_be_stale(issue: GraphIssue) -> bool:
    """Whether a fresh ``/object_info`` could make the issue go away."""
    return (
        issue.kind in ("missing_node_type", "custom_validation_failed")
        or model_folder(issue) is not None
    )


def _is_known_file(issue: GraphIssue, graph: Mapping[str, Any], uploaded: set[str]) -> bool:
    """An input-file issue about a file we uploaded, or one in a subfolder the lists omit."""
    if issue.class_type is None or issue.input_name is None or issue.node_id is None:
        return False
    if issue.input_name not in FILE_INPUTS.get(issue.class_type, ()):
        return False
    value = graph.get(issue.node_id, {}).get("inputs", {}).get(issue.input_name)
    return isinstance(value, str) and (value in uploaded or "/" in value)


def _where(job: _Job) -> str:
    """Words for how far the job had got, for Timeout and Cancelled messages."""
    if job.prompt_id is None:
        return "before its prompt was queued"
    if job.progress is None:
        return "while queueing"
    return f"while {job.progress.message}"


async def _awaited(value: Awaitable[None]) -> None:
    await value
