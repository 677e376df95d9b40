"""Progress from websocket events: stages, sampler steps, one monotonic bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wan_worker.comfy.progress import Progress, ProgressTracker, sampler_steps, stage_of

TRACES = Path(__file__).parents[1] / "testing" / "traces"


def _graph(name: str) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((TRACES / name).read_text())
    return graph


def _feed(tracker: ProgressTracker, events: list[tuple[str, dict[str, Any]]]) -> list[Progress]:
    seen: list[Progress] = []
    for event_type, data in events:
        snapshot = tracker.update(event_type, data)
        if snapshot is not None:
            seen.append(snapshot)
    return seen


def _two_stage_run(steps_each: int) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("execution_start", {}), ("execution_cached", {})]
    for node in ("4", "3", "7", "6", "8", "1", "9"):
        events.append(("executing", {"node": node}))
    for sampler, model in (("11", "2"), ("12", None)):
        if model:
            events.append(("executing", {"node": sampler}))
        else:
            events += [("executing", {"node": "10"}), ("executing", {"node": sampler})]
        for step in range(1, steps_each + 1):
            events.append(("progress", {"node": sampler, "value": step, "max": steps_each}))
        if model:
            events.append(("executing", {"node": model}))
    events += [("executing", {"node": n}) for n in ("13", "14", "15")]
    events.append(("execution_success", {}))
    return events


@pytest.mark.parametrize(
    ("class_type", "stage"),
    [
        ("UNETLoader", "loading"),
        ("LoraLoaderModelOnly", "loading"),
        ("LoadImage", "loading"),
        ("CLIPTextEncode", "encoding_text"),
        ("KSamplerAdvanced", "sampling"),
        ("KSampler", "sampling"),
        ("VAEDecode", "decoding"),
        ("VAEDecodeTiled", "decoding"),
        ("SaveVideo", "saving"),
        ("VHS_VideoCombine", "saving"),
        ("CreateVideo", "saving"),
        ("WanImageToVideo", "preparing"),
        ("ModelSamplingSD3", "preparing"),
        ("RepeatImageBatch", "other"),
    ],
)
def test_a_node_class_belongs_to_a_stage(class_type: str, stage: str) -> None:
    assert stage_of(class_type) == stage


def test_ksampleradvanced_runs_from_start_to_the_smaller_of_end_and_steps() -> None:
    graph = _graph("graph_wan_i2v_handwritten.json")
    assert sampler_steps(graph["11"], graph) == 10
    assert sampler_steps(graph["12"], graph) == 10


def test_ksampler_runs_its_steps_and_a_linked_primitive_is_followed() -> None:
    graph = {
        "p": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
        "s": {"class_type": "KSampler", "inputs": {"steps": ["p", 0]}},
    }
    assert sampler_steps(graph["s"], graph) == 4


def test_two_sampler_stages_share_one_bar_that_never_goes_back() -> None:
    graph = _graph("graph_wan_i2v_handwritten.json")
    seen = _feed(ProgressTracker("p", graph), _two_stage_run(steps_each=10))
    percents = [p.percent for p in seen]
    assert percents == sorted(percents)
    assert seen[-1].stage == "done"
    assert seen[-1].percent == 100.0
    assert all(p.percent < 100 for p in seen[:-1])


def test_sampling_reads_stage_i_of_n_with_its_step() -> None:
    graph = _graph("graph_wan_i2v_handwritten.json")
    seen = _feed(ProgressTracker("p", graph), _two_stage_run(steps_each=10))
    second = [p for p in seen if p.stage == "sampling" and p.sampler_index == 2]
    assert second[-1].step == 10
    assert second[-1].steps == 10
    assert second[-1].sampler_count == 2
    assert "sampling stage 2/2, step 10/10" in second[-1].message


def test_the_first_sampler_stage_ends_near_half_of_the_sampling_share() -> None:
    graph = _graph("graph_wan_i2v_handwritten.json")
    seen = _feed(ProgressTracker("p", graph), _two_stage_run(steps_each=10))
    end_of_first = next(p for p in seen if p.sampler_index == 1 and p.step == 10)
    assert 45 <= end_of_first.percent <= 55


def test_cached_nodes_count_as_done() -> None:
    graph = _graph("graph_no_weights.json")
    tracker = ProgressTracker("p", graph)
    tracker.update("execution_cached", {"nodes": ["1", "2", "3", "4"]})
    snapshot = tracker.update("executing", {"node": "5"})
    assert snapshot is not None
    assert snapshot.percent == 50.0


def test_a_graph_without_samplers_moves_by_nodes() -> None:
    graph = _graph("graph_no_weights.json")
    seen = _feed(
        ProgressTracker("p", graph),
        [("execution_start", {})]
        + [("executing", {"node": n}) for n in ("4", "7", "1", "2", "8", "3", "5", "6")]
        + [("execution_success", {})],
    )
    stages = [p.stage for p in seen]
    assert stages[0] == "preparing"
    assert "saving" in stages
    assert [p.percent for p in seen] == sorted(p.percent for p in seen)


def test_events_that_change_nothing_visible_give_no_snapshot() -> None:
    tracker = ProgressTracker("p", _graph("graph_no_weights.json"))
    assert tracker.update("status", {}) is None
    assert tracker.update("executing", {"node": None}) is None


def test_s2v_chunks_advance_stage_by_stage() -> None:
    graph: dict[str, Any] = {
        str(i): {"class_type": "KSampler", "inputs": {"steps": 4}} for i in range(1, 4)
    }
    graph["save"] = {"class_type": "SaveVideo", "inputs": {}}
    tracker = ProgressTracker("p", graph)
    seen: list[Progress] = []
    for chunk in ("1", "2", "3"):
        seen += _feed(tracker, [("executing", {"node": chunk})])
        seen += _feed(
            tracker, [("progress", {"node": chunk, "value": s, "max": 4}) for s in range(1, 5)]
        )
    assert [p.sampler_index for p in seen if p.step == 4] == [1, 2, 3]
    assert [p.percent for p in seen if p.step == 4] == [30.0, 60.0, 90.0]
