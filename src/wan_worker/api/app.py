"""The HTTP front: RunPod's endpoint routes (``/v2/{endpoint}/run``, ``/status``...) over the
job store and runner, so RunPod's SDK and clients work unchanged against a self-hosted server.

Requests are checked here (token, body size, JSON, queue depth, the job input itself) before a
job is queued; everything a job does happens in the runner, through the shared pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wan_worker import __version__
from wan_worker.api.jobs import JobRunner, OutputLinks, ReadyGate, status_payload
from wan_worker.api.metrics import Metrics
from wan_worker.api.outputs import OutputStore
from wan_worker.api.settings import ApiSettings
from wan_worker.api.store import JobRecord, JobStore
from wan_worker.api.webhooks import WebhookConfig, WebhookSender, check_webhook_url
from wan_worker.errors import (
    ComfyUIUnavailable,
    InputTooLarge,
    InvalidInput,
    Problem,
    WanWorkerError,
)
from wan_worker.logs import configure_logging, job_context, register_secret
from wan_worker.media import HostResolver
from wan_worker.media.fetch import check_url_host, parse_url
from wan_worker.service import ServiceSettings, Worker, error_response, parse_job
from wan_worker.service import request_json_schema as input_json_schema

log = logging.getLogger(__name__)

ComfyUIReady = Callable[[], Awaitable[bool]]
ComfyUIAlive = Callable[[], bool]

MAX_RUNSYNC_WAIT_MS = 300_000
"""RunPod's upper bound for ``/runsync?wait=``."""
READY_PING_TIMEOUT_S = 2.0
EVENT_KEEPALIVE_S = 15.0
KEEP_ALIVE_S = 30
"""Idle keep-alive connections are kept longer than clients keep theirs (aiohttp: 15 s), so a
client never sends on a connection the server is closing."""
GRACEFUL_SHUTDOWN_S = 5
"""On SIGTERM, open requests (a /runsync wait, an event stream) get this long to end."""
_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "input_too_large",
    429: "queue_full",
}


class ApiError(Exception):
    """A refusal of the HTTP layer itself, answered in the one error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _HTTP_CODES.get(status, "invalid_input")
        self.message = message
        self.details = details or {}
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": f"{self.code}: {self.message}", "error_code": self.code}
        return JSONResponse(
            {**body, "details": self.details}, status_code=self.status, headers=self.headers
        )


def _error_json(err: WanWorkerError) -> JSONResponse:
    status = 413 if isinstance(err, InputTooLarge) else 400
    return JSONResponse(error_response(err), status_code=status)


def create_app(
    api: ApiSettings,
    service: ServiceSettings,
    *,
    worker: Worker | None = None,
    resolver: HostResolver | None = None,
    comfyui_ready: ComfyUIReady | None = None,
    wait_until_ready: ReadyGate | None = None,
    comfyui_alive: ComfyUIAlive | None = None,
) -> FastAPI:
    """The API on ``service``'s ComfyUI; the lifespan opens the store, runner and webhooks.

    Without ``worker`` one is made whose videos, when over the inline budget with nowhere to
    upload them, are kept and served by this API. ``resolver`` replaces DNS for input URLs and
    webhooks (tests); ``comfyui_ready`` decides readiness (default: ComfyUI answers a ping);
    ``wait_until_ready`` holds the queue before each job until ComfyUI can take it (default:
    poll ComfyUI with backoff); ``comfyui_alive`` turns ``/health`` to 503 once it says ComfyUI
    is gone for good (default: ``/health`` is the process's liveness only).
    """
    if worker is None:
        served = dataclasses.replace(
            service, delivery=dataclasses.replace(service.delivery, local_fallback=True)
        )
        worker = Worker(served, resolver=resolver)
    if api.token:
        register_secret(api.token)
    if api.webhook_secret:
        register_secret(api.webhook_secret)
    store = JobStore(api.job_db_path)
    metrics = Metrics()
    webhooks = WebhookSender(
        WebhookConfig(secret=api.webhook_secret, attempts=api.webhook_attempts),
        limits=service.input_limits,
        resolver=resolver,
    )
    runner = JobRunner(
        store=store,
        worker=worker,
        outputs=OutputStore(
            api.output_dir, ttl_s=api.output_ttl_s, budget_bytes=api.output_disk_budget_bytes
        ),
        metrics=metrics,
        webhooks=webhooks,
        default_links=OutputLinks(
            api.public_url or f"http://{_host_for_url(api.host)}:{api.port}", "wan-worker"
        ),
        concurrency=api.jobs_concurrency,
        retention_s=api.job_retention_s,
        sweep_interval_s=api.sweep_interval_s,
        wait_until_ready=wait_until_ready
        or _answers_again(worker, service.comfyui_ready_timeout_s),
    )
    ready = comfyui_ready or _ping(worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await webhooks.start()
        recovered = await runner.start()
        log.info(
            "HTTP API ready: %d job(s) queued, %d failed by the last stop",
            store.queue_depth(),
            len(recovered),
        )
        try:
            yield
        finally:
            await runner.close()
            await webhooks.drain(5.0)
            await webhooks.close()
            await worker.close()
            store.close()

    app = FastAPI(
        title="wan-worker",
        version=__version__,
        description=(
            "WAN 2.2 video jobs on ComfyUI behind RunPod's endpoint routes. Every route but "
            "/health, /ready and these docs needs `Authorization: Bearer <API_TOKEN>` when a "
            "token is set. See docs/http-api.md."
        ),
        lifespan=lifespan,
    )
    app.state.runner = runner
    app.state.api_settings = api
    _install_error_handlers(app)
    _install_openapi(app)

    async def authorize(request: Request) -> None:
        if not api.token:
            return
        given = request.headers.get("authorization", "").strip()
        if given[:7].lower() == "bearer ":
            given = given[7:].strip()
        if not hmac.compare_digest(given.encode(), api.token.encode()):
            raise ApiError(
                401,
                "send the API token as 'Authorization: Bearer <API_TOKEN>'"
                if not given
                else "the API token is not valid",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(authorize)]

    def known(job_id: str) -> JobRecord:
        record = store.get(job_id)
        if record is None:
            raise ApiError(
                404,
                f"there is no job {job_id} (finished jobs are kept {api.job_retention_s:g} s)",
                details={"id": job_id},
            )
        return record

    async def submit(endpoint: str, request: Request, *, prefix: str = "") -> JobRecord:
        depth = store.queue_depth()
        if depth >= api.max_queue_depth:
            retry = runner.retry_after_s()
            raise ApiError(
                429,
                f"the queue is full ({depth} jobs waiting, at most {api.max_queue_depth}); "
                f"try again in {retry} s",
                details={"queue_depth": depth, "max_queue_depth": api.max_queue_depth},
                headers={"Retry-After": str(retry)},
            )
        body = await _read_json(request, api.max_body_bytes)
        job_input, webhook, s3_config = _job_fields(body, service)
        job_id = f"{prefix}{uuid.uuid4()}"
        links = OutputLinks(api.public_url or str(request.base_url), endpoint)
        record = runner.submit(job_id, job_input, webhook=webhook, s3_config=s3_config, links=links)
        with job_context(job_id):
            log.info("job %s queued (%d waiting)", job_id, depth + 1)
        return record

    @app.post("/v2/{endpoint}/run", dependencies=guarded, openapi_extra=_BODY_DOC, tags=["jobs"])
    async def run(endpoint: str, request: Request) -> dict[str, Any]:
        """Queue a job; answers its id at once (RunPod's `/run`)."""
        record = await submit(endpoint, request)
        return {"id": record.id, "status": record.status}

    @app.post(
        "/v2/{endpoint}/runsync", dependencies=guarded, openapi_extra=_BODY_DOC, tags=["jobs"]
    )
    async def runsync(endpoint: str, request: Request, wait: int | None = None) -> JSONResponse:
        """Queue a job and wait for it (``wait`` ms, default 90 s); answers its status."""
        wait_s = (
            api.runsync_wait_s if wait is None else min(max(wait, 0), MAX_RUNSYNC_WAIT_MS) / 1000
        )
        record = await submit(endpoint, request, prefix="sync-")
        finished = await runner.wait(record.id, wait_s) or record
        return JSONResponse(status_payload(finished))

    @app.get("/v2/{endpoint}/status/{job_id}", dependencies=guarded, tags=["jobs"])
    async def status(endpoint: str, job_id: str) -> JSONResponse:
        """The job's status; its latest progress as ``output`` while it runs."""
        return JSONResponse(status_payload(known(job_id)))

    @app.post("/v2/{endpoint}/cancel/{job_id}", dependencies=guarded, tags=["jobs"])
    async def cancel(endpoint: str, job_id: str) -> JSONResponse:
        """Cancel a queued job, or interrupt a running one; a finished job stays as it is."""
        known(job_id)
        record = await runner.cancel(job_id) or known(job_id)
        return JSONResponse(status_payload(record))

    @app.get("/v2/{endpoint}/stream/{job_id}", dependencies=guarded, tags=["jobs"])
    async def stream(endpoint: str, job_id: str) -> JSONResponse:
        """Progress items not read yet (then the output), in RunPod's stream shape."""
        record = known(job_id)
        payload = status_payload(record)
        payload.pop("output", None)
        payload["stream"] = runner.stream(job_id, record)
        return JSONResponse(payload)

    @app.get("/v2/{endpoint}/events/{job_id}", dependencies=guarded, tags=["jobs"])
    async def events(endpoint: str, job_id: str) -> StreamingResponse:
        """Server-sent events: one ``progress`` event per update, then ``status``, then close."""
        known(job_id)
        return StreamingResponse(
            _event_stream(runner, store, job_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/v2/{endpoint}/health", dependencies=guarded, tags=["endpoint"])
    async def endpoint_health(endpoint: str) -> dict[str, Any]:
        """RunPod's endpoint health: job counts by status and the job slots."""
        counts = store.counts()
        running = runner.running_count()
        idle = max(api.jobs_concurrency - running, 0)
        return {
            "jobs": {
                "completed": counts["COMPLETED"],
                "failed": counts["FAILED"] + counts["TIMED_OUT"],
                "inProgress": counts["IN_PROGRESS"],
                "inQueue": counts["IN_QUEUE"],
                "retried": 0,
            },
            "workers": {
                "idle": idle,
                "initializing": 0,
                "ready": idle,
                "running": running,
                "throttled": 0,
                "unhealthy": 0,
            },
        }

    @app.post("/v2/{endpoint}/purge-queue", dependencies=guarded, tags=["endpoint"])
    async def purge_queue(endpoint: str) -> dict[str, Any]:
        """Cancel every queued job (running jobs go on)."""
        return {"removed": runner.purge(), "status": "completed"}

    @app.get("/v2/{endpoint}/outputs/{job_id}/{name}", dependencies=guarded, tags=["jobs"])
    async def output(endpoint: str, job_id: str, name: str) -> FileResponse:
        """A video this API kept because it was over the inline budget with nowhere to go."""
        path = runner.outputs.find(job_id, name)
        if path is None:
            raise ApiError(
                404,
                f"job {job_id} has no output {name!r} (served outputs are kept "
                f"{api.output_ttl_s:g} s)",
                details={"id": job_id, "name": name},
            )
        return FileResponse(path, media_type="video/mp4", filename=name)

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers, and its ComfyUI has not been given up (503 otherwise)."""
        if comfyui_alive is not None and not comfyui_alive():
            raise ApiError(
                503,
                "ComfyUI is down for good (its supervisor gave up restarting it); restart this "
                "server once the cause in its log is fixed",
                code=ComfyUIUnavailable.code,
            )
        return {"status": "ok"}

    @app.get("/ready", tags=["service"])
    async def readiness() -> JSONResponse:
        """Readiness: ComfyUI answers and the queue has room (503 otherwise)."""
        comfyui = await ready()
        metrics.set_comfyui_up(comfyui)
        depth = store.queue_depth()
        room = depth < api.max_queue_depth
        body = {
            "ready": comfyui and room,
            "comfyui": comfyui,
            "queue_depth": depth,
            "max_queue_depth": api.max_queue_depth,
        }
        return JSONResponse(body, status_code=200 if comfyui and room else 503)

    @app.get("/metrics", dependencies=guarded, tags=["service"])
    async def prometheus() -> Response:
        """Prometheus text: jobs by status, stage durations, queue depth, ComfyUI up."""
        metrics.set_comfyui_up(await ready())
        metrics.set_queue_depth(store.queue_depth())
        metrics.set_in_progress(runner.running_count())
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


async def serve(
    api: ApiSettings,
    service: ServiceSettings,
    *,
    comfyui_ready: ComfyUIReady | None = None,
    wait_until_ready: ReadyGate | None = None,
    comfyui_alive: ComfyUIAlive | None = None,
    on_app: Callable[[FastAPI], object] | None = None,
) -> None:
    """Serve the API with uvicorn until SIGINT/SIGTERM (or until cancelled: it then shuts down
    gracefully first); refuses a non-loopback host without a token. ``on_app(app)`` is called
    once the app exists (to wire a supervisor to its runner)."""
    api.check_exposure()
    configure_logging(level=service.log_level, json_logs=service.log_json)
    app = create_app(
        api,
        service,
        comfyui_ready=comfyui_ready,
        wait_until_ready=wait_until_ready,
        comfyui_alive=comfyui_alive,
    )
    if on_app is not None:
        on_app(app)
    config = uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        log_config=None,
        lifespan="on",
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True  # a cancelled serve() still shuts down gracefully
        await serving
        raise


# -- request bodies ----------------------------------------------------------------------------


async def _read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refused with 413 past ``limit`` bytes (before reading, when declared)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(
            f"the request body is not valid JSON ({err})",
            problems=[Problem(message="not JSON", field="body")],
        ) from None


def _too_large(size: int, limit: int) -> InputTooLarge:
    return InputTooLarge(
        f"the request body ({size} bytes or more) is over this server's {limit}-byte limit "
        "(API_MAX_BODY_BYTES); send large inputs as URLs",
        problems=[Problem(message="body too large", field="body", value=size, suggestion=limit)],
        details={"max_body_bytes": limit},
    )


def _job_fields(
    body: Any, service: ServiceSettings
) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """The job's input, webhook and s3Config from a RunPod request body, all checked."""
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        raise InvalidInput(
            'the body must be a JSON object with the job in "input": {"input": {...}}',
            problems=[Problem(message="missing or not an object", field="input")],
        )
    job_input: dict[str, Any] = dict(body["input"])
    webhook = body.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, str):
            raise InvalidInput(
                "webhook must be an http(s) URL",
                problems=[Problem(message="not a string", field="webhook")],
            )
        check_webhook_url(webhook, service.input_limits)
    s3_config = body.get("s3Config")
    if s3_config is not None and not isinstance(s3_config, dict):
        raise InvalidInput(
            "s3Config must be an object {accessId, accessSecret, bucketName, endpointUrl}",
            problems=[Problem(message="not an object", field="s3Config")],
        )
    policy = body.get("policy")
    if policy is not None:
        job_input = _apply_policy(policy, job_input)
    request = dict(job_input)
    if s3_config is not None and "s3Config" not in request:
        request["s3Config"] = s3_config
    parse_job(request)
    _check_url_hosts(request, service)
    return job_input, webhook, s3_config


_URL_FIELDS = ("image_url", "end_image_url", "audio_url", "upload_url")


def _check_url_hosts(request: dict[str, Any], service: ServiceSettings) -> None:
    """Refuse URLs whose host text alone breaks the address policy before the job is queued
    (where a name leads is checked when the job runs)."""
    urls = [(name, request.get(name)) for name in _URL_FIELDS]
    s3_config = request.get("s3Config")
    if isinstance(s3_config, dict):
        urls.append(("s3Config.endpointUrl", s3_config.get("endpointUrl")))
    for name, text in urls:
        if isinstance(text, str):
            url = parse_url(text, field=name, where="")
            check_url_host(url, field=name, limits=service.input_limits)


def _apply_policy(policy: Any, job_input: dict[str, Any]) -> dict[str, Any]:
    """RunPod's ``policy.executionTimeout`` (ms) sets the job's deadline unless it has one."""
    if not isinstance(policy, dict):
        raise InvalidInput(
            "policy must be an object", problems=[Problem(message="not an object", field="policy")]
        )
    timeout_ms = policy.get("executionTimeout")
    if timeout_ms is None or "timeout_s" in job_input:
        return job_input
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
        raise InvalidInput(
            "policy.executionTimeout must be a positive number of milliseconds",
            problems=[Problem(message="not a positive number", field="policy.executionTimeout")],
        )
    return {**job_input, "timeout_s": timeout_ms / 1000}


# -- events ------------------------------------------------------------------------------------


async def _event_stream(runner: JobRunner, store: JobStore, job_id: str) -> AsyncIterator[str]:
    with runner.subscribe(job_id) as queue:
        record = store.get(job_id)
        if record is None:
            return
        if record.terminal:
            yield _sse("status", status_payload(record))
            return
        if record.progress is not None:
            yield _sse("progress", record.progress)
        while True:
            try:
                async with asyncio.timeout(EVENT_KEEPALIVE_S):
                    kind, data = await queue.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield _sse(kind, data)
            if kind == "status":
                return


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


# -- plumbing ----------------------------------------------------------------------------------


def _ping(worker: Worker) -> ComfyUIReady:
    async def comfyui_answers() -> bool:
        try:
            async with asyncio.timeout(READY_PING_TIMEOUT_S):
                await (await worker.comfy()).system_info()
        except (WanWorkerError, TimeoutError, aiohttp.ClientError, OSError):
            return False
        return True

    return comfyui_answers


def _answers_again(worker: Worker, timeout_s: float) -> ReadyGate:
    """The queue's gate on a ComfyUI given by URL: poll it with backoff until it answers."""

    async def wait_until_ready() -> None:
        await (await worker.comfy()).wait_ready(timeout_s)

    return wait_until_ready


def _host_for_url(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def job_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WanWorkerError)
        return _error_json(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return ApiError(exc.status_code, str(exc.detail), headers=headers).response()

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            Problem(message=str(e.get("msg")), field=".".join(str(p) for p in e.get("loc", ())[1:]))
            for e in exc.errors()
        ]
        return _error_json(
            InvalidInput("; ".join(p.message for p in problems) or "bad request", problems=problems)
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(WanWorkerError, job_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}},
    }
}


def _install_openapi(app: FastAPI) -> None:
    """Document the request body with the published job-input schema (docs/input-schema.json)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_body_components())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _body_components() -> dict[str, Any]:
    job_input = input_json_schema()
    job_input.pop("$schema", None)
    defs: dict[str, Any] = job_input.pop("$defs", {})

    def relink(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (
                    v.replace("#/$defs/", "#/components/schemas/JobInput_")
                    if k == "$ref" and isinstance(v, str)
                    else relink(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [relink(v) for v in value]
        return value

    components = {f"JobInput_{name}": relink(schema) for name, schema in defs.items()}
    components["JobInput"] = relink(job_input)
    components["RunRequest"] = {
        "title": "RunRequest",
        "description": "RunPod's job request: the job input and its optional delivery hooks.",
        "type": "object",
        "required": ["input"],
        "properties": {
            "input": {"$ref": "#/components/schemas/JobInput"},
            "webhook": {
                "type": "string",
                "description": "URL that receives the final status (POST, signed when "
                "WEBHOOK_SECRET is set).",
            },
            "s3Config": {"$ref": "#/components/schemas/JobInput_S3Config"},
            "policy": {
                "type": "object",
                "description": "RunPod's policy; executionTimeout (ms) sets the job's deadline.",
                "properties": {"executionTimeout": {"type": "integer"}},
            },
        },
    }
    return components
