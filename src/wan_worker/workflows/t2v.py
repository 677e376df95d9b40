"""14B text-to-video: ``EmptyHunyuanLatentVideo`` on the high/low-noise T2V pair.

Source: ``video_wan2_2_14B_t2v`` (classic 0.2.11 LightX2V group; json 0.1.123 subgraph, LoRA off).
"""

from __future__ import annotations

from typing import Any

from wan_worker.workflows import parts
from wan_worker.workflows.graph import Graph
from wan_worker.workflows.params import Mode, TwoStageRequest, parse_request, resolve

MODE: Mode = "t2v"


class Request(TwoStageRequest):
    """Text-to-video with the 14B model."""


def build(request: Request | dict[str, Any]) -> parts.BuiltWorkflow:
    req = parse_request(Request, request)
    s = resolve(req, MODE)
    g = Graph()
    positive, negative = parts.text_encoding(g, s)
    vae = parts.vae_loader(g, s)
    latent = g.node(
        "EmptyHunyuanLatentVideo",
        "empty_latent",
        title="Empty video latent",
        width=s.width,
        height=s.height,
        length=s.frames,
        batch_size=1,
    )
    parts.two_stage_video(
        g, s, req, positive=positive, negative=negative, latent=latent.out(0), vae=vae
    )
    return parts.BuiltWorkflow(MODE, g.finalize(), s, {})
