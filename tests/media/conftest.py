"""Real servers on 127.0.0.1 and the folders the media tests write to.

Nothing here talks to anything but loopback: names that stand for private, link-local or
metadata hosts resolve (in ``helpers.MapResolver``) to such addresses only so the policy can
refuse them before any connection is made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from .helpers import MapResolver


@dataclass
class Server:
    """A running test server: its port, the requests it saw, and files it serves."""

    port: int
    requests: list[str]
    files: dict[str, bytes]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port: int = server.sockets[0].getsockname()[1]
    return runner, port


@pytest.fixture
async def recorder() -> AsyncIterator[Server]:
    """Answers every request with 200 and counts it; refusal tests assert it saw nothing."""
    requests: list[str] = []

    async def record(request: web.Request) -> web.Response:
        requests.append(request.path_qs)
        return web.Response(body=b"recorded")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, port = await _start(app)
    yield Server(port, requests, {})
    await runner.cleanup()


@pytest.fixture
async def file_server() -> AsyncIterator[Server]:
    """Serves named files, redirects, oversize bodies, slow answers and error statuses."""
    requests: list[str] = []
    files: dict[str, bytes] = {}
    release = asyncio.Event()

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        requests.append(request.path_qs)
        return await handler(request)

    async def serve_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type="application/octet-stream")

    async def redirect(request: web.Request) -> web.Response:
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def no_location(request: web.Request) -> web.Response:
        return web.Response(status=302)

    async def chain(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(body=files["chain-end"])
        return web.Response(status=307, headers={"Location": f"/chain/{left - 1}"})

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1 << 40
        await response.prepare(request)
        await release.wait()
        return response

    async def chunked_big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(int(request.query["chunks"])):
                await response.write(b"\0" * 65536)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=b"late")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), body=b"nope")

    app = web.Application(middlewares=[count])
    app.router.add_get("/files/{name}", serve_file)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/no-location", no_location)
    app.router.add_get("/chain/{left}", chain)
    app.router.add_get("/declared-huge", declared_huge)
    app.router.add_get("/chunked-big", chunked_big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    runner, port = await _start(app)
    yield Server(port, requests, files)
    release.set()
    await runner.cleanup()


@pytest.fixture
def resolver() -> MapResolver:
    """The test resolver; refusal tests also check which names it was asked."""
    return MapResolver()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """The job folder inputs are written to; tests check it is empty after a refusal."""
    folder = tmp_path / "job"
    folder.mkdir()
    return folder


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A stand-in for the network volume that path inputs may read from."""
    folder = tmp_path / "volume"
    folder.mkdir()
    return folder


@pytest.fixture
def no_pillow_warnings() -> Iterator[None]:
    """Fails the test if any warning (a DecompressionBombWarning above all) escapes."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught] == []
