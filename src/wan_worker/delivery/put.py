"""Upload a file to a caller's presigned PUT URL, streamed from disk."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from wan_worker.delivery.config import DeliveryConfig, strip_query
from wan_worker.delivery.retry import AttemptFailed, with_backoff

_S3_ERROR_CODE = re.compile(rb"<Code>([A-Za-z]{1,64})</Code>")
_RETRYABLE_STATUS = frozenset({408, 425, 429})


async def put_file(url: str, path: Path, size: int, *, config: DeliveryConfig) -> int:
    """PUT ``path`` to ``url`` as video/mp4 with its Content-Length; returns the attempts made.

    5xx, 408, 429 and network failures are retried with backoff; other 4xx (an expired or wrong
    signature) fail at once. Raises AttemptFailed, whose reason never contains the query string.
    """
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=config.connect_timeout_s, sock_read=config.read_timeout_s
    )
    headers = {"Content-Type": "video/mp4", "Content-Length": str(size)}
    attempts_made = 0

    async def attempt() -> None:
        nonlocal attempts_made
        attempts_made += 1
        body = await asyncio.to_thread(path.open, "rb")
        try:
            async with session.put(url, data=body, headers=headers) as response:
                if response.status < 300:
                    return
                code = _S3_ERROR_CODE.search(await response.content.read(4096))
                detail = f" {code.group(1).decode()}" if code else ""
                raise AttemptFailed(
                    f"HTTP {response.status}{detail} from {strip_query(url)}",
                    retryable=response.status >= 500 or response.status in _RETRYABLE_STATUS,
                )
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise AttemptFailed(
                f"{type(exc).__name__} while sending to {strip_query(url)}", retryable=True
            ) from None
        finally:
            await asyncio.to_thread(body.close)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await with_backoff(
            attempt,
            attempts=config.upload_attempts,
            initial_s=config.backoff_initial_s,
            max_s=config.backoff_max_s,
            what=f"PUT to {strip_query(url)}",
        )
    return attempts_made
