"""Decode a user image safely and fit it to the video size, as an upright RGB PNG.

Decoding is capped in pixels before any pixel data is read, so a small file that claims or
unpacks to a huge canvas is refused instead of exhausting memory. Transparent areas are
flattened onto white; ``contain`` letterboxes with black bars.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps

from wan_worker.errors import InputTooLarge, InvalidInput, Problem
from wan_worker.media.addresses import HostResolver
from wan_worker.media.fetch import InputSource, load_input
from wan_worker.media.files import discard, new_name, temp_name
from wan_worker.media.limits import InputLimits

Fit = Literal["cover", "contain", "stretch"]
"""cover: scale to cover, centre-crop; contain: scale to fit, black bars; stretch: ignore aspect."""

SIZE_TIERS: dict[str, int] = {"480p": 832 * 480, "720p": 1280 * 720}
"""Pixel budgets for sizes derived from an image's aspect ratio."""

ASPECT_TOLERANCE = 0.03
"""How far (in log ratio, about 3 %) a derived size's aspect may drift to use more of the budget."""

MAX_DERIVED_ASPECT = 4.0
"""A derived size is never wider than 4:1 or taller than 1:4; a more extreme picture is cropped
(cover) or padded (contain) to that, rather than becoming a thin strip the model cannot fill."""

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
"""The decoders an input may reach (JPEG includes MPO); exotic ones (EPS, PSD, ...) are refused."""

BACKGROUND = (255, 255, 255)
LETTERBOX = (0, 0, 0)

# Pillow warns through the process-wide warnings filter for large images; our own pixel cap
# decides instead, and the lock keeps concurrent decodes from racing on that filter.
_PILLOW_WARNINGS = threading.Lock()


@dataclass(frozen=True)
class PreparedImage:
    """The PNG handed to ComfyUI, its exact size, and the size the user sent."""

    path: Path
    width: int
    height: int
    source_width: int
    source_height: int


def derive_size(
    aspect_w: float, aspect_h: float, *, budget_pixels: int, grid: int
) -> tuple[int, int]:
    """The largest grid-aligned (width, height) within ``budget_pixels`` close to the aspect.

    Among sizes whose aspect is within ``ASPECT_TOLERANCE`` the largest area wins (ties: the
    closer aspect); aspects too extreme for any such size get the short side at ``grid``.
    The aspect is first clamped to ``MAX_DERIVED_ASPECT`` either way.
    """
    if aspect_w <= 0 or aspect_h <= 0 or grid <= 0:
        raise ValueError("aspect and grid must be positive")
    if budget_pixels < grid * grid:
        raise ValueError(f"a budget of {budget_pixels} pixels cannot hold one {grid}x{grid} cell")
    aspect = min(max(aspect_w / aspect_h, 1 / MAX_DERIVED_ASPECT), MAX_DERIVED_ASPECT)
    lowest, highest = aspect * math.exp(-ASPECT_TOLERANCE), aspect * math.exp(ASPECT_TOLERANCE)
    best: tuple[tuple[int, float], tuple[int, int]] | None = None
    for height in range(grid, budget_pixels // grid + 1, grid):
        widest = budget_pixels // height // grid * grid
        width = min(widest, math.floor(height * highest / grid) * grid)
        if width < grid or width < height * lowest:
            continue
        key = (width * height, -abs(math.log(width / height / aspect)))
        if best is None or key > best[0]:
            best = (key, (width, height))
    if best is not None:
        return best[1]
    longest = budget_pixels // grid // grid * grid
    if aspect >= 1:
        return min(longest, max(grid, round(grid * aspect / grid) * grid)), grid
    return grid, min(longest, max(grid, round(grid / aspect / grid) * grid))


def target_size(
    source_width: int,
    source_height: int,
    *,
    width: int | None,
    height: int | None,
    budget_pixels: int,
    grid: int,
) -> tuple[int, int]:
    """The output size: as requested, or the missing sides derived from the image's aspect."""
    if width is not None and height is not None:
        return width, height
    if width is not None:
        return width, max(grid, round(width * source_height / source_width / grid) * grid)
    if height is not None:
        return max(grid, round(height * source_width / source_height / grid) * grid), height
    return derive_size(source_width, source_height, budget_pixels=budget_pixels, grid=grid)


def _too_large(field: str, message: str, max_pixels: int) -> InputTooLarge:
    return InputTooLarge(
        f"{field} {message}",
        problems=[Problem(message=message, field=field, rule="max_pixels")],
        details={"max_pixels": max_pixels},
    )


def _not_an_image(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field} {message}", problems=[Problem(message, field=field, rule="image")]
    )


@functools.cache
def _decoders() -> tuple[str, ...]:
    """The allowed formats this Pillow build can open (WebP, for one, is optional)."""
    Image.init()
    return tuple(name for name in IMAGE_FORMATS if name in Image.OPEN)


def decode_image(path: Path, *, field: str, max_pixels: int) -> Image.Image:
    """Open, verify and fully decode an image: upright (EXIF), alpha flattened, RGB."""
    formats = ", ".join(_decoders())
    try:
        with _PILLOW_WARNINGS, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=_decoders())
    except Image.DecompressionBombError:
        raise _too_large(field, "has far too many pixels", max_pixels) from None
    except Exception:  # any decoder failure on untrusted bytes means "not an image we read"
        raise _not_an_image(field, f"is not an image in a supported format ({formats})") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            message = f"is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
            raise _too_large(field, message, max_pixels)
        try:
            image.load()
            return _flatten_to_rgb(ImageOps.exif_transpose(image))
        except Exception:  # truncated or corrupt pixel data, broken EXIF
            raise _not_an_image(field, "is truncated or corrupt") from None


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels: 16-bit grey scaled down, transparency composited onto ``BACKGROUND``."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def fit_image(image: Image.Image, width: int, height: int, fit: Fit) -> Image.Image:
    """Exactly ``width`` x ``height`` pixels, reached the way ``fit`` says."""
    if image.size == (width, height):
        return image
    resample = Image.Resampling.LANCZOS
    if fit == "stretch":
        return image.resize((width, height), resample)
    if fit == "contain":
        return ImageOps.pad(image, (width, height), method=resample, color=LETTERBOX)
    return ImageOps.fit(image, (width, height), method=resample)


def write_png(image: Image.Image, final: Path) -> Path:
    """Save as PNG under a temporary name, then rename into place."""
    temp = temp_name(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        image.save(temp, format="PNG", compress_level=1)
        os.replace(temp, final)
    finally:
        discard(temp)
    return final


def prepare_image(
    raw: Path,
    *,
    field: str,
    limits: InputLimits,
    dest_dir: Path,
    width: int | None = None,
    height: int | None = None,
    budget_pixels: int = SIZE_TIERS["480p"],
    grid: int = 16,
    fit: Fit = "cover",
) -> PreparedImage:
    """Decode ``raw`` and write the fitted PNG into ``dest_dir`` (blocking; CPU-bound)."""
    image = decode_image(raw, field=field, max_pixels=limits.max_pixels)
    source_width, source_height = image.size
    size = target_size(
        source_width,
        source_height,
        width=width,
        height=height,
        budget_pixels=budget_pixels,
        grid=grid,
    )
    if size[0] * size[1] > limits.max_pixels:
        message = f"would be fitted to {size[0]}x{size[1]}, more than {limits.max_pixels} pixels"
        problem = Problem(message, field=field, rule="max_pixels")
        raise InvalidInput(f"{field} {message}", problems=[problem])
    path = write_png(fit_image(image, *size, fit), new_name(dest_dir, field, ".png"))
    return PreparedImage(path, size[0], size[1], source_width, source_height)


async def load_image(
    source: InputSource,
    *,
    field: str,
    limits: InputLimits,
    dest_dir: Path,
    width: int | None = None,
    height: int | None = None,
    budget_pixels: int = SIZE_TIERS["480p"],
    grid: int = 16,
    fit: Fit = "cover",
    resolver: HostResolver | None = None,
) -> PreparedImage:
    """Fetch an image input and prepare it; only the PNG remains in ``dest_dir``."""
    raw = await load_input(
        source, field=field, kind="image", limits=limits, dest_dir=dest_dir, resolver=resolver
    )
    try:
        return await asyncio.to_thread(
            prepare_image,
            raw,
            field=field,
            limits=limits,
            dest_dir=dest_dir,
            width=width,
            height=height,
            budget_pixels=budget_pixels,
            grid=grid,
            fit=fit,
        )
    finally:
        discard(raw)
