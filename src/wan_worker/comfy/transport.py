"""HTTP calls to one ComfyUI server, with transient-failure retries and one error vocabulary.

Every network failure or non-protocol answer becomes :class:`ComfyUIUnavailable` naming the
server and the call, so nothing above this module ever sees an aiohttp exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from wan_worker.errors import ComfyUIUnavailable, OutputMissing

log = logging.getLogger(__name__)

_BODY_SNIPPET = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How often an idempotent call is retried after a connection error or an HTTP 5xx."""

    attempts: int = 4
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0

    def delays(self) -> list[float]:
        """The pauses before each retry (one fewer than ``attempts``)."""
        out: list[float] = []
        delay = self.first_delay_s
        for _ in range(max(self.attempts - 1, 0)):
            out.append(delay)
            delay = min(delay * 2, self.max_delay_s)
        return out


@dataclass(frozen=True)
class HttpAnswer:
    """A complete HTTP answer: status, content type and the body parsed as JSON when it is."""

    status: int
    content_type: str
    text: str
    json: Any
    is_json: bool

    def snippet(self) -> str:
        """The start of the body, for error messages."""
        text = " ".join(self.text.split())
        return text[:_BODY_SNIPPET] + ("…" if len(text) > _BODY_SNIPPET else "")


class ServerError(Exception):
    """An HTTP 5xx answer (internal to this module and its callers' retry logic)."""

    def __init__(self, answer: HttpAnswer) -> None:
        super().__init__(f"HTTP {answer.status}")
        self.answer = answer


class ComfyHttp:
    """The HTTP half of a ComfyUI client: base URL, timeouts, retries, error mapping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: URL,
        *,
        retry: RetryPolicy,
        request_timeout_s: float,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.retry = retry
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=request_timeout_s, sock_read=request_timeout_s
        )

    def url(self, path: str) -> URL:
        """The absolute URL of ``path`` (which starts with ``/``) under the base URL."""
        base = str(self.base_url).rstrip("/")
        return URL(base + path)

    def unavailable(self, method: str, path: str, reason: str) -> ComfyUIUnavailable:
        """The error for a call that could not get a protocol answer."""
        return ComfyUIUnavailable(
            f"ComfyUI at {self.base_url} did not answer {method} {path}: {reason}",
            details={"url": str(self.base_url), "call": f"{method} {path}", "reason": reason},
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Callable[[], aiohttp.FormData] | None = None,
        retry: bool = True,
    ) -> HttpAnswer:
        """One call, retried on connection errors and 5xx when ``retry`` (idempotent calls).

        Returns any answer below 500. Raises :class:`ServerError` for a 5xx after the last
        attempt and :class:`ComfyUIUnavailable` when the server cannot be reached.
        """
        delays = self.retry.delays() if retry else []
        attempt = 0
        while True:
            try:
                answer = await self._once(method, path, params, json_body, data)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                if attempt >= len(delays):
                    raise self.unavailable(method, path, _describe(err)) from err
                log.debug("%s %s failed (%s); retrying", method, path, _describe(err))
            else:
                if answer.status < 500:
                    return answer
                if attempt >= len(delays):
                    raise ServerError(answer)
                log.debug("%s %s answered %s; retrying", method, path, answer.status)
            await asyncio.sleep(delays[attempt])
            attempt += 1

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        data: Callable[[], aiohttp.FormData] | None,
    ) -> HttpAnswer:
        kwargs: dict[str, Any] = {"params": params, "timeout": self.timeout}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data()
        async with self.session.request(method, self.url(path), **kwargs) as resp:
            text = await resp.text(errors="replace")
            parsed: Any = None
            is_json = False
            if text.strip():
                try:
                    parsed = json.loads(text)
                    is_json = True
                except ValueError:
                    pass
            return HttpAnswer(resp.status, resp.content_type, text, parsed, is_json)

    async def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        """GET a JSON document; anything but a 200 with JSON is :class:`ComfyUIUnavailable`."""
        try:
            answer = await self.call("GET", path, params=params)
        except ServerError as err:
            raise self.unavailable(
                "GET", path, f"HTTP {err.answer.status}: {err.answer.snippet()}"
            ) from None
        if answer.status != 200 or not answer.is_json:
            raise self.unavailable("GET", path, f"HTTP {answer.status}: {answer.snippet()}")
        return answer.json

    async def post_ok(self, path: str, body: Any) -> None:
        """POST an idempotent command (``/interrupt``, ``/queue``, ``/free``) that answers 200."""
        try:
            answer = await self.call("POST", path, json_body=body)
        except ServerError as err:
            raise self.unavailable(
                "POST", path, f"HTTP {err.answer.status}: {err.answer.snippet()}"
            ) from None
        if answer.status != 200:
            raise self.unavailable("POST", path, f"HTTP {answer.status}: {answer.snippet()}")

    @asynccontextmanager
    async def stream(
        self, path: str, params: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open 200 response to GET ``path`` whose body the caller reads in chunks.

        Connecting is retried like any GET; a failure while reading the body is the caller's.
        """
        delays = self.retry.delays()
        attempt = 0
        while True:
            reason: str
            try:
                resp = await self.session.get(self.url(path), params=params, timeout=self.timeout)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                reason = _describe(err)
            else:
                if resp.status == 200:
                    try:
                        yield resp
                    finally:
                        resp.release()
                    return
                body = (await resp.text(errors="replace"))[:_BODY_SNIPPET]
                resp.release()
                reason = f"HTTP {resp.status}: {body}"
                if resp.status == 404:
                    raise OutputMissing(
                        f"ComfyUI reported an output it no longer has (GET {path} answered 404 "
                        f"for {dict(params)})",
                        details={"call": f"GET {path}", "params": dict(params)},
                    )
                if resp.status < 500:
                    raise self.unavailable("GET", path, reason)
            if attempt >= len(delays):
                raise self.unavailable("GET", path, reason)
            await asyncio.sleep(delays[attempt])
            attempt += 1


def _describe(err: BaseException) -> str:
    """A short human description of a network exception."""
    if isinstance(err, TimeoutError):
        return "timed out"
    text = str(err) or type(err).__name__
    return text
