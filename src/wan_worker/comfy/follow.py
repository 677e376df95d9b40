"""Following one queued prompt to its end through the shared websocket.

Events drive progress; the terminal event ends the watch. When the websocket drops, the watch
waits for it to come back (up to a limit) and then asks the server where the prompt is, so a
completion during the drop is read from ``/history`` instead of being missed. A stall (no
event for a while) is checked the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from wan_worker.comfy.events import Disconnected, EventStream, Reconnected, ServerEvent, StreamItem
from wan_worker.comfy.progress import Progress, ProgressTracker
from wan_worker.comfy.rejections import execution_error
from wan_worker.comfy.state import QueueState, outcome, read_history, read_queue
from wan_worker.comfy.transport import ComfyHttp
from wan_worker.errors import Cancelled, ComfyUIUnavailable, Timeout

log = logging.getLogger(__name__)

_POLL_S = 0.5

Where = Literal["running", "pending", "finished", "lost"]


@dataclass
class PromptWatch:
    """The state of following one prompt; :meth:`run` returns its successful history entry."""

    http: ComfyHttp
    events: EventStream
    prompt_id: str
    tracker: ProgressTracker
    emit: Callable[[Progress], Awaitable[None]]
    reconnect_timeout_s: float
    history_wait_s: float
    stall_timeout_s: float | None = None
    started_at: float | None = None
    """When ComfyUI began executing the prompt (``execution_start``), monotonic."""

    async def run(self, queue: asyncio.Queue[StreamItem]) -> dict[str, Any]:
        """Read the prompt's events until it ends; raise the error it ended with."""
        last_event = time.monotonic()
        owed_check = False
        unreachable_since: float | None = None
        while True:
            wait: float | None = None
            if owed_check or not self.events.connected:
                wait = _POLL_S
            elif self.stall_timeout_s is not None:
                wait = max(self.stall_timeout_s - (time.monotonic() - last_event), 0.01)
            item: StreamItem | None = None
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # lands just as an event arrives, and the cancelled job would carry on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    item = await queue.get()
            if isinstance(item, ServerEvent):
                last_event = time.monotonic()
                entry = await self._on_event(item)
                if entry is not None:
                    return entry
                continue
            if isinstance(item, Disconnected):
                continue
            if isinstance(item, Reconnected):
                owed_check = True
            if not self.events.connected and not owed_check:
                self._check_connection_lost()
                continue
            silent_for = time.monotonic() - last_event
            stalled = self.stall_timeout_s is not None and silent_for >= self.stall_timeout_s
            if not (owed_check or stalled):
                continue
            try:
                where, entry, state = await self._locate()
            except ComfyUIUnavailable as err:
                owed_check = True
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > self.reconnect_timeout_s:
                    raise self._connection_lost(str(err.details.get("reason") or err)) from None
                continue
            owed_check, unreachable_since = False, None
            last_event = time.monotonic()
            if where == "finished" and entry is not None:
                return outcome(self.prompt_id, entry)
            if where == "lost":
                raise self._lost()
            if stalled and where == "pending" and not state.running:
                raise Timeout(
                    f"prompt {self.prompt_id} stalled: no event for {self.stall_timeout_s:g} s "
                    "and ComfyUI is not running anything",
                    details={"prompt_id": self.prompt_id, "stall_timeout_s": self.stall_timeout_s},
                )

    async def _on_event(self, event: ServerEvent) -> dict[str, Any] | None:
        """Apply one event; returns the history entry once the prompt has succeeded."""
        if event.type == "execution_start" and self.started_at is None:
            self.started_at = time.monotonic()
        if event.type == "execution_error":
            log.error(
                "prompt %s failed in node %s (%s): %s: %s\n%s",
                self.prompt_id,
                event.data.get("node_id"),
                event.data.get("node_type"),
                event.data.get("exception_type"),
                event.data.get("exception_message"),
                "".join(str(line) for line in event.data.get("traceback") or []),
            )
            raise execution_error(event.data)
        if event.type == "execution_interrupted":
            raise Cancelled(
                f"ComfyUI interrupted prompt {self.prompt_id} in node "
                f"{event.data.get('node_id')} ({event.data.get('node_type')})",
                details={"prompt_id": self.prompt_id, "node_id": event.data.get("node_id")},
            )
        ended = event.type == "execution_success" or (
            event.type == "executing" and event.data.get("node") is None
        )
        if ended:
            entry = outcome(self.prompt_id, await self._wait_history())
            event = ServerEvent("execution_success", event.data)
        progress = self.tracker.update(event.type, event.data)
        if progress is not None:
            await self.emit(progress)
        return entry if ended else None

    def _check_connection_lost(self) -> None:
        if self.events.disconnected_for() > self.reconnect_timeout_s:
            raise self._connection_lost(self.events.last_error)

    def _connection_lost(self, last_error: str) -> ComfyUIUnavailable:
        return ComfyUIUnavailable(
            f"lost the connection to ComfyUI at {self.http.base_url} for more than "
            f"{self.reconnect_timeout_s:g} s while prompt {self.prompt_id} ran "
            f"(last error: {last_error})",
            details={"url": str(self.http.base_url), "prompt_id": self.prompt_id},
        )

    async def _locate(self) -> tuple[Where, dict[str, Any] | None, QueueState]:
        """Where the prompt is, with its history entry when finished.

        The queue is read before the history, so a prompt that finishes in between is found
        in the history rather than reported lost.
        """
        state = await read_queue(self.http)
        entry = await read_history(self.http, self.prompt_id)
        if entry is not None:
            return "finished", entry, state
        if self.prompt_id in state.running:
            return "running", None, state
        if self.prompt_id in state.pending:
            return "pending", None, state
        return "lost", None, state

    def _lost(self) -> ComfyUIUnavailable:
        return ComfyUIUnavailable(
            f"ComfyUI at {self.http.base_url} lost prompt {self.prompt_id}: it is in neither "
            "the queue nor the history (the server probably restarted)",
            details={"url": str(self.http.base_url), "prompt_id": self.prompt_id},
        )

    async def _wait_history(self) -> dict[str, Any]:
        """The history entry, which ComfyUI writes a moment after the terminal event."""
        deadline = time.monotonic() + self.history_wait_s
        delay = 0.02
        while True:
            entry = await read_history(self.http, self.prompt_id)
            if entry is not None:
                return entry
            if time.monotonic() >= deadline:
                raise ComfyUIUnavailable(
                    f"ComfyUI at {self.http.base_url} reported prompt {self.prompt_id} finished "
                    f"but its /history entry did not appear within {self.history_wait_s:g} s",
                    details={"url": str(self.http.base_url), "prompt_id": self.prompt_id},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_S)
