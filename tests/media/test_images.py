"""Image decoding under the pixel cap, orientation, flattening, fitting and size derivation."""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from wan_worker.errors import WanWorkerError
from wan_worker.media import (
    SIZE_TIERS,
    Fit,
    InputSource,
    derive_size,
    load_image,
    prepare_image,
    target_size,
)
from wan_worker.media.images import ASPECT_TOLERANCE, MAX_DERIVED_ASPECT

from .helpers import leftovers, png_bytes, small_limits

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but which carries no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def near(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def prepared(raw: Path, out: Path, **options: object) -> Image.Image:
    result = prepare_image(raw, field="image", limits=small_limits(), dest_dir=out, **options)  # type: ignore[arg-type]
    with Image.open(result.path) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == (result.width, result.height)
        image.load()
        return image.copy()


# ---------------------------------------------------------------------------- derive_size


@pytest.mark.parametrize(
    ("aspect", "budget", "grid", "size"),
    [
        ((16, 9), "480p", 16, (832, 480)),
        ((9, 16), "480p", 16, (480, 832)),
        ((16, 9), "720p", 16, (1280, 720)),
        ((16, 9), "720p", 32, (1280, 704)),
        ((1, 1), "720p", 16, (960, 960)),
        ((1, 1), "720p", 32, (960, 960)),
        ((3, 2), "480p", 16, (768, 512)),
    ],
)
def test_common_aspects_get_the_familiar_wan_sizes(
    aspect: tuple[int, int], budget: str, grid: int, size: tuple[int, int]
) -> None:
    assert derive_size(*aspect, budget_pixels=SIZE_TIERS[budget], grid=grid) == size


@given(
    aspect_w=st.integers(1, 20_000),
    aspect_h=st.integers(1, 20_000),
    budget=st.integers(256, 4_000_000),
    grid=st.sampled_from([8, 16, 32, 64]),
)
def test_derived_sizes_sit_on_the_grid_within_the_budget(
    aspect_w: int, aspect_h: int, budget: int, grid: int
) -> None:
    if budget < grid * grid:
        with pytest.raises(ValueError):
            derive_size(aspect_w, aspect_h, budget_pixels=budget, grid=grid)
        return
    width, height = derive_size(aspect_w, aspect_h, budget_pixels=budget, grid=grid)
    assert width % grid == 0 and height % grid == 0
    assert width >= grid and height >= grid
    assert width * height <= budget


@given(
    log_aspect=st.floats(-math.log(4), math.log(4)),
    tier=st.sampled_from(sorted(SIZE_TIERS)),
    grid=st.sampled_from([16, 32]),
)
def test_derived_sizes_keep_the_aspect_and_use_most_of_the_budget(
    log_aspect: float, tier: str, grid: int
) -> None:
    budget = SIZE_TIERS[tier]
    width, height = derive_size(math.exp(log_aspect), 1, budget_pixels=budget, grid=grid)
    assert abs(math.log(width / height) - log_aspect) <= ASPECT_TOLERANCE + 1e-9
    assert width * height >= 0.8 * budget


@pytest.mark.parametrize(("aspect_w", "aspect_h"), [(100, 1), (1, 100), (20_000, 3)])
def test_an_extreme_aspect_is_clamped_to_four_to_one(aspect_w: int, aspect_h: int) -> None:
    width, height = derive_size(aspect_w, aspect_h, budget_pixels=SIZE_TIERS["480p"], grid=16)
    assert max(width, height) / min(width, height) <= MAX_DERIVED_ASPECT * math.exp(
        ASPECT_TOLERANCE
    )
    assert width * height >= 0.8 * SIZE_TIERS["480p"]


@pytest.mark.parametrize(
    ("aspect_w", "aspect_h", "budget", "grid"),
    [(0, 1, 1000, 16), (1, -1, 1000, 16), (1, 1, 1000, 0), (1, 1, 100, 16)],
)
def test_derive_size_refuses_impossible_arguments(
    aspect_w: int, aspect_h: int, budget: int, grid: int
) -> None:
    with pytest.raises(ValueError):
        derive_size(aspect_w, aspect_h, budget_pixels=budget, grid=grid)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(640, 480, (640, 480)), (640, None, (640, 320)), (None, 320, (640, 320))],
)
def test_a_missing_side_follows_the_image_aspect(
    width: int | None, height: int | None, expected: tuple[int, int]
) -> None:
    got = target_size(2000, 1000, width=width, height=height, budget_pixels=10**6, grid=16)
    assert got == expected


# ---------------------------------------------------------------------------- fitting


@pytest.mark.parametrize("fit", ["cover", "contain", "stretch"])
@pytest.mark.parametrize("source", [(300, 200), (200, 300), (50, 50), (1000, 90)])
@pytest.mark.parametrize("size", [(64, 48), (48, 64), (32, 32)])
def test_every_fit_mode_gives_the_exact_size(
    fit: Fit, source: tuple[int, int], size: tuple[int, int], tmp_path: Path
) -> None:
    raw = write(tmp_path, "in.png", png_bytes(source))
    image = prepared(raw, tmp_path / "out", width=size[0], height=size[1], fit=fit)
    assert image.size == size


def three_bands() -> Image.Image:
    """200x100: a green quarter, a red half, a blue quarter, left to right."""
    image = Image.new("RGB", (200, 100), RED)
    image.paste(GREEN, (0, 0, 50, 100))
    image.paste(BLUE, (150, 0, 200, 100))
    return image


def test_cover_centre_crops(tmp_path: Path) -> None:
    raw = write(tmp_path, "in.png", encode(three_bands()))
    image = prepared(raw, tmp_path / "out", width=96, height=96, fit="cover")
    assert near(image.getpixel((2, 48)), RED) and near(image.getpixel((93, 48)), RED)


def test_contain_letterboxes_with_black_bars(tmp_path: Path) -> None:
    raw = write(tmp_path, "in.png", encode(three_bands()))
    image = prepared(raw, tmp_path / "out", width=96, height=96, fit="contain")
    assert image.getpixel((48, 2)) == BLACK and image.getpixel((48, 93)) == BLACK
    assert near(image.getpixel((2, 48)), GREEN) and near(image.getpixel((93, 48)), BLUE)


def test_stretch_keeps_everything_and_distorts(tmp_path: Path) -> None:
    raw = write(tmp_path, "in.png", encode(three_bands()))
    image = prepared(raw, tmp_path / "out", width=96, height=96, fit="stretch")
    assert near(image.getpixel((5, 2)), GREEN) and near(image.getpixel((90, 93)), BLUE)


def test_without_a_size_the_image_aspect_picks_one_within_the_tier(tmp_path: Path) -> None:
    raw = write(tmp_path, "in.png", png_bytes((1600, 900)))
    result = prepare_image(
        raw, field="image", limits=small_limits(max_pixels=2_000_000), dest_dir=tmp_path / "out"
    )
    assert (result.width, result.height) == (832, 480)
    assert (result.source_width, result.source_height) == (1600, 900)


# ---------------------------------------------------------------------------- decoding


def test_exif_rotated_jpegs_come_out_upright(tmp_path: Path) -> None:
    # Stored 80x40 with red on the left and blue on the right; orientation 6 says "rotate 90°
    # clockwise to view", so upright it is 40x80 with red on top.
    stored = Image.new("RGB", (80, 40), RED)
    stored.paste(BLUE, (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = write(tmp_path, "in.jpg", encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    result = prepare_image(raw, field="image", limits=small_limits(), dest_dir=tmp_path / "out")
    assert (result.source_width, result.source_height) == (40, 80)
    with Image.open(result.path) as image:
        top = image.getpixel((image.width // 2, 2))
        bottom = image.getpixel((image.width // 2, image.height - 3))
    assert near(top, RED) and near(bottom, BLUE)


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("RGBA", (255, 0, 0, 0), WHITE),
        ("RGBA", (0, 0, 255, 255), BLUE),
        ("RGBA", (255, 0, 0, 128), (255, 127, 127)),
        ("LA", (0, 0), WHITE),
        ("LA", (0, 255), BLACK),
    ],
)
def test_transparency_is_flattened_onto_white(
    mode: str, colour: tuple[int, ...], expected: tuple[int, int, int], tmp_path: Path
) -> None:
    raw = write(tmp_path, "in.png", png_bytes((32, 32), mode, colour))
    image = prepared(raw, tmp_path / "out", width=32, height=32)
    assert near(image.getpixel((16, 16)), expected, tolerance=2)


def test_palette_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    raw = write(tmp_path, "in.png", encode(palette, transparency=0))
    image = prepared(raw, tmp_path / "out", width=32, height=32)
    assert image.getpixel((16, 16)) == WHITE


@pytest.mark.parametrize(
    ("image", "fmt", "expected"),
    [
        (Image.new("I;16", (32, 32), 0x8080), "PNG", (128, 128, 128)),
        (Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", RED),
        (Image.new("L", (32, 32), 200), "WEBP", (200, 200, 200)),
        (Image.new("RGB", (32, 32), GREEN), "BMP", GREEN),
        (Image.new("RGB", (32, 32), BLUE), "TIFF", BLUE),
    ],
)
def test_other_modes_and_formats_become_rgb(
    image: Image.Image, fmt: str, expected: tuple[int, int, int], tmp_path: Path
) -> None:
    raw = write(tmp_path, "in.bin", encode(image, fmt))
    assert near(prepared(raw, tmp_path / "out", width=32, height=32).getpixel((5, 5)), expected)


def test_animated_gifs_give_their_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in (RED, BLUE)]
    raw = write(
        tmp_path, "in.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    )
    assert near(prepared(raw, tmp_path / "out", width=32, height=32).getpixel((5, 5)), RED)


def _bad_images() -> dict[str, bytes]:
    good = png_bytes((64, 64))
    corrupt = bytearray(good)
    corrupt[60:80] = b"\xff" * 20
    jpeg = encode(Image.new("RGB", (64, 64), RED), "JPEG")
    return {
        "text": b"hello, this is not an image",
        "empty": b"",
        "html": b"<!doctype html><html><body>404</body></html>",
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "ico": encode(Image.new("RGB", (32, 32), RED), "ICO"),
        "truncated png": good[: len(good) // 2],
        "png signature only": good[:8],
        "corrupt png": bytes(corrupt),
        "truncated jpeg": jpeg[: len(jpeg) // 2],
        "wav": b"RIFF$\x00\x00\x00WAVEfmt " + b"\x00" * 32,
    }


@pytest.mark.parametrize("case", sorted(_bad_images()))
def test_things_that_are_not_readable_images_are_invalid_input(
    case: str, tmp_path: Path, no_pillow_warnings: None
) -> None:
    raw = write(tmp_path, "in.bin", _bad_images()[case])
    out = tmp_path / "out"
    with pytest.raises(WanWorkerError) as caught:
        prepare_image(raw, field="image", limits=small_limits(), dest_dir=out)
    assert caught.value.code == "invalid_input"
    assert caught.value.problems[0].field == "image"
    assert not out.exists() or leftovers(out) == []


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(png_header_only(100_000, 100_000), id="header claims 10 gigapixels"),
        pytest.param(png_header_only(10_000, 10_000), id="header claims 100 megapixels"),
        pytest.param(png_header_only(2_000, 1_000), id="header claims just over the cap"),
        pytest.param(png_bytes((2_000, 1_000)), id="small file decoding to 2 megapixels"),
    ],
)
def test_images_over_the_pixel_cap_are_too_large_without_decoding(
    data: bytes, tmp_path: Path, no_pillow_warnings: None
) -> None:
    assert len(data) < 20_000
    raw = write(tmp_path, "in.png", data)
    out = tmp_path / "out"
    with pytest.raises(WanWorkerError) as caught:
        prepare_image(raw, field="image", limits=small_limits(), dest_dir=out)
    assert caught.value.code == "input_too_large"
    assert caught.value.problems[0].field == "image"
    assert caught.value.details["max_pixels"] == 1_000_000
    assert not out.exists() or leftovers(out) == []


# ---------------------------------------------------------------------------- the whole step


async def test_loading_an_image_leaves_only_the_png(tmp_path: Path) -> None:
    value = base64.b64encode(png_bytes((300, 200))).decode()
    result = await load_image(
        InputSource("base64", value),
        field="image_base64",
        limits=small_limits(),
        dest_dir=tmp_path,
        width=96,
        height=64,
    )
    assert leftovers(tmp_path) == [result.path.name]
    assert result.path.suffix == ".png"
    assert (result.width, result.height) == (96, 64)


async def test_a_failed_image_leaves_nothing(tmp_path: Path) -> None:
    value = base64.b64encode(b"definitely not an image").decode()
    with pytest.raises(WanWorkerError) as caught:
        await load_image(
            InputSource("base64", value),
            field="end_image_base64",
            limits=small_limits(),
            dest_dir=tmp_path,
        )
    assert caught.value.code == "invalid_input"
    assert str(caught.value).startswith("invalid_input: end_image_base64 ")
    assert leftovers(tmp_path) == []


def test_a_requested_size_over_the_pixel_cap_is_refused(tmp_path: Path) -> None:
    raw = write(tmp_path, "in.png", png_bytes((64, 64)))
    out = tmp_path / "out"
    with pytest.raises(WanWorkerError) as caught:
        prepare_image(
            raw, field="image", limits=small_limits(), dest_dir=out, width=2048, height=1024
        )
    assert caught.value.code == "invalid_input"
    assert caught.value.problems[0].rule == "max_pixels"
    assert not out.exists() or leftovers(out) == []
