"""The graph builder: links, ids, and the API dict it emits."""

from __future__ import annotations

import json

import pytest

from wan_worker.workflows import build
from wan_worker.workflows.graph import Graph, Link, to_json


def test_out_is_a_link_to_the_nodes_output() -> None:
    g = Graph()
    loader = g.node("UNETLoader", "model", unet_name="m.safetensors", weight_dtype="default")
    assert loader.out(0) == Link("model", 0)


def test_finalize_gives_the_api_dict_with_links_as_pairs_and_titles() -> None:
    g = Graph()
    loader = g.node("UNETLoader", "model", title="Model", unet_name="m", weight_dtype="default")
    g.node("ModelSamplingSD3", "shift", model=loader.out(0), shift=5)
    assert g.finalize() == {
        "model": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "m", "weight_dtype": "default"},
            "_meta": {"title": "Model"},
        },
        "shift": {
            "class_type": "ModelSamplingSD3",
            "inputs": {"model": ["model", 0], "shift": 5},
            "_meta": {"title": "ModelSamplingSD3"},
        },
    }


def test_unconnected_optional_inputs_are_left_out() -> None:
    g = Graph()
    g.node("Wan22ImageToVideoLatent", "latent", start_image=None, width=32)
    assert g.finalize()["latent"]["inputs"] == {"width": 32}


def test_a_node_id_cannot_be_used_twice() -> None:
    g = Graph()
    g.node("VAELoader", "vae", vae_name="v")
    with pytest.raises(ValueError, match="used twice"):
        g.node("VAELoader", "vae", vae_name="v")


def test_a_link_to_an_unknown_node_is_refused() -> None:
    g = Graph()
    with pytest.raises(ValueError, match="unknown node"):
        g.node("VAEDecode", "decode", samples=Link("nowhere", 0))


@pytest.mark.parametrize("bad", ["", "Upper", "with space", "../x"])
def test_node_ids_are_readable_lowercase_names(bad: str) -> None:
    with pytest.raises(ValueError, match="node id"):
        Graph().node("VAELoader", bad, vae_name="v")


@pytest.mark.parametrize("mode", ["i2v", "t2v", "flf2v", "ti2v", "s2v"])
def test_the_same_request_gives_byte_identical_json(mode: str) -> None:
    params = (
        {"seed": 42, "prompt": "a fox", "audio": "a.wav", "chunks": 2}
        if mode == "s2v"
        else {
            "seed": 42,
            "prompt": "a fox",
        }
    )
    first = build(mode, params).to_json()
    second = build(mode, dict(params)).to_json()
    assert first == second
    assert first == to_json(json.loads(first))
