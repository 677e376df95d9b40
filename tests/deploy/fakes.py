"""Fake executables for running the deployment scripts without a network, GPU or ComfyUI.

Each fake is a small Python program that appends what it was called with (argv, pid, working
folder, chosen environment variables) to a JSON-lines log, then does its ``behaviour``. The
scripts run with a PATH holding only the fakes and a few real tools, so a real ``git``, ``curl``
or ``pip`` can never be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_PYTHON = sys.executable

TOOLS = ("bash", "sh", "dirname", "tr", "touch", "rm", "sleep", "cat", "env", "mkdir")
"""Real programs the scripts may use besides the fakes."""

WATCHED_ENV = (
    "COMFYUI_URL",
    "COMFYUI_PATH",
    "COMFYUI_INPUT_DIR",
    "COMFYUI_OUTPUT_DIR",
    "MODELS_DIR",
    "API_HOST",
    "COMFYUI_PYTHON",
)

_TEMPLATE = """#!{python}
import json, os, sys
NAME = {name!r}
argv = [NAME] + sys.argv[1:]
with open({log!r}, "a", encoding="utf-8") as out:
    record = {{"argv": argv, "path": os.path.abspath(sys.argv[0]), "pid": os.getpid(),
              "cwd": os.getcwd(),
              "env": {{k: os.environ.get(k) for k in {watched!r}}}}}
    out.write(json.dumps(record) + "\\n")
{behaviour}
"""


def write_fake(folder: Path, name: str, log: Path, behaviour: str = "") -> Path:
    """An executable ``folder/name`` that logs its call to ``log``, then runs ``behaviour``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        _TEMPLATE.format(
            python=REAL_PYTHON, name=name, log=str(log), watched=WATCHED_ENV, behaviour=behaviour
        )
    )
    path.chmod(0o755)
    return path


def tools_dir(folder: Path) -> Path:
    """A folder of links to the few real tools the scripts need."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is needed to run the deployment scripts"
        (folder / tool).symlink_to(found)
    return folder


@dataclass
class Call:
    """One recorded call of a fake."""

    argv: list[str]
    path: str
    """Where the fake that was called lives (which virtual environment's ``python``)."""
    pid: int
    cwd: str
    env: dict[str, str | None]


def read_calls(log: Path) -> list[Call]:
    """Every call recorded in ``log``, in order."""
    if not log.exists():
        return []
    return [Call(**json.loads(line)) for line in log.read_text().splitlines()]


@dataclass
class Finished:
    """A finished script run: its process id, status, output and the fakes' calls."""

    pid: int
    returncode: int
    stdout: str
    stderr: str
    calls: list[Call]

    def commands(self) -> list[list[str]]:
        return [call.argv for call in self.calls]


def run_script(
    script: Path,
    *,
    bin_dir: Path,
    tools: Path,
    log: Path,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    timeout_s: float = 60,
) -> Finished:
    """Run ``script`` with PATH = the fakes, then the real tools; nothing else is inherited."""
    full_env = {"PATH": f"{bin_dir}:{tools}", "HOME": str(log.parent), **env}
    proc = subprocess.Popen(
        [str(script), *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=timeout_s)
    return Finished(proc.pid, proc.returncode, stdout, stderr, read_calls(log))


def exits_soon(pid: int, timeout_s: float = 30) -> bool:
    """Whether process ``pid`` is gone (or a zombie) within ``timeout_s``, polling its state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.05)
    return False


def stop(pid: int) -> None:
    """End a process a fake left running (started by this test), if it still runs."""
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
