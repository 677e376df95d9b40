"""The ``wan-worker`` command line: one sub-command per module, each a thin front."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from wan_worker import __version__
from wan_worker.cli import doctor, generate, models, serve, workflow
from wan_worker.comfy import run_graph_cli

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wan-worker",
        description="WAN 2.2 video generation on ComfyUI.",
    )
    parser.add_argument("--version", action="version", version=f"wan-worker {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    workflow.register(commands)
    models.register(commands)
    run_graph_cli.register(commands)
    generate.register(commands)
    doctor.register(commands)
    serve.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
