"""Retry an upload attempt with exponential backoff; only transient failures are retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")

log = logging.getLogger(__name__)


class AttemptFailed(Exception):
    """One upload attempt failed; ``reason`` is safe to log (no credentials, no signatures)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.attempts = 1


async def with_backoff(
    attempt: Callable[[], Awaitable[_T]],
    *,
    attempts: int,
    initial_s: float,
    max_s: float,
    what: str,
) -> _T:
    """Run ``attempt`` up to ``attempts`` times, doubling the pause between tries up to ``max_s``.

    The last AttemptFailed propagates with ``attempts`` set to the number of tries made.
    """
    delay = initial_s
    for number in range(1, max(1, attempts) + 1):
        try:
            return await attempt()
        except AttemptFailed as exc:
            exc.attempts = number
            if not exc.retryable or number >= attempts:
                raise
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.1f s",
                what,
                number,
                attempts,
                exc.reason,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_s)
    raise AssertionError("unreachable")
