"""14B sound-to-video: a reference image and a voice track, sampled in 77-frame chunks.

Source: ``video_wan2_2_14B_s2v`` (0.2.11 = json 0.1.123). The first chunk comes from
``WanSoundImageToVideo``; each further chunk is a ``WanSoundImageToVideoExtend -> KSampler ->
LatentConcat`` block on the latent so far. The template's first-frame fix then doubles the first
latent frame (``LatentCut``/``LatentConcat``) and drops the first ``1 + extends`` decoded frames
(``ImageFromBatch``), and ``CreateVideo`` muxes the audio, trimmed to the video.

Length arithmetic (ComfyUI's node code; docs/workflows.md derives it):
- a chunk of length 77 is ``(77 - 1) // 4 + 1 = 20`` latent frames; ``c`` chunks are ``20c``;
- the fix makes ``20c + 1``; the VAE decodes ``4 * 20c + 1 = 80c + 1`` frames;
- ``ImageFromBatch(batch_index = c)`` keeps ``80c + 1 - c = 79c + 1`` frames, at 16 fps;
- so ``c`` chunks cover ``(79c + 1) / 16`` seconds, and ``D`` seconds of audio need
  ``c = max(1, ceil((16 D - 1) / 79))`` chunks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pydantic import Field, field_validator

from wan_worker import catalogue
from wan_worker.errors import InvalidInput, Problem
from wan_worker.workflows import parts
from wan_worker.workflows.graph import Graph
from wan_worker.workflows.params import (
    MAX_S2V_CHUNKS,
    MAX_SEED,
    S2V_CHUNK_FRAMES,
    S2V_FPS,
    FileName,
    Mode,
    SingleModelRequest,
    check_file_name,
    parse_request,
    resolve,
)

MODE: Mode = "s2v"
_LATENT_FRAMES_PER_CHUNK = (S2V_CHUNK_FRAMES - 1) // 4 + 1


def frames_for_chunks(chunks: int) -> int:
    """Frames of the final video for ``chunks`` chunks (first-frame fix included)."""
    latent = _LATENT_FRAMES_PER_CHUNK * chunks + 1  # the first-frame fix doubles latent frame 0
    decoded = 4 * (latent - 1) + 1
    return decoded - chunks  # ImageFromBatch(batch_index=chunks) drops the first frames


def chunks_for_audio(seconds: float) -> int:
    """The fewest chunks whose video is at least ``seconds`` long."""
    per_chunk = frames_for_chunks(2) - frames_for_chunks(1)
    base = frames_for_chunks(1) - per_chunk
    return max(1, math.ceil((S2V_FPS * seconds - base) / per_chunk - 1e-9))


MAX_AUDIO_SECONDS = frames_for_chunks(MAX_S2V_CHUNKS) / S2V_FPS


class Request(SingleModelRequest):
    """Sound-to-video with the 14B S2V model (16 fps, length set by the chunk count)."""

    image: str = Field(
        "example.png",
        min_length=1,
        max_length=255,
        description="Reference image in ComfyUI's input folder.",
    )
    audio: str = Field(
        ..., min_length=1, max_length=255, description="Audio file in ComfyUI's input folder."
    )
    audio_encoder: FileName | None = Field(
        None, description="wav2vec2 file (models/audio_encoders)."
    )
    audio_seconds: float | None = Field(
        None, gt=0, le=MAX_AUDIO_SECONDS, description="Duration of the audio; sets the chunk count."
    )
    chunks: int | None = Field(
        None,
        ge=1,
        le=MAX_S2V_CHUNKS,
        description="Number of 77-frame chunks; overrides audio_seconds.",
    )

    @field_validator("image", "audio", "audio_encoder")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else check_file_name(value)


def build(request: Request | dict[str, Any]) -> parts.BuiltWorkflow:
    req = parse_request(Request, request)
    chunks = _chunk_count(req)
    s = resolve(req, MODE, frames=S2V_CHUNK_FRAMES, high_model_role=False)
    s = dataclasses.replace(s, frames=frames_for_chunks(chunks))

    g = Graph()
    model = parts.single_model(g, s, req.model)
    positive, negative = parts.text_encoding(g, s)
    vae = parts.vae_loader(g, s)
    encoder = g.node(
        "AudioEncoderLoader",
        "audio_encoder",
        title="Audio encoder",
        audio_encoder_name=req.audio_encoder or catalogue.default_file(MODE, "audio_encoder"),
    )
    audio = g.node("LoadAudio", "audio", title="Audio", audio=req.audio)
    embeds = g.node(
        "AudioEncoderEncode",
        "audio_embeds",
        title="Audio features",
        audio_encoder=encoder.out(0),
        audio=audio.out(0),
    )
    reference = g.node("LoadImage", "reference_image", title="Reference image", image=req.image)
    first = g.node(
        "WanSoundImageToVideo",
        "sound_to_video",
        title="Chunk 1 conditioning",
        positive=positive,
        negative=negative,
        vae=vae,
        audio_encoder_output=embeds.out(0),
        ref_image=reference.out(0),
        width=s.width,
        height=s.height,
        length=S2V_CHUNK_FRAMES,
        batch_size=1,
    )
    latent = parts.sample(
        g,
        s,
        "sampler",
        title="Chunk 1 sampling",
        model=model,
        positive=first.out(0),
        negative=first.out(1),
        latent=first.out(2),
        seed=s.seed,
    )
    for chunk in range(2, chunks + 1):
        extend = g.node(
            "WanSoundImageToVideoExtend",
            f"chunk_{chunk}_extend",
            title=f"Chunk {chunk} conditioning",
            positive=positive,
            negative=negative,
            vae=vae,
            length=S2V_CHUNK_FRAMES,
            video_latent=latent,
            audio_encoder_output=embeds.out(0),
            ref_image=reference.out(0),
        )
        sampled = parts.sample(
            g,
            s,
            f"chunk_{chunk}_sampler",
            title=f"Chunk {chunk} sampling",
            model=model,
            positive=extend.out(0),
            negative=extend.out(1),
            latent=extend.out(2),
            seed=(s.seed + chunk - 1) % (MAX_SEED + 1),
        )
        latent = g.node(
            "LatentConcat",
            f"chunk_{chunk}_concat",
            title=f"Append chunk {chunk}",
            samples1=latent,
            samples2=sampled,
            dim="t",
        ).out(0)

    first_frame = g.node(
        "LatentCut",
        "first_frame_cut",
        title="First latent frame",
        samples=latent,
        dim="t",
        index=0,
        amount=1,
    )
    doubled = g.node(
        "LatentConcat",
        "first_frame_doubled",
        title="Double the first frame",
        samples1=first_frame.out(0),
        samples2=latent,
        dim="t",
    )
    decoded = g.node("VAEDecode", "decode", title="Decode", samples=doubled.out(0), vae=vae)
    trimmed = g.node(
        "ImageFromBatch",
        "drop_first_frames",
        title="Drop the doubled frames",
        image=decoded.out(0),
        batch_index=chunks,
        length=4096,
    )
    parts.video_output(g, s, images=trimmed.out(0), audio=audio.out(0))
    extra = {
        "image": req.image,
        "audio": req.audio,
        "chunks": chunks,
        "audio_seconds": req.audio_seconds,
        "video_seconds": s.frames / S2V_FPS,
    }
    return parts.BuiltWorkflow(MODE, g.finalize(), s, extra)


def _chunk_count(req: Request) -> int:
    if req.fps is not None and req.fps != S2V_FPS:
        raise InvalidInput(
            f"fps={req.fps}: s2v runs at {S2V_FPS} fps (its audio alignment is fixed); "
            f"nearest valid value: {S2V_FPS}",
            problems=[
                Problem(
                    message=f"fps must be {S2V_FPS} for s2v",
                    field="fps",
                    value=req.fps,
                    rule=f"s2v runs at {S2V_FPS} fps",
                    suggestion=S2V_FPS,
                )
            ],
        )
    if req.chunks is not None:
        return req.chunks
    if req.audio_seconds is not None:
        return chunks_for_audio(req.audio_seconds)
    raise InvalidInput(
        "s2v needs audio_seconds (the audio's duration) or chunks to know how long the video is",
        problems=[
            Problem(
                message="give audio_seconds or chunks",
                field="audio_seconds",
                rule="required for s2v unless chunks is given",
            )
        ],
    )
