"""14B image-to-video: ``WanImageToVideo(start_image)`` on the high/low-noise I2V pair.

Source: ``video_wan2_2_14B_i2v`` (classic 0.2.11 LightX2V group; json 0.1.123 subgraph, turbo off).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from wan_worker.workflows import parts
from wan_worker.workflows.graph import Graph
from wan_worker.workflows.params import Mode, TwoStageRequest, parse_request, resolve

MODE: Mode = "i2v"


class Request(TwoStageRequest):
    """Image-to-video with the 14B model."""

    image: str = Field(
        "example.png",
        min_length=1,
        max_length=255,
        description="Start image in ComfyUI's input folder.",
    )

    @field_validator("image")
    @classmethod
    def _safe_image(cls, value: str) -> str:
        return parts.input_file_name(value)


def build(request: Request | dict[str, Any]) -> parts.BuiltWorkflow:
    req = parse_request(Request, request)
    s = resolve(req, MODE)
    g = Graph()
    positive, negative = parts.text_encoding(g, s)
    vae = parts.vae_loader(g, s)
    image = g.node("LoadImage", "start_image", title="Start image", image=req.image)
    latent = g.node(
        "WanImageToVideo",
        "image_to_video",
        title="Image to video latent",
        positive=positive,
        negative=negative,
        vae=vae,
        start_image=image.out(0),
        width=s.width,
        height=s.height,
        length=s.frames,
        batch_size=1,
    )
    parts.two_stage_video(
        g, s, req, positive=latent.out(0), negative=latent.out(1), latent=latent.out(2), vae=vae
    )
    return parts.BuiltWorkflow(MODE, g.finalize(), s, {"image": req.image})
