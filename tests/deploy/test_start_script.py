"""docker/start.sh: the container's entry point, run with fake python, curl and wan-worker."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.deploy.fakes import (
    REAL_PYTHON,
    REPO_ROOT,
    Finished,
    exits_soon,
    run_script,
    stop,
    tools_dir,
    write_fake,
)

START = REPO_ROOT / "docker" / "start.sh"
DOWNLOAD = REPO_ROOT / "docker" / "download-models.sh"

FAKE_PYTHON = f"""
if sys.argv[1:2] == ["-"]:
    os.execv({REAL_PYTHON!r}, [{REAL_PYTHON!r}] + sys.argv[1:])
if len(sys.argv) > 2 and sys.argv[2].endswith("main.py"):
    if os.environ.get("FAKE_COMFYUI") == "crash":
        sys.exit(3)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.execv({shutil.which("sleep")!r}, ["sleep", "120"])
"""

FAKE_CURL = """
counter = os.environ["FAKE_CURL_COUNTER"]
calls = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(calls))
fails = os.environ.get("FAKE_CURL_FAILS", "0")
sys.exit(7 if fails == "always" or calls <= int(fails) else 0)
"""


@dataclass
class Rig:
    """Fakes, a ComfyUI folder and a models folder outside it, for one run of start.sh."""

    tmp: Path
    bin_dir: Path
    tools: Path
    log: Path
    comfyui: Path
    models: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "COMFYUI_PATH": str(self.comfyui),
            "MODELS_DIR": str(self.models),
            "FAKE_CURL_COUNTER": str(self.tmp / "curl-count"),
            "TMPDIR": str(self.tmp),
            **extra,
        }

    @property
    def model_paths(self) -> Path:
        """Where start.sh writes the extra_model_paths.yaml it gives ComfyUI."""
        return self.tmp / "wan-worker-comfyui" / "extra_model_paths.yaml"

    def run(self, script: Path = START, *args: str, **env: str) -> Finished:
        return run_script(
            script,
            bin_dir=self.bin_dir,
            tools=self.tools,
            log=self.log,
            env=self.env(**env),
            args=args,
        )


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    write_fake(bin_dir, "python", log, FAKE_PYTHON)
    write_fake(bin_dir, "curl", log, FAKE_CURL)
    write_fake(bin_dir, "wan-worker", log)
    comfyui = tmp_path / "comfyui"
    comfyui.mkdir()
    return Rig(tmp_path, bin_dir, tools_dir(tmp_path / "tools"), log, comfyui, tmp_path / "models")


@pytest.fixture
def comfyui_pids() -> Iterator[list[int]]:
    """Fake ComfyUI processes a test leaves behind; each is ended after the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        stop(pid)


def comfyui_launches(result: Finished) -> list[int]:
    return [c.pid for c in result.calls if c.argv[0] == "python" and "main.py" in " ".join(c.argv)]


def test_runpod_mode_starts_comfyui_waits_until_it_answers_then_execs_the_handler(
    rig: Rig, comfyui_pids: list[int]
) -> None:
    result = rig.run(FAKE_CURL_FAILS="2", COMFYUI_ARGS="--lowvram --preview-method none")
    comfyui_pids.extend(comfyui_launches(result))

    assert result.returncode == 0, result.stderr
    commands = result.commands()
    assert commands[0][:2] == ["python", "-"], "extra_model_paths.yaml comes first"
    # ComfyUI runs in the background, so its launch and the first poll may log in either order.
    launches = [c for c in commands if c[:3] == ["python", "-u", f"{rig.comfyui}/main.py"]]
    assert launches == [
        [
            "python",
            "-u",
            f"{rig.comfyui}/main.py",
            "--listen",
            "127.0.0.1",
            "--port",
            "8188",
            "--disable-auto-launch",
            "--extra-model-paths-config",
            str(rig.model_paths),
            "--lowvram",
            "--preview-method",
            "none",
        ]
    ]
    polls = [c for c in commands if c[0] == "curl"]
    assert (
        polls
        == [
            [
                "curl",
                "-fsS",
                "-o",
                "/dev/null",
                "--max-time",
                "5",
                "http://127.0.0.1:8188/system_stats",
            ]
        ]
        * 3
    )
    assert len(commands) == 6
    handler = result.calls[-1]
    assert handler.argv == ["python", "-u", f"{REPO_ROOT}/handler.py"]
    assert handler.pid == result.pid, "the handler replaces the script (exec), as PID 1 should"
    assert handler.cwd == str(REPO_ROOT)
    assert handler.env["COMFYUI_URL"] == "http://127.0.0.1:8188"
    assert handler.env["COMFYUI_INPUT_DIR"] == f"{rig.comfyui}/input"
    assert handler.env["COMFYUI_OUTPUT_DIR"] == f"{rig.comfyui}/output"
    assert "ComfyUI is ready" in result.stderr


def test_runpod_mode_points_comfyui_at_the_models_folder(rig: Rig, comfyui_pids: list[int]) -> None:
    result = rig.run()
    comfyui_pids.extend(comfyui_launches(result))

    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(rig.model_paths.read_text())
    roots = [entry["base_path"] for entry in config.values()]
    assert roots == [f"{rig.models}/"]
    assert not (rig.comfyui / "extra_model_paths.yaml").exists(), "the checkout is not written"
    first = next(iter(config.values()))
    assert first["is_default"] is True
    assert first["diffusion_models"] == "diffusion_models/"
    assert first["loras"] == "loras/"


def test_chosen_input_and_output_folders_are_given_to_comfyui_and_the_handler(
    rig: Rig, comfyui_pids: list[int]
) -> None:
    inputs, outputs = rig.tmp / "in", rig.tmp / "out"
    result = rig.run(COMFYUI_INPUT_DIR=str(inputs), COMFYUI_OUTPUT_DIR=str(outputs))
    comfyui_pids.extend(comfyui_launches(result))

    assert result.returncode == 0, result.stderr
    (launch,) = [c.argv for c in result.calls if "main.py" in " ".join(c.argv)]
    flags = launch[launch.index("--disable-auto-launch") + 1 :]
    assert flags[:4] == ["--input-directory", str(inputs), "--output-directory", str(outputs)]
    handler = result.calls[-1]
    assert handler.env["COMFYUI_INPUT_DIR"] == str(inputs)
    assert handler.env["COMFYUI_OUTPUT_DIR"] == str(outputs)


def test_models_inside_comfyui_need_no_extra_paths(rig: Rig, comfyui_pids: list[int]) -> None:
    result = rig.run(MODELS_DIR=f"{rig.comfyui}/models")
    comfyui_pids.extend(comfyui_launches(result))

    assert result.returncode == 0, result.stderr
    assert not rig.model_paths.exists()
    assert all(c.argv[:2] != ["python", "-"] for c in result.calls)
    assert all("--extra-model-paths-config" not in c.argv for c in result.calls)


def test_runpod_mode_with_comfyui_url_starts_no_comfyui(rig: Rig) -> None:
    result = rig.run(COMFYUI_URL="http://comfyui.internal:8188")

    assert result.returncode == 0, result.stderr
    assert result.commands() == [["python", "-u", f"{REPO_ROOT}/handler.py"]]
    assert result.calls[0].env["COMFYUI_URL"] == "http://comfyui.internal:8188"
    assert result.calls[0].pid == result.pid


def test_runpod_mode_fails_when_comfyui_exits_before_answering(rig: Rig) -> None:
    result = rig.run(FAKE_COMFYUI="crash", FAKE_CURL_FAILS="always")

    assert result.returncode == 1
    assert "ComfyUI exited (status 3) before answering" in result.stderr
    assert all("handler.py" not in " ".join(c.argv) for c in result.calls)


def test_runpod_mode_gives_up_after_the_ready_timeout_and_stops_comfyui(rig: Rig) -> None:
    result = rig.run(FAKE_CURL_FAILS="always", COMFYUI_READY_TIMEOUT_S="1.5")

    assert result.returncode == 1
    assert "did not answer http://127.0.0.1:8188/system_stats within 1s" in result.stderr
    assert "COMFYUI_READY_TIMEOUT_S" in result.stderr
    assert all("handler.py" not in " ".join(c.argv) for c in result.calls)
    (comfyui,) = comfyui_launches(result)
    assert exits_soon(comfyui), "the ComfyUI that never answered is left running"


def test_api_mode_execs_wan_worker_serve_listening_on_every_interface(rig: Rig) -> None:
    result = rig.run(WAN_WORKER_MODE="api", MODELS_DIR=f"{rig.comfyui}/models")

    assert result.returncode == 0, result.stderr
    assert result.commands() == [["wan-worker", "serve"]]
    serve = result.calls[0]
    assert serve.pid == result.pid
    assert serve.env["API_HOST"] == "0.0.0.0"
    assert serve.env["COMFYUI_PATH"] == str(rig.comfyui)
    assert serve.env["MODELS_DIR"] == f"{rig.comfyui}/models"


def test_api_mode_leaves_the_model_paths_to_serve(rig: Rig) -> None:
    result = rig.run(WAN_WORKER_MODE="api")

    assert result.returncode == 0, result.stderr
    assert result.commands() == [["wan-worker", "serve"]]
    assert result.calls[0].env["MODELS_DIR"] == str(rig.models)
    assert not rig.model_paths.exists()


def test_api_mode_keeps_a_chosen_api_host(rig: Rig) -> None:
    result = rig.run(WAN_WORKER_MODE="api", API_HOST="127.0.0.1")

    assert result.calls[-1].env["API_HOST"] == "127.0.0.1"


def test_download_models_fetches_each_mode_into_the_models_folder_before_serving(
    rig: Rig,
) -> None:
    result = rig.run(WAN_WORKER_MODE="api", DOWNLOAD_MODELS="i2v:lightning, ti2v")

    assert result.returncode == 0, result.stderr
    assert result.commands() == [
        [
            "wan-worker",
            "models",
            "download",
            "i2v",
            "--preset",
            "lightning",
            "--dest",
            str(rig.models),
            "--yes",
        ],
        ["wan-worker", "models", "download", "ti2v", "--dest", str(rig.models), "--yes"],
        ["wan-worker", "serve"],
    ]


def test_download_models_is_skipped_when_comfyui_is_someone_elses(rig: Rig) -> None:
    result = rig.run(
        WAN_WORKER_MODE="api", DOWNLOAD_MODELS="i2v:lightning", COMFYUI_URL="http://c:8188"
    )

    assert result.commands() == [["wan-worker", "serve"]]


def test_a_failed_download_stops_the_start(rig: Rig) -> None:
    write_fake(rig.bin_dir, "wan-worker", rig.log, "sys.exit(4)")

    result = rig.run(WAN_WORKER_MODE="api", DOWNLOAD_MODELS="i2v:lightning")

    assert result.returncode == 4
    assert result.commands() == [
        [
            "wan-worker",
            "models",
            "download",
            "i2v",
            "--preset",
            "lightning",
            "--dest",
            str(rig.models),
            "--yes",
        ],
    ]


@pytest.mark.parametrize("mode", ["serverless", "API"])
def test_an_unknown_mode_is_refused_naming_the_choices(rig: Rig, mode: str) -> None:
    result = rig.run(WAN_WORKER_MODE=mode)

    assert result.returncode == 2
    assert "WAN_WORKER_MODE must be 'runpod' (the RunPod handler) or 'api'" in result.stderr
    assert f"not '{mode}'" in result.stderr
    assert result.calls == []


def test_bake_models_runs_the_downloader_per_item_without_a_destination(rig: Rig) -> None:
    result = rig.run(DOWNLOAD, "t2v:standard,s2v")

    assert result.returncode == 0, result.stderr
    assert result.commands() == [
        ["wan-worker", "models", "download", "t2v", "--preset", "standard", "--yes"],
        ["wan-worker", "models", "download", "s2v", "--yes"],
    ]
