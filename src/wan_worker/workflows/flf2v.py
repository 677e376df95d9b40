"""14B first-last-frame: ``WanFirstLastFrameToVideo(start_image, end_image)`` on the I2V pair.

Source: ``video_wan2_2_14B_flf2v`` (0.2.11 = json 0.1.123). Its LightX2V group wires the end image
into ``start_image`` and the start image into ``end_image``; here start is start.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from wan_worker.workflows import parts
from wan_worker.workflows.graph import Graph
from wan_worker.workflows.params import Mode, TwoStageRequest, parse_request, resolve

MODE: Mode = "flf2v"


class Request(TwoStageRequest):
    """First-last-frame to video with the 14B I2V models."""

    image: str = Field(
        "example.png",
        min_length=1,
        max_length=255,
        description="First frame, in ComfyUI's input folder.",
    )
    end_image: str = Field(
        "example.png",
        min_length=1,
        max_length=255,
        description="Last frame, in ComfyUI's input folder.",
    )

    @field_validator("image", "end_image")
    @classmethod
    def _safe_image(cls, value: str) -> str:
        return parts.input_file_name(value)


def build(request: Request | dict[str, Any]) -> parts.BuiltWorkflow:
    req = parse_request(Request, request)
    s = resolve(req, MODE)
    g = Graph()
    positive, negative = parts.text_encoding(g, s)
    vae = parts.vae_loader(g, s)
    start = g.node("LoadImage", "start_image", title="First frame", image=req.image)
    end = g.node("LoadImage", "end_image", title="Last frame", image=req.end_image)
    latent = g.node(
        "WanFirstLastFrameToVideo",
        "first_last_frame_to_video",
        title="First-last frame latent",
        positive=positive,
        negative=negative,
        vae=vae,
        start_image=start.out(0),
        end_image=end.out(0),
        width=s.width,
        height=s.height,
        length=s.frames,
        batch_size=1,
    )
    parts.two_stage_video(
        g, s, req, positive=latent.out(0), negative=latent.out(1), latent=latent.out(2), vae=vae
    )
    return parts.BuiltWorkflow(
        MODE, g.finalize(), s, {"image": req.image, "end_image": req.end_image}
    )
