"""One exception hierarchy for every stage of a job.

Every error carries a stable ``code`` (the first word of its sentence), a sentence a user can act
on, and where known the field or node at fault. Fronts turn these into their transport's shape;
tracebacks never leave the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar


@dataclass(frozen=True)
class Problem:
    """One precise thing wrong with a request or graph."""

    message: str
    field: str | None = None
    value: Any = None
    rule: str | None = None
    suggestion: Any = None
    node_id: str | None = None
    class_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        for key in ("field", "value", "rule", "suggestion", "node_id", "class_type"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        return out


class WanWorkerError(Exception):
    """Base of every error the service reports; ``code`` is stable across releases."""

    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        problems: list[Problem] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems or [])
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.problems:
            out["problems"] = [p.as_dict() for p in self.problems]
        if self.details:
            out["details"] = self.details
        return out


_E = TypeVar("_E", bound="WanWorkerError")

ERROR_CODES: dict[str, type[WanWorkerError]] = {}
"""Every stable code, so docs and tests can list them."""


def _register(cls: type[_E]) -> type[_E]:
    ERROR_CODES[cls.code] = cls
    return cls


@_register
class InvalidInput(WanWorkerError):
    """A request field is missing, malformed or outside what the model accepts."""

    code = "invalid_input"


@_register
class UnsupportedAction(WanWorkerError):
    """The request names a mode or action the service does not have."""

    code = "unsupported_action"


@_register
class InputFetchFailed(WanWorkerError):
    """An input URL or path could not be read."""

    code = "input_fetch_failed"


@_register
class InputTooLarge(WanWorkerError):
    """An input exceeds a configured size, pixel or duration cap."""

    code = "input_too_large"


@_register
class MissingModels(WanWorkerError):
    """The ComfyUI server lacks model files the graph needs."""

    code = "missing_models"


@_register
class MissingNodes(WanWorkerError):
    """The ComfyUI server lacks node types the graph needs."""

    code = "missing_nodes"


@_register
class ComfyUIUnavailable(WanWorkerError):
    """ComfyUI cannot be reached or answered in a way that is not the protocol."""

    code = "comfyui_unavailable"


@_register
class ValidationFailed(WanWorkerError):
    """ComfyUI (or our preflight) rejected the graph."""

    code = "validation_failed"


@_register
class ExecutionFailed(WanWorkerError):
    """A node raised while ComfyUI executed the graph."""

    code = "execution_failed"


@_register
class Timeout(WanWorkerError):
    """The job ran past its deadline or stalled, and was interrupted."""

    code = "timeout"


@_register
class Cancelled(WanWorkerError):
    """The job was cancelled by its caller, and was interrupted."""

    code = "cancelled"


@_register
class OutputMissing(WanWorkerError):
    """The graph finished but produced no output we could fetch."""

    code = "output_missing"


@_register
class UploadFailed(WanWorkerError):
    """The finished video could not be uploaded; it is kept on disk."""

    code = "upload_failed"


@_register
class DownloadFailed(WanWorkerError):
    """A model file could not be fetched, or what arrived was not the file the hub describes."""

    code = "download_failed"


@_register
class NotEnoughSpace(DownloadFailed):
    """The destination's disk cannot hold the download; refused before any byte is fetched."""

    code = "not_enough_space"
