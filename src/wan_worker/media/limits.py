"""The caps and URL policy that bound every user input, filled once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MediaKind = Literal["image", "audio"]
"""What an input is expected to be; picks the byte cap and the accepted data-URI types."""

MIB = 1024 * 1024


@dataclass(frozen=True)
class InputLimits:
    """Caps on input size, pixels and duration, where path inputs may live, and the URL policy.

    ``allow_private_networks`` lets URLs reach loopback, RFC 1918, CGNAT, ULA and link-local
    addresses (trusted deployments only); cloud metadata, multicast, unspecified and reserved
    addresses stay refused. ``allowed_origins`` lists exact ``scheme://host:port`` origins whose
    addresses are not vetted at all (test servers on 127.0.0.1); every other hop still is.
    """

    max_image_bytes: int = 25 * MIB
    max_audio_bytes: int = 50 * MIB
    max_pixels: int = 40_000_000
    max_audio_seconds: float = 120.0
    url_timeout_s: float = 30.0
    max_redirects: int = 5
    allowed_path_roots: tuple[Path, ...] = ()
    allow_private_networks: bool = False
    allowed_origins: tuple[str, ...] = ()

    def max_bytes(self, kind: MediaKind) -> int:
        """The byte cap for one input of this kind."""
        return self.max_image_bytes if kind == "image" else self.max_audio_bytes
