"""The service core shared by every front: one request schema, one job pipeline, one settings.

Fronts (the RunPod handler, the HTTP API, the CLI) translate their transport to
:func:`run_job` (or :meth:`Worker.respond`) and back; they hold no logic of their own.
"""

from wan_worker.service.pipeline import JobResult, Worker, error_response, run_job
from wan_worker.service.progress import JobProgress, JobProgressCallback, ProgressThrottle
from wan_worker.service.schema import (
    ACTIONS,
    GenerationJob,
    JobOptions,
    RawJob,
    RawRequest,
    parse_job,
    request_json_schema,
)
from wan_worker.service.settings import EnvReader, ServiceSettings

__all__ = [
    "ACTIONS",
    "EnvReader",
    "GenerationJob",
    "JobOptions",
    "JobProgress",
    "JobProgressCallback",
    "JobResult",
    "ProgressThrottle",
    "RawJob",
    "RawRequest",
    "ServiceSettings",
    "Worker",
    "error_response",
    "parse_job",
    "request_json_schema",
    "run_job",
]
