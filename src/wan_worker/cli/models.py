"""``wan-worker models list|download|verify``: the model files each mode needs, on disk or not.

``models MODE [--preset P] [--json]`` still prints the plain listing of a mode's files.
Exit status: 0 done, 1 a file is missing or the wrong size (verify) or the download was declined,
2 invalid input, 3 the download failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from wan_worker import catalogue
from wan_worker.catalogue import ModelFile
from wan_worker.errors import InvalidInput, Problem, WanWorkerError
from wan_worker.models import (
    DownloadFailed,
    DownloadPlan,
    DownloadProgress,
    FileCheck,
    ModelDownloader,
    ModelSettings,
    effective_preset,
    human_bytes,
    required_models,
    verify_models,
)
from wan_worker.workflows import MODES, PRESETS

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_INVALID_INPUT = 2
EXIT_DOWNLOAD_FAILED = 3

_STATE_LABELS = {"present": "present", "missing": "missing", "wrong_size": "WRONG SIZE"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``models`` and its sub-commands; each handler is ``args.handler``."""
    models = commands.add_parser(
        "models",
        help="list, download and verify the model files each mode needs",
        description=(
            "The model files each WAN 2.2 mode and preset loads: which are on disk (list), "
            "fetching them from the Hugging Face hub (download), checking them (verify). "
            "Exit status 0 done, 1 missing or wrong-size files, 2 bad input, 3 download failed."
        ),
    )
    actions = models.add_subparsers(
        dest="models_action", metavar="{list,download,verify}", required=True
    )

    listing = actions.add_parser("list", help="show which files of each mode are present")
    _mode_arguments(listing, mode_required=False)
    _dir_argument(listing)
    listing.set_defaults(handler=run_list)

    download = actions.add_parser(
        "download",
        help="download a mode's files from the hub into ComfyUI's models folders",
        description=(
            "Download the files a mode and preset need into DEST/<folder>/. Asks the hub for "
            "each file's size, skips files already in place, refuses up front when the disk "
            "is too small, resumes interrupted downloads, checks size and sha256. HF_TOKEN "
            "authenticates; HF_ENDPOINT points at another hub."
        ),
    )
    _mode_arguments(download, mode_required=True)
    download.add_argument(
        "--dest",
        type=Path,
        default=None,
        metavar="DIR",
        help="models root to download into (default: MODELS_DIR, /runpod-volume/models, "
        "$COMFYUI_PATH/models or ./models)",
    )
    download.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="NAME",
        help="another catalogue file to fetch too, e.g. wan2.2_s2v_14B_bf16.safetensors "
        "(repeatable)",
    )
    download.add_argument("--yes", action="store_true", help="do not ask before downloading")
    download.set_defaults(handler=run_download)

    verify = actions.add_parser("verify", help="check that a mode's files are present")
    _mode_arguments(verify, mode_required=False)
    _dir_argument(verify)
    verify.set_defaults(handler=run_verify)

    # ``models MODE``: the plain listing from before the sub-commands (not shown in the help).
    for mode in MODES:
        legacy = actions.add_parser(mode)
        legacy.add_argument("--preset", default=None, help="standard or lightning")
        legacy.add_argument("--json", action="store_true", help="print JSON instead of a table")
        legacy.set_defaults(handler=run_legacy_listing, mode=mode)


def _mode_arguments(parser: argparse.ArgumentParser, *, mode_required: bool) -> None:
    if mode_required:
        parser.add_argument("mode", choices=list(MODES))
    else:
        parser.add_argument(
            "mode", nargs="?", choices=list(MODES), help="one mode (default: every mode)"
        )
    parser.add_argument("--preset", default=None, help="standard or lightning")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        dest="dirs",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="models root to look in (repeatable, searched in order; default: MODELS_DIR, "
        "/runpod-volume/models, $COMFYUI_PATH/models or ./models)",
    )


def run_legacy_listing(args: argparse.Namespace) -> int:
    """``models MODE``: the files a mode's graph loads, their folders and sources."""
    try:
        preset = effective_preset(args.mode, args.preset)
        models = required_models(args.mode, preset)
    except WanWorkerError as err:
        return _fail(err, EXIT_INVALID_INPUT)
    rows = [
        {"file": m.file, "folder": m.folder, "approx_bytes": m.approx_bytes, "url": m.url}
        for m in models
    ]
    if args.json:
        print(json.dumps({"mode": args.mode, "preset": preset, "models": rows}, indent=2))
        return EXIT_OK
    print(f"{args.mode} ({preset}) loads {len(models)} model files:")
    width = max(len(f"models/{m.folder}/{m.file}") for m in models)
    for m in models:
        path = f"models/{m.folder}/{m.file}"
        print(f"  {path:<{width}}  {_size(m.approx_bytes):>12}  {m.url}")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    """``models list``: per mode and preset, which files are present and which are missing."""
    return _report(args, verifying=False)


def run_verify(args: argparse.Namespace) -> int:
    """``models verify``: like list, but exit 1 when a file is missing or the wrong size."""
    return _report(args, verifying=True)


def _report(args: argparse.Namespace, *, verifying: bool) -> int:
    try:
        settings = ModelSettings.from_env(os.environ)
        pairs = _pairs(args.mode, args.preset)
        groups = [(mode, preset, required_models(mode, preset)) for mode, preset in pairs]
    except WanWorkerError as err:
        return _fail(err, EXIT_INVALID_INPUT)
    roots: list[Path] = args.dirs or [settings.models_dir]
    results = [(mode, preset, verify_models(models, roots)) for mode, preset, models in groups]
    bad = [c for _, _, checks in results for c in checks if c.state != "present"]
    if args.json:
        print(
            json.dumps(
                {
                    "roots": [str(r) for r in roots],
                    "ok": not bad,
                    "modes": [
                        {
                            "mode": mode,
                            "preset": preset,
                            "ok": all(c.state == "present" for c in checks),
                            "missing_bytes": _missing_bytes(checks),
                            "files": [c.as_dict() for c in checks],
                        }
                        for mode, preset, checks in results
                    ],
                },
                indent=2,
            )
        )
    else:
        print(f"models roots: {', '.join(str(r) for r in roots)}")
        for mode, preset, checks in results:
            _print_group(mode, preset, checks, verifying=verifying)
        if verifying:
            unique = {(c.model.folder, c.model.file): c for c in bad}
            print(
                "all files present"
                if not unique
                else f"{_files(len(unique))} missing or the wrong size; fetch them with "
                "`wan-worker models download MODE`"
            )
    return EXIT_INCOMPLETE if verifying and bad else EXIT_OK


def _print_group(mode: str, preset: str, checks: list[FileCheck], *, verifying: bool) -> None:
    present = sum(c.state == "present" for c in checks)
    summary = f"{mode} ({preset}): {present} of {len(checks)} files present"
    if present < len(checks):
        summary += f", {human_bytes(_missing_bytes(checks))} to download"
        unknown = sum(c.state != "present" and c.model.approx_bytes is None for c in checks)
        if unknown:
            summary += f" + {_files(unknown)} of unknown size"
    print(summary)
    width = max(len(f"{c.model.folder}/{c.model.file}") for c in checks)
    for check in checks:
        if verifying and check.state == "present":
            continue
        shown = f"{check.model.folder}/{check.model.file}"
        size = _size(check.actual_bytes if check.state != "missing" else check.model.approx_bytes)
        line = f"  {_STATE_LABELS[check.state]:<10}  {shown:<{width}}  {size:>12}"
        if check.state == "wrong_size":
            line += f" (expected about {_size(check.model.approx_bytes)}) at {check.path}"
        elif check.state == "missing":
            line += f"  {check.model.url}"
        print(line.rstrip())


def run_download(args: argparse.Namespace) -> int:
    """``models download MODE``: announce, check the space, confirm, fetch with progress."""
    out = sys.stderr if args.json else sys.stdout
    try:
        settings = ModelSettings.from_env(os.environ)
        preset = effective_preset(args.mode, args.preset)
        models = required_models(args.mode, preset)
        models += [m for m in _catalogue_files(args.files) if m not in models]
    except WanWorkerError as err:
        return _fail(err, EXIT_INVALID_INPUT)
    dest: Path = args.dest or settings.models_dir
    progress = ProgressPrinter(sys.stderr)
    downloader = ModelDownloader(settings, on_progress=progress)
    try:
        plan = asyncio.run(downloader.plan(models, dest))
        _announce(plan, args.mode, preset, len(models), out)
        downloader.check_space(plan)
        if plan.fetch and not args.yes and sys.stdin.isatty() and not _confirm(plan):
            print("nothing downloaded", file=out)
            return EXIT_INCOMPLETE
        asyncio.run(downloader.fetch(plan))
    except DownloadFailed as err:
        progress.close()
        return _fail(err, EXIT_DOWNLOAD_FAILED)
    except KeyboardInterrupt:
        progress.close()
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_DOWNLOAD_FAILED
    if plan.fetch:
        print(f"downloaded {_files(len(plan.fetch))} into {dest}", file=out)
    if args.json:
        print(json.dumps(_plan_json(plan, args.mode, preset), indent=2))
    return EXIT_OK


def _announce(plan: DownloadPlan, mode: str, preset: str, count: int, out: TextIO) -> None:
    print(f"{mode} ({preset}) needs {count} model files in {plan.dest}", file=out)
    for model in plan.present:
        print(f"  present     {model.folder}/{model.file}", file=out)
    for planned in plan.fetch:
        model = planned.remote.model
        note = f" (resuming after {_size(planned.staged_bytes)})" if planned.staged_bytes else ""
        size = _size(planned.expected_bytes)
        print(f"  to download {model.folder}/{model.file}  {size}{note}", file=out)
    if not plan.fetch:
        print("all files present; nothing to download", file=out)
        return
    print(
        f"download: {_files(len(plan.fetch))}, {human_bytes(plan.download_bytes)}; "
        f"free in {plan.dest}: {human_bytes(plan.free_bytes)}",
        file=out,
    )
    if plan.unknown_sizes:
        names = ", ".join(m.file for m in plan.unknown_sizes)
        print(f"  size unknown (not counted): {names}", file=out)


def _confirm(plan: DownloadPlan) -> bool:
    answer = input(f"Download {human_bytes(plan.download_bytes)} into {plan.dest}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _plan_json(plan: DownloadPlan, mode: str, preset: str) -> dict[str, Any]:
    return {
        "mode": mode,
        "preset": preset,
        "dest": str(plan.dest),
        "present": [f"{m.folder}/{m.file}" for m in plan.present],
        "downloaded": [f"{p.remote.model.folder}/{p.remote.model.file}" for p in plan.fetch],
        "downloaded_bytes": plan.download_bytes,
    }


class ProgressPrinter:
    """Per-file progress on a stream: one rewritten line on a terminal, plain lines every 10 %
    otherwise (logs, CI, ``docker logs``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: tuple[str, int] | None = None
        self._open_line = False

    def __call__(self, event: DownloadProgress) -> None:
        if event.waiting:
            self.close()
            self._stream.write(
                f"[{event.index}/{event.count}] {event.file}: another download of this file "
                "is running; waiting for it\n"
            )
            self._stream.flush()
            return
        percent = event.percent
        step = int(percent // 10) if percent is not None else event.done_bytes // 10**9
        key = (event.file, step)
        total = f" of {human_bytes(event.total_bytes)}" if event.total_bytes else ""
        shown = f"{percent:5.1f}%" if percent is not None else "     "
        text = (
            f"[{event.index}/{event.count}] {event.file} {shown} "
            f"({human_bytes(event.done_bytes)}{total})"
        )
        finished = event.total_bytes is not None and event.done_bytes >= event.total_bytes
        if self._tty:
            self._stream.write(f"\r\033[K{text}")
            self._open_line = not finished
            if finished:
                self._stream.write("\n")
            self._stream.flush()
        elif key != self._last:
            self._stream.write(text + "\n")
            self._stream.flush()
        self._last = key

    def close(self) -> None:
        """End a half-written terminal line (before an error message)."""
        if self._open_line:
            self._stream.write("\n")
            self._open_line = False


def _pairs(mode: str | None, preset: str | None) -> list[tuple[str, str]]:
    """(mode, preset) pairs to report: one mode or all; one preset or each the mode has."""
    modes: Sequence[str] = [mode] if mode else list(MODES)
    if preset is None:
        return [(m, p) for m in modes for mm, p in PRESETS if mm == m]
    if mode is None and any((m, preset) in PRESETS for m in modes):
        return [(m, preset) for m in modes if (m, preset) in PRESETS]
    return [(m, effective_preset(m, preset)) for m in modes]


def _catalogue_files(names: Sequence[str]) -> list[ModelFile]:
    """Catalogue entries by file name; an unknown name is invalid input listing the known ones."""
    found: list[ModelFile] = []
    for name in names:
        entry = catalogue.find(name)
        if entry is None:
            known = [m.file for m in catalogue.all_models()]
            raise InvalidInput(
                f"{name} is not a catalogue file; --file takes one of: {', '.join(known)}",
                problems=[Problem(message="unknown model file", field="file", value=name)],
            )
        found.append(entry)
    return found


def _missing_bytes(checks: list[FileCheck]) -> int:
    return sum(c.model.approx_bytes or 0 for c in checks if c.state != "present")


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _size(count: int | None) -> str:
    return human_bytes(count) if count else "size unknown"


def _fail(err: WanWorkerError, status: int) -> int:
    print(f"error: {err}", file=sys.stderr)
    for problem in err.problems:
        print(f"  - {problem.message}", file=sys.stderr)
    return status
