"""Output files as /history lists them, for every kind of saving node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wan_worker.comfy.outputs import OutputRef, find_outputs, local_name

TRACES = Path(__file__).parents[1] / "testing" / "traces"


def _history_outputs(trace: str) -> Any:
    history = json.loads((TRACES / trace).read_text())["history"]
    return next(iter(history.values()))["outputs"]


def test_savevideo_saveaudio_and_saveimage_outputs_are_found_with_their_kinds() -> None:
    refs = find_outputs(_history_outputs("run_success_no_weights.json"))
    found = {(r.node_id, r.kind, r.subfolder, r.filename) for r in refs}
    assert found == {
        ("6", "video", "video", "harness_00001_.mp4"),
        ("7", "audio", "audio", "harness_00001.flac"),
        ("8", "image", "", "harness_frame_00001_.png"),
    }


def test_vhs_videocombine_gifs_are_videos() -> None:
    refs = find_outputs(_history_outputs("run_success_vhs_videocombine.json"))
    assert [(r.kind, r.subfolder, r.filename) for r in refs] == [
        ("video", "vhs", "harness_00001-audio.mp4")
    ]


def test_previews_of_type_temp_are_skipped_unless_asked_for() -> None:
    outputs = {"9": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]}}
    assert find_outputs(outputs) == []
    assert [r.type for r in find_outputs(outputs, include_temp=True)] == ["temp"]


def test_an_animated_flag_makes_an_image_entry_a_video() -> None:
    outputs = {"3": {"images": [{"filename": "a.webp", "type": "output"}], "animated": [True]}}
    assert find_outputs(outputs)[0].kind == "video"


def test_entries_without_a_filename_and_malformed_outputs_are_ignored() -> None:
    assert find_outputs(None) == []
    assert find_outputs({"1": {"text": ["hello"], "images": [{"subfolder": "x"}]}}) == []


def test_view_parameters_honour_subfolder_and_type() -> None:
    ref = OutputRef("6", "video", "x.mp4", "video", "output")
    assert ref.view_params() == {"filename": "x.mp4", "subfolder": "video", "type": "output"}
    assert ref.server_path() == "video/x.mp4"


def test_local_names_stay_unique_when_two_nodes_write_the_same_name() -> None:
    taken: set[str] = set()
    first = local_name(OutputRef("1", "image", "a.png", "", "output"), taken)
    taken.add(first)
    second = local_name(OutputRef("2", "image", "a.png", "sub", "output"), taken)
    assert (first, second) == ("a.png", "a-node2.png")
