"""A fake ComfyUI checkout (the ComfyUI double behind ComfyUI's command line) and quick settings."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wan_worker.managed import ManagedComfyUISettings
from wan_worker.testing.fake_comfyui import write_checkout

WAIT_S = 60.0
"""Generous limit for anything a test waits for: the suite may run on a loaded machine."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_exists(pid: int) -> bool:
    """Whether ``pid`` names a process (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def eventually(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds; fail the test when it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return write_checkout(tmp_path / "comfyui")


@pytest.fixture
def managed(checkout: Path) -> ManagedComfyUISettings:
    """Settings for the fake checkout: this interpreter, a free port, quick restarts."""
    return ManagedComfyUISettings(
        comfyui_path=checkout,
        python=sys.executable,
        port=free_port(),
        ready_timeout_s=WAIT_S,
        max_restarts=2,
        backoff_initial_s=0.05,
        backoff_max_s=0.1,
        stop_grace_s=WAIT_S,
    )
