"""The template converter reproduces the research appendix, and the graph comparison is sound."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from wan_worker.workflows.graph import ApiGraph

from .templates import (
    DEFAULT_IGNORED,
    Ignored,
    Package,
    TemplateError,
    assert_same_graph,
    convert,
    graph_difference,
    load_template,
    template_graph,
)

APPENDIX = Path(__file__).parent / "appendix"


def appendix(name: str) -> ApiGraph:
    graph: ApiGraph = json.loads((APPENDIX / f"{name}.json").read_text(encoding="utf-8"))
    return graph


# (appendix graph, template, package, converter options)
VARIANTS: list[tuple[str, str, Package, dict[str, Any]]] = [
    ("i2v_14B_classic_lightx2v", "video_wan2_2_14B_i2v", "classic", {}),
    ("i2v_14B_classic_20step", "video_wan2_2_14B_i2v", "classic", {"alternative_group": True}),
    ("i2v_14B_latest_default_20step", "video_wan2_2_14B_i2v", "current", {}),
    ("t2v_14B_classic_lightx2v", "video_wan2_2_14B_t2v", "classic", {}),
    ("t2v_14B_classic_20step", "video_wan2_2_14B_t2v", "classic", {"alternative_group": True}),
    ("t2v_14B_latest_default_20step", "video_wan2_2_14B_t2v", "current", {}),
    ("flf2v_14B_default_20step", "video_wan2_2_14B_flf2v", "classic", {}),
    ("flf2v_14B_default_20step", "video_wan2_2_14B_flf2v", "current", {}),
    ("flf2v_14B_lightx2v", "video_wan2_2_14B_flf2v", "classic", {"alternative_group": True}),
    ("flf2v_14B_lightx2v", "video_wan2_2_14B_flf2v", "current", {"alternative_group": True}),
    ("ti2v_5B_t2v", "video_wan2_2_5B_ti2v", "classic", {}),
    ("ti2v_5B_t2v", "video_wan2_2_5B_ti2v", "current", {}),
    ("ti2v_5B_i2v", "video_wan2_2_5B_ti2v", "classic", {"enable": [56]}),
    ("ti2v_5B_i2v", "video_wan2_2_5B_ti2v", "current", {"enable": [56]}),
    ("s2v_14B_lightx2v_2extends", "video_wan2_2_14B_s2v", "classic", {}),
    ("s2v_14B_lightx2v_2extends", "video_wan2_2_14B_s2v", "current", {}),
    ("s2v_14B_20step_3extends", "video_wan2_2_14B_s2v", "classic", {"alternative_group": True}),
    ("s2v_14B_20step_3extends", "video_wan2_2_14B_s2v", "current", {"alternative_group": True}),
]


@pytest.mark.parametrize(
    ("expected", "template", "package", "options"),
    VARIANTS,
    ids=[f"{v[0]}-{v[2]}" for v in VARIANTS],
)
def test_converted_template_equals_the_research_appendix_exactly(
    expected: str, template: str, package: Package, options: dict[str, Any]
) -> None:
    assert template_graph(template, package, **options) == appendix(expected)


@pytest.mark.parametrize(
    ("template", "classic_lightning"),
    [
        ("video_wan2_2_14B_i2v", "i2v_14B_classic_lightx2v"),
        ("video_wan2_2_14B_t2v", "t2v_14B_classic_lightx2v"),
    ],
)
def test_current_template_with_turbo_on_is_the_classic_lightx2v_group(
    template: str, classic_lightning: str
) -> None:
    assert_same_graph(template_graph(template, "current", turbo=True), appendix(classic_lightning))


def test_current_i2v_length_comes_from_the_math_expression_over_duration_and_fps() -> None:
    graph = template_graph("video_wan2_2_14B_i2v", "current")
    (latent,) = (n for n in graph.values() if n["class_type"] == "WanImageToVideo")
    assert latent["inputs"]["length"] == 81


def test_flattened_subgraph_nodes_are_named_instance_colon_inner() -> None:
    graph = template_graph("video_wan2_2_14B_s2v", "classic")
    assert {"79:76", "79:77", "79:78", "85:76", "85:77", "85:78"} <= set(graph)
    assert graph["79:77"]["inputs"]["seed"] == 1
    assert graph["85:77"]["inputs"]["seed"] == 250


def _ui(*nodes: dict[str, Any], links: list[list[Any]]) -> dict[str, Any]:
    return {"nodes": list(nodes), "links": links}


def _ui_node(
    node_id: int,
    class_type: str,
    widgets: list[Any],
    inputs: Sequence[tuple[str, str, int | None]] = (),
    outputs: Sequence[str] = (),
    *,
    mode: int = 0,
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": class_type,
        "mode": mode,
        "widgets_values": widgets,
        "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
        "outputs": [{"name": o, "type": o} for o in outputs],
    }


def _save_chain(first_id: int, image_link: int) -> list[dict[str, Any]]:
    """CreateVideo(images) -> SaveVideo, fed by ``image_link``."""
    return [
        _ui_node(first_id, "CreateVideo", [16], [("images", "IMAGE", image_link)], ["VIDEO"]),
        _ui_node(first_id + 1, "SaveVideo", ["video/x", "auto", "auto"], [("video", "VIDEO", 99)]),
    ]


def test_legacy_primitive_node_value_lands_in_the_widget_it_feeds() -> None:
    ui = _ui(
        _ui_node(1, "PrimitiveNode", [24, "fixed"], outputs=["FLOAT"]),
        _ui_node(2, "LoadImage", ["in.png", "image"], outputs=["IMAGE", "MASK"]),
        _ui_node(10, "CreateVideo", [16], [("images", "IMAGE", 5), ("fps", "FLOAT", 6)], ["VIDEO"]),
        _ui_node(11, "SaveVideo", ["video/x", "auto", "auto"], [("video", "VIDEO", 99)]),
        links=[[5, 2, 0, 10, 0, "IMAGE"], [6, 1, 0, 10, 1, "FLOAT"], [99, 10, 0, 11, 0, "VIDEO"]],
    )
    graph = convert(ui)
    assert graph["10"]["inputs"] == {"fps": 24, "images": ["2", 0]}
    assert set(graph) == {"2", "10", "11"}


def test_bypassed_node_passes_its_same_typed_input_through() -> None:
    ui = _ui(
        _ui_node(1, "LoadImage", ["in.png", "image"], outputs=["IMAGE", "MASK"]),
        _ui_node(
            2,
            "ImageScale",
            ["lanczos", 64, 64, "center"],
            [("image", "IMAGE", 1)],
            ["IMAGE"],
            mode=4,
        ),
        *_save_chain(10, image_link=2),
        links=[[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 10, 0, "IMAGE"], [99, 10, 0, 11, 0, "VIDEO"]],
    )
    assert convert(ui)["10"]["inputs"]["images"] == ["1", 0]


def test_unmapped_widget_values_are_an_error_not_a_guess() -> None:
    ui = _ui(
        _ui_node(1, "LoadImage", ["in.png", "image", "surprise"], outputs=["IMAGE", "MASK"]),
        *_save_chain(10, image_link=1),
        links=[[1, 1, 0, 10, 0, "IMAGE"], [99, 10, 0, 11, 0, "VIDEO"]],
    )
    with pytest.raises(TemplateError, match="left unmapped"):
        convert(ui)


def test_math_expressions_outside_arithmetic_are_refused() -> None:
    ui = load_template("video_wan2_2_14B_i2v", "current")
    (subgraph,) = ui["definitions"]["subgraphs"]
    (math_node,) = (n for n in subgraph["nodes"] if n["type"] == "ComfyMathExpression")
    math_node["widgets_values"] = ["__import__('os').getpid()"]
    with pytest.raises(TemplateError, match="unsupported expression"):
        convert(ui)


# --- the comparison ---------------------------------------------------------------------------


def _renamed(graph: ApiGraph, prefix: str) -> ApiGraph:
    """The same graph with every node id changed (and the node order reversed)."""

    def rename(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            return [prefix + value[0], value[1]]
        return value

    return {
        prefix + node_id: {
            "class_type": node["class_type"],
            "inputs": {k: rename(v) for k, v in node["inputs"].items()},
            "_meta": {"title": "renamed"},
        }
        for node_id, node in reversed(graph.items())
    }


def _lightning_i2v() -> ApiGraph:
    return appendix("i2v_14B_classic_lightx2v")


def test_graphs_equal_up_to_node_ids_titles_and_order() -> None:
    assert_same_graph(_renamed(_lightning_i2v(), "x_"), _lightning_i2v())


def test_float_artefacts_of_the_templates_compare_equal() -> None:
    ours = _lightning_i2v()
    ours["104"]["inputs"]["shift"] = 5
    ours["101"]["inputs"]["strength_model"] = 1.0
    assert_same_graph(ours, _lightning_i2v())


def test_a_real_float_difference_is_reported() -> None:
    ours = _lightning_i2v()
    ours["101"]["inputs"]["strength_model"] = 1.01
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "LoraLoaderModelOnly" in difference
    assert "strength_model: ours 1.01, template 1" in difference


def test_end_at_step_beyond_steps_equals_end_at_steps() -> None:
    ours = _lightning_i2v()
    ours["85"]["inputs"]["end_at_step"] = 10000
    assert_same_graph(ours, _lightning_i2v())
    ours["85"]["inputs"]["end_at_step"] = 3
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "end_at_step: ours 3, template 4" in difference


def test_create_video_bit_depth_8_is_the_default_and_other_depths_differ() -> None:
    ours = _lightning_i2v()
    ours["94"]["inputs"]["bit_depth"] = 8
    assert_same_graph(ours, _lightning_i2v())
    ours["94"]["inputs"]["bit_depth"] = 10
    assert graph_difference(ours, _lightning_i2v()) is not None


def test_per_request_values_are_ignored_by_default() -> None:
    ours = _lightning_i2v()
    ours["86"]["inputs"]["noise_seed"] = 7
    ours["85"]["inputs"]["noise_seed"] = 7
    ours["93"]["inputs"]["text"] = "another prompt"
    ours["97"]["inputs"]["image"] = "other.png"
    ours["108"]["inputs"]["filename_prefix"] = "video/other"
    assert_same_graph(ours, _lightning_i2v())


def test_the_negative_prompt_is_compared() -> None:
    ours = _lightning_i2v()
    ours["89"]["inputs"]["text"] = "blurry"
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "CLIPTextEncode" in difference
    assert 'text: ours "blurry"' in difference


def test_an_empty_ignore_list_compares_every_value() -> None:
    ours = _lightning_i2v()
    ours["97"]["inputs"]["image"] = "other.png"
    assert graph_difference(ours, _lightning_i2v(), ignore=()) is not None
    assert graph_difference(ours, _lightning_i2v(), ignore=[Ignored("LoadImage", "image")]) is None
    assert Ignored("LoadImage", "image") in DEFAULT_IGNORED


def test_a_rewired_link_is_reported_with_both_sources() -> None:
    ours = _lightning_i2v()
    ours["85"]["inputs"]["model"] = ["104", 0]  # stage 2 on the high-noise model
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "KSamplerAdvanced" in difference
    assert "model: ours <- ModelSamplingSD3" in difference


def test_swapped_positive_and_negative_are_reported() -> None:
    ours = _lightning_i2v()
    ours["98"]["inputs"]["positive"], ours["98"]["inputs"]["negative"] = ["89", 0], ["93", 0]
    assert graph_difference(ours, _lightning_i2v()) is not None


def test_an_extra_node_is_reported_as_only_in_ours() -> None:
    ours = _lightning_i2v()
    ours["200"] = {
        "class_type": "LoraLoaderModelOnly",
        "inputs": {"lora_name": "extra.safetensors", "strength_model": 0.5, "model": ["101", 0]},
    }
    ours["104"]["inputs"]["model"] = ["200", 0]
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "only in ours: LoraLoaderModelOnly '200'" in difference


def test_a_missing_node_is_reported_as_only_in_the_template() -> None:
    ours = _lightning_i2v()
    del ours["102"]
    ours["103"]["inputs"]["model"] = ["96", 0]
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "only in the template: LoraLoaderModelOnly" in difference


def test_the_same_nodes_shared_differently_are_reported() -> None:
    ours = _lightning_i2v()
    ours["300"] = copy.deepcopy(ours["84"])  # a second text encoder loader nobody uses
    theirs = _lightning_i2v()
    theirs["300"] = copy.deepcopy(theirs["84"])
    theirs["93"]["inputs"]["clip"] = ["300", 0]  # ... that the positive prompt uses
    difference = graph_difference(ours, theirs)
    assert difference is not None
    assert "share them differently" in difference


def test_a_link_to_a_missing_node_fails_loudly() -> None:
    ours = _lightning_i2v()
    ours["87"]["inputs"]["vae"] = ["999", 0]
    with pytest.raises(AssertionError, match="missing node '999'"):
        graph_difference(ours, _lightning_i2v())


def test_value_changes_downstream_of_a_difference_are_reported_too() -> None:
    ours = _lightning_i2v()
    ours["104"]["inputs"]["shift"] = 7
    ours["86"]["inputs"]["steps"] = 5
    difference = graph_difference(ours, _lightning_i2v())
    assert difference is not None
    assert "shift: ours 7, template 5" in difference
    assert "also KSamplerAdvanced (ours '86', template '86'):\n    steps: ours 5, template 4" in (
        difference
    )
