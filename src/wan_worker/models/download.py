"""Fetch catalogue files from the Hugging Face hub into ComfyUI's models folders.

The hub client (``hf_hub_url``, ``get_hf_file_metadata``) resolves each file's size, sha256 and
download location; the bytes come over one streamed GET per attempt, so an interrupted download
resumes from the bytes already staged with an HTTP ``Range`` request, in this run or the next one.
Bytes are staged under ``<dest>/.wan-worker-downloads/`` (same disk, so the final move is a rename)
and only a file of the expected size and hash ever reaches ``<dest>/<folder>/<file>``.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple
from urllib.parse import urlsplit

import aiohttp
from huggingface_hub import get_hf_file_metadata, hf_hub_url

from wan_worker.catalogue import ModelFile
from wan_worker.errors import DownloadFailed, NotEnoughSpace
from wan_worker.models.paths import model_path
from wan_worker.models.settings import ModelSettings

STAGING_DIR = ".wan-worker-downloads"
"""Partial downloads live here, under the destination root, until they are complete and checked."""

APPROX_TOLERANCE = 0.01
"""How far a size may stray from the catalogue's rounded ``approx_bytes`` (1 %)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class RemoteFile:
    """What the hub says about one catalogue file."""

    model: ModelFile
    url: str
    """The hub's resolve URL: safe to print."""
    location: str
    """Where the bytes are served (often a signed CDN URL): never printed or logged."""
    size: int | None
    sha256: str | None
    etag: str | None


@dataclass(frozen=True)
class PlannedFile:
    """One file to fetch: its source, its final path, and the bytes already staged."""

    remote: RemoteFile
    target: Path
    part: Path
    staged_bytes: int

    @property
    def expected_bytes(self) -> int | None:
        return self.remote.size if self.remote.size is not None else self.remote.model.approx_bytes

    @property
    def remaining_bytes(self) -> int:
        """Bytes still to fetch (0 when the size is unknown)."""
        return max((self.expected_bytes or 0) - self.staged_bytes, 0)


@dataclass(frozen=True)
class DownloadPlan:
    """Everything decided before the first byte: what to fetch, what is there, the free space."""

    dest: Path
    fetch: tuple[PlannedFile, ...]
    present: tuple[ModelFile, ...]
    free_bytes: int

    @property
    def download_bytes(self) -> int:
        """Bytes still to come over the network (resumed files count only their rest)."""
        return sum(p.remaining_bytes for p in self.fetch)

    @property
    def staged_bytes(self) -> int:
        return sum(p.staged_bytes for p in self.fetch)

    @property
    def unknown_sizes(self) -> tuple[ModelFile, ...]:
        return tuple(p.remote.model for p in self.fetch if p.expected_bytes is None)


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of one file on disk so far; ``index`` counts files from 1."""

    file: str
    done_bytes: int
    total_bytes: int | None
    index: int
    count: int
    waiting: bool = False
    """True while another process downloads the same file into the same place."""

    @property
    def percent(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(100.0, 100.0 * self.done_bytes / self.total_bytes)


ProgressCallback = Callable[[DownloadProgress], None]
DiskUsageFn = Callable[[Path], DiskUsage]


def size_matches_approx(actual: int, approx: int | None) -> bool:
    """Whether a size agrees with the catalogue's rounded size (always true when unknown)."""
    return approx is None or abs(actual - approx) <= approx * APPROX_TOLERANCE


def human_bytes(count: float) -> str:
    """Sizes as people read them: ``13.31 GB``, ``601.8 MB`` (decimal units, as the hub shows)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{int(count)} B"


def _disk_usage(path: Path) -> DiskUsage:
    usage = shutil.disk_usage(path)
    return DiskUsage(usage.total, usage.used, usage.free)


class ModelDownloader:
    """Plans and runs downloads of catalogue files into a models root.

    ``disk_usage`` is injectable so tests can stage a full disk; ``attempts`` bounds how many
    times one run resumes a file after a dropped connection before giving up (the partial stays,
    and the next run resumes it). Two downloaders of one file into one root (workers starting
    together on a shared volume) take turns: the second waits, then finds the file in place.
    """

    def __init__(
        self,
        settings: ModelSettings,
        *,
        disk_usage: DiskUsageFn = _disk_usage,
        on_progress: ProgressCallback | None = None,
        attempts: int = 3,
        retry_delay_s: float = 1.0,
        chunk_bytes: int = 1 << 20,
        read_timeout_s: float = 60.0,
        lock_poll_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self._disk_usage = disk_usage
        self._on_progress = on_progress
        self._attempts = max(1, attempts)
        self._retry_delay_s = retry_delay_s
        self._chunk_bytes = chunk_bytes
        self._read_timeout_s = read_timeout_s
        self._lock_poll_s = lock_poll_s

    async def plan(self, models: Sequence[ModelFile], dest: Path) -> DownloadPlan:
        """Ask the hub about each file, skip those already in place with the right size."""
        fetch: list[PlannedFile] = []
        present: list[ModelFile] = []
        for model in models:
            remote = await self.describe(model)
            target = model_path(dest, model)
            if target.is_file() and self._complete(target.stat().st_size, remote):
                present.append(model)
                continue
            part = _part_path(dest, model, remote.etag)
            staged = part.stat().st_size if part.is_file() else 0
            fetch.append(PlannedFile(remote, target, part, staged))
        return DownloadPlan(dest, tuple(fetch), tuple(present), self._free_bytes(dest))

    async def describe(self, model: ModelFile) -> RemoteFile:
        """The hub's metadata for one file: size, sha256 (an LFS file's etag) and location."""
        url = hf_hub_url(model.repository, model.path, endpoint=self.settings.hf_endpoint)
        try:
            meta = await asyncio.to_thread(
                get_hf_file_metadata,
                url,
                token=self.settings.hf_token or False,
                endpoint=self.settings.hf_endpoint,
            )
        # The hub client's exception types differ between its major versions; any failure
        # here means the same thing to the user, and the cause is chained.
        except Exception as err:
            raise DownloadFailed(
                f"could not read {model.file} from the hub at {url}: "
                f"{type(err).__name__}: {_first_line(err)}; check the network, HF_ENDPOINT, "
                "and HF_TOKEN for gated repositories",
                details={"file": model.file, "url": url},
            ) from err
        etag = meta.etag
        if meta.size is not None and not size_matches_approx(meta.size, model.approx_bytes):
            raise DownloadFailed(
                f"the hub reports {human_bytes(meta.size)} for {model.file} but the catalogue "
                f"expects about {human_bytes(model.approx_bytes or 0)}: the file at {url} is not "
                "the one the catalogue describes; nothing was downloaded",
                details={"file": model.file, "hub_bytes": meta.size, "approx": model.approx_bytes},
            )
        return RemoteFile(
            model=model,
            url=url,
            location=meta.location,
            size=meta.size,
            sha256=etag if etag is not None and _SHA256.match(etag) else None,
            etag=etag,
        )

    def check_space(self, plan: DownloadPlan) -> None:
        """Refuse, before any byte is fetched, a download the destination's disk cannot hold."""
        needed, free = plan.download_bytes, plan.free_bytes
        if needed <= free:
            return
        raise NotEnoughSpace(
            f"not enough free space in {plan.dest}: the download needs {human_bytes(needed)} "
            f"and {human_bytes(free)} is free; free {human_bytes(needed - free)} more or "
            "choose another --dest",
            details={"needed_bytes": needed, "free_bytes": plan.free_bytes, "dest": str(plan.dest)},
        )

    async def fetch(self, plan: DownloadPlan) -> list[Path]:
        """Download every planned file, one after the other; returns the final paths."""
        done: list[Path] = []
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self._read_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
                for index, planned in enumerate(plan.fetch, start=1):
                    await self._fetch_one(session, planned, index, len(plan.fetch))
                    done.append(planned.target)
        finally:
            _remove_empty_dirs(plan.dest / STAGING_DIR)
        return done

    async def download(self, models: Sequence[ModelFile], dest: Path) -> DownloadPlan:
        """Plan, check the space, fetch: the whole job without asking anyone."""
        plan = await self.plan(models, dest)
        self.check_space(plan)
        await self.fetch(plan)
        return plan

    def _complete(self, size: int, remote: RemoteFile) -> bool:
        if remote.size is not None:
            return size == remote.size
        return size_matches_approx(size, remote.model.approx_bytes)

    def _free_bytes(self, dest: Path) -> int:
        existing = dest.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        return self._disk_usage(existing).free

    async def _fetch_one(
        self, session: aiohttp.ClientSession, planned: PlannedFile, index: int, count: int
    ) -> None:
        remote = planned.remote
        planned.part.parent.mkdir(parents=True, exist_ok=True)
        for stale in planned.part.parent.glob(f"{_glob_escape(remote.model.file)}.*part"):
            if stale != planned.part:
                stale.unlink(missing_ok=True)
        staged = _StagedFile(planned, hashing=remote.sha256 is not None)
        waited = False
        while not staged.try_open():
            if not waited:
                self._report(remote.model.file, 0, remote.size, index, count, waiting=True)
                waited = True
            await asyncio.sleep(self._lock_poll_s)
        with staged:
            target = planned.target
            if waited and target.is_file() and self._complete(target.stat().st_size, remote):
                staged.discard()
                return
            location = remote.location
            for attempt in range(1, self._attempts + 1):
                try:
                    await self._stream(session, planned, location, staged, index=index, count=count)
                    break
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
                    failure = (
                        f"the connection dropped while downloading {remote.model.file} from "
                        f"{remote.url} ({human_bytes(staged.size)} kept in {planned.part}); "
                        "run the command again to resume"
                    )
                except _LinkRefused as refused:
                    failure = (
                        f"downloading {remote.model.file} from {remote.url} failed with HTTP "
                        f"{refused.status} ({human_bytes(staged.size)} kept in {planned.part}); "
                        "run the command again to resume"
                    )
                if attempt == self._attempts:
                    raise DownloadFailed(
                        failure, details={"file": remote.model.file, "kept_bytes": staged.size}
                    )
                await asyncio.sleep(self._retry_delay_s)
                location = await self._fresh_location(remote)
            self._check(planned, staged)
        planned.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(planned.part, planned.target)

    async def _fresh_location(self, remote: RemoteFile) -> str:
        """Ask the hub again before a retry: signed CDN links expire during long downloads."""
        fresh = await self.describe(remote.model)
        if fresh.etag != remote.etag or fresh.size != remote.size:
            raise DownloadFailed(
                f"{remote.model.file} changed on the hub during the download; run the command "
                "again to fetch the new revision",
                details={"file": remote.model.file},
            )
        return fresh.location

    async def _stream(
        self,
        session: aiohttp.ClientSession,
        planned: PlannedFile,
        location: str,
        staged: _StagedFile,
        *,
        index: int,
        count: int,
    ) -> None:
        """One GET from where the staged bytes end; a dropped connection raises aiohttp's error,
        a refused (expired) link :class:`_LinkRefused`."""
        remote = planned.remote
        if remote.size is not None and staged.size >= remote.size:
            return
        headers = self._headers(location)
        if staged.size:
            headers["Range"] = f"bytes={staged.size}-"
        async with session.get(location, headers=headers) as response:
            if response.status == 200 and staged.size:
                staged.restart()
            elif response.status == 206:
                start = _range_start(response.headers.get("Content-Range", ""))
                if start != staged.size:
                    raise DownloadFailed(
                        f"the server answered a resume of {remote.model.file} at byte "
                        f"{staged.size} with bytes from {start}; delete {planned.part} and run "
                        "the command again",
                        details={"file": remote.model.file},
                    )
            elif response.status in _RETRIED_STATUSES:
                raise _LinkRefused(response.status)
            elif response.status != 200:
                raise DownloadFailed(
                    f"downloading {remote.model.file} from {remote.url} failed with HTTP "
                    f"{response.status}",
                    details={"file": remote.model.file, "status": response.status},
                )
            self._report(remote.model.file, staged.size, remote.size, index, count)
            async for chunk in response.content.iter_chunked(self._chunk_bytes):
                staged.write(chunk)
                if remote.size is not None and staged.size > remote.size:
                    break
                self._report(remote.model.file, staged.size, remote.size, index, count)

    def _check(self, planned: PlannedFile, staged: _StagedFile) -> None:
        """Reject (and delete) a staged file of the wrong size or hash."""
        remote = planned.remote
        size = staged.size
        problem: str | None = None
        if remote.size is not None and size != remote.size:
            problem = (
                f"{human_bytes(size)} ({size} bytes) arrived where the hub announced "
                f"{human_bytes(remote.size)} ({remote.size} bytes)"
            )
        elif remote.size is None and not size_matches_approx(size, remote.model.approx_bytes):
            problem = (
                f"{human_bytes(size)} arrived where the catalogue expects about "
                f"{human_bytes(remote.model.approx_bytes or 0)}"
            )
        elif remote.sha256 is not None and staged.sha256() != remote.sha256:
            problem = "its sha256 differs from the hub's"
        if problem is None:
            return
        planned.part.unlink(missing_ok=True)
        raise DownloadFailed(
            f"rejected {remote.model.file} from {remote.url}: {problem}; the bad file was "
            "deleted, run the command again to fetch it afresh",
            details={"file": remote.model.file, "received_bytes": size, "hub_bytes": remote.size},
        )

    def _headers(self, location: str) -> dict[str, str]:
        """The token goes to the hub only, never to the CDN a download is redirected to."""
        headers = {"Accept-Encoding": "identity"}
        if self.settings.hf_token and _origin(location) == _origin(self.settings.hf_endpoint):
            headers["Authorization"] = f"Bearer {self.settings.hf_token}"
        return headers

    def _report(
        self,
        file: str,
        done: int,
        total: int | None,
        index: int,
        count: int,
        *,
        waiting: bool = False,
    ) -> None:
        if self._on_progress is not None:
            self._on_progress(DownloadProgress(file, done, total, index, count, waiting))


_RETRIED_STATUSES = frozenset({403, 408, 410, 429, 500, 502, 503, 504})
"""Answers worth another try with a fresh link: expired signatures, throttling, server trouble."""


class _LinkRefused(Exception):
    """The download link answered a status worth retrying with a fresh link."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _StagedFile:
    """The staging file of one download, locked against a second downloader, hashed as written."""

    def __init__(self, planned: PlannedFile, *, hashing: bool) -> None:
        self._planned = planned
        self._hashing = hashing
        self._hash = hashlib.sha256()
        self._out: IO[bytes] | None = None
        self.size = 0

    def try_open(self) -> bool:
        """Open and lock the staging file; ``False`` while another downloader holds it."""
        out = self._planned.part.open("ab")
        try:
            fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.close()
            return False
        self._out = out
        self.size = out.tell()
        if self._hashing and self.size:
            with self._planned.part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    self._hash.update(block)
        return True

    def __enter__(self) -> _StagedFile:
        assert self._out is not None, "try_open() first"
        return self

    def discard(self) -> None:
        """Drop an empty staging file (another downloader finished the file meanwhile)."""
        if self.size == 0:
            self._planned.part.unlink(missing_ok=True)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._out is None:
            return
        if exc_type is not None:
            self.discard()
        self._out.close()

    def write(self, chunk: bytes) -> None:
        assert self._out is not None
        self._out.write(chunk)
        if self._hashing:
            self._hash.update(chunk)
        self.size += len(chunk)

    def restart(self) -> None:
        """Drop the staged bytes: the server sent the whole file instead of the rest."""
        assert self._out is not None
        self._out.seek(0)
        self._out.truncate()
        self._hash = hashlib.sha256()
        self.size = 0

    def sha256(self) -> str:
        assert self._out is not None
        self._out.flush()
        return self._hash.hexdigest()


def _remove_empty_dirs(root: Path) -> None:
    """Remove the staging tree's empty folders, deepest first (partials of other files stay)."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def _glob_escape(name: str) -> str:
    """A file name as a literal glob pattern."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _part_path(dest: Path, model: ModelFile, etag: str | None) -> Path:
    """The staging file; its name carries the revision, so a new revision never resumes an old."""
    tag = re.sub(r"[^0-9A-Za-z]", "", etag or "")[:16]
    return dest / STAGING_DIR / model.folder / f"{model.file}.{tag}.part"


def _range_start(content_range: str) -> int | None:
    match = re.match(r"bytes (\d+)-", content_range)
    return int(match.group(1)) if match else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else "no detail"
