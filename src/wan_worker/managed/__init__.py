"""ComfyUI run by the worker itself: a supervised child process on loopback (for `serve`)."""

from wan_worker.managed.process import (
    LOG_PREFIX,
    ComfyUIProcess,
    CrashCallback,
    ProcessState,
    comfyui_environment,
)
from wan_worker.managed.settings import ManagedComfyUISettings

__all__ = [
    "LOG_PREFIX",
    "ComfyUIProcess",
    "CrashCallback",
    "ManagedComfyUISettings",
    "ProcessState",
    "comfyui_environment",
]
