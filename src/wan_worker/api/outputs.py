"""Finished videos the HTTP API serves from disk: one folder per job, kept for a while, bounded.

A file's age is its adoption time, stamped as its modification time so it survives restarts.
Expired files go first, then whole jobs, oldest first, while the folder is over its byte budget.
Lookups accept one plain name per level, so no request can reach outside the root.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def _safe(name: str) -> bool:
    """Whether ``name`` is one plain path component (no separators, dots-only or hidden names)."""
    return bool(_SAFE_NAME.match(name)) and name.strip(".") != ""


@dataclass(frozen=True)
class _Stored:
    path: Path
    size: int
    adopted_at: float


class OutputStore:
    """Served outputs under ``root/<job_id>/<name>``, expired after ``ttl_s``, within a budget."""

    def __init__(
        self,
        root: Path,
        *,
        ttl_s: float,
        budget_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.ttl_s = ttl_s
        self.budget_bytes = budget_bytes
        self._clock = clock
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def adopt(self, job_id: str, path: Path) -> Path:
        """Move ``path`` to ``root/<job_id>/<its name>``, then evict other jobs while over budget.

        Raises ValueError when the job id or file name is not a plain name.
        """
        if not _safe(job_id):
            raise ValueError(f"job id {job_id!r} cannot name an output folder")
        if not _safe(path.name):
            raise ValueError(f"output name {path.name!r} is not a plain file name")
        with self._lock:
            folder = self.root / job_id
            folder.mkdir(exist_ok=True)
            destination = folder / path.name
            _move(path, destination)
            now = self._clock()
            os.utime(destination, (now, now))
            self._evict_over_budget(keep=job_id)
        return destination

    def find(self, job_id: str, name: str) -> Path | None:
        """The stored file, or None when it is missing, expired, or the names try to escape."""
        if not (_safe(job_id) and _safe(name)):
            return None
        candidate = self.root / job_id / name
        try:
            resolved = candidate.resolve(strict=True)
            info = resolved.stat()
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.root.resolve()) or not stat.S_ISREG(info.st_mode):
            return None
        if self._expired(info.st_mtime):
            return None
        return resolved

    def sweep(self) -> list[Path]:
        """Remove expired files, then the oldest jobs while over budget; returns what went."""
        with self._lock:
            removed: list[Path] = []
            for stored in self._files():
                if self._expired(stored.adopted_at):
                    stored.path.unlink(missing_ok=True)
                    removed.append(stored.path)
            self._remove_empty_folders()
            removed += self._evict_over_budget(keep=None)
        return removed

    def usage_bytes(self) -> int:
        """Bytes the stored outputs take."""
        with self._lock:
            return sum(stored.size for stored in self._files())

    def _expired(self, adopted_at: float) -> bool:
        return self._clock() - adopted_at > self.ttl_s

    def _files(self) -> list[_Stored]:
        """Every regular file one level inside a job folder (symlinks are not followed)."""
        found: list[_Stored] = []
        for folder in _entries(self.root):
            if not folder.is_dir(follow_symlinks=False):
                continue
            for entry in _entries(Path(folder.path)):
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found.append(_Stored(Path(entry.path), info.st_size, info.st_mtime))
        return found

    def _evict_over_budget(self, *, keep: str | None) -> list[Path]:
        """Delete whole jobs, oldest first, until the usage fits the budget (never ``keep``)."""
        files = self._files()
        usage = sum(stored.size for stored in files)
        jobs: dict[str, list[_Stored]] = {}
        for stored in files:
            jobs.setdefault(stored.path.parent.name, []).append(stored)
        newest = {job: max(s.adopted_at for s in items) for job, items in jobs.items()}
        removed: list[Path] = []
        for job in sorted(jobs, key=lambda j: (newest[j], j)):
            if usage <= self.budget_bytes:
                break
            if job == keep:
                continue
            for stored in jobs[job]:
                stored.path.unlink(missing_ok=True)
                usage -= stored.size
                removed.append(stored.path)
            _remove_folder(self.root / job)
        return removed

    def _remove_empty_folders(self) -> None:
        for folder in _entries(self.root):
            if folder.is_dir(follow_symlinks=False):
                _remove_folder(Path(folder.path))


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as listing:
            return list(listing)
    except OSError:
        return []


def _remove_folder(folder: Path) -> None:
    """Remove a job folder once it holds nothing (a file added meanwhile keeps it)."""
    try:
        folder.rmdir()
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            raise


def _move(source: Path, destination: Path) -> None:
    """Rename into place; across file systems, copy to a hidden name first, then rename."""
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        part = destination.with_name(f".{destination.name}.part")
        try:
            shutil.copyfile(source, part)
            os.replace(part, destination)
        finally:
            part.unlink(missing_ok=True)
        source.unlink()
