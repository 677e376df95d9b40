"""A loopback stand-in for the Hugging Face hub and its CDN, for the downloader's tests.

Like the real hub, ``HEAD /{repo}/resolve/{revision}/{path}`` answers 302 with the file's
metadata (``X-Repo-Commit``, ``X-Linked-Etag`` = sha256, ``X-Linked-Size``) and a ``Location`` on
another origin (the CDN, a second server with a signed-looking query); the CDN serves the bytes
with ``Range`` support. Faults: cut the connection after N bytes, ignore ``Range``, announce a
wrong size or hash. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    """One file the hub serves; ``announced_size``/``announced_sha256`` override the truth."""

    repository: str
    path: str
    content: bytes
    announced_size: int | None = None
    announced_sha256: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Faults:
    """``cut_at``: byte offsets of the file where a GET's connection is closed, each used once,
    in order; ``ignore_range``: answer every GET with the whole file (200)."""

    cut_at: list[int] = field(default_factory=list)
    ignore_range: bool = False
    refuse_gets: list[int] = field(default_factory=list)
    """Statuses the CDN answers to its next GETs (an expired link is 403), each used once."""


@dataclass(frozen=True)
class Seen:
    """One request as a server saw it."""

    server: str
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class HubDouble:
    """``async with HubDouble([...]) as hub``: ``hub.url`` is the endpoint for HF_ENDPOINT."""

    files: list[HubFile]
    faults: Faults = field(default_factory=Faults)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    cdn_url: str = ""
    _runners: list[web.AppRunner] = field(default_factory=list)

    async def __aenter__(self) -> HubDouble:
        hub = web.Application()
        hub.router.add_route("*", "/{repo:[^/]+/[^/]+}/resolve/{revision}/{path:.+}", self._resolve)
        cdn = web.Application()
        cdn.router.add_get("/blobs/{sha}", self._blob)
        self.url = await self._start(hub)
        self.cdn_url = await self._start(cdn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def requests(self, server: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.server == server and method in (None, s.method)]

    async def _start(self, app: web.Application) -> str:
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        return f"http://127.0.0.1:{int(runner.addresses[0][1])}"

    def _record(self, server: str, request: web.Request) -> None:
        self.seen.append(
            Seen(
                server,
                request.method,
                request.path,
                request.headers.get("Range"),
                request.headers.get("Authorization"),
            )
        )

    def _find(self, repository: str, path: str) -> HubFile | None:
        return next((f for f in self.files if (f.repository, f.path) == (repository, path)), None)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        self._record("hub", request)
        file = self._find(request.match_info["repo"], request.match_info["path"])
        if file is None:
            return web.Response(
                status=404, headers={"X-Error-Code": "EntryNotFound"}, text="Entry not found"
            )
        size = file.announced_size if file.announced_size is not None else len(file.content)
        sha = file.announced_sha256 or file.sha256
        return web.Response(
            status=302,
            headers={
                "Location": f"{self.cdn_url}/blobs/{file.sha256}?X-Amz-Signature=secret-signature",
                "X-Repo-Commit": COMMIT,
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(size),
                "ETag": f'"{sha}"',
            },
        )

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        self._record("cdn", request)
        file = next((f for f in self.files if f.sha256 == request.match_info["sha"]), None)
        if file is None:
            return web.Response(status=404)
        if self.faults.refuse_gets:
            return web.Response(status=self.faults.refuse_gets.pop(0), text="link expired")
        total = len(file.content)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        response = web.StreamResponse(status=200)
        if match and not self.faults.ignore_range:
            start = int(match.group(1))
            if start >= total:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
            response.set_status(206)
            response.headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        response.headers["Accept-Ranges"] = "bytes"
        response.content_length = total - start
        await response.prepare(request)
        end = total
        cuts = self.faults.cut_at
        if cuts and start < cuts[0] < total:
            end = cuts.pop(0)
        position = start
        while position < end:
            step = min(64 * 1024, end - position)
            await response.write(file.content[position : position + step])
            position += step
        if end < total:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response


class ThreadedHub:
    """The hub double on its own event loop in a thread, for synchronous callers (the CLI)."""

    def __init__(self, files: list[HubFile]) -> None:
        self.double = HubDouble(files)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> HubDouble:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.double.__aenter__(), self._loop).result(30)
        return self.double

    def __exit__(self, *exc: object) -> None:
        closing = self.double.__aexit__(None, None, None)
        asyncio.run_coroutine_threadsafe(closing, self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
