"""``wan-worker doctor``: is this ComfyUI ready for every mode? What is missing, and from where?

Asks ComfyUI for its version and devices (``/system_stats``) and its node types and model lists
(``/object_info``), builds each mode's graph for each preset, and checks every node type and
model file that graph needs; checks too that the folder ``generate`` writes to is writable.
Exit status: 0 all present, 1 something required is missing (or ComfyUI cannot be reached),
2 invalid arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wan_worker import catalogue
from wan_worker.comfy import ComfyClient, RetryPolicy
from wan_worker.comfy.schema import MODEL_FOLDERS, NodeSchemas, node_pack_for
from wan_worker.errors import ComfyUIUnavailable, WanWorkerError
from wan_worker.service import ServiceSettings
from wan_worker.service.schema import MODE_NAMES, MODE_SLOTS, PLACEHOLDER_FILES
from wan_worker.workflows import PRESETS, Mode, build

EXIT_READY = 0
EXIT_MISSING = 1
EXIT_INVALID_INPUT = 2
_GIB = 1024**3


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``doctor`` sub-command; its handler is ``args.handler``."""
    parser = commands.add_parser(
        "doctor",
        help="check that ComfyUI has every node and model file each mode needs",
        description=(
            "Check ComfyUI (version, devices, free VRAM), every node type and model file each "
            "mode and preset needs, and that the output folder is writable. Exit status 0 "
            "ready, 1 something required is missing, 2 invalid arguments."
        ),
    )
    parser.add_argument("--comfyui", metavar="URL", help="ComfyUI base URL (default: COMFYUI_URL)")
    parser.add_argument(
        "--mode",
        dest="modes",
        action="append",
        choices=list(MODE_NAMES),
        default=None,
        help="check only this mode (repeatable; default: every mode)",
    )
    parser.add_argument("--preset", default=None, help="check only this preset")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="where generate writes (default: here)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_doctor)


@dataclass
class ModeReport:
    """What one mode and preset need, and what of it is missing."""

    mode: str
    preset: str
    nodes: list[str]
    missing_nodes: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.missing_nodes and all(m["present"] for m in self.models)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "preset": self.preset,
            "ready": self.ready,
            "nodes": {
                "required": self.nodes,
                "missing": [
                    {"class_type": c, "node_pack": node_pack_for(c)} for c in self.missing_nodes
                ],
            },
            "models": self.models,
        }


def run_doctor(args: argparse.Namespace) -> int:
    """The handler: check, print the table (or JSON), exit 0 when everything is present."""
    try:
        url = args.comfyui or ServiceSettings.from_env(os.environ).comfyui_url
        combos = mode_presets(args.modes or list(MODE_NAMES), args.preset)
    except WanWorkerError as err:
        print(f"doctor: {err}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    report = asyncio.run(diagnose(url, combos, args.output_dir or Path.cwd()))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return EXIT_READY if report["ok"] else EXIT_MISSING


def mode_presets(modes: list[Mode], preset: str | None) -> list[tuple[Mode, str]]:
    """(mode, preset) pairs to check: the given preset, or every preset of each mode."""
    pairs: list[tuple[Mode, str]] = [
        (m, p) for m in modes for (pm, p) in PRESETS if pm == m and preset in (None, p)
    ]
    lacking = [m for m in modes if not any(pm == m for pm, _ in pairs)]
    if lacking:
        raise WanWorkerError(f"{', '.join(lacking)} has no {preset} preset")
    return pairs


async def diagnose(url: str, combos: list[tuple[Mode, str]], output_dir: Path) -> dict[str, Any]:
    """The whole report as JSON-ready data; ``ok`` is False when anything required is missing."""
    report: dict[str, Any] = {
        "ok": False,
        "comfyui": {"url": url, "reachable": False},
        "devices": [],
        "output_dir": await asyncio.to_thread(check_folder, output_dir),
        "modes": [],
        "missing": {"nodes": [], "models": []},
    }
    try:
        async with ComfyClient(url, retry=RetryPolicy(attempts=2)) as comfy:
            info = await comfy.system_info()
            schemas = await comfy.schemas()
    except (ComfyUIUnavailable, WanWorkerError) as err:
        report["comfyui"]["error"] = str(err)
        return report
    report["comfyui"].update(
        reachable=True,
        version=info.comfyui_version,
        python_version=info.python_version,
        pytorch_version=info.pytorch_version,
        node_types=len(schemas),
    )
    report["devices"] = [
        {"name": d.name, "type": d.type, "vram_total": d.vram_total, "vram_free": d.vram_free}
        for d in info.devices
    ]
    modes = [check_mode(mode, preset, schemas) for mode, preset in combos]
    report["modes"] = [m.as_dict() for m in modes]
    report["missing"] = _missing(modes)
    report["ok"] = all(m.ready for m in modes) and report["output_dir"]["writable"]
    return report


def check_mode(mode: Mode, preset: str, schemas: NodeSchemas) -> ModeReport:
    """Build the mode's graph for ``preset`` and look up each of its nodes and model files."""
    params: dict[str, Any] = {"preset": preset}
    for slot in MODE_SLOTS[mode]:
        params[slot] = PLACEHOLDER_FILES[slot]
    if mode == "s2v":
        params["chunks"] = 1
    built = build(mode, params)
    nodes = sorted({node["class_type"] for node in built.graph.values()})
    listed = model_lists(schemas)
    report = ModeReport(mode, preset, nodes, [n for n in nodes if n not in schemas])
    for ref in built.models:
        files = listed.get(ref.folder)
        report.models.append(
            {
                "file": ref.file,
                "folder": ref.folder,
                "present": files is not None and ref.file in files,
                "download": catalogue.download_hint(ref.file),
            }
        )
    return report


def model_lists(schemas: NodeSchemas) -> dict[str, set[str]]:
    """Model folder -> the files ComfyUI's loaders offer from it (absent: no loader offers it)."""
    lists: dict[str, set[str]] = {}
    for (class_type, input_name), folder in MODEL_FOLDERS.items():
        node = schemas.get(class_type)
        spec = node.inputs.get(input_name) if node else None
        if spec is not None and spec.choices is not None:
            lists.setdefault(folder, set()).update(str(c) for c in spec.choices)
    return lists


def check_folder(folder: Path) -> dict[str, Any]:
    """Whether a file can be created in ``folder``, and the free space there."""
    out: dict[str, Any] = {"path": str(folder.resolve()), "writable": False}
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".wan-worker-doctor-"):
            pass
        out["writable"] = True
        out["free_bytes"] = shutil.disk_usage(folder).free
    except OSError as err:
        out["error"] = err.strerror or str(err)
    return out


def _missing(modes: list[ModeReport]) -> dict[str, list[dict[str, Any]]]:
    nodes: dict[str, dict[str, Any]] = {}
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for m in modes:
        label = f"{m.mode}/{m.preset}"
        for class_type in m.missing_nodes:
            entry = nodes.setdefault(
                class_type,
                {"class_type": class_type, "node_pack": node_pack_for(class_type), "needed_by": []},
            )
            entry["needed_by"].append(label)
        for model in m.models:
            if not model["present"]:
                key = (model["folder"], model["file"])
                entry = models.setdefault(
                    key, {k: model[k] for k in ("file", "folder", "download")} | {"needed_by": []}
                )
                entry["needed_by"].append(label)
    return {"nodes": list(nodes.values()), "models": list(models.values())}


def render(report: dict[str, Any]) -> str:
    """The report as a table a person reads at a glance."""
    comfy = report["comfyui"]
    lines = [f"wan-worker doctor: ComfyUI at {comfy['url']}", ""]
    rows: list[tuple[str, str, str]] = []
    if comfy["reachable"]:
        rows.append(
            (
                "comfyui",
                "ok",
                f"version {comfy['version'] or '?'}, {comfy['node_types']} node types, "
                f"Python {comfy['python_version'].split(' ')[0] or '?'}, "
                f"PyTorch {comfy['pytorch_version'].split(' ')[0] or '?'}",
            )
        )
    else:
        rows.append(("comfyui", "UNREACHABLE", comfy.get("error", "not reachable")))
    for i, d in enumerate(report["devices"]):
        rows.append(
            (
                f"device {i}",
                "ok",
                f"{d['name']} ({d['type']}): {d['vram_free'] / _GIB:.1f} GiB free "
                f"of {d['vram_total'] / _GIB:.1f} GiB VRAM",
            )
        )
    out = report["output_dir"]
    if out["writable"]:
        rows.append(
            ("output folder", "ok", f"{out['path']} ({out['free_bytes'] / 1e9:.1f} GB free)")
        )
    else:
        rows.append(("output folder", "NOT WRITABLE", f"{out['path']}: {out['error']}"))
    lines += _table(("CHECK", "STATUS", "DETAIL"), rows)
    if report["modes"]:
        lines.append("")
        mode_rows = []
        for m in report["modes"]:
            nodes, models = m["nodes"], m["models"]
            missing_models = sum(1 for x in models if not x["present"])
            mode_rows.append(
                (
                    m["mode"],
                    m["preset"],
                    "ready" if m["ready"] else "NOT READY",
                    _count(len(nodes["required"]), len(nodes["missing"]), "node types"),
                    _count(len(models), missing_models, "model files"),
                )
            )
        lines += _table(("MODE", "PRESET", "STATUS", "NODES", "MODELS"), mode_rows)
    missing = report["missing"]
    if missing["nodes"] or missing["models"]:
        lines.append("")
    for node in missing["nodes"]:
        source = (
            f"install the custom node pack {node['node_pack']}"
            if node["node_pack"]
            else "a core ComfyUI node: update ComfyUI"
        )
        lines.append(f"missing node   {node['class_type']}  ({', '.join(node['needed_by'])})")
        lines.append(f"               {source}")
    for model in missing["models"]:
        lines.append(
            f"missing model  models/{model['folder']}/{model['file']}  "
            f"({', '.join(model['needed_by'])})"
        )
        lines.append(f"               download to {model['download'] or 'its folder'}")
    lines.append("")
    if report["ok"]:
        lines.append("everything required is present")
    else:
        ready = [f"{m['mode']}/{m['preset']}" for m in report["modes"] if m["ready"]]
        lines.append(
            "something required is missing (exit status 1)"
            + (f"; ready: {', '.join(ready)}" if ready else "")
        )
    return "\n".join(lines)


def _count(total: int, missing: int, noun: str) -> str:
    return f"all {total} {noun}" if not missing else f"{missing} of {total} {noun} MISSING"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
