"""scripts/serve.sh, the README's main command, on a fresh machine made of fakes.

The fake ``python3.12`` makes a fake virtual environment whose ``python`` (pip) and
``wan-worker`` only log; the fake ``git`` clones an empty ComfyUI. What is checked is the
script's own logic: which steps run, in which order, with which arguments, and which are
skipped on a second run or with COMFYUI_URL set.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.fakes import REPO_ROOT, Finished, run_script, tools_dir, write_fake

SERVE = REPO_ROOT / "scripts" / "serve.sh"
PINNED = (REPO_ROOT / "scripts" / "comfyui-version").read_text().strip()

FAKE_SYSTEM_PYTHON = """
if sys.argv[1] == "-c":
    sys.exit(int(os.environ.get("FAKE_PYTHON_TOO_OLD", "0")))
if sys.argv[1:3] == ["-m", "venv"]:
    bin_dir = os.path.join(sys.argv[3], "bin")
    os.makedirs(bin_dir)
    for name in ("python", "wan-worker"):
        text = open(os.environ["FAKE_TEMPLATE_" + name.replace("-", "_").upper()]).read()
        with open(os.path.join(bin_dir, name), "w") as out:
            out.write(text)
        os.chmod(os.path.join(bin_dir, name), 0o755)
"""

FAKE_GIT = """
if sys.argv[1] == "clone":
    dest = sys.argv[-1]
    os.makedirs(dest)
    for name in ("main.py", "requirements.txt"):
        open(os.path.join(dest, name), "w").close()
elif sys.argv[1] == "-C":
    print(os.environ.get("FAKE_GIT_TAG", ""))
"""


@dataclass
class Machine:
    """A fresh machine: fakes on PATH, no virtual environment, no ComfyUI yet.

    The service's virtual environment is ``venv``, ComfyUI goes to ``comfyui`` (its own
    environment to ``comfyui/.venv``), all under one temporary folder.
    """

    tmp: Path
    bin_dir: Path
    tools: Path
    log: Path

    @property
    def venv(self) -> Path:
        return self.tmp / "venv"

    @property
    def comfyui(self) -> Path:
        return self.tmp / "comfyui"

    def env(self, **extra: str) -> dict[str, str]:
        templates = self.tmp / "templates"
        return {
            "VENV": str(self.venv),
            "COMFYUI_PATH": str(self.comfyui),
            "FAKE_TEMPLATE_PYTHON": str(templates / "python"),
            "FAKE_TEMPLATE_WAN_WORKER": str(templates / "wan-worker"),
            **extra,
        }

    def steps(self, result: Finished) -> list[str]:
        """Each call as one line, the program named by its path under the machine's folder."""
        lines = []
        for call in result.calls:
            program = Path(call.path).relative_to(self.tmp).as_posix()
            lines.append(" ".join([program, *call.argv[1:]]).replace(f"{self.tmp}/", ""))
        return lines

    def serve(self, *args: str, **env: str) -> Finished:
        self.log.unlink(missing_ok=True)
        return run_script(
            SERVE,
            bin_dir=self.bin_dir,
            tools=self.tools,
            log=self.log,
            env=self.env(**env),
            args=args,
        )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    templates = tmp_path / "templates"
    write_fake(templates, "python", log)
    write_fake(templates, "wan-worker", log)
    write_fake(bin_dir, "python3.12", log, FAKE_SYSTEM_PYTHON)
    write_fake(bin_dir, "python3", log, "sys.exit(1)")  # a system Python older than 3.11
    write_fake(bin_dir, "git", log, FAKE_GIT)
    write_fake(bin_dir, "nvidia-smi", log)
    return Machine(tmp_path, bin_dir, tools_dir(tmp_path / "tools"), log)


VERSION_CHECK = "bin/python3.12 -c import sys; sys.exit(sys.version_info < (3, 11))"
CU130 = "https://download.pytorch.org/whl/cu130"
COMFYUI_REPO = "https://github.com/Comfy-Org/ComfyUI.git"


def test_a_fresh_machine_gets_the_service_pinned_comfyui_default_models_then_serves(
    machine: Machine,
) -> None:
    result = machine.serve("--port", "8000")

    assert result.returncode == 0, result.stderr
    assert machine.steps(result) == [
        VERSION_CHECK,
        "bin/python3.12 -m venv venv",
        "venv/bin/python -m pip install --quiet --upgrade pip",
        f"venv/bin/python -m pip install --quiet -e {REPO_ROOT}",
        f"bin/git clone --depth 1 --branch {PINNED} {COMFYUI_REPO} comfyui",
        VERSION_CHECK,
        "bin/python3.12 -m venv comfyui/.venv",
        "comfyui/.venv/bin/python -m pip install --quiet --upgrade pip",
        "comfyui/.venv/bin/python -m pip install --quiet torch torchvision torchaudio "
        f"--extra-index-url {CU130}",
        "comfyui/.venv/bin/python -m pip install --quiet -r comfyui/requirements.txt",
        "venv/bin/wan-worker models download i2v --preset lightning --dest comfyui/models --yes",
        "venv/bin/wan-worker serve --port 8000",
    ]
    serve = result.calls[-1]
    assert serve.pid == result.pid, "serve replaces the script (exec)"
    assert serve.env["COMFYUI_PATH"] == str(machine.comfyui)
    assert serve.env["COMFYUI_PYTHON"] == f"{machine.comfyui}/.venv/bin/python"
    assert serve.env["MODELS_DIR"] == f"{machine.comfyui}/models"
    assert serve.env["COMFYUI_URL"] is None


def test_running_it_again_only_checks_the_models_and_serves(machine: Machine) -> None:
    assert machine.serve().returncode == 0

    again = machine.serve(FAKE_GIT_TAG=PINNED)

    assert again.returncode == 0, again.stderr
    assert machine.steps(again) == [
        "bin/git -C comfyui describe --tags --exact-match",
        "venv/bin/wan-worker models download i2v --preset lightning --dest comfyui/models --yes",
        "venv/bin/wan-worker serve",
    ]
    assert again.calls[-1].env["COMFYUI_PYTHON"] == f"{machine.comfyui}/.venv/bin/python"
    assert "warning" not in again.stderr


def test_a_comfyui_checkout_at_another_release_is_used_with_a_warning(machine: Machine) -> None:
    assert machine.serve().returncode == 0

    again = machine.serve(FAKE_GIT_TAG="v0.1.0")

    assert again.returncode == 0, again.stderr
    assert f"is at v0.1.0, not {PINNED} (the tested release)" in again.stderr
    assert machine.steps(again)[-1] == "venv/bin/wan-worker serve"


def test_mode_preset_and_models_folder_are_chosen_by_the_environment(machine: Machine) -> None:
    models = machine.tmp / "models"

    result = machine.serve(WAN_MODE="ti2v", WAN_PRESET="standard", MODELS_DIR=str(models))

    assert result.returncode == 0, result.stderr
    assert machine.steps(result)[-2:] == [
        "venv/bin/wan-worker models download ti2v --preset standard --dest models --yes",
        "venv/bin/wan-worker serve",
    ]
    assert result.calls[-1].env["MODELS_DIR"] == str(models)


def test_with_comfyui_url_only_the_service_is_installed(machine: Machine) -> None:
    result = machine.serve(COMFYUI_URL="http://gpu-box:8188")

    assert result.returncode == 0, result.stderr
    assert machine.steps(result) == [
        VERSION_CHECK,
        "bin/python3.12 -m venv venv",
        "venv/bin/python -m pip install --quiet --upgrade pip",
        f"venv/bin/python -m pip install --quiet -e {REPO_ROOT}",
        "venv/bin/wan-worker serve",
    ]
    assert not machine.comfyui.exists()
    assert result.calls[-1].env["COMFYUI_URL"] == "http://gpu-box:8188"
    assert "using the ComfyUI at http://gpu-box:8188" in result.stderr


def test_without_python_311_it_stops_saying_what_to_install(machine: Machine) -> None:
    result = machine.serve(FAKE_PYTHON_TOO_OLD="1")

    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr
    assert not machine.venv.exists()


def test_a_failed_step_stops_before_serving(machine: Machine) -> None:
    write_fake(machine.bin_dir, "git", machine.log, "sys.exit(128)")

    result = machine.serve()

    assert result.returncode == 128
    assert machine.steps(result)[-1].startswith("bin/git clone")


def test_make_serve_runs_the_script_with_the_makefiles_venv(machine: Machine) -> None:
    tool = shutil.which("make")
    assert tool is not None, "make runs the README's commands"
    (machine.tools / "make").symlink_to(tool)
    wrapper = machine.tmp / "make-serve"
    wrapper.write_text(f'#!/bin/sh\nexec make -s -C "{REPO_ROOT}" serve VENV="$VENV" "$@"\n')
    wrapper.chmod(0o755)

    result = run_script(
        wrapper,
        bin_dir=machine.bin_dir,
        tools=machine.tools,
        log=machine.log,
        env=machine.env(COMFYUI_URL="http://gpu-box:8188"),
    )

    assert result.returncode == 0, result.stderr
    assert machine.steps(result)[-1] == "venv/bin/wan-worker serve"


def test_a_machine_without_an_nvidia_gpu_is_warned_but_still_served(machine: Machine) -> None:
    (machine.bin_dir / "nvidia-smi").unlink()

    result = machine.serve()

    assert result.returncode == 0, result.stderr
    assert "warning: no NVIDIA GPU found" in result.stderr
    assert machine.steps(result)[-1] == "venv/bin/wan-worker serve"
