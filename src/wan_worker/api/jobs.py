"""The API's job runner: queued jobs from the store, run first in, first out on the one ComfyUI.

``JOBS_CONCURRENCY`` slots each wait until ComfyUI can take a job, then claim the oldest queued
job and run it through the shared pipeline (:meth:`Worker.respond`) inside the job's log context.
Progress goes to the store, to ``/stream`` readers and to event-stream subscribers; the outcome is
stored with RunPod's status, counted in the metrics and posted to the job's webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wan_worker.api.metrics import Metrics
from wan_worker.api.outputs import OutputStore
from wan_worker.api.store import JobRecord, JobStatus, JobStore
from wan_worker.api.webhooks import WebhookSender
from wan_worker.errors import Cancelled, ComfyUIUnavailable, WanWorkerError
from wan_worker.logs import job_context
from wan_worker.service import JobProgress, Worker, error_response

log = logging.getLogger(__name__)

RECOVERED_REASON = (
    "the server stopped while this job ran, so its result is lost; submit the job again"
)
SHUTDOWN_WAIT_S = 10.0
"""How long closing waits for cancelled jobs to interrupt their ComfyUI prompts."""
CANCEL_WAIT_S = 30.0
"""How long a cancel request waits for the running job to stop before answering."""
READY_RETRY_S = 1.0
"""Pause before asking again when the readiness gate says ComfyUI cannot take jobs."""
_STREAM_ITEMS: Final = 500
"""Progress items kept per job for ``/stream`` readers who have not read them yet."""
_RECENT_JOBS: Final = 20
"""Finished jobs whose durations estimate how long a full queue takes to move."""

_STATUS_OF_CODE: dict[str, JobStatus] = {"timeout": "TIMED_OUT", "cancelled": "CANCELLED"}
_FINAL: Final = object()
"""Stream marker: the job's final output goes here (read from the store when streamed)."""

Event = tuple[str, dict[str, Any]]
"""("progress" | "status", payload) as event-stream subscribers receive it."""
ReadyGate = Callable[[], Awaitable[None]]
"""Returns once ComfyUI can take a job; raises (ComfyUIUnavailable) when it cannot for now."""


def status_payload(record: JobRecord) -> dict[str, Any]:
    """RunPod's status shape of a job: id, status, output or error, delayTime, executionTime.

    A running job's ``output`` is its latest progress; a failed, cancelled or timed-out one has
    the error sentence in ``error`` and the structured error (error, error_code, details) as
    ``output``.
    """
    out: dict[str, Any] = {"id": record.id, "status": record.status}
    if record.delay_ms is not None:
        out["delayTime"] = record.delay_ms
    if record.execution_ms is not None:
        out["executionTime"] = record.execution_ms
    if record.status == "IN_PROGRESS" and record.progress is not None:
        out["output"] = record.progress
    elif record.status == "COMPLETED":
        out["output"] = record.output
    elif record.terminal:
        out["error"] = record.error
        out["output"] = record.output or {
            "error": record.error,
            "error_code": record.error_code,
            "details": {},
        }
    return out


@dataclass(frozen=True)
class OutputLinks:
    """Where links to a job's served outputs point: ``<base>/v2/<endpoint>/outputs/<id>/<name>``."""

    base_url: str
    endpoint: str

    def url(self, job_id: str, name: str) -> str:
        return f"{self.base_url.rstrip('/')}/v2/{self.endpoint}/outputs/{job_id}/{name}"


class _Subscribers:
    """Per-job queues of events for event-stream readers and waiters."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = {}

    @contextlib.contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        self._queues.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[job_id]

    def publish(self, job_id: str, event: Event) -> None:
        for queue in self._queues.get(job_id, ()):
            if queue.full() and event[0] == "progress":
                continue  # a reader this far behind misses progress, never the final status
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)


class JobRunner:
    """Runs stored jobs on the worker, ``concurrency`` at a time, first in, first out."""

    def __init__(
        self,
        *,
        store: JobStore,
        worker: Worker,
        outputs: OutputStore,
        metrics: Metrics,
        webhooks: WebhookSender,
        default_links: OutputLinks,
        concurrency: int = 1,
        retention_s: float = 86400.0,
        sweep_interval_s: float = 60.0,
        wait_until_ready: ReadyGate | None = None,
        ready_retry_s: float = READY_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.worker = worker
        self.outputs = outputs
        self.metrics = metrics
        self.webhooks = webhooks
        self.default_links = default_links
        self.concurrency = concurrency
        self.retention_s = retention_s
        self.sweep_interval_s = sweep_interval_s
        self.wait_until_ready = wait_until_ready
        self.ready_retry_s = ready_retry_s
        self._clock = clock
        self._held_because: str | None = None
        self._wakeup = asyncio.Event()
        self._slots: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._links: dict[str, OutputLinks] = {}
        self._streams: dict[str, deque[object]] = {}
        self._durations: deque[float] = deque(maxlen=_RECENT_JOBS)
        self._subscribers = _Subscribers()
        self._closing = False

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Fail the jobs a dead process left running, then start the slots; returns those ids."""
        recovered = self.store.recover(RECOVERED_REASON)
        for job_id in recovered:
            with job_context(job_id):
                log.warning("job %s was running when the server stopped; marked FAILED", job_id)
                record = self.store.get(job_id)
                if record is not None:
                    self._announce(record)
        self._closing = False
        await self.worker.comfy()  # one shared client before several slots ask for it
        self._slots = [
            asyncio.create_task(self._slot(), name=f"job-slot-{i}") for i in range(self.concurrency)
        ]
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="job-sweeper")
        self._refresh_gauges()
        return recovered

    async def close(self) -> None:
        """Stop taking jobs; running ones are cancelled (their prompts interrupted) and left
        IN_PROGRESS for the next start to fail; queued ones stay queued."""
        self._closing = True
        for task in [*self._slots, *self._running.values()]:
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        pending = [*self._slots, *self._running.values()]
        if self._sweeper is not None:
            pending.append(self._sweeper)
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_WAIT_S)
        self._slots, self._sweeper = [], None

    # -- the front's requests ---------------------------------------------------------------

    def submit(
        self,
        job_id: str,
        job_input: dict[str, Any],
        *,
        webhook: str | None = None,
        s3_config: dict[str, Any] | None = None,
        links: OutputLinks | None = None,
    ) -> JobRecord:
        """Queue a job (already validated) and wake a slot."""
        record = self.store.add(job_id, job_input, webhook=webhook, s3_config=s3_config)
        if links is not None:
            self._links[job_id] = links
        self._streams[job_id] = deque(maxlen=_STREAM_ITEMS)
        self._wakeup.set()
        self._refresh_gauges()
        return record

    async def wait(self, job_id: str, timeout_s: float) -> JobRecord | None:
        """The job's record once it finished, or as it stands after ``timeout_s``."""
        with self._subscribers.subscribe(job_id) as queue:
            record = self.store.get(job_id)
            if record is None or record.terminal:
                return record
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while (await queue.get())[0] != "status":
                        pass
        return self.store.get(job_id)

    @contextlib.contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Queue[Event]]:
        """Events of one job: each progress update, then its final status."""
        with self._subscribers.subscribe(job_id) as queue:
            yield queue

    async def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued job at once, or a running one by cancelling its task (which
        interrupts its ComfyUI prompt); a finished job is left as it is. None if unknown."""
        record = self.store.cancel_queued(job_id)
        if record is not None:
            with job_context(job_id):
                log.info("job %s cancelled while queued", job_id)
                self._announce(record)
            return record
        task = self._running.get(job_id)
        if task is not None:
            self._cancel_requested.add(job_id)
            task.cancel()
            await asyncio.wait([task], timeout=CANCEL_WAIT_S)
        return self.store.get(job_id)

    def purge(self) -> int:
        """Cancel every queued job, those queued before a restart too, and announce each (its
        webhook included); returns how many."""
        purged = self.store.purge_queue()
        for record in purged:
            with job_context(record.id):
                log.info("job %s purged from the queue", record.id)
                self._announce(record)
        self._refresh_gauges()
        return len(purged)

    async def fail_running(self, reason: str) -> list[str]:
        """Fail every running job as comfyui_unavailable with ``reason`` (ComfyUI died under
        them); their prompts are abandoned. Returns their ids."""
        failed: list[str] = []
        for job_id, task in list(self._running.items()):
            with job_context(job_id):
                error = ComfyUIUnavailable(reason)
                record = self._settle(job_id, "FAILED", error_response(error, job_id=job_id))
            if record is not None:
                failed.append(job_id)
            task.cancel()
        return failed

    def stream(self, job_id: str, record: JobRecord) -> list[dict[str, Any]]:
        """Progress items (and, once completed, the output) not yet read, as RunPod's stream."""
        items = self._streams.get(job_id)
        if items is None:
            return []
        taken = list(items)
        items.clear()
        if record.terminal:
            self._streams.pop(job_id, None)
        return [
            {"output": record.output if item is _FINAL else item}
            for item in taken
            if item is not _FINAL or record.status == "COMPLETED"
        ]

    def retry_after_s(self) -> int:
        """Seconds until a queue place is likely to free: a recent job's duration per slot."""
        if not self._durations:
            return 1
        mean = sum(self._durations) / len(self._durations)
        return max(1, math.ceil(mean / self.concurrency))

    def running_count(self) -> int:
        return len(self._running)

    # -- running jobs -----------------------------------------------------------------------

    async def _slot(self) -> None:
        while True:
            self._wakeup.clear()
            if self.store.queue_depth() == 0:
                await self._wakeup.wait()
                continue
            await self._until_comfyui_ready()
            record = self.store.claim_next()
            if record is None:
                continue  # another slot took it, or it was cancelled while we waited
            task = asyncio.create_task(self._execute(record), name=f"job-{record.id}")
            self._running[record.id] = task
            self._refresh_gauges()
            try:
                await asyncio.wait([task])
                if not task.cancelled() and task.exception() is not None:
                    log.error("job %s broke the runner", record.id, exc_info=task.exception())
            finally:
                self._running.pop(record.id, None)
                self._cancel_requested.discard(record.id)
                self._refresh_gauges()

    async def _until_comfyui_ready(self) -> None:
        """Hold the queue until ComfyUI can take a job (a restart, a supervisor that gave up):
        jobs wait IN_QUEUE, never claimed, instead of failing on a ComfyUI that is down."""
        if self.wait_until_ready is None:
            return
        while True:
            try:
                await self.wait_until_ready()
            except Exception as err:
                reason = err.message if isinstance(err, WanWorkerError) else repr(err)
                if reason != self._held_because:
                    log.warning("queued jobs wait for ComfyUI: %s", reason)
                    self._held_because = reason
                await asyncio.sleep(self.ready_retry_s)
                continue
            if self._held_because is not None:
                log.info("ComfyUI can take jobs again; the queue moves on")
                self._held_because = None
            return

    async def _execute(self, record: JobRecord) -> None:
        job_id = record.id
        with job_context(job_id):
            log.info("job %s started", job_id)
            request = dict(record.input)
            if record.s3_config is not None and "s3Config" not in request:
                request["s3Config"] = record.s3_config
            began = self._clock()
            try:
                response = await self.worker.respond(
                    request, job_id=job_id, on_progress=self._progress_of(job_id)
                )
                if response.get("delivery", {}).get("mode") == "local":
                    response = await self._serve_output(job_id, response)
            except asyncio.CancelledError:
                if self._closing:
                    raise
                if job_id not in self._cancel_requested:
                    return  # failed by fail_running, which settled it already
                error = Cancelled(
                    f"job {job_id} was cancelled by request; its ComfyUI prompt was interrupted"
                )
                self._settle(job_id, "CANCELLED", error_response(error, job_id=job_id))
                return
            except Exception as err:
                response = error_response(err, job_id=job_id)
            self._durations.append(self._clock() - began)
            code = response.get("error_code")
            if code is None:
                self._settle(job_id, "COMPLETED", response)
            else:
                self._settle(job_id, _STATUS_OF_CODE.get(str(code), "FAILED"), response)

    def _progress_of(self, job_id: str) -> Callable[[JobProgress], None]:
        def on_progress(update: JobProgress) -> None:
            progress = update.as_dict()
            self.store.set_progress(job_id, progress)
            self._streams.setdefault(job_id, deque(maxlen=_STREAM_ITEMS)).append(progress)
            self._subscribers.publish(job_id, ("progress", progress))

        return on_progress

    async def _serve_output(self, job_id: str, response: dict[str, Any]) -> dict[str, Any]:
        """Adopt a video kept on disk into the served outputs and answer with its link."""
        kept = Path(str(response["video"]))
        served = await asyncio.to_thread(self.outputs.adopt, job_id, kept)
        links = self._links.get(job_id, self.default_links)
        delivery = {k: v for k, v in response["delivery"].items() if k != "note"}
        delivery["mode"] = "served"
        delivery["note"] = (
            "over the inline budget with no bucket to upload to: served by this API until it "
            "expires (OUTPUT_TTL_S)"
        )
        log.info("job %s output served as %s", job_id, served.name)
        return {**response, "video": links.url(job_id, served.name), "delivery": delivery}

    def _settle(self, job_id: str, status: JobStatus, response: dict[str, Any]) -> JobRecord | None:
        """Store the outcome once; the first outcome of a job wins."""
        before = self.store.get(job_id)
        if before is None or before.terminal:
            return None
        if status == "COMPLETED":
            record = self.store.finish(job_id, status, output=response)
            log.info("job %s completed", job_id)
        else:
            record = self.store.finish(
                job_id,
                status,
                output=response,
                error=str(response.get("error")),
                error_code=str(response.get("error_code")),
            )
            log.warning("job %s ended %s: %s", job_id, status, record.error)
        self._announce(record)
        return record

    def _announce(self, record: JobRecord) -> None:
        """Tell everyone a job finished: stream readers, subscribers, metrics, its webhook."""
        items = self._streams.get(record.id)
        if items is not None:
            items.append(_FINAL)
        self._links.pop(record.id, None)
        payload = status_payload(record)
        self._subscribers.publish(record.id, ("status", payload))
        timings = (record.output or {}).get("timings") if record.status == "COMPLETED" else None
        self.metrics.job_finished(record.status, timings if isinstance(timings, dict) else {})
        self._refresh_gauges()
        if record.webhook:
            self.webhooks.submit(record.webhook, payload)

    def _refresh_gauges(self) -> None:
        self.metrics.set_queue_depth(self.store.queue_depth())
        self.metrics.set_in_progress(len(self._running))

    async def _sweep_forever(self) -> None:
        while True:
            self.sweep()
            await asyncio.sleep(self.sweep_interval_s)

    def sweep(self) -> None:
        """Delete expired job records and served outputs; forget streams of deleted jobs."""
        try:
            expired = self.store.expire(self.retention_s)
            removed = self.outputs.sweep()
        except (OSError, WanWorkerError):
            log.exception("sweeping expired jobs and outputs failed; trying again later")
            return
        for job_id in [j for j in self._streams if self.store.get(j) is None]:
            del self._streams[job_id]
        if expired or removed:
            log.info("removed %d expired job records and %d served outputs", expired, len(removed))
