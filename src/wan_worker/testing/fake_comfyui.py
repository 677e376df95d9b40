"""A fake ComfyUI checkout for tests of the managed ComfyUI: the ComfyUI double as a process.

``write_checkout(folder)`` makes a folder whose ``main.py`` takes ComfyUI's command line (unknown
flags are ignored), serves the double on ``--listen``/``--port``, lists the model files found
through ``--extra-model-paths-config``, prints log lines as ComfyUI does, and follows a control
file that a test may rewrite at any time (slow steps, dying at start, hanging, ignoring SIGTERM).
Each start is recorded (pid and argv) so a test can see what was run and kill it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from wan_worker.testing.comfyui_double import ComfyUIDouble

CONTROL_FILE = "fake_control.json"
STARTS_FILE = "fake_starts.jsonl"
_MAIN_PY = """\
import sys
from pathlib import Path

from wan_worker.testing.fake_comfyui import main

sys.exit(main(sys.argv[1:], checkout=Path(__file__).resolve().parent))
"""


def write_checkout(folder: Path) -> Path:
    """Make ``folder`` a fake ComfyUI checkout (its ``main.py`` runs this module); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(_MAIN_PY, encoding="utf-8")
    return folder


def set_control(checkout: Path, **values: Any) -> None:
    """Replace the control file: ``step_delay`` (seconds per sampler step), ``exit_at_start``
    (an exit code to die with at once), ``never_listen`` (true: run but never answer),
    ``ignore_sigterm`` (true: only SIGKILL ends it)."""
    temporary = checkout / f"{CONTROL_FILE}.tmp"
    temporary.write_text(json.dumps(values), encoding="utf-8")
    temporary.replace(checkout / CONTROL_FILE)


def read_control(checkout: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((checkout / CONTROL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def starts(checkout: Path) -> list[dict[str, Any]]:
    """Every start of the fake in ``checkout``, oldest first: ``{"pid": int, "argv": [...]}``."""
    path = checkout / STARTS_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def model_folders(config_paths: Sequence[Path], base: Path) -> dict[str, list[Path]]:
    """Model folder name -> directories, read from extra_model_paths files as ComfyUI reads them
    (``base_path`` joined to each newline-separated entry; without it, relative to the file)."""
    folders: dict[str, list[Path]] = {}
    for folder in (base / "models").glob("*"):
        folders.setdefault(folder.name, []).append(folder)
    for config_path in config_paths:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        for section in config.values():
            if not section:
                continue
            entries = dict(section)
            base = entries.pop("base_path", None)
            entries.pop("is_default", None)
            for name, value in entries.items():
                for entry in str(value).split("\n"):
                    if not entry:
                        continue
                    if base is not None:
                        path = Path(os.path.expandvars(os.path.expanduser(str(base)))) / entry
                    else:
                        path = (config_path.resolve().parent / entry).resolve()
                    folders.setdefault(name, []).append(path)
    return folders


class _FakeComfyUI(ComfyUIDouble):
    """The double with ComfyUI's folders, live model lists and log lines."""

    def __init__(self, *, checkout: Path, folders: Mapping[str, list[Path]], **kwargs: Any):
        super().__init__(**kwargs)
        self.checkout = checkout
        self.folders = dict(folders)

    def _visible_models(self) -> dict[str, list[str]]:
        self.models = {
            name: sorted(
                {p.relative_to(d).as_posix() for d in dirs if d.is_dir() for p in self._walk(d)}
            )
            for name, dirs in self.folders.items()
        }
        return super()._visible_models()

    async def _post_prompt(self, request: web.Request) -> web.Response:
        self.faults.step_delay = float(read_control(self.checkout).get("step_delay", 0.0))
        _say("got prompt")
        return await super()._post_prompt(request)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="A fake ComfyUI for tests.")
    parser.add_argument("--listen", nargs="?", const="0.0.0.0,::", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--extra-model-paths-config", nargs="+", action="append", default=[])
    parser.add_argument("--base-directory")
    parser.add_argument("--input-directory")
    parser.add_argument("--output-directory")
    parser.add_argument("--temp-directory")
    return parser


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None, *, checkout: Path | None = None) -> int:
    """Run the fake ComfyUI until it is signalled; the exit status of the process."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args, unknown = _parser().parse_known_args(raw)
    checkout = checkout or Path.cwd()
    with (checkout / STARTS_FILE).open("a", encoding="utf-8") as record:
        record.write(json.dumps({"pid": os.getpid(), "argv": raw}) + "\n")
    control = read_control(checkout)
    _say(f"fake ComfyUI (pid {os.getpid()}) in {checkout}")
    if unknown:
        _say(f"ignoring flags the fake does not know: {' '.join(unknown)}")
    if control.get("exit_at_start") is not None:
        _say(f"fake ComfyUI exits with code {control['exit_at_start']} as its control file says")
        return int(control["exit_at_start"])
    if control.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if control.get("never_listen"):
        _say("fake ComfyUI hangs before listening, as its control file says")
        signal.pause()
    asyncio.run(_serve(_fake(args, checkout)))
    return 0


def _fake(args: argparse.Namespace, checkout: Path) -> _FakeComfyUI:
    base = Path(args.base_directory) if args.base_directory else checkout
    configs = [Path(p) for group in args.extra_model_paths_config for p in group]
    for config in configs:
        _say(f"Adding extra search paths from {config}")
    fake = _FakeComfyUI(
        checkout=checkout,
        folders=model_folders(configs, base),
        root=base,
        host=args.listen,
        port=args.port,
    )
    for attribute, flag in (
        ("input_dir", args.input_directory),
        ("output_dir", args.output_directory),
        ("temp_dir", args.temp_directory),
    ):
        if flag:
            setattr(fake, attribute, Path(flag))
            Path(flag).mkdir(parents=True, exist_ok=True)
    return fake


async def _serve(fake: _FakeComfyUI) -> None:
    await fake.start()
    _say("Starting server")
    _say(f"To see the GUI go to: {fake.url}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
