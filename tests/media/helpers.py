"""Helpers shared by the media tests: a name-to-address test resolver, limits, generated media."""

from __future__ import annotations

import functools
import io
import ipaddress
import math
import socket
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import av
from PIL import Image

from wan_worker.media.addresses import IPAddress
from wan_worker.media.limits import InputLimits

TEST_NAMES: dict[str, list[str]] = {
    "internal.test": ["10.0.0.5"],
    "router.test": ["192.168.1.1"],
    "corp.test": ["172.16.4.2"],
    "cgnat.test": ["100.64.0.1"],
    "ula.test": ["fd12:3456::1"],
    "metadata.test": ["169.254.169.254"],
    "metadata6.test": ["fd00:ec2::254"],
    "linklocal.test": ["169.254.10.1"],
    "linklocal6.test": ["fe80::1"],
    "loopback.test": ["127.0.0.1"],
    "loopback6.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "unspecified.test": ["0.0.0.0"],
    "multicast.test": ["224.0.0.1"],
    "mixed.test": ["127.0.0.1", "10.0.0.5"],
    "files.test": ["127.0.0.1"],
}


@dataclass
class MapResolver:
    """Answers from a fixed table and records every name it was asked; unknown names fail."""

    table: dict[str, list[str]] = field(default_factory=lambda: dict(TEST_NAMES))
    asked: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test name")
        return [ipaddress.ip_address(a) for a in self.table[host]]


def leftovers(folder: Path) -> list[str]:
    """Every entry under ``folder`` (hidden temporary files included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def small_limits(**overrides: object) -> InputLimits:
    """Small caps so oversize cases stay cheap; the URL policy stays strict unless overridden."""
    base: dict[str, object] = {
        "max_image_bytes": 200_000,
        "max_audio_bytes": 400_000,
        "max_pixels": 1_000_000,
        "max_audio_seconds": 2.0,
        "url_timeout_s": 5.0,
    }
    base.update(overrides)
    return InputLimits(**base)  # type: ignore[arg-type]


def png_bytes(
    size: tuple[int, int] = (64, 48), mode: str = "RGB", color: object = (200, 30, 30)
) -> bytes:
    """A solid-colour PNG of the given size and mode."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")  # type: ignore[arg-type]
    return buffer.getvalue()


@functools.cache
def _tone(rate: int, samples: int, channels: int) -> bytes:
    """Interleaved s16 samples of a 440 Hz tone (cached: tests ask for the same few)."""
    mono = [int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(samples)]
    return array("h", (v for v in mono for _ in range(channels))).tobytes()


def write_tone(
    path: Path,
    *,
    container: str,
    codec: str,
    seconds: float,
    rate: int = 44100,
    layout: str = "mono",
) -> Path:
    """Encode a 440 Hz tone with PyAV (it rechunks and converts frames for each encoder)."""
    channels = av.AudioLayout(layout).nb_channels
    total = int(seconds * rate)
    signal = _tone(rate, total, channels)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        step = 4096
        for start in range(0, total, step):
            count = min(step, total - start)
            frame = av.AudioFrame(format="s16", layout=layout, samples=count)
            frame.planes[0].update(signal[start * channels * 2 : (start + count) * channels * 2])
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
