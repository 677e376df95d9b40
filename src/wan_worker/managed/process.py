"""ComfyUI as a child process: started on loopback, watched, restarted when it dies, stopped.

One supervisor task owns the process. It spawns ComfyUI, polls ``GET /system_stats`` until it
answers, then waits for the process to exit. An exit nobody asked for is a crash: the crash
callback hears why (so the jobs in flight can be failed at once), and ComfyUI is started again
after a growing pause, until too many deaths within the window make the supervisor give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import logging
import os
import shlex
import signal
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp

from wan_worker.errors import ComfyUIUnavailable, InvalidInput, Problem
from wan_worker.managed.settings import ManagedComfyUISettings

LOG_PREFIX = "[comfyui] "
LISTEN_HOST = "127.0.0.1"
CrashCallback = Callable[[str], Awaitable[object]]

# The worker's own credentials: ComfyUI and its custom nodes have no use for them.
_WORKER_SECRETS = frozenset(
    {"API_TOKEN", "WEBHOOK_SECRET", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY"}
)
_TAIL_LINES = 20
_REASON_LINES = 5
_REASON_LINE_CHARS = 200
_LINE_LIMIT = 1 << 20
_PROBE_TIMEOUT_S = 2.0
_FIRST_POLL_S = 0.05
_MAX_POLL_S = 0.25
_DRAIN_TIMEOUT_S = 2.0


class ProcessState(enum.StrEnum):
    """Where the managed ComfyUI is in its life."""

    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


def comfyui_environment(env: Mapping[str, str]) -> dict[str, str]:
    """ComfyUI's environment: ours without the worker's secrets, with unbuffered output."""
    child = {name: value for name, value in env.items() if name not in _WORKER_SECRETS}
    child["PYTHONUNBUFFERED"] = "1"
    return child


class ComfyUIProcess:
    """A supervised ComfyUI server on ``127.0.0.1:<port>``; ``start()`` it, ``stop()`` it."""

    def __init__(
        self,
        settings: ManagedComfyUISettings,
        *,
        extra_model_paths: Path | None = None,
        on_crash: CrashCallback | None = None,
        log: logging.Logger | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if settings.comfyui_path is None:
            raise InvalidInput(
                "Set COMFYUI_PATH to a ComfyUI checkout (the folder holding main.py).",
                problems=[Problem(message="not set", field="COMFYUI_PATH")],
            )
        self.settings = settings
        self.checkout: Path = settings.comfyui_path
        self.extra_model_paths = extra_model_paths
        self.on_crash = on_crash
        self.log = log or logging.getLogger("wan_worker.comfyui")
        self.env = dict(env) if env is not None else None
        self.state = ProcessState.STOPPED
        self.last_error: str | None = None
        """Why ComfyUI last died or failed to start."""
        self.starts = 0
        """How many ComfyUI processes were spawned."""
        self.crashes = 0
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._deaths: deque[float] = deque()
        self._supervisor: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def ready(self) -> bool:
        return self.state is ProcessState.READY

    @property
    def pid(self) -> int | None:
        """The running ComfyUI's process id, None between processes."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def input_dir(self) -> Path:
        return self.settings.input_dir or self.checkout / "input"

    @property
    def output_dir(self) -> Path:
        return self.settings.output_dir or self.checkout / "output"

    def command(self) -> list[str]:
        """ComfyUI's command line: loopback only, our port, model paths and folders, extra args."""
        args = [self.settings.python, str(self.checkout / "main.py")]
        args += ["--listen", LISTEN_HOST, "--port", str(self.settings.port)]
        if self.extra_model_paths is not None:
            args += ["--extra-model-paths-config", str(self.extra_model_paths)]
        if self.settings.input_dir is not None:
            args += ["--input-directory", str(self.settings.input_dir)]
        if self.settings.output_dir is not None:
            args += ["--output-directory", str(self.settings.output_dir)]
        return [*args, *self.settings.extra_args]

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Spawn ComfyUI and supervise it; with ``wait``, return once it answers (else raise)."""
        if self._supervisor is not None:
            raise RuntimeError("this ComfyUI process is already started")
        self._check_checkout()
        self._check_port_free()
        self._stopping = asyncio.Event()
        self._deaths.clear()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_PROBE_TIMEOUT_S))
        self._set_state(ProcessState.STARTING)
        self._supervisor = asyncio.create_task(self._supervise(), name="comfyui-supervisor")
        if wait:
            try:
                await self.wait_ready(self.settings.ready_timeout_s)
            except BaseException:
                await self.stop()
                raise

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once ComfyUI answers; raise ComfyUIUnavailable when it gave up or time ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.ready:
            if self.state in (ProcessState.FAILED, ProcessState.STOPPED):
                raise ComfyUIUnavailable(
                    f"the managed ComfyUI at {self.url} is {self.state}"
                    + (f": {self.last_error}" if self.last_error else ""),
                    details={"url": self.url, "state": str(self.state)},
                )
            left = deadline - loop.time()
            if left <= 0:
                raise ComfyUIUnavailable(
                    f"the managed ComfyUI at {self.url} was not ready within {timeout_s:g} s "
                    f"(it is {self.state})",
                    details={"url": self.url, "state": str(self.state)},
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await changed.wait()

    async def responsive(self) -> bool:
        """Whether ComfyUI is up and answers ``GET /system_stats`` right now (for readiness)."""
        return self.ready and await self._answers()

    async def stop(self) -> None:
        """Stop supervising and end ComfyUI: SIGTERM, SIGKILL after the grace period, reaped."""
        self._stopping.set()
        try:
            if self._supervisor is not None:
                await self._supervisor
        finally:
            self._supervisor = None
            if self._session is not None:
                await self._session.close()
                self._session = None
            self._set_state(ProcessState.STOPPED)

    # -- supervision ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            while not self._stopping.is_set():
                reason = await self._run_once()
                if reason is None:
                    break
                await self._crashed(reason)
                if not await self._may_restart():
                    break
        finally:
            await self._end_process()

    async def _run_once(self) -> str | None:
        """Run one ComfyUI until it dies (returns why) or a stop is asked for (returns None)."""
        try:
            process = await self._spawn()
        except OSError as err:
            return f"ComfyUI could not be started with {self.settings.python} ({err})"
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            if await self._until_ready(exited, stopping):
                self._set_state(ProcessState.READY)
                self.log.info("ComfyUI is ready at %s (pid %d)", self.url, process.pid)
                await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if self._stopping.is_set():
                return None
            if not exited.done():
                await self._end_process()
                return (
                    f"ComfyUI did not answer GET /system_stats within "
                    f"{self.settings.ready_timeout_s:g} s of starting{self._tail_text()}"
                )
            await self._drain_output()
            _signal_group(process.pid, signal.SIGKILL)  # anything it left behind
            self._process = None
            return self._death_reason(process)
        finally:
            exited.cancel()
            stopping.cancel()

    async def _until_ready(self, exited: asyncio.Task[int], stopping: asyncio.Task[bool]) -> bool:
        """Poll ``/system_stats`` until it answers 200 (True), or the process exits, a stop is
        asked for or the ready timeout passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ready_timeout_s
        delay = _FIRST_POLL_S
        while not (exited.done() or stopping.done()):
            if await self._answers() and not exited.done():
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.wait({exited, stopping}, timeout=min(delay, left))
            delay = min(delay * 2, _MAX_POLL_S)
        return False

    async def _answers(self) -> bool:
        if self._session is None:
            return False
        try:
            async with self._session.get(f"{self.url}/system_stats") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _crashed(self, reason: str) -> None:
        self.crashes += 1
        self.last_error = reason
        self._set_state(ProcessState.RESTARTING)
        self.log.error("%s", reason)
        if self.on_crash is not None:
            try:
                await self.on_crash(reason)
            except Exception:
                self.log.exception("the ComfyUI crash callback failed")

    async def _may_restart(self) -> bool:
        """Wait out the backoff and say whether to start again; give up after too many deaths."""
        settings = self.settings
        now = asyncio.get_running_loop().time()
        self._deaths.append(now)
        while now - self._deaths[0] > settings.restart_window_s:
            self._deaths.popleft()
        deaths = len(self._deaths)
        if deaths > settings.max_restarts:
            self._set_state(ProcessState.FAILED)
            self.log.error(
                "ComfyUI died %d times within %g s; not restarting it again "
                "(COMFYUI_MAX_RESTARTS=%d). Fix the cause in the log above, then restart "
                "wan-worker.",
                deaths,
                settings.restart_window_s,
                settings.max_restarts,
            )
            return False
        delay = min(settings.backoff_initial_s * 2 ** (deaths - 1), settings.backoff_max_s)
        self.log.warning(
            "restarting ComfyUI in %g s (restart %d of at most %d within %g s)",
            delay,
            deaths,
            settings.max_restarts,
            settings.restart_window_s,
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        return not self._stopping.is_set()

    # -- the process itself -----------------------------------------------------------------

    async def _spawn(self) -> asyncio.subprocess.Process:
        command = self.command()
        self._tail.clear()
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.checkout,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group: a Ctrl-C meant for us does not reach it, and stop() can end
            # anything it started.
            start_new_session=True,
            preexec_fn=_end_with_parent,
            limit=_LINE_LIMIT,
        )
        self._process = process
        self.starts += 1
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.create_task(self._forward(process.stdout)),
            asyncio.create_task(self._forward(process.stderr)),
        ]
        self.log.info("started ComfyUI (pid %d): %s", process.pid, shlex.join(command))
        return process

    async def _forward(self, stream: asyncio.StreamReader) -> None:
        """Copy ComfyUI's output lines into our log, prefixed, keeping the last few."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                self.log.warning(
                    "%s(a line longer than %d bytes was left out)", LOG_PREFIX, _LINE_LIMIT
                )
                continue
            if not raw:
                return
            # A progress bar redraws itself with carriage returns; its last state is what counts.
            line = raw.decode(errors="replace").rstrip().rsplit("\r", 1)[-1]
            if line:
                self._tail.append(line)
                self.log.info("%s%s", LOG_PREFIX, line)

    async def _drain_output(self) -> None:
        """Let the readers reach the end of the output (bounded: a grandchild may hold a pipe)."""
        readers, self._readers = self._readers, []
        if not readers:
            return
        _, pending = await asyncio.wait(readers, timeout=_DRAIN_TIMEOUT_S)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _end_process(self) -> None:
        """Terminate the current process (SIGTERM, then SIGKILL after the grace) and reap it."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(self.settings.stop_grace_s):
                    await process.wait()
            except TimeoutError:
                self.log.warning(
                    "ComfyUI did not exit within %g s of SIGTERM; killing it",
                    self.settings.stop_grace_s,
                )
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
            self.log.info("ComfyUI (pid %d) stopped", process.pid)
        _signal_group(process.pid, signal.SIGKILL)
        await self._drain_output()
        self._process = None

    def _death_reason(self, process: asyncio.subprocess.Process) -> str:
        code = process.returncode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return f"ComfyUI (pid {process.pid}) {how}{self._tail_text()}"

    def _tail_text(self) -> str:
        lines = [line[:_REASON_LINE_CHARS] for line in list(self._tail)[-_REASON_LINES:]]
        return f"; its last log lines: {' | '.join(lines)}" if lines else ""

    def _set_state(self, state: ProcessState) -> None:
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()

    # -- checks before the first start ------------------------------------------------------

    def _check_checkout(self) -> None:
        if not (self.checkout / "main.py").is_file():
            raise InvalidInput(
                f"COMFYUI_PATH={self.checkout} holds no main.py: point it at a ComfyUI checkout.",
                problems=[
                    Problem(message="no main.py", field="COMFYUI_PATH", value=str(self.checkout))
                ],
            )

    def _check_port_free(self) -> None:
        port = self.settings.port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((LISTEN_HOST, port))
            except OSError as err:
                raise InvalidInput(
                    f"port {port} on {LISTEN_HOST} is already in use ({err.strerror}); stop "
                    "what listens there (an earlier ComfyUI?) or set COMFYUI_PORT to a free port.",
                    problems=[Problem(message="port in use", field="COMFYUI_PORT", value=port)],
                ) from err


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal ComfyUI's process group (it leads its own session); gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the child, before ComfyUI starts (Linux): SIGTERM it if the supervising process dies
    without stopping it (killed with SIGKILL, say), so no ComfyUI is left holding the GPU."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
