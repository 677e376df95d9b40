"""Make the sample inputs in ``samples/``: two pictures and a short speech-like clip.

Everything is drawn or synthesised here, deterministically, so the files can be regenerated
bit for bit (``python scripts/make_samples.py``; ``--check`` compares instead of writing):

- ``lighthouse.png``: a lighthouse on a cliff above the sea, by day (832x480).
- ``lighthouse-night.png``: the same scene at night, its lamp lit (the flf2v end frame).
- ``voice.wav``: 2.5 s of synthetic speech-like sound (16 kHz mono). No speech engine is used:
  glottal pulses with a falling-rising pitch are shaped by vowel formant resonators, in
  syllables with fricative noise between them. It sounds like a voice, but says nothing.
"""

from __future__ import annotations

import argparse
import io
import math
import struct
import sys
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image, ImageDraw

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
WIDTH, HEIGHT = 832, 480
SAMPLE_RATE = 16000
VOICE_SECONDS = 2.5

Colour = tuple[int, int, int]


def _blend(a: Colour, b: Colour, t: float) -> Colour:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def lighthouse(*, night: bool) -> Image.Image:
    """The lighthouse scene; at night the sky darkens, stars appear and the lamp shines."""
    sky_top, sky_low = ((12, 18, 48), (38, 52, 104)) if night else ((70, 140, 220), (186, 220, 245))
    sea_top, sea_low = ((16, 30, 64), (8, 16, 36)) if night else ((30, 110, 170), (18, 70, 120))
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    horizon = 300
    for y in range(horizon):
        draw.line([(0, y), (WIDTH, y)], fill=_blend(sky_top, sky_low, y / horizon))
    for y in range(horizon, HEIGHT):
        draw.line([(0, y), (WIDTH, y)], fill=_blend(sea_top, sea_low, (y - horizon) / 180))
    if night:
        for i in range(40):
            x, y = (i * 197 + 31) % WIDTH, (i * 89 + 7) % (horizon - 60)
            draw.ellipse((x, y, x + 2, y + 2), fill=(235, 235, 210))
        draw.ellipse((120, 50, 170, 100), fill=(240, 240, 220))
    else:
        draw.ellipse((110, 40, 190, 120), fill=(255, 236, 150))
        for cx, cy in ((330, 80), (610, 60)):
            for dx, dy, r in ((0, 0, 26), (30, -10, 32), (62, 2, 24)):
                draw.ellipse((cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r), "white")
    wave_colour = (40, 60, 100) if night else (150, 200, 230)
    for row in range(8):
        y = horizon + 14 + row * 22
        for x in range((row * 37) % 90, WIDTH, 90):
            draw.arc((x, y, x + 40, y + 12), 200, 340, fill=wave_colour, width=2)
    cliff = (40, 36, 44) if night else (96, 84, 72)
    grass = (24, 48, 30) if night else (70, 140, 60)
    draw.polygon(
        [(500, HEIGHT), (540, 300), (600, 262), (760, 250), (832, 270), (832, HEIGHT)], cliff
    )
    draw.polygon([(540, 300), (600, 262), (760, 250), (832, 270), (832, 280), (600, 274)], grass)
    base_y, top_y, x0, x1 = 262, 120, 640, 700
    for i, y in enumerate(range(top_y, base_y, 28)):
        shrink = (y - top_y) * 0.08
        band = (200, 40, 40) if i % 2 == 0 else (240, 240, 240)
        if night:
            band = _blend(band, (20, 20, 40), 0.55)
        lo = min(y + 28, base_y)
        draw.polygon(
            [
                (x0 + 8 - shrink, y),
                (x1 - 8 + shrink, y),
                (x1 - 8 + (lo - top_y) * 0.08, lo),
                (x0 + 8 - (lo - top_y) * 0.08, lo),
            ],
            band,
        )
    lamp = (255, 230, 120) if night else (200, 220, 230)
    draw.rectangle((x0 + 12, top_y - 30, x1 - 12, top_y), fill=lamp, outline=(30, 30, 30))
    draw.polygon([(x0 + 4, top_y - 30), (x1 - 4, top_y - 30), (670, top_y - 56)], (60, 60, 70))
    if night:
        draw.polygon([(x0 + 12, top_y - 22), (300, top_y - 70), (300, top_y + 10)], (120, 110, 70))
        draw.rectangle((x0 + 12, top_y - 30, x1 - 12, top_y), fill=lamp, outline=(30, 30, 30))
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


# -- a speech-like voice --------------------------------------------------------------------

# (F1, F2, F3) in Hz of the vowels the syllables use.
_VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
}
# (start s, end s, vowel, fricative before it): five syllables with pauses between words.
_SYLLABLES = (
    (0.10, 0.38, "e", True),
    (0.42, 0.70, "o", False),
    (0.86, 1.12, "a", True),
    (1.16, 1.46, "i", False),
    (1.62, 1.90, "u", True),
    (1.94, 2.32, "a", False),
)


class _Resonator:
    """A two-pole resonator (a formant) at ``freq`` Hz with ``bandwidth`` Hz."""

    def __init__(self, freq: float, bandwidth: float) -> None:
        r = math.exp(-math.pi * bandwidth / SAMPLE_RATE)
        self.a1 = 2 * r * math.cos(2 * math.pi * freq / SAMPLE_RATE)
        self.a2 = -r * r
        # Unity gain at the resonance, so every vowel is about as loud.
        self.gain = (1 - r) * math.sqrt(
            1 - 2 * r * math.cos(4 * math.pi * freq / SAMPLE_RATE) + r * r
        )
        self.y1 = self.y2 = 0.0

    def __call__(self, x: float) -> float:
        y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2
        self.y2, self.y1 = self.y1, y
        return y


def _formants(vowel: str) -> list[_Resonator]:
    return [_Resonator(f, bw) for f, bw in zip(_VOWELS[vowel], (90, 110, 170), strict=True)]


def _noise() -> Iterator[float]:
    """Deterministic white noise in [-1, 1] (a linear congruential generator)."""
    state = 12345
    while True:
        state = (1103515245 * state + 12345) % 2**31
        yield state / 2**30 - 1.0


def _envelope(t: float, start: float, end: float) -> float:
    """A syllable's loudness: quick rise, slow decay, zero outside it."""
    if not start <= t < end:
        return 0.0
    rise, fall = min(1.0, (t - start) / 0.03), min(1.0, (end - t) / 0.08)
    return rise * fall


def voice_samples() -> list[int]:
    """16-bit samples of the speech-like clip, its peak at half of full scale."""
    noise = _noise()
    total = int(VOICE_SECONDS * SAMPLE_RATE)
    phase = 0.0
    values: list[float] = []
    current = "a"
    formants = _formants(current)
    hiss = _Resonator(5200, 1800)
    for n in range(total):
        t = n / SAMPLE_RATE
        pitch = 150 + 25 * math.sin(2 * math.pi * t / VOICE_SECONDS) - 12 * t
        phase += pitch / SAMPLE_RATE
        phase -= math.floor(phase)
        # A Rosenberg-like glottal pulse: open for 60 % of the period.
        glottal = math.sin(math.pi * phase / 0.6) ** 2 if phase < 0.6 else 0.0
        voiced, fricative = 0.0, 0.0
        for start, end, vowel, has_fricative in _SYLLABLES:
            level = _envelope(t, start, end)
            if level:
                if vowel != current:
                    formants, current = _formants(vowel), vowel
                voiced = level * glottal
            if has_fricative:
                fricative += _envelope(t, start - 0.07, start + 0.01)
        shaped = sum(f(voiced) * w for f, w in zip(formants, (1.0, 0.6, 0.3), strict=True))
        value = shaped + 0.08 * fricative * hiss(next(noise))
        values.append(value)
    scale = 16384 / max(abs(v) for v in values)
    return [round(v * scale) for v in values]


def wav(samples: list[int]) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(SAMPLE_RATE)
        file.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


SAMPLES: dict[str, Callable[[], bytes]] = {
    "lighthouse.png": lambda: png(lighthouse(night=False)),
    "lighthouse-night.png": lambda: png(lighthouse(night=True)),
    "voice.wav": lambda: wav(voice_samples()),
}
"""File name in samples/ -> how to make its bytes."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=SAMPLES_DIR, help="where to write them")
    parser.add_argument("--check", action="store_true", help="compare with the files instead")
    args = parser.parse_args(argv)
    stale = []
    for name, make in SAMPLES.items():
        path = args.dir / name
        data = make()
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(name)
            continue
        args.dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{path} ({len(data)} bytes)")
    if stale:
        print(f"stale: {', '.join(stale)} (run scripts/make_samples.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
