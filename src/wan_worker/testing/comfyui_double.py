"""A faithful ComfyUI server double: the HTTP and websocket protocol of ComfyUI 0.33, no models.

It validates graphs with ComfyUI's own rules (exact 400 bodies), queues prompts FIFO, executes
them on abstract shapes in ComfyUI's node order with its events, writes real small media files,
and can be made slow, failing or flaky through :class:`Faults` while a test runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import heapq
import itertools
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from aiohttp import WSCloseCode, web

from wan_worker.comfy.schema import (
    FILE_INPUTS,
    MODEL_EXTENSIONS,
    MODEL_FOLDERS,
    NodeSchemas,
    check_graph,
)
from wan_worker.testing import load_object_info
from wan_worker.testing.node_semantics import NodeFailure, NodeResult, run_node

_SERVER_TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VIEW_CHUNK = 64 * 1024
_MODEL_FOLDER_NAMES = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "latent_upscale_models",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
)
_TRACEBACK = [
    '  File "/opt/ComfyUI/execution.py", line 545, in execute\n',
    '  File "/opt/ComfyUI/execution.py", line 344, in get_output_data\n',
    '  File "/opt/ComfyUI/execution.py", line 318, in _async_map_node_over_list\n',
    '  File "/opt/ComfyUI/execution.py", line 306, in process_inputs\n',
]


@dataclass
class Faults:
    """Misbehaviour to inject; every field may be changed at any time during a test."""

    step_delay: float = 0.0
    """Seconds per sampler step (and a tenth of it per node)."""
    fail_at_node: str | None = None
    """Node id that raises when it executes (an ``execution_error``); never served from cache."""
    fail_exception_type: str = "RuntimeError"
    fail_message: str = "simulated failure"
    drop_ws_after_events: int | None = None
    """Close every websocket once after this many events of a running prompt (then resets)."""
    http_500: dict[str, int] = field(default_factory=dict)
    """Path prefix -> how many of the next matching requests get a plain-text 500."""
    view_delay: float = 0.0
    """Seconds of delay per 64 KiB chunk served by ``/view``."""


class _Interrupted(Exception):
    """The running prompt was interrupted."""


@dataclass(order=True)
class _QueueItem:
    number: float
    seq: int
    prompt_id: str = field(compare=False)
    graph: dict[str, Any] = field(compare=False)
    extra: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)

    def as_json(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, self.extra, self.outputs]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _display(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Run:
    """One prompt being executed: its events, progress map and results."""

    def __init__(self, double: ComfyUIDouble, item: _QueueItem) -> None:
        self.double = double
        self.item = item
        self.client_id: str | None = item.extra.get("client_id")
        self.messages: list[list[Any]] = []
        self.progress: dict[str, dict[str, Any]] = {}
        self.current: str | None = None
        self.events_sent = 0
        self.input_dir = double.input_dir
        self.output_dir = double.output_dir
        self.temp_dir = double.temp_dir

    @property
    def prompt_id(self) -> str:
        return self.item.prompt_id

    async def emit(self, event: str, data: dict[str, Any], *, record: bool = False) -> None:
        if record:
            self.messages.append([event, data])
        if self.client_id is None:
            return
        await self.double._send(event, data, self.client_id)
        self.events_sent += 1
        limit = self.double.faults.drop_ws_after_events
        if limit is not None and self.events_sent >= limit:
            self.double.faults.drop_ws_after_events = None
            self.double._drop_sockets()

    async def node_state(self, node_id: str, value: float, maximum: float, state: str) -> None:
        self.progress[node_id] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {k: dict(v) for k, v in self.progress.items()}
        await self.emit("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    async def step(self, value: int, total: int) -> None:
        await self.double._pause(self.double.faults.step_delay)
        assert self.current is not None
        await self.node_state(self.current, value, total, "running")
        await self.emit(
            "progress",
            {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.current},
        )


class ComfyUIDouble:
    """A ComfyUI server on loopback for tests; ``async with ComfyUIDouble(root=tmp_path) as c``."""

    def __init__(
        self,
        *,
        object_info: Mapping[str, Any] | None = None,
        models: Mapping[str, Sequence[str]] | None = None,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "0.33.0",
        cache: bool = True,
    ) -> None:
        self._object_info: dict[str, Any] = dict(object_info or load_object_info())
        self._schemas = NodeSchemas.from_object_info(self._object_info)
        self.models: dict[str, list[str]] = {k: list(v) for k, v in (models or {}).items()}
        self.root = Path(root)
        self.input_dir = self.root / "input"
        self.output_dir = self.root / "output"
        self.temp_dir = self.root / "temp"
        for folder in (self.input_dir, self.output_dir, self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._port = port
        self.version = version
        self.cache_enabled = cache
        self.faults = Faults()
        self.received_prompts: list[dict[str, Any]] = []
        self.interrupts: list[dict[str, Any]] = []
        self.frees: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._worker: asyncio.Task[None] | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._queue: list[_QueueItem] = []
        self._seq = itertools.count()
        self._number = 0
        self._running: _Run | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._cache: dict[str, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        self._wakeup = asyncio.Event()
        self._interrupt = asyncio.Event()
        self._free_pending = False
        self._changed = asyncio.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}/ws"

    async def __aenter__(self) -> ComfyUIDouble:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``host:port`` (a free port when 0; the same port again after a restart)."""
        self._reset_state()
        app = web.Application(middlewares=[self._fault_middleware], client_max_size=1 << 30)
        routes = [
            ("GET", "/ws", self._ws),
            ("GET", "/system_stats", self._system_stats),
            ("GET", "/object_info", self._object_info_all),
            ("GET", "/object_info/{node_class}", self._object_info_one),
            ("GET", "/models", self._model_folders),
            ("GET", "/models/{folder}", self._model_files),
            ("POST", "/upload/image", self._upload),
            ("GET", "/prompt", self._prompt_info),
            ("POST", "/prompt", self._post_prompt),
            ("GET", "/queue", self._get_queue),
            ("POST", "/queue", self._post_queue),
            ("GET", "/history", self._get_history),
            ("GET", "/history/{prompt_id}", self._get_history_one),
            ("POST", "/history", self._post_history),
            ("GET", "/view", self._view),
            ("POST", "/interrupt", self._post_interrupt),
            ("POST", "/free", self._post_free),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
        await site.start()
        if self._port == 0:
            self._port = int(self._runner.addresses[0][1])
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        """Close sockets, abandon the running prompt and stop listening."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        sockets = list(self._sockets.values())
        self._sockets.clear()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        """Stop and start on the same port: queue, history and cache are lost, files stay."""
        await self.stop()
        await self.start()

    # -- state seen by tests -------------------------------------------------------------

    @property
    def history(self) -> dict[str, dict[str, Any]]:
        return self._history

    @property
    def running_prompt_id(self) -> str | None:
        return self._running.prompt_id if self._running else None

    async def wait_until_running(self, prompt_id: str | None = None) -> str:
        """Wait until ``prompt_id`` (or any prompt) is executing; returns its id."""
        while self._running is None or prompt_id not in (None, self._running.prompt_id):
            self._changed.clear()
            await self._changed.wait()
        return self._running.prompt_id

    async def wait_until_done(self, prompt_id: str) -> dict[str, Any]:
        """Wait until ``prompt_id`` has a history entry; returns it."""
        while prompt_id not in self._history:
            self._changed.clear()
            await self._changed.wait()
        return self._history[prompt_id]

    # -- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        bare = path[4:] if path.startswith("/api/") else path
        for prefix, count in list(self.faults.http_500.items()):
            if count > 0 and (path.startswith(prefix) or bare.startswith(prefix)):
                self.faults.http_500[prefix] = count - 1
                return web.Response(status=500, text=_SERVER_TROUBLE)
        response: web.StreamResponse = await handler(request)
        return response

    def _queue_info(self) -> dict[str, Any]:
        remaining = len(self._queue) + (1 if self._running else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    async def _send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        message = json.dumps({"type": event, "data": data})
        targets = list(self._sockets.values()) if sid is None else [self._sockets.get(sid)]
        for ws in targets:
            if ws is None or ws.closed:
                continue
            with contextlib.suppress(Exception):
                await ws.send_str(message)

    async def _broadcast_status(self) -> None:
        await self._send("status", {"status": self._queue_info()}, None)

    def _drop_sockets(self) -> None:
        sockets = list(self._sockets.values())
        self._sockets.clear()
        for ws in sockets:
            asyncio.get_running_loop().create_task(_close_quietly(ws))

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (waking at once on interrupt); raise when interrupted."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._interrupt.wait(), seconds)
        else:
            await asyncio.sleep(0)
        if self._interrupt.is_set():
            raise _Interrupted

    def _visible_models(self) -> dict[str, list[str]]:
        return {
            folder: sorted({f for f in files if Path(f).suffix.lower() in MODEL_EXTENSIONS})
            for folder, files in self.models.items()
        }

    def _input_files(self, *, top_level_only: bool) -> list[str]:
        if top_level_only:
            return sorted(p.name for p in self.input_dir.iterdir() if p.is_file())
        return sorted(p.relative_to(self.input_dir).as_posix() for p in self._walk(self.input_dir))

    @staticmethod
    def _walk(folder: Path) -> list[Path]:
        return [p for p in folder.rglob("*") if p.is_file()]

    def _live_schemas(self, *, top_level_only: bool = False) -> NodeSchemas:
        return self._schemas.with_models(self._visible_models()).with_input_files(
            self._input_files(top_level_only=top_level_only)
        )

    def _live_object_info(self, class_types: Sequence[str]) -> dict[str, Any]:
        schemas = self._live_schemas(top_level_only=True)
        out = {name: self._object_info[name] for name in class_types}
        for class_type, input_name in (*MODEL_FOLDERS, *FILE_INPUTS):
            if class_type not in out:
                continue
            node = schemas.nodes[class_type]
            spec = node.inputs.get(input_name)
            if spec is None:
                continue
            info = copy.deepcopy(out[class_type])
            section = "required" if spec.required else "optional"
            raw = list(info["input"][section][input_name])
            raw[0] = spec.config[0]
            if len(raw) > 1:
                raw[1] = dict(spec.config[1])
            info["input"][section][input_name] = raw
            out[class_type] = info
        return out

    # -- HTTP handlers -------------------------------------------------------------------

    async def _system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "system": {
                    "os": "posix",
                    "ram_total": 16 * 1024**3,
                    "ram_free": 12 * 1024**3,
                    "comfyui_version": self.version,
                    "required_frontend_version": "1.28.0",
                    "python_version": "3.11.0 (ComfyUI double)",
                    "pytorch_version": "none (ComfyUI double)",
                    "embedded_python": False,
                    "argv": ["main.py", "--listen", self.host, "--port", str(self._port)],
                },
                "devices": [
                    {
                        "name": "cpu",
                        "type": "cpu",
                        "index": None,
                        "vram_total": 16 * 1024**3,
                        "vram_free": 12 * 1024**3,
                        "torch_vram_total": 16 * 1024**3,
                        "torch_vram_free": 12 * 1024**3,
                    }
                ],
            }
        )

    async def _object_info_all(self, request: web.Request) -> web.Response:
        return web.json_response(self._live_object_info(list(self._object_info)))

    async def _object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        if name not in self._object_info:
            return web.json_response({})
        return web.json_response(self._live_object_info([name]))

    async def _model_folders(self, request: web.Request) -> web.Response:
        names = list(_MODEL_FOLDER_NAMES)
        names += [f for f in self.models if f not in names]
        return web.json_response(names)

    async def _model_files(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in _MODEL_FOLDER_NAMES and folder not in self.models:
            return web.Response(status=404)
        return web.json_response(self._visible_models().get(folder, []))

    async def _upload(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        base = {"input": self.input_dir, "temp": self.temp_dir, "output": self.output_dir}.get(
            kind, self.input_dir
        )
        if kind not in ("input", "temp", "output"):
            kind = "input"
        subfolder = str(post.get("subfolder", ""))
        folder = (base / subfolder).resolve()
        filename = image.filename
        path = (folder / filename).resolve()
        if not path.is_relative_to(base.resolve()):
            return web.Response(status=400)
        folder.mkdir(parents=True, exist_ok=True)
        content = image.file.read()
        overwrite = str(post.get("overwrite", "")) in ("true", "1")
        duplicate = False
        if not overwrite:
            stem, suffix = Path(filename).stem, Path(filename).suffix
            attempt = 1
            while path.exists():
                if path.read_bytes() == content:
                    duplicate = True
                    break
                filename = f"{stem} ({attempt}){suffix}"
                path = folder / filename
                attempt += 1
        if not duplicate:
            path.write_bytes(content)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})

    async def _prompt_info(self, request: web.Request) -> web.Response:
        return web.json_response(self._queue_info())

    async def _post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except Exception:
            return web.Response(status=500, text=_SERVER_TROUBLE)
        if not isinstance(body, dict):
            return web.Response(status=500, text=_SERVER_TROUBLE)
        self.received_prompts.append(body)
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = self._number
            if body.get("front"):
                number = -number
            self._number += 1
        if "prompt" not in body:
            return _refusal("no_prompt", "No prompt provided", "No prompt provided")
        if "prompt_id" in body:
            prompt_id = body["prompt_id"]
            if not isinstance(prompt_id, str) or not _UUID.match(prompt_id):
                return _refusal(
                    "invalid_prompt_id",
                    "prompt_id must be a valid UUID",
                    "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
                    "omit it to let the server generate one",
                )
        else:
            prompt_id = str(uuid.uuid4())
        graph = body["prompt"]
        if not isinstance(graph, dict):
            return web.Response(status=500, text=_SERVER_TROUBLE)
        try:
            check = check_graph(graph, self._live_schemas())
        except Exception:
            return web.Response(status=500, text=_SERVER_TROUBLE)
        if not check.accepted:
            return web.json_response(check.error_body(), status=400)
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        extra["create_time"] = _now_ms()
        item = _QueueItem(
            number, next(self._seq), prompt_id, self._converted(graph), extra, list(check.outputs)
        )
        heapq.heappush(self._queue, item)
        self._wakeup.set()
        await self._broadcast_status()
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": check.node_errors_json()}
        )

    async def _get_queue(self, request: web.Request) -> web.Response:
        running = [self._running.item.as_json()] if self._running else []
        pending = [item.as_json() for item in sorted(self._queue)]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await _json_or_empty(request)
        if body.get("clear"):
            self._queue.clear()
        if "delete" in body:
            doomed = set(body["delete"])
            self._queue = [item for item in self._queue if item.prompt_id not in doomed]
            heapq.heapify(self._queue)
        await self._broadcast_status()
        return web.Response(status=200)

    async def _get_history(self, request: web.Request) -> web.Response:
        items = list(self._history.items())
        max_items = request.query.get("max_items")
        if max_items is not None:
            items = items[-int(max_items) :] if int(max_items) > 0 else []
        return web.json_response(dict(items))

    async def _get_history_one(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self._history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def _post_history(self, request: web.Request) -> web.Response:
        body = await _json_or_empty(request)
        if body.get("clear"):
            self._history.clear()
        for prompt_id in body.get("delete", []):
            self._history.pop(prompt_id, None)
        return web.Response(status=200)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        filename = request.query.get("filename")
        if filename is None:
            return web.Response(status=404)
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        base = {"input": self.input_dir, "temp": self.temp_dir, "output": self.output_dir}.get(
            request.query.get("type", "output")
        )
        if base is None:
            return web.Response(status=400)
        folder = base.resolve()
        if "subfolder" in request.query:
            folder = (base / request.query["subfolder"]).resolve()
            if not folder.is_relative_to(base.resolve()):
                return web.Response(status=403)
        path = folder / Path(filename).name
        if not path.is_file():
            return web.Response(status=404)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".flac":
            content_type = "audio/flac"
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Content-Disposition": f'filename="{path.name}"',
            }
        )
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with path.open("rb") as handle:
            while chunk := handle.read(_VIEW_CHUNK):
                if self.faults.view_delay > 0:
                    await asyncio.sleep(self.faults.view_delay)
                await response.write(chunk)
        await response.write_eof()
        return response

    async def _post_interrupt(self, request: web.Request) -> web.Response:
        body = await _json_or_empty(request)
        self.interrupts.append(body)
        prompt_id = body.get("prompt_id")
        if self._running and (not prompt_id or prompt_id == self._running.prompt_id):
            self._interrupt.set()
        return web.Response(status=200)

    async def _post_free(self, request: web.Request) -> web.Response:
        body = await _json_or_empty(request)
        self.frees.append(body)
        if body.get("free_memory"):
            if self._running is None:
                self._cache.clear()
            else:
                self._free_pending = True
        return web.Response(status=200)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        previous = self._sockets.pop(sid, None)
        if previous is not None and previous is not ws:
            asyncio.get_running_loop().create_task(_close_quietly(previous))
        self._sockets[sid] = ws
        await self._send("status", {"status": self._queue_info(), "sid": sid}, sid)
        running = self._running
        if running is not None and running.client_id == sid and running.current is not None:
            await self._send("executing", {"node": running.current}, sid)
        try:
            async for _ in ws:
                pass
        finally:
            if self._sockets.get(sid) is ws:
                del self._sockets[sid]
        return ws

    # -- execution -----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            item = heapq.heappop(self._queue)
            run = _Run(self, item)
            self._running = run
            self._interrupt.clear()
            self._changed.set()
            try:
                await self._execute(run)
            finally:
                self._running = None
                if self._free_pending:
                    self._cache.clear()
                    self._free_pending = False
                self._changed.set()
            await self._broadcast_status()
            await self._send(
                "executing", {"node": None, "prompt_id": item.prompt_id}, run.client_id
            )

    async def _execute(self, run: _Run) -> None:
        graph = run.item.graph
        schemas = self._schemas
        await self._broadcast_status()
        await run.emit(
            "execution_start", {"prompt_id": run.prompt_id, "timestamp": _now_ms()}, record=True
        )
        signatures = _Signatures(graph, self.input_dir)
        uncachable = self._fault_descendants(graph)
        cached = [
            node_id
            for node_id in graph
            if self.cache_enabled
            and node_id not in uncachable
            and (sig := signatures.of(node_id)) is not None
            and sig in self._cache
        ]
        await run.emit(
            "execution_cached",
            {"nodes": cached, "prompt_id": run.prompt_id, "timestamp": _now_ms()},
            record=True,
        )
        results: dict[str, tuple[Any, ...]] = {}
        for node_id in cached:
            results[node_id] = self._cache[signatures.of(node_id) or ""][0]
        outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        executed: list[str] = []
        current_inputs: dict[str, Any] = {}
        status = "success"
        try:
            order = _execution_order(graph, run.item.outputs, set(cached), schemas)
            for node_id in order:
                node = graph[node_id]
                class_type = node["class_type"]
                schema = schemas.nodes[class_type]
                if node_id in cached:
                    ui = self._cache[signatures.of(node_id) or ""][1]
                    if ui is not None:
                        outputs[node_id], meta[node_id] = ui, _meta(node_id)
                        await run.emit(
                            "executed",
                            {
                                "node": node_id,
                                "display_node": node_id,
                                "output": ui,
                                "prompt_id": run.prompt_id,
                            },
                        )
                    await run.node_state(node_id, 1.0, 1.0, "finished")
                    continue
                run.current = node_id
                await run.node_state(node_id, 0.0, 1.0, "running")
                await run.emit(
                    "executing",
                    {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id},
                )
                inputs = self._resolve(node, schema.inputs, results)
                current_inputs = inputs
                await self._pause(self.faults.step_delay / 10)
                if self.faults.fail_at_node == node_id:
                    raise NodeFailure(self.faults.fail_exception_type, self.faults.fail_message)
                result: NodeResult = await run_node(class_type, inputs, schema.outputs, run)
                results[node_id] = result.outputs
                sig = signatures.of(node_id)
                if self.cache_enabled and sig is not None and node_id not in uncachable:
                    self._cache[sig] = (result.outputs, result.ui)
                if result.ui is not None:
                    outputs[node_id], meta[node_id] = result.ui, _meta(node_id)
                    await run.emit(
                        "executed",
                        {
                            "node": node_id,
                            "display_node": node_id,
                            "output": result.ui,
                            "prompt_id": run.prompt_id,
                        },
                    )
                maximum = run.progress[node_id]["max"]
                value = maximum if maximum == 1.0 else run.progress[node_id]["value"]
                await run.node_state(node_id, value, maximum, "finished")
                executed.append(node_id)
            await run.emit(
                "execution_success",
                {"prompt_id": run.prompt_id, "timestamp": _now_ms()},
                record=True,
            )
        except NodeFailure as failure:
            status = "error"
            current = run.current or ""
            await run.emit(
                "execution_error",
                {
                    "prompt_id": run.prompt_id,
                    "node_id": current,
                    "node_type": graph.get(current, {}).get("class_type", ""),
                    "executed": list(executed),
                    "exception_message": f"{failure.message}\n",
                    "exception_type": failure.exception_type,
                    "traceback": list(_TRACEBACK),
                    "current_inputs": {k: [_display(v)] for k, v in current_inputs.items()},
                    "current_outputs": list(graph),
                    "timestamp": _now_ms(),
                },
                record=True,
            )
        except _Interrupted:
            status = "error"
            current = run.current or ""
            await run.emit(
                "execution_interrupted",
                {
                    "prompt_id": run.prompt_id,
                    "node_id": current,
                    "node_type": graph.get(current, {}).get("class_type", ""),
                    "executed": list(executed),
                    "timestamp": _now_ms(),
                },
                record=True,
            )
        finally:
            live = {s for n in graph if (s := signatures.of(n)) is not None}
            self._cache = {k: v for k, v in self._cache.items() if k in live}
            self._history[run.prompt_id] = {
                "prompt": run.item.as_json(),
                "outputs": outputs,
                "status": {
                    "status_str": status,
                    "completed": status == "success",
                    "messages": run.messages,
                },
                "meta": meta,
            }

    def _converted(self, graph: Mapping[str, Any]) -> dict[str, Any]:
        """A copy with INT and FLOAT widgets converted, as ComfyUI's validation leaves them."""
        out = copy.deepcopy(dict(graph))
        for node in out.values():
            schema = self._schemas.get(node.get("class_type", ""))
            if schema is None:
                continue
            for name, value in node.get("inputs", {}).items():
                spec = schema.inputs.get(name)
                if spec is not None and not isinstance(value, list):
                    node["inputs"][name] = _widget_value(value, spec.type)
        return out

    def _fault_descendants(self, graph: Mapping[str, Any]) -> set[str]:
        """The failing node and everything downstream of it: these are never cached."""
        target = self.faults.fail_at_node
        if target is None or target not in graph:
            return set()
        found = {target}
        changed = True
        while changed:
            changed = False
            for node_id, node in graph.items():
                if node_id in found:
                    continue
                links = [v for v in node.get("inputs", {}).values() if _is_link(v)]
                if any(link[0] in found for link in links):
                    found.add(node_id)
                    changed = True
        return found

    @staticmethod
    def _resolve(
        node: Mapping[str, Any], specs: Mapping[str, Any], results: Mapping[str, tuple[Any, ...]]
    ) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for name, value in node.get("inputs", {}).items():
            if _is_link(value) and value[0] in results:
                produced = results[value[0]]
                inputs[name] = produced[value[1]] if value[1] < len(produced) else None
                continue
            spec = specs.get(name)
            inputs[name] = _widget_value(value, spec.type if spec is not None else None)
        return inputs


def _widget_value(value: Any, kind: str | None) -> Any:
    """A widget value as the node receives it (ComfyUI converts INT and FLOAT while validating)."""
    with contextlib.suppress(TypeError, ValueError):
        if kind == "INT":
            return int(value)
        if kind == "FLOAT":
            return float(value)
    return value


async def _close_quietly(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY), 1.0)


async def _json_or_empty(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(kind: str, message: str, details: str) -> web.Response:
    error = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return web.json_response({"error": error, "node_errors": {}}, status=400)


def _meta(node_id: str) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "display_node": node_id,
        "parent_node": None,
        "real_node_id": node_id,
    }


class _Signatures:
    """ComfyUI's cache keys: a node's id, class, widget values and its inputs' keys."""

    _FILE_INPUT_NAMES: ClassVar[dict[str, str]] = dict(FILE_INPUTS)

    def __init__(self, graph: Mapping[str, Any], input_dir: Path) -> None:
        self.graph = graph
        self.input_dir = input_dir
        self.memo: dict[str, str | None] = {}

    def of(self, node_id: str, depth: int = 0) -> str | None:
        if node_id in self.memo:
            return self.memo[node_id]
        node = self.graph.get(node_id)
        if not isinstance(node, Mapping) or depth > 500:
            return None
        self.memo[node_id] = None
        parts: list[Any] = [node_id, node.get("class_type")]
        for name, value in sorted(node.get("inputs", {}).items()):
            if _is_link(value):
                upstream = self.of(str(value[0]), depth + 1)
                if upstream is None:
                    return None
                parts.append([name, upstream, value[1]])
            else:
                parts.append([name, value])
        file_input = self._FILE_INPUT_NAMES.get(str(node.get("class_type")))
        if file_input is not None:
            path = self.input_dir / str(node.get("inputs", {}).get(file_input, ""))
            stat = path.stat() if path.is_file() else None
            parts.append([stat.st_mtime_ns, stat.st_size] if stat else None)
        digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
        self.memo[node_id] = digest
        return digest


def _execution_order(
    graph: Mapping[str, Any], outputs: Sequence[str], cached: set[str], schemas: NodeSchemas
) -> list[str]:
    """The order ComfyUI runs nodes in: its topological sort with the "outputs first" pick."""
    pending: dict[str, None] = {}
    block_count: dict[str, int] = {}
    blocking: dict[str, dict[str, None]] = {}

    def add(start: str) -> None:
        stack = [start]
        links: list[tuple[str, str]] = []
        while stack:
            node_id = stack.pop()
            if node_id in pending:
                continue
            pending[node_id] = None
            block_count[node_id] = 0
            blocking[node_id] = {}
            for value in graph[node_id]["inputs"].values():
                if _is_link(value):
                    source = str(value[0])
                    if source not in cached:
                        stack.append(source)
                    links.append((source, node_id))
        for source, target in links:
            if source in cached:
                continue
            add(source)
            if target not in blocking[source]:
                blocking[source][target] = None
                block_count[target] += 1

    def is_output(node_id: str) -> bool:
        schema = schemas.get(graph[node_id]["class_type"])
        return bool(schema and schema.output_node)

    def pick(ready: list[str]) -> str:
        for node_id in ready:
            if is_output(node_id):
                return node_id
        for node_id in ready:
            if any(is_output(b) for b in blocking[node_id]):
                return node_id
        for node_id in ready:
            if any(is_output(b1) for b in blocking[node_id] for b1 in blocking[b]):
                return node_id
        return ready[0]

    for output_id in outputs:
        add(output_id)
    order: list[str] = []
    while pending:
        ready = [node_id for node_id in pending if block_count[node_id] == 0]
        if not ready:
            raise NodeFailure("DependencyCycleError", "Dependency cycle detected")
        chosen = pick(ready)
        order.append(chosen)
        del pending[chosen]
        for target in blocking[chosen]:
            block_count[target] -= 1
    return order
