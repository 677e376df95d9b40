"""Log lines that say which job they belong to and never carry a secret.

``job_context`` marks everything logged inside it (asyncio tasks and ``to_thread`` calls started
inside inherit the mark) with the job's id; ``configure_logging`` installs the one root handler
that prints it, as plain text or one JSON object per line, with secrets redacted.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

NO_JOB = "-"
PLAIN_FORMAT = "%(asctime)s %(levelname)s [%(job_id)s] %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED = "[redacted]"

_job_id: ContextVar[str] = ContextVar("wan_worker_job_id", default=NO_JOB)

_SECRET_PATTERNS = (
    # Authorization header values: "Bearer <token>", "Basic <credentials>".
    re.compile(r"\b((?i:bearer)|Basic)(\s+)[A-Za-z0-9._~+/=-]{6,}"),
    # Signed-URL and token query values (S3 presigned URLs, SAS tokens, API keys).
    re.compile(
        r"(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token"
        r"|access_token|api_key|apikey)(=)[^&\s\"'<>]+"
    ),
)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b")
_known_secrets: set[str] = set()


def current_job_id() -> str:
    """The id of the job whose context this code runs in, or ``"-"`` outside any job."""
    return _job_id.get()


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Mark every log record made inside the block (and tasks started in it) with ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def register_secret(value: str) -> None:
    """Redact this exact value (an API token, a webhook secret) wherever it appears in logs."""
    if len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """The text with bearer tokens, signed-URL signatures and registered secrets replaced."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _HF_TOKEN.sub(REDACTED, text)


class JobContextFilter(logging.Filter):
    """Adds ``job_id`` to every record, from the context the record was made in."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = _job_id.get()
        return True


class PlainFormatter(logging.Formatter):
    """``time LEVEL [job_id] logger: message``, secrets redacted."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        JobContextFilter().filter(record)
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, job_id, message, exc_info when present."""

    def format(self, record: logging.LogRecord) -> str:
        JobContextFilter().filter(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "job_id": getattr(record, "job_id", NO_JOB),
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


class _WanWorkerHandler(logging.StreamHandler[TextIO]):
    """The root handler ``configure_logging`` owns (so a second call can replace it)."""


def configure_logging(
    *, level: str = "INFO", json_logs: bool = False, stream: TextIO | None = None
) -> None:
    """Install the one root handler (replacing an earlier one from this function) at ``level``.

    Raises ValueError for a level that is not one of :data:`LOG_LEVELS`.
    """
    name = level.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    handler = _WanWorkerHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(JobContextFilter())
    handler.setFormatter(JsonFormatter() if json_logs else PlainFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _WanWorkerHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(name)
