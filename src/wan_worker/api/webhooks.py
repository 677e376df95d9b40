"""Signed webhook deliveries: each one in the background, retried with backoff, SSRF-vetted.

A webhook URL is user input, so it passes the same policy as input URLs: its host is resolved
once per attempt, every address vetted, and the connection pinned to those addresses. Bodies are
signed as ``X-Wan-Worker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from wan_worker.errors import InputFetchFailed, InvalidInput, Problem
from wan_worker.media.addresses import HostResolver, SystemResolver
from wan_worker.media.fetch import (
    check_url_host,
    parse_url,
    pinned_session,
    redact_url,
    vetted_addresses,
)
from wan_worker.media.limits import InputLimits

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Wan-Worker-Signature"
USER_AGENT = "wan-worker (webhook)"
RETRY_AFTER_STATUSES = frozenset({429, 503})

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class WebhookConfig:
    """How webhooks are signed (no secret: unsigned), retried and bounded in time."""

    secret: str | None = field(default=None, repr=False)
    attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 10.0


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance_s`` of now."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def check_webhook_url(url: str, limits: InputLimits) -> None:
    """Refuse a webhook URL by its text: not http(s), credentials in it, or a refused host.

    Raises InvalidInput naming ``webhook``. Where the host's name leads is checked at send time.
    """
    parsed = parse_url(url, field="webhook", where="")
    if parsed.user is not None or parsed.password is not None:
        message = "must not carry credentials; sign requests with WEBHOOK_SECRET instead"
        raise InvalidInput(
            f"webhook {message}",
            problems=[Problem(message=message, field="webhook", rule="url_credentials")],
        )
    check_url_host(parsed, field="webhook", limits=limits)


def _retry_after_s(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta seconds or an HTTP date), if readable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class WebhookSender:
    """Delivers webhooks in background tasks; one slow or broken receiver delays no other."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        limits: InputLimits,
        resolver: HostResolver | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self.delivered = 0
        self.failed = 0
        self._limits = limits
        self._resolver: HostResolver = resolver or SystemResolver()
        self._sleep = sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the sender to the running event loop; ``submit`` works from then on."""
        self._loop = asyncio.get_running_loop()

    def submit(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one delivery and return at once (safe to call from other threads too)."""
        if self._loop is None:
            raise RuntimeError("WebhookSender.submit called before start()")
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._spawn(url, body)
        else:
            context = contextvars.copy_context()
            self._loop.call_soon_threadsafe(self._spawn, url, body, context=context)

    def _spawn(self, url: str, body: bytes) -> None:
        task = asyncio.create_task(self._deliver(url, body), name="webhook delivery")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for every delivery in flight (and its retries) to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._pending), timeout=left)

    async def close(self) -> None:
        """Abandon deliveries still in flight."""
        tasks = list(self._pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, url: str, body: bytes) -> None:
        shown = _shown(url)
        attempts = max(1, self.config.attempts)
        problem = ""
        for attempt in range(1, attempts + 1):
            delay = self._backoff_s(attempt)
            try:
                status, retry_after = await self._attempt(url, body)
            except InvalidInput as exc:
                self.failed += 1
                log.warning("webhook to %s refused: %s", shown, exc.message)
                return
            except (TimeoutError, InputFetchFailed, aiohttp.ClientError, OSError) as exc:
                problem = _describe(exc, self.config.timeout_s)
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    log.info("webhook to %s delivered (attempt %d)", shown, attempt)
                    return
                problem = f"HTTP {status}"
                if status in RETRY_AFTER_STATUSES and retry_after is not None:
                    delay = min(retry_after, self.config.backoff_max_s)
            if attempt == attempts:
                break
            log.info(
                "webhook to %s failed (%s) on attempt %d of %d; retrying in %.1fs",
                shown,
                problem,
                attempt,
                attempts,
                delay,
            )
            await self._sleep(delay)
        self.failed += 1
        log.warning(
            "webhook to %s failed (%s); gave up after %d attempts", shown, problem, attempts
        )

    async def _attempt(self, url: str, body: bytes) -> tuple[int, float | None]:
        """One POST under the per-request time limit: its status and any Retry-After."""
        parsed = parse_url(url, field="webhook", where="")
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.config.secret:
            headers[SIGNATURE_HEADER] = sign(self.config.secret, body, int(time.time()))
        async with asyncio.timeout(self.config.timeout_s):
            addresses = await vetted_addresses(
                parsed, field="webhook", limits=self._limits, resolver=self._resolver, where=""
            )
            async with (
                pinned_session(parsed, addresses) as session,
                session.post(parsed, data=body, headers=headers, allow_redirects=False) as answer,
            ):
                return answer.status, _retry_after_s(answer.headers.get("Retry-After"))

    def _backoff_s(self, attempt: int) -> float:
        """The wait after a failed attempt: doubling from the initial backoff, capped."""
        growth = 2.0 ** (attempt - 1)
        return min(self.config.backoff_initial_s * growth, self.config.backoff_max_s)


def _shown(url: str) -> str:
    """The URL as logs may show it: no credentials, query string or fragment."""
    try:
        return redact_url(URL(url))
    except (ValueError, TypeError):
        return "<unparsable URL>"


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    if isinstance(exc, InputFetchFailed):
        return exc.message
    return type(exc).__name__
