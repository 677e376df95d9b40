"""The client's single websocket: reconnected with backoff, its events fanned out by prompt id.

Each running prompt subscribes to its own queue. Besides ComfyUI's events, a subscriber is told
when the connection drops and when it comes back, so it can reconcile with ``/history`` and
never miss a completion that happened while nobody was listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerEvent:
    """One websocket message of a prompt: ``type`` and ``data`` as ComfyUI sent them."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Disconnected:
    """The websocket dropped; events may be missed until :class:`Reconnected`."""

    reason: str


@dataclass(frozen=True)
class Reconnected:
    """The websocket is back; whatever happened meanwhile must be read from the server."""


StreamItem = ServerEvent | Disconnected | Reconnected


@dataclass(frozen=True)
class Backoff:
    """Pauses between reconnection attempts: doubling from ``first_s`` up to ``max_s``."""

    first_s: float = 0.2
    max_s: float = 5.0


class EventStream:
    """One websocket per client id, shared by every prompt the client runs."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws_url: URL,
        *,
        backoff: Backoff,
        heartbeat_s: float = 20.0,
    ) -> None:
        self._session = session
        self._ws_url = ws_url
        self._backoff = backoff
        self._heartbeat_s = heartbeat_s
        self._subscribers: dict[str, asyncio.Queue[StreamItem]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._disconnected_since: float | None = time.monotonic()
        self.last_error = "not connected yet"
        self.last_message_at = time.monotonic()

    def start(self) -> None:
        """Start the reader task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="comfyui-websocket")

    async def close(self) -> None:
        """Stop reading and close the websocket."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def disconnected_for(self) -> float:
        """Seconds since the websocket was last up (0 while connected)."""
        since = self._disconnected_since
        return 0.0 if since is None else time.monotonic() - since

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the websocket to be up; True when it is."""
        self.start()
        try:
            # Not wait_for: on Python 3.11 it swallows a cancel that lands as the event is set.
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def subscribe(self, prompt_id: str) -> asyncio.Queue[StreamItem]:
        """The queue that will receive this prompt's events (subscribe before queueing)."""
        queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._subscribers[prompt_id] = queue
        return queue

    def unsubscribe(self, prompt_id: str) -> None:
        self._subscribers.pop(prompt_id, None)

    async def _run(self) -> None:
        delay = self._backoff.first_s
        ever_connected = False
        while True:
            try:
                ws = await self._session.ws_connect(
                    self._ws_url, heartbeat=self._heartbeat_s, max_msg_size=_MAX_MESSAGE_BYTES
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                self.last_error = str(err) or type(err).__name__
                log.debug("websocket connect failed: %s; retrying in %.1fs", self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff.max_s)
                continue
            self._ws = ws
            delay = self._backoff.first_s
            self._disconnected_since = None
            self._connected.set()
            if ever_connected:
                log.info("websocket to %s reconnected", self._ws_url.with_query(None))
                self._broadcast(Reconnected())
            ever_connected = True
            reason = await self._read(ws)
            self._connected.clear()
            self._disconnected_since = time.monotonic()
            self._ws = None
            self.last_error = reason
            await ws.close()
            log.warning("websocket to %s dropped: %s", self._ws_url.with_query(None), reason)
            self._broadcast(Disconnected(reason))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Dispatch messages until the connection ends; returns why it ended."""
        try:
            async for msg in ws:
                self.last_message_at = time.monotonic()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._dispatch(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    return f"websocket error: {ws.exception()}"
        except (aiohttp.ClientError, OSError) as err:
            return str(err) or type(err).__name__
        return f"closed by the server (code {ws.close_code})"

    def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            log.debug("ignoring a websocket message that is not JSON")
            return
        if not isinstance(message, dict):
            return
        data = message.get("data")
        if not isinstance(data, dict):
            return
        prompt_id = data.get("prompt_id")
        if not isinstance(prompt_id, str):
            return
        queue = self._subscribers.get(prompt_id)
        if queue is not None:
            queue.put_nowait(ServerEvent(str(message.get("type")), data))

    def _broadcast(self, item: StreamItem) -> None:
        for queue in self._subscribers.values():
            queue.put_nowait(item)
