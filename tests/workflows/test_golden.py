"""Golden tests: for the template's parameters, our builders produce the official template's graph.

Each case converts an official template (installed from PyPI) to an API graph, builds ours for the
same request, and compares the two up to node ids. We pass the template's own prompt, input file
names and output prefix, so only seeds are left out. docs/golden-tests.md explains each case.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from wan_worker.workflows import build
from wan_worker.workflows.graph import ApiGraph

from .templates import Ignored, Package, assert_same_graph, graph_difference, template_graph

SEEDS_ONLY = (Ignored("KSamplerAdvanced", "noise_seed"), Ignored("KSampler", "seed"))
"""Seeds are per request (the templates randomize them); every other value is compared."""

SIZE_14B: dict[str, Any] = {"width": 640, "height": 640, "frames": 81, "fps": 16}
SIZE_5B: dict[str, Any] = {"width": 1280, "height": 704, "frames": 121, "fps": 24}
SIZE_S2V: dict[str, Any] = {"width": 640, "height": 640, "fps": 16}


def swap_flf2v_images(graph: ApiGraph) -> ApiGraph:
    """The FLF2V LightX2V group wires the end-image file to start_image; put start on start."""
    fixed = copy.deepcopy(graph)
    (node,) = (n for n in fixed.values() if n["class_type"] == "WanFirstLastFrameToVideo")
    inputs = node["inputs"]
    inputs["start_image"], inputs["end_image"] = inputs["end_image"], inputs["start_image"]
    return fixed


def s2v_batch_index_per_template_rule(graph: ApiGraph) -> ApiGraph:
    """The 20-step S2V group ships 3 Extend chunks but batch_index 3; its own rule says 1 + 3."""
    fixed = copy.deepcopy(graph)
    (node,) = (n for n in fixed.values() if n["class_type"] == "ImageFromBatch")
    assert node["inputs"]["batch_index"] == 3
    node["inputs"]["batch_index"] = 4
    return fixed


def as_shipped(graph: ApiGraph) -> ApiGraph:
    return graph


@dataclass(frozen=True)
class Golden:
    """One preset of one mode and the template variant it must reproduce."""

    mode: str
    preset: str
    template: str
    package: Package
    options: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    """The template's sampling values, for the request that states them explicitly."""
    extra: dict[str, Any] = field(default_factory=dict)
    fix: Callable[[ApiGraph], ApiGraph] = as_shipped

    @property
    def id(self) -> str:
        image = "-image" if self.options.get("enable") else ""
        return f"{self.mode}{image}-{self.preset}"

    def template_graph(self) -> ApiGraph:
        return self.fix(template_graph(self.template, self.package, **self.options))


EULER: dict[str, Any] = {"sampler": "euler", "scheduler": "simple"}
UNI_PC: dict[str, Any] = {"sampler": "uni_pc", "scheduler": "simple"}
TWO_STAGE_20: dict[str, Any] = {"steps": 20, "cfg": 3.5, "split_step": 10, "shift": 5, **EULER}
TWO_STAGE_4: dict[str, Any] = {"steps": 4, "cfg": 1, "split_step": 2, "shift": 5, **EULER}

CASES = [
    Golden(
        "i2v",
        "standard",
        "video_wan2_2_14B_i2v",
        "current",
        sampling={**TWO_STAGE_20, **SIZE_14B},
    ),
    Golden(
        "i2v", "lightning", "video_wan2_2_14B_i2v", "classic", sampling={**TWO_STAGE_4, **SIZE_14B}
    ),
    Golden(
        "t2v",
        "standard",
        "video_wan2_2_14B_t2v",
        "current",
        sampling={**TWO_STAGE_20, **SIZE_14B},
    ),
    Golden(
        "t2v", "lightning", "video_wan2_2_14B_t2v", "classic", sampling={**TWO_STAGE_4, **SIZE_14B}
    ),
    Golden(
        "flf2v",
        "standard",
        "video_wan2_2_14B_flf2v",
        "classic",
        sampling={**TWO_STAGE_20, "cfg": 4, "shift": 8, **SIZE_14B},
    ),
    Golden(
        "flf2v",
        "lightning",
        "video_wan2_2_14B_flf2v",
        "classic",
        options={"alternative_group": True},
        sampling={**TWO_STAGE_4, **SIZE_14B},
        fix=swap_flf2v_images,
    ),
    Golden(
        "ti2v",
        "standard",
        "video_wan2_2_5B_ti2v",
        "classic",
        sampling={"steps": 20, "cfg": 5, "shift": 8, **UNI_PC, **SIZE_5B},
    ),
    Golden(
        "ti2v",
        "standard",
        "video_wan2_2_5B_ti2v",
        "classic",
        options={"enable": [56]},
        sampling={"steps": 20, "cfg": 5, "shift": 8, **UNI_PC, **SIZE_5B},
    ),
    Golden(
        "s2v",
        "lightning",
        "video_wan2_2_14B_s2v",
        "classic",
        sampling={"steps": 4, "cfg": 1, "shift": 8, **UNI_PC, **SIZE_S2V},
        extra={"chunks": 3},
    ),
    Golden(
        "s2v",
        "standard",
        "video_wan2_2_14B_s2v",
        "classic",
        options={"alternative_group": True},
        sampling={"steps": 20, "cfg": 6, "shift": 8, **UNI_PC, **SIZE_S2V},
        extra={"chunks": 4},
        fix=s2v_batch_index_per_template_rule,
    ),
]


def _feeding(graph: ApiGraph, class_type: str) -> dict[str, str]:
    """Input name -> node id, for each link from a node of ``class_type``."""
    fed = {}
    for node in graph.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and graph[value[0]]["class_type"] == class_type:
                fed[name] = value[0]
    return fed


def request_values(template: ApiGraph) -> dict[str, Any]:
    """The template's per-request values as our request fields: prompt, files, output prefix."""
    prompt_node = _feeding(template, "CLIPTextEncode")["positive"]
    (save,) = (n for n in template.values() if n["class_type"] == "SaveVideo")
    values = {
        "prompt": template[prompt_node]["inputs"]["text"],
        "filename_prefix": save["inputs"]["filename_prefix"],
        "seed": 1,
    }
    images = _feeding(template, "LoadImage")
    for field_name, inputs in (
        ("image", ("start_image", "ref_image")),
        ("end_image", ("end_image",)),
    ):
        for name in inputs:
            if name in images:
                values[field_name] = template[images[name]]["inputs"]["image"]
    audio = _feeding(template, "LoadAudio")
    if "audio" in audio:
        values["audio"] = template[audio["audio"]]["inputs"]["audio"]
    return values


def ours(case: Golden, template: ApiGraph, **overrides: Any) -> ApiGraph:
    params = {"preset": case.preset, **request_values(template), **case.extra, **overrides}
    return build(case.mode, params).graph


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_our_graph_is_the_template_graph(case: Golden) -> None:
    template = case.template_graph()
    assert_same_graph(ours(case, template), template, ignore=SEEDS_ONLY)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_stating_the_template_values_explicitly_gives_the_same_graph(case: Golden) -> None:
    template = case.template_graph()
    assert_same_graph(ours(case, template, **case.sampling), template, ignore=SEEDS_ONLY)


@pytest.mark.parametrize("mode", ["i2v", "t2v"])
def test_lightning_is_also_the_current_template_with_turbo_on(mode: str) -> None:
    case = next(c for c in CASES if (c.mode, c.preset) == (mode, "lightning"))
    current = template_graph(case.template, "current", turbo=True)
    assert_same_graph(ours(case, current), current, ignore=SEEDS_ONLY)


# --- the comparison is not vacuous: a different graph is reported ----------------------------

ONE_PER_MODE = [
    next(c for c in CASES if c.mode == mode) for mode in ("i2v", "t2v", "flf2v", "ti2v", "s2v")
]


@pytest.mark.parametrize("case", ONE_PER_MODE, ids=[case.mode for case in ONE_PER_MODE])
def test_a_different_shift_is_reported(case: Golden) -> None:
    template = case.template_graph()
    difference = graph_difference(ours(case, template, shift=7), template, ignore=SEEDS_ONLY)
    assert difference is not None
    assert "ModelSamplingSD3" in difference
    assert "shift: ours 7, template" in difference


@pytest.mark.parametrize("case", ONE_PER_MODE, ids=[case.mode for case in ONE_PER_MODE])
def test_swapped_positive_and_negative_wiring_is_reported(case: Golden) -> None:
    template = case.template_graph()
    rewired = ours(case, template)
    sampler = next(
        node
        for node in rewired.values()
        if node["class_type"] in ("KSamplerAdvanced", "KSampler")
        and node["inputs"].get("add_noise", "enable") == "enable"
    )
    inputs = sampler["inputs"]
    inputs["positive"], inputs["negative"] = inputs["negative"], inputs["positive"]
    difference = graph_difference(rewired, template, ignore=SEEDS_ONLY)
    assert difference is not None
    assert "positive: ours <-" in difference


@pytest.mark.parametrize("case", ONE_PER_MODE, ids=[case.mode for case in ONE_PER_MODE])
def test_another_prompt_is_reported_when_prompts_are_compared(case: Golden) -> None:
    template = case.template_graph()
    other = ours(case, template, prompt="a different prompt")
    difference = graph_difference(other, template, ignore=SEEDS_ONLY)
    assert difference is not None
    assert 'text: ours "a different prompt"' in difference


def test_flf2v_lightning_template_as_shipped_has_start_and_end_swapped() -> None:
    case = next(c for c in CASES if (c.mode, c.preset) == ("flf2v", "lightning"))
    shipped = template_graph(case.template, case.package, **case.options)
    ours_graph = ours(case, case.template_graph())
    difference = graph_difference(ours_graph, shipped, ignore=SEEDS_ONLY)
    assert difference is not None
    assert "start_image" in difference


def test_s2v_standard_template_as_shipped_breaks_its_own_batch_index_rule() -> None:
    case = next(c for c in CASES if (c.mode, c.preset) == ("s2v", "standard"))
    shipped = template_graph(case.template, case.package, **case.options)
    difference = graph_difference(ours(case, case.template_graph()), shipped, ignore=SEEDS_ONLY)
    assert difference is not None
    assert "batch_index: ours 4, template 3" in difference
