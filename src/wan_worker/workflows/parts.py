"""Pieces every WAN 2.2 graph shares: text encoding, the model chain, two-stage sampling, output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wan_worker import catalogue
from wan_worker.model_folders import LOADER_FOLDERS
from wan_worker.workflows.graph import ApiGraph, Graph, Link, to_json
from wan_worker.workflows.params import (
    Adjustment,
    LoraSpec,
    Mode,
    Settings,
    TwoStageRequest,
    check_file_name,
)


@dataclass(frozen=True)
class ModelRef:
    """A model file a graph loads, and the ComfyUI models folder it must be in."""

    file: str
    folder: str


@dataclass(frozen=True)
class BuiltWorkflow:
    """A graph ready for ``POST /prompt``, with the effective parameters that produced it."""

    mode: Mode
    graph: ApiGraph
    settings: Settings
    extra: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def adjustments(self) -> tuple[Adjustment, ...]:
        return self.settings.adjustments

    @property
    def models(self) -> tuple[ModelRef, ...]:
        """Every model file the graph loads, in graph order, without repeats."""
        refs: dict[tuple[str, str], ModelRef] = {}
        for node in self.graph.values():
            for name, value in node["inputs"].items():
                folder = LOADER_FOLDERS.get((node["class_type"], name))
                if folder is not None and isinstance(value, str):
                    refs.setdefault((folder, value), ModelRef(value, folder))
        return tuple(refs.values())

    def to_json(self) -> str:
        return to_json(self.graph)

    def effective_parameters(self) -> dict[str, Any]:
        """The parameters after defaults, presets and rounding: what the caller is told was used."""
        s = self.settings
        params: dict[str, Any] = {
            "mode": s.mode,
            "preset": s.preset,
            "prompt": s.prompt,
            "negative_prompt": s.negative_prompt,
            "width": s.width,
            "height": s.height,
            "frames": s.frames,
            "fps": s.fps,
            "seed": s.seed,
            "steps": s.steps,
            "cfg": s.cfg,
            "shift": s.shift,
            "sampler": s.sampler,
            "scheduler": s.scheduler,
        }
        if s.split_step is not None:
            params["split_step"] = s.split_step
        params.update(self.extra)
        params["models"] = [m.file for m in self.models]
        params["adjustments"] = [a.model_dump() for a in s.adjustments]
        return params


def number(value: float) -> float | int:
    """Integral floats as ints, as the templates write them (``fps: 16``, ``cfg: 1``)."""
    return int(value) if float(value).is_integer() else value


def text_encoding(g: Graph, s: Settings) -> tuple[Link, Link]:
    """umt5-xxl through ``CLIPLoader(type=wan)``, then the positive and negative prompts."""
    clip = g.node(
        "CLIPLoader",
        "text_encoder",
        title="Text encoder",
        clip_name=s.text_encoder,
        type="wan",
        device="default",
    )
    positive = g.node(
        "CLIPTextEncode",
        "positive_prompt",
        title="Positive prompt",
        text=s.prompt,
        clip=clip.out(0),
    )
    negative = g.node(
        "CLIPTextEncode",
        "negative_prompt",
        title="Negative prompt",
        text=s.negative_prompt,
        clip=clip.out(0),
    )
    return positive.out(0), negative.out(0)


def vae_loader(g: Graph, s: Settings) -> Link:
    return g.node("VAELoader", "vae", title="VAE", vae_name=s.vae).out(0)


def model_chain(
    g: Graph, s: Settings, *, prefix: str, unet: str, loras: tuple[LoraSpec, ...], label: str
) -> Link:
    """``UNETLoader -> [LoraLoaderModelOnly...] -> ModelSamplingSD3``, the templates' model path."""
    model = g.node(
        "UNETLoader",
        f"{prefix}model",
        title=f"{label} model",
        unet_name=unet,
        weight_dtype=s.weight_dtype,
    ).out(0)
    for index, lora in enumerate(loras, start=1):
        model = g.node(
            "LoraLoaderModelOnly",
            f"{prefix}lora_{index}",
            title=f"{label} LoRA {index}",
            model=model,
            lora_name=lora.name,
            strength_model=number(lora.strength),
        ).out(0)
    return g.node(
        "ModelSamplingSD3",
        f"{prefix}shift",
        title=f"{label} shift",
        model=model,
        shift=number(s.shift),
    ).out(0)


def moe_models(g: Graph, s: Settings, req: TwoStageRequest) -> tuple[Link, Link]:
    """The high-noise and low-noise model chains of the 14B modes."""
    high = model_chain(
        g,
        s,
        prefix="high_noise_",
        unet=req.high_noise_model or catalogue.default_file(s.mode, "high_noise_model"),
        loras=s.high_loras,
        label="High-noise",
    )
    low = model_chain(
        g,
        s,
        prefix="low_noise_",
        unet=req.low_noise_model or catalogue.default_file(s.mode, "low_noise_model"),
        loras=s.low_loras,
        label="Low-noise",
    )
    return high, low


def single_model(g: Graph, s: Settings, unet: str | None) -> Link:
    """The model chain of the single-model modes (5B TI2V, 14B S2V)."""
    return model_chain(
        g,
        s,
        prefix="",
        unet=unet or catalogue.default_file(s.mode, "model"),
        loras=s.high_loras,
        label="Diffusion",
    )


def two_stage_video(
    g: Graph,
    s: Settings,
    req: TwoStageRequest,
    *,
    positive: Link,
    negative: Link,
    latent: Link,
    vae: Link,
) -> None:
    """The shared tail of the 14B modes: both model chains, both stages, decode, save."""
    high, low = moe_models(g, s, req)
    samples = two_stage_sampling(
        g, s, high=high, low=low, positive=positive, negative=negative, latent=latent
    )
    decoded = g.node("VAEDecode", "decode", title="Decode", samples=samples, vae=vae)
    video_output(g, s, images=decoded.out(0))


def input_file_name(value: str) -> str:
    """Validate a file name in ComfyUI's input folder (a per-job subfolder is allowed)."""
    return check_file_name(value)


def two_stage_sampling(
    g: Graph,
    s: Settings,
    *,
    high: Link,
    low: Link,
    positive: Link,
    negative: Link,
    latent: Link,
) -> Link:
    """The 14B MoE split: the high-noise model runs 0..split, the low-noise one split..end."""
    assert s.split_step is not None
    shared: dict[str, Any] = {
        "steps": s.steps,
        "cfg": number(s.cfg),
        "sampler_name": s.sampler,
        "scheduler": s.scheduler,
        "positive": positive,
        "negative": negative,
    }
    stage1 = g.node(
        "KSamplerAdvanced",
        "sampler_high_noise",
        title="Sampling stage 1 (high noise)",
        model=high,
        add_noise="enable",
        noise_seed=s.seed,
        start_at_step=0,
        end_at_step=s.split_step,
        return_with_leftover_noise="enable",
        latent_image=latent,
        **shared,
    )
    stage2 = g.node(
        "KSamplerAdvanced",
        "sampler_low_noise",
        title="Sampling stage 2 (low noise)",
        model=low,
        add_noise="disable",
        noise_seed=0,
        start_at_step=s.split_step,
        end_at_step=s.steps,
        return_with_leftover_noise="disable",
        latent_image=stage1.out(0),
        **shared,
    )
    return stage2.out(0)


def video_output(g: Graph, s: Settings, *, images: Link, audio: Link | None = None) -> None:
    """``CreateVideo(fps[, audio]) -> SaveVideo``: an H.264 MP4 under ``output/<prefix>``."""
    video = g.node(
        "CreateVideo",
        "create_video",
        title="Create video",
        images=images,
        fps=number(s.fps),
        audio=audio,
    )
    g.node(
        "SaveVideo",
        "save_video",
        title="Save video",
        video=video.out(0),
        filename_prefix=s.filename_prefix,
        format="auto",
        codec="auto",
    )


def sample(
    g: Graph,
    s: Settings,
    node_id: str,
    *,
    title: str,
    model: Link,
    positive: Link,
    negative: Link,
    latent: Link,
    seed: int,
) -> Link:
    """One full ``KSampler`` pass (the single-model modes), denoise 1."""
    return g.node(
        "KSampler",
        node_id,
        title=title,
        model=model,
        seed=seed,
        steps=s.steps,
        cfg=number(s.cfg),
        sampler_name=s.sampler,
        scheduler=s.scheduler,
        positive=positive,
        negative=negative,
        latent_image=latent,
        denoise=1,
    ).out(0)
