"""The shared websocket: only a prompt's own events reach it; drops and returns are announced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from wan_worker.comfy.events import (
    Backoff,
    Disconnected,
    EventStream,
    Reconnected,
    ServerEvent,
    StreamItem,
)


class Script:
    """A websocket server on loopback that plays one list of frames per connection."""

    def __init__(self, connections: list[list[str | bytes]]) -> None:
        self.connections = connections
        self.count = 0
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        frames = self.connections[min(self.count, len(self.connections) - 1)]
        self.count += 1
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        if self.count < len(self.connections):
            await ws.close()
            return ws
        async for _ in ws:
            pass
        return ws


@pytest.fixture
async def script() -> AsyncIterator[Script]:
    mine = json.dumps({"type": "executing", "data": {"node": "1", "prompt_id": "mine"}})
    theirs = json.dumps({"type": "executing", "data": {"node": "2", "prompt_id": "theirs"}})
    status = json.dumps({"type": "status", "data": {"status": {}, "sid": "c"}})
    done = json.dumps({"type": "execution_success", "data": {"prompt_id": "mine"}})
    server = Script(
        [
            [status, b"\x00\x00\x00\x01preview-bytes", "not json", theirs, mine],
            [status, theirs, done],
        ]
    )
    app = web.Application()
    app.router.add_get("/ws", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"ws://127.0.0.1:{runner.addresses[0][1]}/ws?clientId=c"
    yield server
    await runner.cleanup()


async def _next(queue: asyncio.Queue[StreamItem]) -> StreamItem:
    return await asyncio.wait_for(queue.get(), 5)


async def test_a_subscriber_gets_its_own_events_and_hears_of_drops_and_returns(
    script: Script,
) -> None:
    async with aiohttp.ClientSession() as session:
        stream = EventStream(session, URL(script.url), backoff=Backoff(first_s=0.05, max_s=0.1))
        queue = stream.subscribe("mine")
        assert await stream.wait_connected(5)
        try:
            items = [await _next(queue) for _ in range(4)]
        finally:
            await stream.close()
    assert items[0] == ServerEvent("executing", {"node": "1", "prompt_id": "mine"})
    assert isinstance(items[1], Disconnected)
    assert isinstance(items[2], Reconnected)
    assert items[3] == ServerEvent("execution_success", {"prompt_id": "mine"})
    assert queue.empty()


async def test_an_unsubscribed_prompt_receives_nothing(script: Script) -> None:
    async with aiohttp.ClientSession() as session:
        stream = EventStream(session, URL(script.url), backoff=Backoff(first_s=0.05, max_s=0.1))
        gone = stream.subscribe("mine")
        stream.unsubscribe("mine")
        other = stream.subscribe("theirs")
        stream.start()
        try:
            seen = await _next(other)
        finally:
            await stream.close()
    assert seen == ServerEvent("executing", {"node": "2", "prompt_id": "theirs"})
    assert gone.empty()
