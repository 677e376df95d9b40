"""5B text/image-to-video: one model, the WAN 2.2 VAE and ``Wan22ImageToVideoLatent``.

Source: ``video_wan2_2_5B_ti2v`` (0.2.11 = json 0.1.123). Without an image it is text-to-video
(the template's default, LoadImage bypassed); with one, the image becomes the first frame.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from wan_worker.workflows import parts
from wan_worker.workflows.graph import Graph
from wan_worker.workflows.params import Mode, SingleModelRequest, parse_request, resolve

MODE: Mode = "ti2v"


class Request(SingleModelRequest):
    """Text- or image-to-video with the 5B model (sizes on a 32-pixel grid, 24 fps)."""

    frames: int | None = Field(None, ge=1, le=16384, description="Length; rounded to 4n+1.")
    image: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Optional first frame in ComfyUI's input folder.",
    )

    @field_validator("image")
    @classmethod
    def _safe_image(cls, value: str | None) -> str | None:
        return None if value is None else parts.input_file_name(value)


def build(request: Request | dict[str, Any]) -> parts.BuiltWorkflow:
    req = parse_request(Request, request)
    s = resolve(req, MODE, high_model_role=False)
    g = Graph()
    model = parts.single_model(g, s, req.model)
    positive, negative = parts.text_encoding(g, s)
    vae = parts.vae_loader(g, s)
    start = None
    if req.image is not None:
        start = g.node("LoadImage", "start_image", title="Start image", image=req.image).out(0)
    latent = g.node(
        "Wan22ImageToVideoLatent",
        "video_latent",
        title="Video latent",
        vae=vae,
        start_image=start,
        width=s.width,
        height=s.height,
        length=s.frames,
        batch_size=1,
    )
    samples = parts.sample(
        g,
        s,
        "sampler",
        title="Sampling",
        model=model,
        positive=positive,
        negative=negative,
        latent=latent.out(0),
        seed=s.seed,
    )
    decoded = g.node("VAEDecode", "decode", title="Decode", samples=samples, vae=vae)
    parts.video_output(g, s, images=decoded.out(0))
    return parts.BuiltWorkflow(MODE, g.finalize(), s, {"image": req.image})
