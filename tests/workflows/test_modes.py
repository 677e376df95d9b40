"""What each mode's graph contains: the nodes and wiring of the official templates."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from wan_worker import catalogue
from wan_worker.errors import InvalidInput
from wan_worker.workflows import MODES, PRESETS, build
from wan_worker.workflows.s2v import MAX_AUDIO_SECONDS, chunks_for_audio, frames_for_chunks


def _types(graph: dict[str, Any]) -> Counter[str]:
    return Counter(node["class_type"] for node in graph.values())


def _source(graph: dict[str, Any], node_id: str, name: str) -> str:
    link = graph[node_id]["inputs"][name]
    assert isinstance(link, list), f"{node_id}.{name} is not a link"
    return str(graph[link[0]]["class_type"])


def test_i2v_lightning_has_the_two_stage_moe_graph() -> None:
    graph = build("i2v", {"preset": "lightning"}).graph
    assert _types(graph) == Counter(
        {
            "UNETLoader": 2,
            "LoraLoaderModelOnly": 2,
            "ModelSamplingSD3": 2,
            "KSamplerAdvanced": 2,
            "CLIPTextEncode": 2,
            "CLIPLoader": 1,
            "VAELoader": 1,
            "LoadImage": 1,
            "WanImageToVideo": 1,
            "VAEDecode": 1,
            "CreateVideo": 1,
            "SaveVideo": 1,
        }
    )
    high = graph["sampler_high_noise"]["inputs"]
    low = graph["sampler_low_noise"]["inputs"]
    assert (high["add_noise"], high["return_with_leftover_noise"]) == ("enable", "enable")
    assert (low["add_noise"], low["return_with_leftover_noise"]) == ("disable", "disable")
    assert (
        high["start_at_step"],
        high["end_at_step"],
        low["start_at_step"],
        low["end_at_step"],
    ) == (
        0,
        2,
        2,
        4,
    )
    assert low["latent_image"] == ["sampler_high_noise", 0]
    assert high["positive"] == ["image_to_video", 0]
    assert high["negative"] == ["image_to_video", 1]
    assert high["latent_image"] == ["image_to_video", 2]
    assert graph["text_encoder"]["inputs"]["type"] == "wan"
    assert graph["high_noise_lora_1"]["inputs"]["lora_name"] == (
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
    )
    assert graph["low_noise_lora_1"]["inputs"]["lora_name"] == (
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"
    )


def test_the_standard_preset_loads_no_lora() -> None:
    for mode in ("i2v", "t2v", "flf2v", "ti2v"):
        assert "LoraLoaderModelOnly" not in _types(build(mode, {"preset": "standard"}).graph)


def test_t2v_samples_from_an_empty_hunyuan_latent_with_raw_prompts() -> None:
    graph = build("t2v", {"preset": "lightning"}).graph
    assert _source(graph, "sampler_high_noise", "latent_image") == "EmptyHunyuanLatentVideo"
    assert _source(graph, "sampler_high_noise", "positive") == "CLIPTextEncode"
    assert graph["high_noise_lora_1"]["inputs"]["lora_name"].startswith(
        "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high"
    )


def test_flf2v_puts_the_start_image_on_start_and_the_end_image_on_end() -> None:
    graph = build("flf2v", {"image": "first.png", "end_image": "last.png"}).graph
    inputs = graph["first_last_frame_to_video"]["inputs"]
    assert graph[inputs["start_image"][0]]["inputs"]["image"] == "first.png"
    assert graph[inputs["end_image"][0]]["inputs"]["image"] == "last.png"
    assert graph["high_noise_model"]["inputs"]["unet_name"].startswith("wan2.2_i2v_high_noise")


def test_ti2v_without_an_image_is_text_to_video_and_with_one_uses_it_as_first_frame() -> None:
    text = build("ti2v", {}).graph
    assert "LoadImage" not in _types(text)
    assert "start_image" not in text["video_latent"]["inputs"]
    image = build("ti2v", {"image": "a.png"}).graph
    assert image["video_latent"]["inputs"]["start_image"] == ["start_image", 0]
    assert image["vae"]["inputs"]["vae_name"] == "wan2.2_vae.safetensors"
    assert image["create_video"]["inputs"]["fps"] == 24
    assert (
        image["video_latent"]["inputs"]["width"],
        image["video_latent"]["inputs"]["height"],
    ) == (
        1280,
        704,
    )


def test_user_loras_chain_after_the_presets_on_their_stage() -> None:
    graph = build(
        "i2v",
        {
            "preset": "lightning",
            "loras": [
                {"name": "both.safetensors", "strength": 0.5},
                {"name": "high.safetensors", "stage": "high"},
                {"name": "low.safetensors", "stage": "low", "strength": -0.25},
            ],
        },
    ).graph
    chain = {
        prefix: [
            graph[f"{prefix}lora_{i}"]["inputs"]["lora_name"]
            for i in range(1, 10)
            if f"{prefix}lora_{i}" in graph
        ]
        for prefix in ("high_noise_", "low_noise_")
    }
    assert chain["high_noise_"] == [
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "both.safetensors",
        "high.safetensors",
    ]
    assert chain["low_noise_"] == [
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
        "both.safetensors",
        "low.safetensors",
    ]
    assert graph["low_noise_lora_3"]["inputs"]["strength_model"] == -0.25
    assert graph["low_noise_shift"]["inputs"]["model"] == ["low_noise_lora_3", 0]


def test_every_model_file_can_be_overridden() -> None:
    graph = build(
        "s2v",
        {
            "audio": "a.wav",
            "chunks": 1,
            "model": "m.safetensors",
            "vae": "v.safetensors",
            "text_encoder": "t.safetensors",
            "audio_encoder": "w.safetensors",
            "weight_dtype": "fp8_e4m3fn",
        },
    ).graph
    assert graph["model"]["inputs"] == {"unet_name": "m.safetensors", "weight_dtype": "fp8_e4m3fn"}
    assert graph["vae"]["inputs"]["vae_name"] == "v.safetensors"
    assert graph["text_encoder"]["inputs"]["clip_name"] == "t.safetensors"
    assert graph["audio_encoder"]["inputs"]["audio_encoder_name"] == "w.safetensors"


@pytest.mark.parametrize(("chunks", "frames"), [(1, 80), (2, 159), (3, 238), (4, 317), (24, 1897)])
def test_s2v_frames_follow_from_the_chunk_count(chunks: int, frames: int) -> None:
    assert frames_for_chunks(chunks) == frames
    built = build("s2v", {"audio": "a.wav", "chunks": chunks})
    assert built.settings.frames == frames
    assert _types(built.graph)["WanSoundImageToVideoExtend"] == chunks - 1
    assert _types(built.graph)["KSampler"] == chunks
    assert built.graph["drop_first_frames"]["inputs"]["batch_index"] == chunks


@pytest.mark.parametrize(
    ("seconds", "chunks"), [(0.5, 1), (3, 1), (5, 1), (5.1, 2), (9.9, 2), (10, 3), (14, 3), (20, 5)]
)
def test_s2v_chunks_cover_the_whole_audio(seconds: float, chunks: int) -> None:
    assert chunks_for_audio(seconds) == chunks
    assert frames_for_chunks(chunks) / 16 >= seconds
    assert chunks == 1 or frames_for_chunks(chunks - 1) / 16 < seconds
    assert build("s2v", {"audio": "a.wav", "audio_seconds": seconds}).extra["chunks"] == chunks


def test_s2v_explicit_chunks_override_the_audio_duration() -> None:
    assert build("s2v", {"audio": "a.wav", "audio_seconds": 14, "chunks": 1}).extra["chunks"] == 1


def test_s2v_wires_the_chunks_and_the_first_frame_fix() -> None:
    graph = build("s2v", {"audio": "a.wav", "chunks": 3, "seed": 7}).graph
    assert graph["chunk_2_extend"]["inputs"]["video_latent"] == ["sampler", 0]
    assert graph["chunk_2_concat"]["inputs"]["samples1"] == ["sampler", 0]
    assert graph["chunk_3_extend"]["inputs"]["video_latent"] == ["chunk_2_concat", 0]
    assert graph["first_frame_cut"]["inputs"] == {
        "samples": ["chunk_3_concat", 0],
        "dim": "t",
        "index": 0,
        "amount": 1,
    }
    assert graph["first_frame_doubled"]["inputs"]["samples1"] == ["first_frame_cut", 0]
    assert graph["create_video"]["inputs"]["audio"] == ["audio", 0]
    assert [
        graph[k]["inputs"]["seed"] for k in ("sampler", "chunk_2_sampler", "chunk_3_sampler")
    ] == [
        7,
        8,
        9,
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"audio": "a.wav"}, "audio_seconds"),
        ({"audio": "a.wav", "chunks": 1, "fps": 24}, "fps"),
        ({"audio": "a.wav", "chunks": 25}, "chunks"),
        ({"audio": "a.wav", "audio_seconds": MAX_AUDIO_SECONDS + 1}, "audio_seconds"),
        ({"audio": "a.wav", "audio_seconds": 0}, "audio_seconds"),
        ({"chunks": 1}, "audio"),
        ({"audio": "a.wav", "chunks": 1, "frames": 81}, "frames"),
    ],
)
def test_s2v_rules(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        build("s2v", params)
    assert exc.value.problems[0].field == field


def _every_preset() -> list[tuple[str, str]]:
    return [(mode, preset) for (mode, preset) in PRESETS]


@pytest.mark.parametrize(("mode", "preset"), _every_preset())
def test_every_model_file_a_graph_loads_is_in_the_catalogue_in_its_folder(
    mode: str, preset: str
) -> None:
    params: dict[str, Any] = {"preset": preset}
    if mode == "s2v":
        params |= {"audio": "a.wav", "chunks": 2}
    for ref in build(mode, params).models:
        entry = catalogue.find(ref.file)
        assert entry is not None, f"{ref.file} is missing from the catalogue"
        assert entry.folder == ref.folder
        assert mode in entry.modes


def test_every_catalogue_entry_of_a_mode_is_used_by_one_of_its_presets() -> None:
    used = {
        ref.file
        for mode, preset in PRESETS
        for ref in build(
            mode, {"preset": preset} | ({"audio": "a.wav", "chunks": 1} if mode == "s2v" else {})
        ).models
    }
    listed = {m.file for m in catalogue.all_models() if m.modes}
    assert listed == used


def test_catalogue_urls_point_at_the_repackaged_repositories() -> None:
    for entry in catalogue.all_models():
        assert entry.url.startswith("https://huggingface.co/Comfy-Org/Wan_2.")
        assert entry.url.endswith(entry.file)
    assert catalogue.find("umt5_xxl_fp8_e4m3fn_scaled.safetensors") is not None
    text_encoder = catalogue.find("umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    assert (
        text_encoder is not None
        and text_encoder.repository == "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
    )
    assert catalogue.download_hint("nope.safetensors") is None


def test_modes_registry_lists_the_five_modes() -> None:
    assert list(MODES) == ["i2v", "t2v", "flf2v", "ti2v", "s2v"]
