"""The graphs behind the recorded ``POST /prompt`` refusals (traces/prompt_validation_errors.json).

Each case is the hand-written WAN 2.2 I2V graph with one mistake. The same cases drive the
schema tests, the double's tests and contract tests against a real server.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from wan_worker.workflows.graph import ApiGraph

_WAN_I2V: ApiGraph = {
    "1": {
        "class_type": "UNETLoader",
        "inputs": {
            "unet_name": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
            "weight_dtype": "default",
        },
    },
    "2": {
        "class_type": "UNETLoader",
        "inputs": {
            "unet_name": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
            "weight_dtype": "default",
        },
    },
    "3": {
        "class_type": "CLIPLoader",
        "inputs": {
            "clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
            "type": "wan",
            "device": "default",
        },
    },
    "4": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
    "5": {"class_type": "LoadImage", "inputs": {"image": "ref.png"}},
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "a cat surfing a wave, cinematic", "clip": ["3", 0]},
    },
    "7": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "blurry, low quality, static", "clip": ["3", 0]},
    },
    "8": {
        "class_type": "WanImageToVideo",
        "inputs": {
            "positive": ["6", 0],
            "negative": ["7", 0],
            "vae": ["4", 0],
            "start_image": ["5", 0],
            "width": 640,
            "height": 640,
            "length": 81,
            "batch_size": 1,
        },
    },
    "9": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
    "10": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 8.0}},
    "11": {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "model": ["9", 0],
            "add_noise": "enable",
            "noise_seed": 42,
            "steps": 20,
            "cfg": 3.5,
            "sampler_name": "euler",
            "scheduler": "simple",
            "positive": ["8", 0],
            "negative": ["8", 1],
            "latent_image": ["8", 2],
            "start_at_step": 0,
            "end_at_step": 10,
            "return_with_leftover_noise": "enable",
        },
    },
    "12": {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "model": ["10", 0],
            "add_noise": "disable",
            "noise_seed": 42,
            "steps": 20,
            "cfg": 3.5,
            "sampler_name": "euler",
            "scheduler": "simple",
            "positive": ["8", 0],
            "negative": ["8", 1],
            "latent_image": ["11", 0],
            "start_at_step": 10,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
        },
    },
    "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["4", 0]}},
    "14": {"class_type": "CreateVideo", "inputs": {"images": ["13", 0], "fps": 16}},
    "15": {
        "class_type": "SaveVideo",
        "inputs": {
            "video": ["14", 0],
            "filename_prefix": "video/wan22_i2v",
            "format": "mp4",
            "format.codec": "auto",
        },
    },
}

WAN_I2V_MODELS: dict[str, list[str]] = {
    "diffusion_models": [
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "wan2.2_s2v_14B_fp8_scaled.safetensors",
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
        "wan2.2_ti2v_5B_fp16.safetensors",
    ],
    "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
    "vae": ["wan_2.1_vae.safetensors", "wan2.2_vae.safetensors"],
    "loras": [],
}
"""The model folders of the server the refusals were recorded on."""

WAN_I2V_INPUT_FILES: tuple[str, ...] = ("ref.png",)


def wan_i2v_graph() -> ApiGraph:
    """A fresh copy of the valid hand-written WAN 2.2 I2V graph (output node "15")."""
    return copy.deepcopy(_WAN_I2V)


def _set(node: str, name: str, value: Any) -> Callable[[ApiGraph], None]:
    def mutate(graph: ApiGraph) -> None:
        graph[node]["inputs"][name] = value

    return mutate


def _drop_input(node: str, name: str) -> Callable[[ApiGraph], None]:
    def mutate(graph: ApiGraph) -> None:
        del graph[node]["inputs"][name]

    return mutate


def _rename_class(graph: ApiGraph) -> None:
    graph["9"]["class_type"] = "ModelSamplingSD4"


def _drop_output(graph: ApiGraph) -> None:
    del graph["15"]


def _drop_class_type(graph: ApiGraph) -> None:
    del graph["1"]["class_type"]


VALIDATION_CASES: dict[str, Callable[[ApiGraph], None]] = {
    "unknown_class_type": _rename_class,
    "wrong_link_type": _set("11", "model", ["3", 0]),
    "missing_required_input": _drop_input("11", "cfg"),
    "model_not_in_list": _set("1", "unet_name", "wan2.2_i2v_high_noise_14B_fp16.safetensors"),
    "out_of_range_min": _set("8", "width", 8),
    "out_of_range_max": _set("11", "cfg", 1000.0),
    "bad_combo_value": _set("11", "sampler_name", "euler_fancy"),
    "wrong_value_type": _set("11", "steps", "twenty"),
    "link_to_missing_node": _set("11", "latent_image", ["99", 0]),
    "link_bad_output_index": _set("8", "start_image", ["5", 2]),
    "no_output_node": _drop_output,
    "missing_input_image": _set("5", "image", "does_not_exist.png"),
    "clip_type_not_allowed": _set("3", "type", "wan3"),
    "node_missing_class_type": _drop_class_type,
}
"""Recorded case name -> the mistake that produces it, applied to :func:`wan_i2v_graph`."""


def case_graph(name: str) -> ApiGraph:
    """The graph of one recorded refusal."""
    graph = wan_i2v_graph()
    VALIDATION_CASES[name](graph)
    return graph
