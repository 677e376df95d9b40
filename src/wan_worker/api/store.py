"""The HTTP API's job records in one SQLite file, so queued jobs outlive a restart.

One connection in WAL mode, guarded by a lock: every method is a short synchronous statement that
callers on the event loop or in threads may use alike. Jobs are claimed first in, first out, and a
terminal status is final. A finished job keeps no secrets: its ``s3Config`` is cleared and its
input cut to a summary (:func:`redacted_input`) in the same statement that ends it, with deleted
bytes zeroed and the write-ahead log emptied after it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

JobStatus = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]

JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
)

PURGED_ERROR = "cancelled: purged from the queue"
CANCELLED_ERROR = "cancelled: cancelled while waiting in the queue"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    webhook TEXT,
    s3_config TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    output TEXT,
    error TEXT,
    error_code TEXT,
    progress TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at);
"""

_COLUMNS = (
    "id, status, input, webhook, s3_config, created_at, started_at, finished_at, "
    "output, error, error_code, progress"
)
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
_FORGET_SQL = "input = redact_job_input(input), s3_config = NULL"
"""Set with every terminal status: what a finished job no longer needs, and must not keep."""

_SECRET_KEYS = frozenset({"s3Config", "upload_url"})
_BULKY_KEYS = frozenset({"workflow"})
_CONTENT_KEYS = frozenset({"image", "audio"})
"""A raw graph's files (``images[].image``, ``audio[].audio``): base64 text or a URL."""
_LEFT_OUT = object()


@dataclass(frozen=True)
class JobRecord:
    """One job as stored: its request, where it stands, and what it produced."""

    id: str
    status: JobStatus
    input: dict[str, Any]
    webhook: str | None
    s3_config: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    output: dict[str, Any] | None
    error: str | None
    error_code: str | None
    progress: dict[str, Any] | None

    @property
    def terminal(self) -> bool:
        """Whether the job has finished one way or another (its record no longer changes)."""
        return self.status in TERMINAL_STATUSES

    @property
    def delay_ms(self) -> int | None:
        """Milliseconds from submission to start (or to cancellation), as RunPod's delayTime."""
        until = self.started_at if self.started_at is not None else self.finished_at
        return None if until is None else round((until - self.created_at) * 1000)

    @property
    def execution_ms(self) -> int | None:
        """Milliseconds from start to finish, as RunPod's executionTime; None until both exist."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at) * 1000)


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _load(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value: dict[str, Any] = json.loads(text)
    return value


def redacted_input(job_input: dict[str, Any]) -> dict[str, Any]:
    """What a finished job keeps of its input: its action and plain parameters, URLs without
    credentials, query or fragment; no s3Config, upload_url, base64 media or raw graph. The keys
    left out are named under ``redacted``."""
    dropped: list[str] = []
    kept = _redact_object(job_input, "", dropped)
    if dropped:
        kept["redacted"] = dropped
    return kept


def _redact_object(value: dict[str, Any], prefix: str, dropped: list[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{prefix}{key}"
        secret = key in _SECRET_KEYS or key in _BULKY_KEYS or key.endswith("_base64")
        if secret or (key in _CONTENT_KEYS and isinstance(item, str)):
            dropped.append(where)
            continue
        summary = _redact_value(item, where, dropped)
        if summary is not _LEFT_OUT:
            kept[key] = summary
    return kept


def _redact_value(item: Any, where: str, dropped: list[str]) -> Any:
    if isinstance(item, dict):
        return _redact_object(item, f"{where}.", dropped)
    if isinstance(item, list):
        summaries = [_redact_value(x, f"{where}[{i}]", dropped) for i, x in enumerate(item)]
        return [summary for summary in summaries if summary is not _LEFT_OUT]
    if isinstance(item, str) and item.startswith(("data:", "http://", "https://")):
        url = _bare_url(item)
        if url is None:
            dropped.append(where)
            return _LEFT_OUT
        return url
    return item


def _bare_url(text: str) -> str | None:
    """An http(s) URL without credentials, query or fragment; None for a data URI or nonsense."""
    if text.startswith("data:"):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def _redacted_json(text: str | None) -> str:
    """``redact_job_input(input)`` in SQL: the stored input's summary, as JSON."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return "{}"
    return _dump(redacted_input(value) if isinstance(value, dict) else {}) or "{}"


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        id=row[0],
        status=row[1],
        input=_load(row[2]) or {},
        webhook=row[3],
        s3_config=_load(row[4]),
        created_at=row[5],
        started_at=row[6],
        finished_at=row[7],
        output=_load(row[8]),
        error=row[9],
        error_code=row[10],
        progress=_load(row[11]),
    )


class JobStore:
    """Job records in a SQLite file; safe to share between threads and the event loop."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.create_function("redact_job_input", 1, _redacted_json, deterministic=True)
        self._db.executescript(_SCHEMA)

    def add(
        self,
        job_id: str,
        input: dict[str, Any],
        *,
        webhook: str | None = None,
        s3_config: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Queue a new job; raises ValueError if a job with this id already exists."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "INSERT INTO jobs (id, status, input, webhook, s3_config, created_at) "
                    f"VALUES (?, 'IN_QUEUE', ?, ?, ?, ?) RETURNING {_COLUMNS}",
                    (job_id, _dump(input), webhook, _dump(s3_config), self._clock()),
                ).fetchall()
            except sqlite3.IntegrityError:
                raise ValueError(f"job {job_id!r} already exists") from None
        return _record(rows[0])

    def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or None if there is no such job (or it has expired)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def claim_next(self) -> JobRecord | None:
        """Move the oldest queued job to IN_PROGRESS and return it; None when the queue is empty."""
        with self._lock:
            rows = self._db.execute(
                "UPDATE jobs SET status = 'IN_PROGRESS', started_at = ? WHERE seq = ("
                "SELECT seq FROM jobs WHERE status = 'IN_QUEUE' ORDER BY seq LIMIT 1"
                f") RETURNING {_COLUMNS}",
                (self._clock(),),
            ).fetchall()
        return _record(rows[0]) if rows else None

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Record a running job's latest progress; ignored once the job has finished."""
        with self._lock:
            self._db.execute(
                f"UPDATE jobs SET progress = ? WHERE id = ? AND status NOT IN ({_TERMINAL_SQL})",
                (_dump(progress), job_id),
            )

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        error_code: str | None = None,
    ) -> JobRecord:
        """Give the job its terminal status; a job already finished keeps its first outcome.

        Raises KeyError for an unknown job and ValueError for a status that is not terminal.
        """
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"{status} is not a terminal status")
        with self._lock:
            rows = self._db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, output = ?, error = ?, "
                f"error_code = ?, {_FORGET_SQL} WHERE id = ? AND status NOT IN ({_TERMINAL_SQL}) "
                f"RETURNING {_COLUMNS}",
                (status, self._clock(), _dump(output), error, error_code, job_id),
            ).fetchall()
            if rows:
                self._truncate_log()
            if not rows:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
                ).fetchall()
        if not rows:
            raise KeyError(job_id)
        return _record(rows[0])

    def cancel_queued(self, job_id: str) -> JobRecord | None:
        """Cancel a job that has not started; None if it is not waiting in the queue."""
        with self._lock:
            rows = self._db.execute(
                "UPDATE jobs SET status = 'CANCELLED', finished_at = ?, error = ?, "
                f"error_code = 'cancelled', {_FORGET_SQL} WHERE id = ? AND status = 'IN_QUEUE' "
                f"RETURNING {_COLUMNS}",
                (self._clock(), CANCELLED_ERROR, job_id),
            ).fetchall()
            if rows:
                self._truncate_log()
        return _record(rows[0]) if rows else None

    def purge_queue(self) -> list[JobRecord]:
        """Cancel every queued job at once; returns their records, first queued first."""
        with self._lock:
            rows = self._db.execute(
                "UPDATE jobs SET status = 'CANCELLED', finished_at = ?, error = ?, "
                f"error_code = 'cancelled', {_FORGET_SQL} WHERE status = 'IN_QUEUE' "
                f"RETURNING {_COLUMNS}, seq",
                (self._clock(), PURGED_ERROR),
            ).fetchall()
            if rows:
                self._truncate_log()
        return [_record(row) for row in sorted(rows, key=lambda row: row[-1])]

    def queued_ids(self) -> list[str]:
        """The ids of the jobs waiting in the queue, first in first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status = 'IN_QUEUE' ORDER BY seq"
            ).fetchall()
        return [job_id for (job_id,) in rows]

    def queue_depth(self) -> int:
        """How many jobs wait to start."""
        with self._lock:
            (depth,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'IN_QUEUE'"
            ).fetchone()
        return int(depth)

    def counts(self) -> dict[JobStatus, int]:
        """How many stored jobs are in each status (every status present, zeros included)."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        found = dict(rows)
        return {status: int(found.get(status, 0)) for status in JOB_STATUSES}

    def recover(self, reason: str, *, error_code: str = "execution_failed") -> list[str]:
        """Fail every job left IN_PROGRESS (by a process that died); returns their ids.

        The stored error reads ``"<error_code>: <reason>"``, the shape every error response has.
        """
        with self._lock:
            rows = self._db.execute(
                "UPDATE jobs SET status = 'FAILED', finished_at = ?, error = ?, error_code = ?, "
                f"{_FORGET_SQL} WHERE status = 'IN_PROGRESS' RETURNING id, seq",
                (self._clock(), f"{error_code}: {reason}", error_code),
            ).fetchall()
            if rows:
                self._truncate_log()
        return [job_id for job_id, _ in sorted(rows, key=lambda row: row[1])]

    def expire(self, older_than_s: float) -> int:
        """Delete finished jobs whose finish lies more than ``older_than_s`` ago; returns count."""
        with self._lock:
            cursor = self._db.execute(
                f"DELETE FROM jobs WHERE status IN ({_TERMINAL_SQL}) AND finished_at < ?",
                (self._clock() - older_than_s,),
            )
        return cursor.rowcount

    def _truncate_log(self) -> None:
        """Copy the write-ahead log into the database and empty it, so the pages that held a
        finished job's secrets do not linger there (called holding the lock)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        with self._lock:
            self._db.close()
