"""Upload names and pointing a graph's loaders at uploaded files."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pytest

from wan_worker.comfy.inputs import check_job_id, job_subfolder, point_inputs, upload_name
from wan_worker.errors import InvalidInput


def test_uploads_of_a_job_go_to_its_own_subfolder() -> None:
    assert job_subfolder("job-1") == "wan-worker/job-1"


@pytest.mark.parametrize("job_id", ["", "../x", "a/b", "a b", ".hidden", "x" * 129])
def test_a_job_id_that_cannot_name_a_folder_is_refused(job_id: str) -> None:
    with pytest.raises(InvalidInput):
        check_job_id(job_id)


def test_an_upload_keeps_the_graph_names_stem_and_the_files_suffix() -> None:
    taken: set[str] = set()
    assert upload_name("ref.png", PurePath("/tmp/cat photo.JPG"), taken) == "ref.jpg"
    assert upload_name("ref.png", PurePath("/tmp/other.jpg"), taken) == "ref-2.jpg"
    assert upload_name("../../evil name", PurePath("x.wav"), taken) == "evil_name.wav"


def test_loaders_whose_value_is_a_given_name_are_pointed_at_the_upload() -> None:
    graph: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": "tone.wav"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "ref.png"}},
    }
    pointed = point_inputs(
        graph, {"ref.png": "wan-worker/j/ref.png", "tone.wav": "wan-worker/j/tone.wav"}
    )
    assert pointed["1"]["inputs"]["image"] == "wan-worker/j/ref.png"
    assert pointed["2"]["inputs"]["audio"] == "wan-worker/j/tone.wav"
    assert pointed["3"]["inputs"]["text"] == "ref.png"
    assert graph["1"]["inputs"]["image"] == "ref.png"


def test_a_name_no_loader_uses_is_refused() -> None:
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}}}
    with pytest.raises(InvalidInput, match=r"'typo\.png'"):
        point_inputs(graph, {"typo.png": "wan-worker/j/typo.png"})
