"""The remote client's video download: the token goes only to the target's own origin, and
every form a response may carry the video in (URL, base64, data URI, shared path) is saved."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.cli.conftest import SAMPLES
from wan_worker.cli.outcome import JobFailed
from wan_worker.cli.remote import RemoteJobs, RemoteTarget

VIDEO = (SAMPLES / "voice.wav").read_bytes()
"""Any bytes do: the client saves what it is given (the caller probes it)."""


@dataclass
class Recorder:
    """A loopback file server that records the Authorization header of each request."""

    url: str
    seen: list[str | None] = field(default_factory=list)


async def recorder() -> AsyncIterator[Recorder]:
    seen: list[str | None] = []

    async def video(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=VIDEO)

    app = web.Application()
    app.router.add_get("/{tail:.*}", video)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Recorder(f"http://127.0.0.1:{runner.addresses[0][1]}", seen)
    await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    async for made in recorder():
        yield made


@pytest.fixture
async def bucket() -> AsyncIterator[Recorder]:
    async for made in recorder():
        yield made


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as made:
        yield made


def jobs_on(server: Recorder, session: aiohttp.ClientSession) -> RemoteJobs:
    return RemoteJobs(RemoteTarget.server(server.url, "the-token"), session)


async def test_the_token_goes_to_the_servers_own_links_but_never_to_a_bucket(
    server: Recorder, bucket: Recorder, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    jobs = jobs_on(server, session)
    served = {"video": f"{server.url}/v2/wan-worker/outputs/j1/a.mp4", "delivery": {}}
    await jobs.save_video(served, tmp_path / "served.mp4")
    presigned = {"video": f"{bucket.url}/videos/a.mp4?X-Amz-Signature=abc", "delivery": {}}
    await jobs.save_video(presigned, tmp_path / "bucket.mp4")

    assert server.seen == ["Bearer the-token"]
    assert bucket.seen == [None]
    assert (tmp_path / "served.mp4").read_bytes() == VIDEO
    assert (tmp_path / "bucket.mp4").read_bytes() == VIDEO


async def test_inline_base64_a_data_uri_and_a_shared_path_are_saved(
    server: Recorder, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    jobs = jobs_on(server, session)
    encoded = base64.b64encode(VIDEO).decode()
    await jobs.save_video({"video": encoded, "delivery": {"mode": "inline"}}, tmp_path / "a.mp4")
    data_uri = f"data:video/mp4;base64,{encoded}"
    await jobs.save_video({"video": data_uri, "delivery": {"mode": "inline"}}, tmp_path / "b.mp4")
    kept = SAMPLES / "voice.wav"
    await jobs.save_video({"video": str(kept), "delivery": {"mode": "local"}}, tmp_path / "c.mp4")

    for name in ("a.mp4", "b.mp4", "c.mp4"):
        assert (tmp_path / name).read_bytes() == VIDEO
    assert server.seen == []


@pytest.mark.parametrize(
    ("response", "words"),
    [
        ({"video": "not base64!", "delivery": {"mode": "inline"}}, "not valid base64"),
        ({"video": "/nowhere/x.mp4", "delivery": {"mode": "local"}}, "on its own disk"),
        ({"delivery": {"mode": "inline"}}, "carries no video"),
    ],
)
async def test_a_response_without_a_usable_video_is_output_missing(
    response: dict[str, object],
    words: str,
    server: Recorder,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    with pytest.raises(JobFailed) as failed:
        await jobs_on(server, session).save_video(response, tmp_path / "x.mp4")
    assert failed.value.error_code == "output_missing"
    assert words in str(failed.value)
    assert failed.value.exit_status == 3
