"""Settings of the ComfyUI that `wan-worker serve` runs itself, read from the environment."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wan_worker.errors import Problem
from wan_worker.service import EnvReader

# Flags of ComfyUI's own command line that the supervisor sets and COMFYUI_ARGS may not override:
# argparse accepts any unique prefix, so ``--li 0.0.0.0`` would open ComfyUI to the network.
_RESERVED_FLAGS = {
    "--listen": "COMFYUI_ARGS may not set --listen: the managed ComfyUI listens on 127.0.0.1 only",
    "--port": "COMFYUI_ARGS may not set --port: use COMFYUI_PORT",
}
_SHORTEST_PREFIX = {"--listen": "--li", "--port": "--po"}


@dataclass(frozen=True)
class ManagedComfyUISettings:
    """Where the ComfyUI checkout is, how it is started, and how often it may be restarted."""

    comfyui_path: Path | None = None
    """A ComfyUI checkout (the folder holding ``main.py``) for the worker to run."""
    external_url: str | None = None
    """COMFYUI_URL when set: a ComfyUI run elsewhere is used and none is started."""
    python: str = sys.executable
    """The interpreter that runs ComfyUI (its own virtual environment, usually)."""
    port: int = 8188
    """ComfyUI's port on 127.0.0.1."""
    extra_args: tuple[str, ...] = ()
    """More of ComfyUI's own flags (``--lowvram``, ``--preview-method none``...)."""
    input_dir: Path | None = None
    """``--input-directory`` when set; else ComfyUI's ``input`` folder in the checkout."""
    output_dir: Path | None = None
    """``--output-directory`` when set; else ComfyUI's ``output`` folder in the checkout."""
    ready_timeout_s: float = 120.0
    """How long one start may take until ``GET /system_stats`` answers 200."""
    max_restarts: int = 5
    """Restarts allowed within ``restart_window_s``; one more death and the supervisor gives up."""
    restart_window_s: float = 600.0
    backoff_initial_s: float = 1.0
    """Wait before the first restart; doubled for each further death within the window."""
    backoff_max_s: float = 30.0
    stop_grace_s: float = 10.0
    """How long ComfyUI may take to exit after SIGTERM before it gets SIGKILL."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ManagedComfyUISettings:
        """COMFYUI_PATH, COMFYUI_PYTHON, COMFYUI_PORT, COMFYUI_ARGS, COMFYUI_MAX_RESTARTS, and the
        service's COMFYUI_URL, COMFYUI_INPUT_DIR, COMFYUI_OUTPUT_DIR and COMFYUI_READY_TIMEOUT_S."""
        read = EnvReader(env)
        settings = cls(
            comfyui_path=read.optional("COMFYUI_PATH", Path),
            external_url=read.optional("COMFYUI_URL", str),
            python=read.value("COMFYUI_PYTHON", str, sys.executable),
            port=read.whole("COMFYUI_PORT", 8188, low=1, high=65535),
            extra_args=_extra_args(read, "COMFYUI_ARGS"),
            input_dir=read.optional("COMFYUI_INPUT_DIR", Path),
            output_dir=read.optional("COMFYUI_OUTPUT_DIR", Path),
            ready_timeout_s=read.positive("COMFYUI_READY_TIMEOUT_S", 120.0),
            max_restarts=read.whole("COMFYUI_MAX_RESTARTS", 5, low=0, high=1000),
        )
        read.raise_if_any()
        return settings

    @property
    def managed(self) -> bool:
        """Whether the worker runs ComfyUI itself: a checkout is named and no COMFYUI_URL."""
        return self.comfyui_path is not None and self.external_url is None

    @property
    def url(self) -> str:
        """The managed ComfyUI's address."""
        return f"http://127.0.0.1:{self.port}"


def _extra_args(read: EnvReader, name: str) -> tuple[str, ...]:
    raw = read.env.get(name, "").strip()
    try:
        args = tuple(shlex.split(raw))
    except ValueError as err:
        read.problems.append(
            Problem(message=f"{name} is not a valid shell word list ({err})", field=name, value=raw)
        )
        return ()
    for arg in args:
        flag = arg.split("=", 1)[0]
        for reserved, message in _RESERVED_FLAGS.items():
            if flag.startswith(_SHORTEST_PREFIX[reserved]) and reserved.startswith(flag):
                read.problems.append(Problem(message=message, field=name, value=arg))
    return args
