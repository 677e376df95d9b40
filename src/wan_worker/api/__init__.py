"""The self-hosted HTTP API: RunPod's endpoint routes over a SQLite job store, on one ComfyUI."""

from wan_worker.api.app import create_app, serve
from wan_worker.api.jobs import JobRunner, OutputLinks, status_payload
from wan_worker.api.settings import ApiSettings, is_loopback

__all__ = [
    "ApiSettings",
    "JobRunner",
    "OutputLinks",
    "create_app",
    "is_loopback",
    "serve",
    "status_payload",
]
