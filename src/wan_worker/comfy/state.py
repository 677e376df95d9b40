"""Reading where prompts are on the server: ``GET /queue`` and ``GET /history/<id>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wan_worker.comfy.rejections import execution_error
from wan_worker.comfy.transport import ComfyHttp
from wan_worker.errors import Cancelled, ComfyUIUnavailable


@dataclass(frozen=True)
class QueueState:
    """The prompt ids ComfyUI is running and has waiting."""

    running: tuple[str, ...]
    pending: tuple[str, ...]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


async def read_queue(http: ComfyHttp) -> QueueState:
    """``GET /queue`` as prompt ids (items are ``[number, prompt_id, graph, extra, outputs]``)."""
    body = await http.get_json("/queue")

    def ids(key: str) -> tuple[str, ...]:
        items = body.get(key) if isinstance(body, dict) else None
        return tuple(
            str(item[1])
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, list) and len(item) > 1
        )

    return QueueState(running=ids("queue_running"), pending=ids("queue_pending"))


async def read_history(http: ComfyHttp, prompt_id: str) -> dict[str, Any] | None:
    """The ``/history`` entry of a finished prompt, or None while unknown or running."""
    body = await http.get_json(f"/history/{prompt_id}")
    entry = body.get(prompt_id) if isinstance(body, dict) else None
    return entry if isinstance(entry, dict) else None


def outcome(prompt_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` when it records a success; otherwise raise the error it records."""
    raw_status = entry.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    for message in status.get("messages") or []:
        if not (isinstance(message, list) and len(message) == 2):
            continue
        kind, data = message
        data = data if isinstance(data, dict) else {}
        if kind == "execution_error":
            raise execution_error({"prompt_id": prompt_id, **data})
        if kind == "execution_interrupted":
            raise Cancelled(
                f"ComfyUI interrupted prompt {prompt_id} in node {data.get('node_id')} "
                f"({data.get('node_type')})",
                details={"prompt_id": prompt_id, "node_id": data.get("node_id")},
            )
    if status.get("status_str") not in (None, "success"):
        raise ComfyUIUnavailable(
            f"ComfyUI reports prompt {prompt_id} as {status.get('status_str')!r} "
            "without an error message",
            details={"prompt_id": prompt_id, "status": status},
        )
    return entry
