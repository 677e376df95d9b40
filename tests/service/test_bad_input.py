"""Bad requests through the handler: each gets its specific error code, nothing is fetched
from a refused address, nothing reaches ComfyUI, and no file is left behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble

from .conftest import FileServer, b64, leftovers, png_bytes

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
IMAGE = b64(png_bytes())

CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    (
        "corrupt base64",
        {"action": "i2v", "image_base64": "@@not base64@@"},
        "invalid_input",
        "image_base64",
    ),
    (
        "not an image",
        {"action": "i2v", "image_base64": b64(b"plain text, no pixels")},
        "invalid_input",
        "image_base64",
    ),
    ("unknown action", {"action": "comfyui_v2v"}, "unsupported_action", "action"),
    ("missing action", {"prompt": "a fox"}, "invalid_input", "action"),
    ("steps below range", {"action": "t2v", "steps": 0}, "invalid_input", "steps"),
    ("cfg above range", {"action": "t2v", "cfg_scale": 500}, "invalid_input", "cfg"),
    (
        "split outside the steps",
        {"action": "t2v", "steps": 4, "split_step": 9},
        "invalid_input",
        "split_step",
    ),
    ("unknown parameter", {"action": "t2v", "colour": "red"}, "invalid_input", "colour"),
    ("image missing", {"action": "i2v"}, "invalid_input", "image_base64"),
    ("image for t2v", {"action": "t2v", "image_base64": IMAGE}, "invalid_input", "image_base64"),
    (
        "two forms of one image",
        {"action": "i2v", "image_base64": IMAGE, "image_url": "http://x.test/a.png"},
        "invalid_input",
        "image_base64",
    ),
    (
        "a file name instead of an input",
        {"action": "i2v", "image": "example.png"},
        "invalid_input",
        "image",
    ),
    (
        "unsupported audio",
        {"action": "s2v", "image_base64": IMAGE, "audio_base64": b64(b"RIFF....WAVEnope" * 8)},
        "invalid_input",
        "audio_base64",
    ),
    (
        "unknown fit",
        {"action": "i2v", "image_base64": IMAGE, "fit": "zoom"},
        "invalid_input",
        "fit",
    ),
    ("timeout over the limit", {"action": "t2v", "timeout_s": 10**6}, "invalid_input", "timeout_s"),
    (
        "path outside the allowed roots",
        {"action": "i2v", "image_path": "/etc/hostname"},
        "invalid_input",
        "image_path",
    ),
    (
        "raw file name with ..",
        {
            "workflow": {"1": {"class_type": "LoadImage", "inputs": {}}},
            "images": [{"name": "../x.png", "image": IMAGE}],
        },
        "invalid_input",
        "images.0.name",
    ),
]


@pytest.fixture
def nothing_left(settings: ServiceSettings, double: ComfyUIDouble) -> Callable[[], None]:
    """Checks that nothing reached ComfyUI and no file of the job is left."""

    def check() -> None:
        assert double.received_prompts == []
        assert leftovers(settings.work_dir) == []

    return check


@pytest.mark.parametrize(
    ("request_input", "code", "field"),
    [pytest.param(r, c, f, id=name) for name, r, c, f in CASES],
)
async def test_a_bad_request_gets_its_code_and_leaves_nothing(
    handler: Handler,
    nothing_left: Callable[[], None],
    request_input: dict[str, Any],
    code: str,
    field: str | None,
) -> None:
    out = await handler({"id": "bad-input", "input": request_input})
    assert out["error_code"] == code, out
    assert out["error"].startswith(f"{code}: ")
    assert out["details"].get("field") == field, out
    assert set(out) == {"error", "error_code", "details"}
    nothing_left()


@pytest.mark.parametrize("host", ["internal.test", "metadata.test", "10.1.2.3", "[::1]"])
async def test_a_private_url_is_refused_before_anything_is_fetched(
    handler: Handler,
    nothing_left: Callable[[], None],
    file_server: FileServer,
    host: str,
) -> None:
    url = f"http://{host}:{file_server.port}/files/start.png"
    file_server.files["start.png"] = png_bytes()
    out = await handler({"id": "ssrf", "input": {"action": "i2v", "image_url": url}})
    assert out["error_code"] == "invalid_input", out
    assert "address" in out["error"]
    assert out["details"]["field"] == "image_url"
    assert file_server.requests == []
    nothing_left()


async def test_a_path_input_is_read_but_never_moved(
    handler: Handler, allowed_root: Path, settings: ServiceSettings
) -> None:
    source = allowed_root / "photo.png"
    source.write_bytes(png_bytes())
    out = await handler(
        {"id": "path", "input": {"action": "i2v", "image_path": str(source), "frames": 5}}
    )
    assert "error" not in out, out
    assert source.read_bytes() == png_bytes()
    assert leftovers(settings.work_dir) == []
