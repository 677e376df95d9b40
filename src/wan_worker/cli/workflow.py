"""``wan-worker workflow MODE ...`` prints a mode's ComfyUI API graph."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from wan_worker.errors import WanWorkerError
from wan_worker.workflows import MODES, build

EXIT_INVALID_INPUT = 2

# flag -> request field; only flags the user gives are passed on (`generate` reuses them).
REQUEST_FLAGS: list[tuple[str, str, type, str]] = [
    ("--preset", "preset", str, "standard or lightning (default: lightning; ti2v: standard)"),
    ("--prompt", "prompt", str, "what the video shows"),
    ("--negative-prompt", "negative_prompt", str, "default: the official WAN negative prompt"),
    ("--width", "width", int, "pixels (multiple of 16; 32 for ti2v)"),
    ("--height", "height", int, "pixels (multiple of 16; 32 for ti2v)"),
    ("--frames", "frames", int, "length in frames (4n+1)"),
    ("--fps", "fps", float, "frames per second"),
    ("--seed", "seed", int, "-1 for a random seed (default)"),
    ("--steps", "steps", int, "sampling steps"),
    ("--cfg", "cfg", float, "guidance scale"),
    ("--split", "split_step", int, "step where the low-noise model takes over (14B)"),
    ("--shift", "shift", float, "ModelSamplingSD3 shift"),
    ("--sampler", "sampler", str, "KSampler sampler_name"),
    ("--scheduler", "scheduler", str, "KSampler scheduler"),
    ("--image", "image", str, "input image name in ComfyUI's input folder"),
    ("--end-image", "end_image", str, "last-frame image name (flf2v)"),
    ("--audio", "audio", str, "audio file name in ComfyUI's input folder (s2v)"),
    ("--audio-seconds", "audio_seconds", float, "audio duration; sets the s2v chunk count"),
    ("--chunks", "chunks", int, "number of 77-frame s2v chunks"),
    ("--high-noise-model", "high_noise_model", str, "high-noise diffusion model file (14B)"),
    ("--low-noise-model", "low_noise_model", str, "low-noise diffusion model file (14B)"),
    ("--model", "model", str, "diffusion model file (ti2v, s2v)"),
    ("--vae", "vae", str, "VAE file"),
    ("--text-encoder", "text_encoder", str, "text encoder file"),
    ("--audio-encoder", "audio_encoder", str, "audio encoder file (s2v)"),
    ("--weight-dtype", "weight_dtype", str, "UNETLoader weight_dtype"),
    ("--filename-prefix", "filename_prefix", str, "SaveVideo filename prefix"),
]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wf = commands.add_parser(
        "workflow",
        help="print the ComfyUI API graph of a mode as JSON",
        description="Print the API graph of a WAN 2.2 mode on stdout, ready for ComfyUI.",
    )
    wf.add_argument("mode", choices=list(MODES))
    add_request_flags(wf)
    wf.set_defaults(handler=run_workflow)


def add_request_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, skip: frozenset[str] = frozenset()
) -> None:
    """One flag per workflow request field (except those in ``skip``), and ``--lora``."""
    for flag, field, kind, text in REQUEST_FLAGS:
        if field not in skip:
            parser.add_argument(flag, dest=field, type=kind, help=text, default=None)
    parser.add_argument(
        "--lora",
        dest="loras",
        action="append",
        type=parse_lora,
        default=None,
        metavar="FILE:STRENGTH[:high|low|both]",
        help="a user LoRA, after the preset's (repeatable)",
    )


def parse_lora(text: str) -> dict[str, Any]:
    """``FILE:STRENGTH[:high|low|both]`` into a LoRA spec."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[2] not in ("high", "low", "both"):
        parts = [":".join(parts[:2]), parts[2]]
    if len(parts) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FILE:STRENGTH[:high|low|both]")
    try:
        strength = float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: strength {parts[1]!r} is not a number"
        ) from None
    spec: dict[str, Any] = {"name": parts[0], "strength": strength}
    if len(parts) == 3:
        spec["stage"] = parts[2]
    return spec


def run_workflow(args: argparse.Namespace) -> int:
    params = {
        field: getattr(args, field)
        for _, field, _, _ in REQUEST_FLAGS
        if getattr(args, field) is not None
    }
    if args.loras:
        params["loras"] = args.loras
    try:
        built = build(args.mode, params)
    except WanWorkerError as exc:
        return _fail(exc)
    sys.stdout.write(built.to_json())
    print(f"seed: {built.seed}", file=sys.stderr)
    for adj in built.adjustments:
        print(f"adjusted {adj.field}: {adj.requested} -> {adj.used} ({adj.rule})", file=sys.stderr)
    return 0


def _fail(exc: WanWorkerError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem.message}", file=sys.stderr)
    return EXIT_INVALID_INPUT
