"""A client of RunPod's serverless job routes: a RunPod endpoint, or the self-hosted API.

Both speak the same protocol (``POST {base}/{endpoint}/run``, ``GET .../status/{id}``,
``POST .../cancel/{id}``, a bearer token), so one client serves ``--endpoint`` and ``--server``.
The runpod SDK's routes, headers and ``RUNPOD_ENDPOINT_BASE_URL`` are followed; its async client
is not used because it cannot read an in-progress job's progress (RunPod puts it in ``output``)
nor tell a refused submission from a broken one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from wan_worker.cli.outcome import JobFailed, failure
from wan_worker.cli.progress_bar import Update
from wan_worker.service import EnvReader

log = logging.getLogger(__name__)

RUNPOD_BASE_URL = "https://api.runpod.ai/v2"
SERVER_ENDPOINT_ID = "wan-worker"
"""The endpoint id the CLI uses on the self-hosted API when the URL names none."""
_CHUNK = 1 << 20
_STATUS_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)
"""Pauses between attempts to read a job's status while the server cannot be reached."""


@dataclass(frozen=True)
class RemoteSettings:
    """Tokens and addresses of remote targets, read from the environment once."""

    api_token: str | None = field(default=None, repr=False)
    """``API_TOKEN``: the self-hosted API's bearer token (``--server``)."""
    runpod_api_key: str | None = field(default=None, repr=False)
    """``RUNPOD_API_KEY``: the RunPod account key (``--endpoint``)."""
    runpod_base_url: str = RUNPOD_BASE_URL
    """``RUNPOD_ENDPOINT_BASE_URL``, as the runpod SDK reads it."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RemoteSettings:
        read = EnvReader(env)
        settings = cls(
            api_token=read.optional("API_TOKEN", str),
            runpod_api_key=read.optional("RUNPOD_API_KEY", str),
            runpod_base_url=read.value("RUNPOD_ENDPOINT_BASE_URL", str, RUNPOD_BASE_URL),
        )
        read.raise_if_any()
        return settings


@dataclass(frozen=True)
class RemoteTarget:
    """One endpoint: ``{base_url}/{endpoint_id}/...`` with an optional bearer token."""

    base_url: str
    endpoint_id: str
    token: str | None = field(default=None, repr=False)
    label: str = "endpoint"

    @classmethod
    def server(cls, url: str, token: str | None) -> RemoteTarget:
        """The self-hosted API at ``url`` (``http://host:8000``, or ``.../v2/<endpoint>``)."""
        parsed = URL(url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise failure("invalid_input", f"--server {url!r} must be http(s)://host[:port]")
        parts = [p for p in parsed.path.split("/") if p]
        if len(parts) >= 2 and parts[-2] == "v2":
            base, endpoint = parsed.with_path("/".join(["", *parts[:-1]])), parts[-1]
        else:
            base, endpoint = parsed.with_path("/".join(["", *parts, "v2"])), SERVER_ENDPOINT_ID
        return cls(str(base), endpoint, token, label=f"the server at {parsed.origin()}")

    @classmethod
    def runpod(cls, endpoint_id: str, settings: RemoteSettings) -> RemoteTarget:
        if not settings.runpod_api_key:
            raise failure(
                "invalid_input",
                "--endpoint needs a RunPod API key: set RUNPOD_API_KEY",
                field="RUNPOD_API_KEY",
            )
        return cls(
            settings.runpod_base_url.rstrip("/"),
            endpoint_id,
            settings.runpod_api_key,
            label=f"RunPod endpoint {endpoint_id}",
        )

    def url(self, *parts: str) -> str:
        return "/".join([self.base_url, self.endpoint_id, *parts])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


class RemoteJobs:
    """Submit, follow, cancel and download jobs of one target over one HTTP session."""

    def __init__(
        self,
        target: RemoteTarget,
        session: aiohttp.ClientSession,
        *,
        poll_interval_s: float = 0.5,
    ) -> None:
        self.target = target
        self.session = session
        self.poll_interval_s = poll_interval_s

    async def submit(self, request: Mapping[str, Any]) -> str:
        """``POST /run``; the job id, or JobFailed (exit 2 when the request was refused)."""
        body = await self._call("POST", self.target.url("run"), {"input": dict(request)})
        job_id = body.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise failure(
                "server_error", f"{self.target.label} accepted the job but gave no id: {body}"
            )
        return job_id

    async def status(self, job_id: str) -> dict[str, Any]:
        """``GET /status/{id}``, retried a few times over a shaky connection."""
        url = self.target.url("status", job_id)
        for delay in _STATUS_RETRY_DELAYS_S:
            try:
                return await self._call("GET", url)
            except JobFailed as err:
                if err.error_code != "unreachable":
                    raise
            await asyncio.sleep(delay)
        return await self._call("GET", url)

    async def cancel(self, job_id: str) -> None:
        """``POST /cancel/{id}``; failures are logged, the caller is leaving anyway."""
        try:
            await self._call("POST", self.target.url("cancel", job_id))
        except JobFailed as err:
            log.warning("cancelling job %s on %s failed: %s", job_id, self.target.label, err)

    async def follow(self, job_id: str, *, on_update: Callable[[Update], None]) -> dict[str, Any]:
        """Poll until the job ends: its response, or JobFailed. Cancelling cancels the job."""
        try:
            while True:
                body = await self.status(job_id)
                response = self._finished(job_id, body, on_update)
                if response is not None:
                    return response
                await asyncio.sleep(self.poll_interval_s)
        except asyncio.CancelledError:
            await asyncio.shield(self.cancel(job_id))
            raise

    def _finished(
        self, job_id: str, body: dict[str, Any], on_update: Callable[[Update], None]
    ) -> dict[str, Any] | None:
        status = body.get("status")
        output = body.get("output")
        if status == "COMPLETED":
            if not isinstance(output, dict):
                raise failure("server_error", f"job {job_id} completed without a response")
            if output.get("error"):
                raise JobFailed(_error_shape(output, output))
            return output
        if status == "FAILED":
            raise JobFailed(_error_shape(body, output if isinstance(output, dict) else {}))
        if status in ("CANCELLED", "TIMED_OUT"):
            code = "cancelled" if status == "CANCELLED" else "timeout"
            if not body.get("error"):
                raise failure(code, f"job {job_id} ended {status}", job_id=job_id)
            shaped = _error_shape(body, output if isinstance(output, dict) else {})
            raise JobFailed({**shaped, "error_code": code})
        if status == "IN_PROGRESS" and isinstance(output, dict) and "percent" in output:
            on_update(
                Update(
                    stage=str(output.get("stage") or "running"),
                    percent=float(output.get("percent") or 0.0),
                    step=_int_or_none(output.get("step")),
                    steps=_int_or_none(output.get("steps")),
                )
            )
        elif status == "IN_QUEUE":
            on_update(Update(stage="queued", percent=0.0))
        return None

    async def save_video(self, response: Mapping[str, Any], destination: Path) -> None:
        """Write the response's video to ``destination``: inline base64, a URL or a path."""
        video = response.get("video")
        mode = (response.get("delivery") or {}).get("mode")
        if not isinstance(video, str) or not video:
            raise failure("output_missing", "the response carries no video")
        if video.startswith(("http://", "https://")):
            await self._download(video, destination)
        elif mode == "local":
            source = Path(video)
            if not await asyncio.to_thread(source.is_file):
                raise failure(
                    "output_missing",
                    f"{self.target.label} kept the video at {video} on its own disk; "
                    "give it an output bucket (BUCKET_*) or fetch the file from there",
                    path=video,
                )
            await asyncio.to_thread(shutil.copyfile, source, destination)
        else:
            await asyncio.to_thread(write_base64, video, destination)

    async def _download(self, url: str, destination: Path) -> None:
        # The token goes only to the target's own origin, never to a bucket.
        same_origin = URL(url).origin() == URL(self.target.base_url).origin()
        headers = self.target.headers if same_origin else {}
        try:
            async with self.session.get(url, headers=headers) as answer:
                if answer.status != 200:
                    raise failure(
                        "download_failed",
                        f"downloading the video from {URL(url).with_query(None)} answered "
                        f"HTTP {answer.status}",
                        status=answer.status,
                    )
                with destination.open("wb") as out:
                    async for chunk in answer.content.iter_chunked(_CHUNK):
                        out.write(chunk)
        except aiohttp.ClientError as err:
            raise failure(
                "download_failed",
                f"downloading the video from {URL(url).with_query(None)} failed: {err}",
            ) from None

    async def _call(
        self, method: str, url: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            async with self.session.request(
                method, url, json=payload, headers=self.target.headers
            ) as answer:
                text = await answer.text()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise failure(
                "unreachable",
                f"{self.target.label} cannot be reached ({type(err).__name__}: {err})",
                url=str(URL(url).with_query(None)),
            ) from None
        body = _json_object(text)
        if status == 200:
            if body is None:
                raise failure("server_error", f"{self.target.label} answered {url} with non-JSON")
            return body
        raise _refusal(self.target, status, body, text)


def _refusal(
    target: RemoteTarget, status: int, body: dict[str, Any] | None, text: str
) -> JobFailed:
    """A non-200 answer as a failure: the server's own error shape when it sent one."""
    said = body.get("error") if body is not None else None
    if status in (401, 403):
        hint = "--token or API_TOKEN" if target.label.startswith("the server") else "RUNPOD_API_KEY"
        reason = f": {said.partition(': ')[2] or said}" if isinstance(said, str) else ""
        return failure(
            "unauthorized",
            f"{target.label} refused the token (HTTP {status}{reason}); check {hint}",
        )
    if body is not None and isinstance(said, str):
        shaped = _error_shape(body, body)
        if status in (400, 422) and shaped["error_code"] == "server_error":
            shaped["error_code"] = "invalid_input"
        return JobFailed(shaped)
    if status in (400, 422):
        detail = body.get("detail") if body is not None else text[:500]
        return failure("invalid_input", f"{target.label} refused the request: {detail}")
    if status == 404:
        return failure("not_found", f"{target.label} has no such endpoint or job (HTTP 404)")
    return failure(
        "server_error", f"{target.label} answered HTTP {status}: {text[:300]}", status=status
    )


def _error_shape(body: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``{"error", "error_code", "details"}`` from a FAILED status or an error body.

    RunPod keeps the handler's ``error`` beside ``output`` (which then holds ``error_code`` and
    ``details``); the code is also the first word of the sentence.
    """
    raw = body.get("error")
    sentence = raw if isinstance(raw, str) else str(raw or "the job failed")
    code = extra.get("error_code") or body.get("error_code")
    if not isinstance(code, str):
        prefix, sep, _ = sentence.partition(":")
        code = prefix if sep and prefix.isidentifier() else "server_error"
    details = extra.get("details") or body.get("details") or {}
    return {"error": sentence, "error_code": code, "details": details}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def write_base64(text: str, destination: Path) -> None:
    """Decode base64 (plain or a ``data:`` URI) into ``destination``, a chunk at a time."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    step = 4 * _CHUNK
    try:
        with destination.open("wb") as out:
            for start in range(0, len(text), step):
                out.write(base64.b64decode(text[start : start + step], validate=True))
    except (binascii.Error, ValueError):
        raise failure("output_missing", "the response's video is not valid base64") from None
