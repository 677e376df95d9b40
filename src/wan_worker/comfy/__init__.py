"""Talking to ComfyUI: preflight, upload, queue, follow, fetch outputs, clean up.

Generic ComfyUI: nothing here knows which model a graph runs. The main entry point is
:meth:`ComfyClient.run_prompt`.
"""

from wan_worker.comfy.client import ComfyClient, RunResult, Timings
from wan_worker.comfy.events import Backoff
from wan_worker.comfy.info import DeviceInfo, SystemInfo
from wan_worker.comfy.inputs import FILE_INPUTS, UPLOAD_ROOT, point_inputs
from wan_worker.comfy.outputs import OutputFile, OutputKind, OutputRef, find_outputs
from wan_worker.comfy.progress import Progress, ProgressCallback, Stage, stage_of
from wan_worker.comfy.rejections import ModelSource
from wan_worker.comfy.state import QueueState
from wan_worker.comfy.transport import RetryPolicy

__all__ = [
    "FILE_INPUTS",
    "UPLOAD_ROOT",
    "Backoff",
    "ComfyClient",
    "DeviceInfo",
    "ModelSource",
    "OutputFile",
    "OutputKind",
    "OutputRef",
    "Progress",
    "ProgressCallback",
    "QueueState",
    "RetryPolicy",
    "RunResult",
    "Stage",
    "SystemInfo",
    "Timings",
    "find_outputs",
    "point_inputs",
    "stage_of",
]
