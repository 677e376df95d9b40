"""``wan-worker run-graph GRAPH.json --comfyui URL -o OUTDIR``: run any API graph on ComfyUI.

Uploads the files given with ``--image``/``--audio NAME=PATH`` and points the graph's loaders
whose value is NAME at them, prints progress lines to stderr and the saved outputs' paths to
stdout. Exit status: 0 done, 2 bad input, 3 ComfyUI refused or failed, 4 timeout or cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from wan_worker.comfy.client import ComfyClient
from wan_worker.comfy.progress import Progress
from wan_worker.errors import Cancelled, InvalidInput, Timeout, WanWorkerError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_SERVER_FAILED = 3
EXIT_TIMEOUT = 4


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run-graph`` sub-command; its handler is ``args.handler``."""
    parser = commands.add_parser(
        "run-graph",
        help="run a ComfyUI API graph and save its outputs",
        description=(
            "Run any ComfyUI API-format graph: upload input files, follow progress, save "
            "every output. Exit status 0 done, 2 bad input, 3 ComfyUI refused or failed, "
            "4 timeout or cancelled."
        ),
    )
    parser.add_argument("graph", type=Path, metavar="GRAPH.json", help="API-format graph")
    parser.add_argument("--comfyui", required=True, metavar="URL", help="ComfyUI base URL")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="upload PATH and use it where a LoadImage node names NAME (repeatable)",
    )
    parser.add_argument(
        "--audio",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="upload PATH and use it where a LoadAudio node names NAME (repeatable)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="seconds for the whole run"
    )
    parser.set_defaults(handler=run_graph_command)


def run_graph_command(args: argparse.Namespace) -> int:
    """The handler: run the graph and map the outcome to an exit status."""
    try:
        return asyncio.run(run_graph(args))
    except KeyboardInterrupt:
        print("run-graph: interrupted", file=sys.stderr)
        return EXIT_TIMEOUT


async def run_graph(args: argparse.Namespace) -> int:
    """Run the graph described by the parsed arguments; returns the exit status."""
    try:
        graph = _read_graph(args.graph)
        uploads = _pairs([*args.image, *args.audio])
    except InvalidInput as err:
        print(f"run-graph: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        async with ComfyClient(args.comfyui) as comfy:
            result = await comfy.run_prompt(
                graph,
                output_dir=args.output,
                uploads=uploads,
                on_progress=_print_progress,
                timeout_s=args.timeout,
            )
    except (Timeout, Cancelled) as err:
        _print_error(err)
        return EXIT_TIMEOUT
    except InvalidInput as err:
        _print_error(err)
        return EXIT_BAD_INPUT
    except WanWorkerError as err:
        _print_error(err)
        return EXIT_SERVER_FAILED
    for output in result.outputs:
        print(output.path)
    return EXIT_OK


def _read_graph(path: Path) -> dict[str, Any]:
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise InvalidInput(f"{path} is not JSON: {err}") from None
    if not isinstance(graph, dict) or not all(isinstance(n, dict) for n in graph.values()):
        raise InvalidInput(
            f"{path} is not an API-format graph ({{node_id: {{class_type, inputs}}}})"
        )
    return graph


def _pairs(values: list[str]) -> dict[str, Path]:
    pairs: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise InvalidInput(f"{value!r} must be NAME=PATH")
        if not Path(path).is_file():
            raise InvalidInput(f"input file {path} does not exist")
        if name in pairs:
            raise InvalidInput(f"{name!r} is given twice")
        pairs[name] = Path(path)
    return pairs


def _print_progress(progress: Progress) -> None:
    print(f"[{progress.elapsed_s:6.1f}s] {progress.message}", file=sys.stderr)


def _print_error(err: WanWorkerError) -> None:
    print(f"run-graph: {err}", file=sys.stderr)
    for problem in err.problems:
        print(f"  - {problem.message}", file=sys.stderr)
