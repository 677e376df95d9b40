"""Fetch and decode user inputs (images, audio) safely, and fit them to the request.

Inputs arrive as base64 (plain or data URI), an http(s) URL, or a path inside configured
folders; each is capped in bytes, pixels or seconds, and every error names the request field.
"""

from wan_worker.media.addresses import HostResolver, SystemResolver, classify_address
from wan_worker.media.audio import AudioInfo, load_audio, prepare_audio
from wan_worker.media.fetch import InputForm, InputSource, load_input
from wan_worker.media.images import (
    SIZE_TIERS,
    Fit,
    PreparedImage,
    derive_size,
    load_image,
    prepare_image,
    target_size,
)
from wan_worker.media.limits import InputLimits, MediaKind

__all__ = [
    "SIZE_TIERS",
    "AudioInfo",
    "Fit",
    "HostResolver",
    "InputForm",
    "InputLimits",
    "InputSource",
    "MediaKind",
    "PreparedImage",
    "SystemResolver",
    "classify_address",
    "derive_size",
    "load_audio",
    "load_image",
    "load_input",
    "prepare_audio",
    "prepare_image",
    "target_size",
]
