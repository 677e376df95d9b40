"""Webhooks against real receivers on 127.0.0.1: signatures, retries, isolation, the SSRF policy."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from tests.service.conftest import MapResolver
from wan_worker.api.webhooks import (
    SIGNATURE_HEADER,
    WebhookConfig,
    WebhookSender,
    check_webhook_url,
    sign,
    verify,
)
from wan_worker.errors import InvalidInput
from wan_worker.media import InputLimits

SECRET = "whsec-test-0123456789"
WAIT_S = 20.0


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers each path from a script of statuses, records every request."""

    port: int
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}/{path}"

    def answer(self, path: str, *statuses: int | tuple[int, dict[str, str]]) -> None:
        """Answer ``path`` with these statuses in turn, the last one from then on."""
        self.scripts[path] = [s if isinstance(s, tuple) else (s, {}) for s in statuses]

    def count(self, path: str) -> int:
        return len(self.hits.get(path, []))

    async def wait_for(self, path: str, count: int) -> None:
        async with asyncio.timeout(WAIT_S), self.arrived:
            await self.arrived.wait_for(lambda: self.count(path) >= count)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        hit = Hit(dict(request.headers), await request.read())
        async with self.arrived:
            self.hits.setdefault(path, []).append(hit)
            self.arrived.notify_all()
        if path in self.hanging:
            await self.release.wait()
        script = self.scripts.get(path, [(200, {})])
        status, headers = script.pop(0) if len(script) > 1 else script[0]
        return web.Response(status=status, headers=headers, text="ok")


async def start_receiver() -> tuple[Receiver, web.AppRunner]:
    receiver = Receiver(port=0)
    app = web.Application()
    app.router.add_post("/{path}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = int(runner.addresses[0][1])
    return receiver, runner


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made, runner = await start_receiver()
    yield made
    made.release.set()
    await runner.cleanup()


SenderFactory = Callable[..., Awaitable[WebhookSender]]


@pytest.fixture
async def make_sender(receiver: Receiver) -> AsyncIterator[SenderFactory]:
    """Senders that may reach the receiver's origin only; closed after the test."""
    made: list[WebhookSender] = []

    async def make(
        *,
        limits: InputLimits | None = None,
        resolver: MapResolver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **config: Any,
    ) -> WebhookSender:
        base = WebhookConfig(
            secret=SECRET, attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=10.0
        )
        sender = WebhookSender(
            replace(base, **config),
            limits=limits or InputLimits(allowed_origins=(receiver.origin,)),
            resolver=resolver,
            sleep=sleep,
        )
        await sender.start()
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.close()


# ---------------------------------------------------------------------------- signatures


def test_a_signature_verifies_and_names_its_time() -> None:
    header = sign(SECRET, b'{"id":"job-1"}', 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, header, b'{"id":"job-1"}', now=1_700_000_100)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        (SECRET, b'{"id":"job-2"}', 1_700_000_000),
        ("another-secret", b'{"id":"job-1"}', 1_700_000_000),
        (SECRET, b'{"id":"job-1"}', 1_700_000_301),
        (SECRET, b'{"id":"job-1"}', 1_699_999_699),
    ],
    ids=["tampered body", "wrong secret", "too old", "from the future"],
)
def test_a_signature_fails_for(secret: str, body: bytes, now: float) -> None:
    header = sign(SECRET, b'{"id":"job-1"}', 1_700_000_000)
    assert not verify(secret, header, body, now=now)


@pytest.mark.parametrize(
    "header", ["", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1700000000,v2=00"]
)
def test_a_malformed_signature_header_fails(header: str) -> None:
    assert not verify(SECRET, header, b"{}", now=1_700_000_000)


def test_any_matching_v1_value_verifies() -> None:
    good = sign(SECRET, b"{}", 1_700_000_000)
    stale = sign("old-secret", b"{}", 1_700_000_000).rpartition(",")[2]
    assert verify(SECRET, f"{good},{stale}", b"{}", now=1_700_000_000)


# ---------------------------------------------------------------------------- URL checks


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("file:///etc/passwd", "url_scheme"),
        ("ftp://hooks.example.com/x", "url_scheme"),
        ("hooks.example.com/x", "url_scheme"),
        ("https://user:pass@hooks.example.com/x", "url_credentials"),
        ("https://token@hooks.example.com/x", "url_credentials"),
        ("http://169.254.169.254/latest/meta-data", "url_policy"),
        ("http://[::ffff:169.254.169.254]/", "url_policy"),
        ("http://10.0.0.1:8080/hook", "url_policy"),
        ("http://127.0.0.1/hook", "url_policy"),
        ("http://localhost:8000/hook", "url_policy"),
        ("http://metadata.google.internal/x", "url_policy"),
        ("http://2130706433/hook", "url_policy"),
        ("https:///no-host", "url"),
    ],
)
def test_check_webhook_url_refuses(url: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_webhook_url(url, InputLimits())
    assert caught.value.problems[0].field == "webhook"
    assert caught.value.problems[0].rule == rule
    assert "pass" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "limits"),
    [
        ("https://hooks.example.com/wan?token=1", InputLimits()),
        ("http://hooks.example.com:8080/wan", InputLimits()),
        ("http://10.0.0.1:8080/hook", InputLimits(allow_private_networks=True)),
        ("http://127.0.0.1:9000/hook", InputLimits(allowed_origins=("http://127.0.0.1:9000",))),
    ],
)
def test_check_webhook_url_accepts(url: str, limits: InputLimits) -> None:
    check_webhook_url(url, limits)


def test_private_networks_still_refuse_metadata_addresses() -> None:
    with pytest.raises(InvalidInput):
        check_webhook_url("http://169.254.169.254/", InputLimits(allow_private_networks=True))


# ---------------------------------------------------------------------------- delivery


async def test_the_receiver_gets_the_payload_with_a_valid_signature(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    sender = await make_sender()
    payload = {"id": "job-1", "status": "COMPLETED", "output": {"video": "x"}}
    sender.submit(receiver.url("hook"), payload)
    await sender.drain(WAIT_S)
    (hit,) = receiver.hits["hook"]
    assert json.loads(hit.body) == payload
    assert hit.headers["Content-Type"] == "application/json"
    assert verify(SECRET, hit.headers[SIGNATURE_HEADER], hit.body)
    assert (sender.delivered, sender.failed) == (1, 0)


async def test_without_a_secret_nothing_is_signed(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    sender = await make_sender(secret=None)
    sender.submit(receiver.url("hook"), {"id": "job-1"})
    await sender.drain(WAIT_S)
    (hit,) = receiver.hits["hook"]
    assert SIGNATURE_HEADER not in hit.headers


async def test_a_receiver_that_fails_twice_gets_a_third_attempt(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    receiver.answer("flaky", 500, 502, 200)
    sender = await make_sender(attempts=5)
    sender.submit(receiver.url("flaky"), {"id": "job-1"})
    await sender.drain(WAIT_S)
    assert receiver.count("flaky") == 3
    assert (sender.delivered, sender.failed) == (1, 0)
    bodies = {hit.body for hit in receiver.hits["flaky"]}
    assert bodies == {b'{"id":"job-1"}'}
    assert all(verify(SECRET, h.headers[SIGNATURE_HEADER], h.body) for h in receiver.hits["flaky"])


async def test_a_broken_receiver_is_given_up_on_while_others_are_served(
    receiver: Receiver, make_sender: SenderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wan_worker.api.webhooks")
    receiver.answer("broken", 500)
    backing_off = asyncio.Event()
    resume = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        backing_off.set()
        await resume.wait()

    sender = await make_sender(sleep=held_sleep)
    sender.submit(receiver.url("broken") + "?token=query-secret", {"id": "job-1"})
    async with asyncio.timeout(WAIT_S):
        await backing_off.wait()
    sender.submit(receiver.url("fine"), {"id": "job-2"})
    await receiver.wait_for("fine", 1)
    assert receiver.count("broken") == 1

    resume.set()
    await sender.drain(WAIT_S)
    assert receiver.count("broken") == 3
    assert receiver.count("fine") == 1
    assert (sender.delivered, sender.failed) == (1, 1)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "wan_worker.api.webhooks")
    assert f"webhook to {receiver.url('broken')} failed (HTTP 500); gave up after 3" in ours
    assert "query-secret" not in ours
    assert SECRET not in ours


async def test_a_hung_receiver_does_not_hold_up_another(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    receiver.hanging.add("hung")
    sender = await make_sender(attempts=1)
    sender.submit(receiver.url("hung"), {"id": "job-1"})
    await receiver.wait_for("hung", 1)
    sender.submit(receiver.url("fine"), {"id": "job-2"})
    await receiver.wait_for("fine", 1)
    assert receiver.count("hung") == 1
    assert sender.failed == 0
    receiver.release.set()
    await sender.drain(WAIT_S)
    assert sender.delivered == 2


async def test_a_receiver_that_never_answers_times_out_each_attempt(
    receiver: Receiver, make_sender: SenderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wan_worker.api.webhooks")
    receiver.hanging.add("hung")
    sender = await make_sender(attempts=2, timeout_s=0.3)
    sender.submit(receiver.url("hung"), {"id": "job-1"})
    await sender.drain(WAIT_S)
    assert receiver.count("hung") == 2
    assert (sender.delivered, sender.failed) == (0, 1)
    assert "failed (no answer within 0.3s); gave up after 2 attempts" in caplog.text


async def test_retry_after_is_honoured_within_the_maximum(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    receiver.answer(
        "busy",
        (429, {"Retry-After": "2"}),
        (503, {"Retry-After": "1000"}),
        500,
        200,
    )
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    sender = await make_sender(attempts=5, backoff_initial_s=0.25, backoff_max_s=30, sleep=record)
    sender.submit(receiver.url("busy"), {"id": "job-1"})
    await sender.drain(WAIT_S)
    assert waits == [2.0, 30.0, 1.0]
    assert receiver.count("busy") == 4


async def test_retry_after_may_be_an_http_date(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    receiver.answer("busy", (503, {"Retry-After": later}), 200)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    sender = await make_sender(backoff_max_s=60, sleep=record)
    sender.submit(receiver.url("busy"), {"id": "job-1"})
    await sender.drain(WAIT_S)
    (wait,) = waits
    assert 0 < wait <= 20
    assert receiver.count("busy") == 2


async def test_backoff_doubles_up_to_its_cap(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    receiver.answer("down", 503)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    sender = await make_sender(attempts=6, backoff_initial_s=1, backoff_max_s=5, sleep=record)
    sender.submit(receiver.url("down"), {"id": "job-1"})
    await sender.drain(WAIT_S)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert receiver.count("down") == 6


@pytest.mark.parametrize(
    ("host", "address"),
    [("sneaky.test", "127.0.0.1"), ("internal.test", "10.0.0.5"), ("meta.test", "169.254.169.254")],
)
async def test_a_host_leading_to_a_refused_address_is_never_contacted(
    receiver: Receiver,
    make_sender: SenderFactory,
    caplog: pytest.LogCaptureFixture,
    host: str,
    address: str,
) -> None:
    resolver = MapResolver({host: [address]})
    sender = await make_sender(resolver=resolver)
    url = f"http://{host}:{receiver.port}/recorder"
    check_webhook_url(url, InputLimits(allowed_origins=(receiver.origin,)))
    sender.submit(url, {"id": "job-1"})
    await sender.drain(WAIT_S)
    assert receiver.hits == {}
    assert resolver.asked == [host]
    assert (sender.delivered, sender.failed) == (0, 1)
    assert f"webhook to http://{host}:{receiver.port}/recorder refused" in caplog.text


async def test_an_unresolvable_host_is_retried_then_given_up(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    resolver = MapResolver({})
    sender = await make_sender(resolver=resolver)
    sender.submit("https://nowhere.test/hook", {"id": "job-1"})
    await sender.drain(WAIT_S)
    assert resolver.asked == ["nowhere.test"] * 3
    assert sender.failed == 1


async def test_submit_works_from_another_thread_and_keeps_the_caller_unblocked(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    receiver.hanging.add("hung")
    sender = await make_sender()
    await asyncio.to_thread(sender.submit, receiver.url("hung"), {"id": "job-1"})
    await receiver.wait_for("hung", 1)
    receiver.release.set()
    await sender.drain(WAIT_S)
    assert sender.delivered == 1


async def test_submit_before_start_is_an_error() -> None:
    sender = WebhookSender(WebhookConfig(), limits=InputLimits())
    with pytest.raises(RuntimeError, match="start"):
        sender.submit("https://hooks.example.com/x", {})


async def test_close_abandons_deliveries_in_flight(
    receiver: Receiver, make_sender: SenderFactory
) -> None:
    receiver.hanging.add("hung")
    sender = await make_sender()
    sender.submit(receiver.url("hung"), {"id": "job-1"})
    await receiver.wait_for("hung", 1)
    await sender.close()
    await sender.drain(0.01)
    assert (sender.delivered, sender.failed) == (0, 0)


def test_the_secret_stays_out_of_the_config_repr() -> None:
    assert SECRET not in repr(WebhookConfig(secret=SECRET))
