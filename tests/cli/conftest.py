"""Real pieces for the generate and doctor tests: the ComfyUI double on 127.0.0.1, the command
line run as a subprocess (or its ``main`` in a thread), and the sample inputs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from wan_worker import catalogue
from wan_worker.cli import main
from wan_worker.testing import ComfyUIDouble

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"
IMAGE = str(SAMPLES / "lighthouse.png")
END_IMAGE = str(SAMPLES / "lighthouse-night.png")
VOICE = str(SAMPLES / "voice.wav")

MODE_INPUTS: dict[str, list[str]] = {
    "i2v": [IMAGE],
    "t2v": [],
    "flf2v": [IMAGE, END_IMAGE],
    "ti2v": [IMAGE],
    "s2v": [IMAGE, VOICE],
}
"""The sample inputs of each mode, as the README's examples give them."""

SMALL = ["--width", "320", "--height", "192"]
"""A size every mode accepts (a multiple of 32), small enough to write quickly."""

_SERVICE_PREFIXES = ("COMFYUI_", "API_", "RUNPOD_", "BUCKET_", "INPUT_", "JOB_", "MAX_JOB_")


def catalogue_models() -> dict[str, list[str]]:
    """Every catalogue file by folder: a ComfyUI with all of them installed."""
    models: dict[str, list[str]] = {}
    for model in catalogue.all_models():
        models.setdefault(model.folder, []).append(model.file)
    return models


@pytest.fixture
async def comfy(tmp_path: Path) -> AsyncIterator[ComfyUIDouble]:
    """The ComfyUI double with every catalogue model; nothing served from its cache."""
    async with ComfyUIDouble(
        root=tmp_path / "comfyui", models=catalogue_models(), cache=False
    ) as server:
        yield server


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a command-line run: the service's variables unset, its folders here.

    Also applied to this process, for ``main`` run in a thread.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    folders = {"WORK_DIR": tmp_path / "work", "DURABLE_OUTPUT_DIR": tmp_path / "kept"}
    for name, folder in folders.items():
        env[name] = str(folder)
        monkeypatch.setenv(name, str(folder))
    return env


@dataclass
class CliRun:
    status: int
    stdout: str
    stderr: str


async def run_cli(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
) -> CliRun:
    """``python -m wan_worker.cli ARGS`` as a subprocess, stdout and stderr piped (no TTY)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wan_worker.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return CliRun(process.returncode, stdout.decode(), stderr.decode())


async def run_main(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> CliRun:
    """The command line's ``main`` in a thread (quicker than a subprocess), output captured."""
    status = await asyncio.to_thread(main, list(args))
    captured = capsys.readouterr()
    return CliRun(status, captured.out, captured.err)


def names(folder: Path) -> list[str]:
    """The sorted names in ``folder``."""
    return sorted(p.name for p in folder.iterdir())


@contextlib.contextmanager
def no_new_files(folder: Path) -> Iterator[None]:
    """Asserts the block leaves no new file (or hidden staging folder) in ``folder``."""
    before = set(folder.iterdir())
    yield
    assert set(folder.iterdir()) == before
