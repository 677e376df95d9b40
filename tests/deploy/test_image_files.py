"""The Dockerfile, .dockerignore and docker-compose.yml agree with the repository.

No Docker engine runs here, so the image is checked by reading: every file it copies exists and
is sent by .dockerignore, the ComfyUI release it clones is the pinned one, and the entry points
it calls are the repository's.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.deploy.fakes import REPO_ROOT
from wan_worker.testing import ComfyUIDouble

PINNED = (REPO_ROOT / "scripts" / "comfyui-version").read_text().strip()
SCRIPTS = [
    REPO_ROOT / "scripts" / "serve.sh",
    REPO_ROOT / "docker" / "start.sh",
    REPO_ROOT / "docker" / "download-models.sh",
]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    workdir: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each with its WORKDIR."""
    instructions: list[Instruction] = []
    workdir, pending = "/", ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        pending = ""
        if keyword.upper() == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / args.strip())
        instructions.append(Instruction(keyword.upper(), args.strip(), workdir))
    return instructions


def copies() -> list[tuple[list[str], str]]:
    """Each COPY as (sources, absolute destination in the image)."""
    out = []
    for ins in dockerfile():
        if ins.keyword != "COPY":
            continue
        *sources, dest = shlex.split(ins.args)
        assert not any(s.startswith("--") for s in sources), "COPY --from/--chown is not used"
        out.append((sources, str(PurePosixPath(ins.workdir) / dest)))
    return out


def image_to_repo(image_path: str) -> Path:
    """The repository file that ends up at ``image_path`` in the image."""
    for sources, dest in copies():
        for source in sources:
            target = dest if len(sources) == 1 else str(PurePosixPath(dest) / Path(source).name)
            if image_path == target:
                return REPO_ROOT / source
            if image_path.startswith(target.rstrip("/") + "/"):
                return REPO_ROOT / source / image_path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{image_path} is not copied into the image")


def dockerignore_sends(path: str) -> bool:
    """Whether the build context keeps ``path`` (last matching .dockerignore rule wins)."""
    keep = True
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or (
            pattern.startswith("**/") and fnmatch.fnmatch(parts[-1], pattern[3:])
        ):
            keep = negated
    return keep


def test_every_file_the_image_copies_exists_and_is_sent_to_the_build() -> None:
    for sources, _ in copies():
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
            assert dockerignore_sends(source), f".dockerignore leaves out {source}"
            if (REPO_ROOT / source).is_dir():
                for path in (REPO_ROOT / source).rglob("*.py"):
                    if "__pycache__" not in path.parts:
                        rel = path.relative_to(REPO_ROOT).as_posix()
                        assert dockerignore_sends(rel), f".dockerignore leaves out {rel}"


def test_the_build_context_leaves_out_local_environments_checkouts_and_models() -> None:
    for path in (
        ".venv/bin/python",
        "comfyui/main.py",
        "models/loras/x.safetensors",
        ".git/HEAD",
        "src/wan_worker/__pycache__/x.pyc",
        "tests/conftest.py",
    ):
        assert not dockerignore_sends(path), path


def test_the_image_installs_what_pyproject_needs_before_installing_the_package() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    copied = [source for sources, _ in copies() for source in sources]
    for needed in ("pyproject.toml", project["readme"], "src"):
        assert needed in copied, needed
    runs = [ins.args for ins in dockerfile() if ins.keyword in {"RUN", "COPY"}]
    install = next(i for i, args in enumerate(runs) if args == "pip install .")
    assert any("src" in args for args in runs[:install]), "src is copied before pip install ."


def test_the_command_is_the_start_script_and_its_entry_points_are_in_the_image() -> None:
    (cmd,) = [json.loads(ins.args) for ins in dockerfile() if ins.keyword == "CMD"]
    start = image_to_repo(cmd[0])
    assert start == REPO_ROOT / "docker" / "start.sh"
    assert os.access(start, os.X_OK)
    # start.sh finds handler.py and download-models.sh beside its own folder in the image
    app = str(PurePosixPath(cmd[0]).parent.parent)
    assert image_to_repo(f"{app}/handler.py") == REPO_ROOT / "handler.py"
    downloader = image_to_repo(f"{app}/docker/download-models.sh")
    assert os.access(downloader, os.X_OK)
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["wan-worker"] == "wan_worker.cli:main"


def test_bake_models_calls_the_downloader_the_image_holds() -> None:
    (bake,) = [ins for ins in dockerfile() if ins.keyword == "RUN" and "BAKE_MODELS" in ins.args]
    called = re.search(r"(docker/download-models\.sh)", bake.args)
    assert called is not None
    assert image_to_repo(str(PurePosixPath(bake.workdir) / called.group(1))).exists()
    args = {ins.args.partition("=")[0]: ins.args for ins in dockerfile() if ins.keyword == "ARG"}
    assert args["BAKE_MODELS"] == "BAKE_MODELS="


def test_the_base_image_is_a_cuda_runtime() -> None:
    args = dict(ins.args.partition("=")[::2] for ins in dockerfile() if ins.keyword == "ARG")
    (base,) = [ins.args for ins in dockerfile() if ins.keyword == "FROM"]
    assert base == "${CUDA_IMAGE}"
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-ubuntu[\d.]+", args["CUDA_IMAGE"])


def test_the_image_clones_the_pinned_comfyui_release() -> None:
    (clone,) = [ins.args for ins in dockerfile() if "git clone" in ins.args]
    branch = re.search(r'--branch "([^"]+)"', clone)
    assert branch is not None
    expression = branch.group(1)
    # Evaluate the shell expression as the build does, with the version file where COPY puts it.
    for sources, dest in copies():
        if sources == ["scripts/comfyui-version"]:
            expression = expression.replace(dest, str(REPO_ROOT / "scripts" / "comfyui-version"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    resolved = subprocess.run(
        ["sh", "-c", f'printf %s "{expression}"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert resolved == PINNED


def test_the_pinned_release_is_the_one_the_recorded_protocol_comes_from() -> None:
    assert re.fullmatch(r"v\d+\.\d+\.\d+", PINNED)
    defaults = ComfyUIDouble.__init__.__kwdefaults__
    assert defaults is not None
    assert "v" + defaults["version"] == PINNED


@pytest.mark.parametrize("doc", ["docs/deployment.md", "docs/architecture.md"])
def test_the_docs_name_the_pinned_release(doc: str) -> None:
    text = (REPO_ROOT / doc).read_text()
    named = set(re.findall(r"ComfyUI (v\d+\.\d+\.\d+)", text))
    assert named == {PINNED}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_scripts_parse_and_are_executable(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK)


def compose() -> dict[str, object]:
    loaded = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_the_api_on_a_gpu_with_a_models_volume() -> None:
    config = compose()
    services = config["services"]
    assert isinstance(services, dict)
    (service,) = services.values()
    env = service["environment"]
    assert env["WAN_WORKER_MODE"] == "api"
    assert service["build"] == "."
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]

    volumes = dict(v.split(":", 1) for v in service["volumes"])
    assert volumes["models"] == env["MODELS_DIR"]
    volumes_declared = config["volumes"]
    assert isinstance(volumes_declared, dict)
    assert {"models", "data"} <= set(volumes_declared)
    for key in ("JOB_DB_PATH", "OUTPUT_DIR", "DURABLE_OUTPUT_DIR"):
        assert env[key].startswith(volumes["data"] + "/"), key

    assert service["ports"] == [f"{env['API_PORT']}:{env['API_PORT']}"]
    assert env["API_HOST"] == "0.0.0.0"
    assert env["API_TOKEN"].startswith("${API_TOKEN:?"), "compose refuses to start without one"


def test_comfyui_and_the_service_live_in_separate_environments() -> None:
    env = dict(
        item.split("=", 1)
        for ins in dockerfile()
        if ins.keyword == "ENV"
        for item in shlex.split(ins.args)
    )
    comfyui_venv = str(PurePosixPath(env["COMFYUI_PYTHON"]).parent.parent)
    service_venv = env["PATH"].split(":")[0].removesuffix("/bin")
    assert comfyui_venv != service_venv
    runs = [ins.args for ins in dockerfile() if ins.keyword == "RUN"]
    assert any(f"python3 -m venv {comfyui_venv}" in run for run in runs)
    assert any(f"python3 -m venv {service_venv}" in run for run in runs)
    (comfyui_install,) = [run for run in runs if "requirements.txt" in run]
    assert comfyui_install.count('"$COMFYUI_PYTHON" -m pip install') == 2  # PyTorch, requirements
    assert "pip install ." in runs, "the service goes into the environment on PATH"
