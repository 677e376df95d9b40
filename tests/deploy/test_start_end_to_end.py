"""docker/start.sh for real, without a GPU: the RunPod Hub's test job through the real handler.

The ComfyUI is the fake checkout of ``wan_worker.testing.fake_comfyui`` (the ComfyUI double as a
process with ComfyUI's command line), so the script's own steps run unchanged: it writes the
model paths, starts "ComfyUI", polls /system_stats with the real curl, then execs handler.py,
which the RunPod SDK runs once on ``--test_input`` (its local mode) and exits. Everything stays
on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.fakes import REPO_ROOT, stop
from wan_worker.models import required_models
from wan_worker.testing.fake_comfyui import starts, write_checkout

START = REPO_ROOT / "docker" / "start.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """A fake ComfyUI checkout; whatever it started is ended after the test."""
    folder = write_checkout(tmp_path / "comfyui")
    yield folder
    for start in starts(folder):
        stop(int(start["pid"]))


def test_the_hub_test_job_runs_through_start_sh_the_handler_and_comfyui(
    tmp_path: Path, checkout: Path
) -> None:
    models = tmp_path / "volume" / "models"
    for model in required_models("i2v", "lightning"):
        (models / model.folder).mkdir(parents=True, exist_ok=True)
        (models / model.folder / model.file).write_bytes(b"")
    (hub_test,) = json.loads((REPO_ROOT / ".runpod" / "tests.json").read_text())["tests"]
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "COMFYUI_PATH": str(checkout),
        "MODELS_DIR": str(models),
        "COMFYUI_PORT": str(port),
        "COMFYUI_READY_TIMEOUT_S": "60",
    }
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        # Files, not pipes: the background ComfyUI keeps its copies of them open.
        code = subprocess.run(
            [str(START), "--test_input", json.dumps({"input": hub_test["input"]})],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            timeout=180,
            check=False,
        ).returncode
    log = stdout.read_text() + stderr.read_text()

    assert code == 0, log[-4000:]
    (comfyui,) = starts(checkout)
    assert comfyui["argv"][:4] == ["--listen", "127.0.0.1", "--port", str(port)]
    assert "--extra-model-paths-config" in comfyui["argv"]
    assert f"ComfyUI is ready at http://127.0.0.1:{port}" in log
    assert "Job result: {'output': {" in log
    assert "'delivery': {'mode': 'inline'}" in log
    assert "'width': 480, 'height': 272" in log
    assert "'error_code'" not in log
    assert os.path.isdir(checkout / "input"), "the handler was given ComfyUI's folders"
