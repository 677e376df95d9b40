"""``wan-worker run-graph``: exit statuses, uploads, progress on stderr, output paths on stdout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from wan_worker.comfy.run_graph_cli import register, run_graph
from wan_worker.testing.comfyui_double import ComfyUIDouble
from wan_worker.workflows.graph import ApiGraph

from .conftest import both_graph, video_graph


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wan-worker")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["run-graph", *argv])


def _graph_file(tmp_path: Path, graph: ApiGraph) -> Path:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    return path


async def test_a_graph_runs_and_the_output_paths_are_printed(
    double: ComfyUIDouble,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _args(
        str(_graph_file(tmp_path, both_graph())),
        "--comfyui",
        double.url,
        "--image",
        f"ref.png={inputs['ref.png']}",
        "--audio",
        f"tone.wav={inputs['tone.wav']}",
        "-o",
        str(tmp_path / "out"),
        "--timeout",
        "30",
    )
    assert await run_graph(args) == 0
    captured = capsys.readouterr()
    paths = [Path(line) for line in captured.out.splitlines()]
    assert sorted(p.suffix for p in paths) == [".flac", ".mp4"]
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in paths)
    assert "(100%)" in captured.err
    assert "queued" in captured.err


async def test_the_handler_is_set_for_the_lead_cli() -> None:
    args = _args("g.json", "--comfyui", "http://127.0.0.1:1", "-o", "out")
    assert args.handler.__name__ == "run_graph_command"


@pytest.mark.parametrize(
    "problem",
    ["missing graph file", "not json", "bad pair", "missing input file", "unused name"],
)
async def test_bad_input_exits_2(
    double: ComfyUIDouble,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    graph = _graph_file(tmp_path, video_graph())
    image = f"ref.png={inputs['ref.png']}"
    if problem == "missing graph file":
        graph = tmp_path / "absent.json"
    elif problem == "not json":
        graph.write_text("{not json")
    elif problem == "bad pair":
        image = "ref.png"
    elif problem == "missing input file":
        image = f"ref.png={tmp_path / 'absent.png'}"
    elif problem == "unused name":
        image = f"other.png={inputs['ref.png']}"
    args = _args(str(graph), "--comfyui", double.url, "--image", image, "-o", str(tmp_path / "o"))
    assert await run_graph(args) == 2
    assert capsys.readouterr().err.startswith("run-graph: ")


async def test_a_graph_comfyui_refuses_exits_3_and_lists_the_problems(
    double: ComfyUIDouble,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    graph = video_graph()
    graph["repeat"]["inputs"]["amount"] = 0
    args = _args(
        str(_graph_file(tmp_path, graph)),
        "--comfyui",
        double.url,
        "--image",
        f"ref.png={inputs['ref.png']}",
        "-o",
        str(tmp_path / "out"),
    )
    assert await run_graph(args) == 3
    err = capsys.readouterr().err
    assert "validation_failed" in err
    assert "  - node repeat (RepeatImageBatch): input 'amount' is 0" in err


async def test_a_run_past_its_timeout_exits_4(
    double: ComfyUIDouble, inputs: dict[str, Path], tmp_path: Path
) -> None:
    double.faults.step_delay = 20.0
    args = _args(
        str(_graph_file(tmp_path, video_graph())),
        "--comfyui",
        double.url,
        "--image",
        f"ref.png={inputs['ref.png']}",
        "-o",
        str(tmp_path / "out"),
        "--timeout",
        "0.5",
    )
    assert await run_graph(args) == 4
