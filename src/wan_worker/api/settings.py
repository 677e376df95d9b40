"""The HTTP API's settings, read from the environment once (docs/http-api.md lists them)."""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wan_worker.errors import InvalidInput, Problem
from wan_worker.service import EnvReader


def _default_root() -> Path:
    return Path(tempfile.gettempdir()) / "wan-worker"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiSettings:
    """Where the API listens, who may call it, how many jobs it holds and where outputs go."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    """Bearer token every route but /health, /ready and the docs requires (API_TOKEN)."""
    job_db_path: Path = field(default_factory=lambda: _default_root() / "jobs.sqlite3")
    jobs_concurrency: int = 1
    """Jobs run at once on the one ComfyUI."""
    max_queue_depth: int = 100
    """Queued jobs past which /run answers 429 and /ready turns false."""
    job_retention_s: float = 86400.0
    """Finished job records are deleted this long after they finish."""
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_attempts: int = 5
    output_dir: Path = field(default_factory=lambda: _default_root() / "outputs")
    """Videos served by the API (over the inline budget, nowhere to upload them)."""
    output_ttl_s: float = 86400.0
    output_disk_budget_bytes: int = 20 * 1024**3
    public_url: str | None = None
    """Base URL of links to served outputs (default: the base URL the job was submitted to)."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body; bigger ones are refused before they are read (413)."""
    runsync_wait_s: float = 90.0
    """How long /runsync waits for the job before answering its status (``?wait=`` in ms)."""
    sweep_interval_s: float = 60.0
    """How often expired job records and served outputs are removed."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        """Read every API setting from ``env``; every bad value is reported at once."""
        read = EnvReader(env)
        root = _default_root()
        settings = cls(
            host=read.value("API_HOST", str, "127.0.0.1"),
            port=read.whole("API_PORT", 8000, low=0, high=65535),
            token=read.optional("API_TOKEN", str),
            job_db_path=read.value("JOB_DB_PATH", Path, root / "jobs.sqlite3"),
            jobs_concurrency=read.whole("JOBS_CONCURRENCY", 1, low=1),
            max_queue_depth=read.whole("MAX_QUEUE_DEPTH", 100, low=1),
            job_retention_s=read.positive("JOB_RETENTION_S", 86400.0),
            webhook_secret=read.optional("WEBHOOK_SECRET", str),
            webhook_attempts=read.whole("WEBHOOK_ATTEMPTS", 5, low=1),
            output_dir=read.value("OUTPUT_DIR", Path, root / "outputs"),
            output_ttl_s=read.positive("OUTPUT_TTL_S", 86400.0),
            output_disk_budget_bytes=read.whole("OUTPUT_DISK_BUDGET_BYTES", 20 * 1024**3, low=0),
            public_url=_public_url(read),
            max_body_bytes=read.whole("API_MAX_BODY_BYTES", 64 * 1024 * 1024, low=1),
        )
        problem = settings.exposure_problem()
        if problem is not None:
            read.problems.append(problem)
        read.raise_if_any()
        return settings

    def exposure_problem(self) -> Problem | None:
        """Why these settings must not be served (a non-loopback host without a token)."""
        if self.token or is_loopback(self.host):
            return None
        return Problem(
            message=f"API_TOKEN must be set when API_HOST ({self.host}) is not a loopback "
            "address: anyone who can reach the port could run jobs",
            field="API_TOKEN",
        )

    def check_exposure(self) -> None:
        """Refuse to listen beyond loopback without a token (raises InvalidInput)."""
        problem = self.exposure_problem()
        if problem is not None:
            raise InvalidInput(problem.message, problems=[problem])


def _public_url(read: EnvReader) -> str | None:
    url = read.optional("PUBLIC_URL", str)
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        read.problems.append(
            Problem(message="PUBLIC_URL must be an http(s) URL", field="PUBLIC_URL", value=url)
        )
        return None
    return url.rstrip("/")
