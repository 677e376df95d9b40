"""More bad requests through the RunPod handler, end to end: hostile images and audio, URLs that
reach refused addresses directly or by redirect, wrong types, out-of-range values and raw graphs.

Each case asserts the specific error code and field, that nothing reached ComfyUI and that the
job left no file behind. Refused addresses come from the test resolver; the only servers that
exist are on 127.0.0.1 and record every request they get.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from tests.media.helpers import TEST_NAMES
from wan_worker.service import ServiceSettings
from wan_worker.testing import ComfyUIDouble

from .conftest import FileServer, MapResolver, b64, leftovers, new_worker, png_bytes, wav_bytes

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
IMAGE = b64(png_bytes())


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` over a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def bilevel_bomb(side: int = 9000) -> bytes:
    """A real, valid PNG of side x side pixels that compresses to about ten kilobytes."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


def raw(workflow: Any, **extra: Any) -> dict[str, Any]:
    return {"workflow": workflow, **extra}


def raw_image(name: str, image: str = IMAGE) -> dict[str, Any]:
    """A raw graph loading one uploaded image called ``name``."""
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": name}}}
    return raw(graph, images=[{"name": name, "image": image}])


def case(name: str, request_input: dict[str, Any], code: str, field: str | None) -> Any:
    return pytest.param(request_input, code, field, id=name)


# (name, request input, error code, field at fault)
CASES: list[Any] = [
    # hostile or broken pictures
    case(
        "header claims 100000x100000 pixels",
        {"action": "i2v", "image_base64": b64(png_claiming(100_000, 100_000))},
        "input_too_large",
        "image_base64",
    ),
    case(
        "decompression bomb (81 megapixels in 10 kB)",
        {"action": "i2v", "image_base64": b64(bilevel_bomb())},
        "input_too_large",
        "image_base64",
    ),
    case(
        "truncated PNG",
        {"action": "i2v", "image_base64": b64(png_bytes()[:60])},
        "invalid_input",
        "image_base64",
    ),
    case(
        "empty data URI",
        {"action": "i2v", "image_base64": "data:image/png;base64,"},
        "invalid_input",
        "image_base64",
    ),
    case(
        "audio where the end image goes",
        {"action": "flf2v", "image_base64": IMAGE, "end_image_base64": b64(wav_bytes(0.5))},
        "invalid_input",
        "end_image_base64",
    ),
    case(
        "an image where the audio goes",
        {"action": "s2v", "image_base64": IMAGE, "audio_base64": IMAGE},
        "invalid_input",
        "audio_base64",
    ),
    case(
        "audio longer than the cap",
        {"action": "s2v", "image_base64": IMAGE, "audio_base64": b64(wav_bytes(125, rate=800))},
        "input_too_large",
        "audio_base64",
    ),
    case(
        "audio longer than s2v renders (24 chunks)",
        {"action": "s2v", "image_base64": IMAGE, "audio_base64": b64(wav_bytes(119.5, rate=800))},
        "invalid_input",
        "audio_base64",
    ),
    # URLs that are not http(s)
    case(
        "file:// URL",
        {"action": "i2v", "image_url": "file:///etc/passwd"},
        "invalid_input",
        "image_url",
    ),
    case(
        "ftp URL",
        {"action": "i2v", "image_url": "ftp://files.test/a.png"},
        "invalid_input",
        "image_url",
    ),
    case(
        "gopher URL for the audio",
        {"action": "s2v", "image_base64": IMAGE, "audio_url": "gopher://x.test/1"},
        "invalid_input",
        "audio_url",
    ),
    case(
        "not a URL at all",
        {"action": "i2v", "image_url": "photo.png"},
        "invalid_input",
        "image_url",
    ),
    # paths
    case(
        "path traversal out of the allowed root",
        {"action": "i2v", "image_path": "{root}/../../etc/hostname"},
        "invalid_input",
        "image_path",
    ),
    case(
        "a file the allowed root does not have",
        {"action": "i2v", "image_path": "{root}/missing.png"},
        "input_fetch_failed",
        "image_path",
    ),
    # wrong types
    case("steps as text", {"action": "t2v", "steps": "four"}, "invalid_input", "steps"),
    case("prompt as a number", {"action": "t2v", "prompt": 42}, "invalid_input", "prompt"),
    case("width as a list", {"action": "t2v", "width": [640]}, "invalid_input", "width"),
    case(
        "image as a number",
        {"action": "i2v", "image_base64": 12345},
        "invalid_input",
        "image_base64",
    ),
    case("use_lora as text", {"action": "t2v", "use_lora": "yes"}, "invalid_input", "use_lora"),
    case(
        "loras as a string",
        {"action": "t2v", "loras": "style.safetensors"},
        "invalid_input",
        "loras",
    ),
    case("action as a number", {"action": 7}, "unsupported_action", "action"),
    # out of range
    case("zero frames", {"action": "t2v", "frames": 0}, "invalid_input", "frames"),
    case("negative fps", {"action": "t2v", "fps": -5}, "invalid_input", "fps"),
    case("width far too large", {"action": "t2v", "width": 100_000}, "invalid_input", "width"),
    case("seed beyond 64 bits", {"action": "t2v", "seed": 2**70}, "invalid_input", "seed"),
    case(
        "too many s2v chunks",
        {
            "action": "s2v",
            "image_base64": IMAGE,
            "audio_base64": b64(wav_bytes(0.5)),
            "chunks": 500,
        },
        "invalid_input",
        "chunks",
    ),
    case(
        "prompt over the length cap",
        {"action": "t2v", "prompt": "a" * 100_000},
        "invalid_input",
        "prompt",
    ),
    case("negative timeout", {"action": "t2v", "timeout_s": -1}, "invalid_input", "timeout_s"),
    case(
        "filename prefix escaping the output folder",
        {"action": "t2v", "filename_prefix": "../../etc/cron"},
        "invalid_input",
        "filename_prefix",
    ),
    case(
        "half an s3Config",
        {"action": "t2v", "s3Config": {"accessId": "a"}},
        "invalid_input",
        "s3Config.accessSecret",
    ),
    # upload destinations are user URLs too
    case(
        "upload_url on a name that resolves to a private address",
        {"action": "t2v", "upload_url": "http://internal.test/put?sig=x"},
        "invalid_input",
        "upload_url",
    ),
    case(
        "upload_url on the metadata address",
        {"action": "t2v", "upload_url": "http://metadata.test/latest"},
        "invalid_input",
        "upload_url",
    ),
    case(
        "upload_url with a file scheme",
        {"action": "t2v", "upload_url": "file:///tmp/out.mp4"},
        "invalid_input",
        "upload_url",
    ),
    case(
        "s3Config endpoint on a link-local address",
        {
            "action": "t2v",
            "s3Config": {
                "accessId": "a",
                "accessSecret": "b",
                "bucketName": "c",
                "endpointUrl": "http://linklocal.test:9000",
            },
        },
        "invalid_input",
        "s3Config.endpointUrl",
    ),
    # raw graphs
    case(
        "raw graph with an unknown node",
        raw({"1": {"class_type": "DefinitelyNotANode", "inputs": {}}}),
        "missing_nodes",
        None,
    ),
    case("raw graph that is a list", raw([1, 2, 3]), "invalid_input", "workflow"),
    case("empty raw graph", raw({}), "invalid_input", "workflow"),
    case(
        "raw file name that is an absolute path",
        raw(
            {"1": {"class_type": "LoadImage", "inputs": {}}},
            images=[{"name": "/etc/x.png", "image": IMAGE}],
        ),
        "invalid_input",
        "images.0.name",
    ),
    case(
        "raw file name with a backslash",
        raw(
            {"1": {"class_type": "LoadImage", "inputs": {}}},
            images=[{"name": "..\\x.png", "image": IMAGE}],
        ),
        "invalid_input",
        "images.0.name",
    ),
    case(
        "raw image that is not base64",
        raw(
            {"1": {"class_type": "LoadImage", "inputs": {}}},
            images=[{"name": "a.png", "image": "%%%"}],
        ),
        "invalid_input",
        "images.0.image",
    ),
]


@dataclass
class Recorder:
    """A loopback server that answers every request with a redirect to ``target``."""

    port: int
    requests: list[str] = field(default_factory=list)
    target: str = ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def redirector() -> AsyncIterator[Recorder]:
    recorder = Recorder(port=0)

    async def redirect(request: web.Request) -> web.Response:
        recorder.requests.append(request.path)
        raise web.HTTPFound(recorder.target)

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.port = int(runner.addresses[0][1])
    yield recorder
    await runner.cleanup()


@pytest.fixture
def nothing_left(settings: ServiceSettings, double: ComfyUIDouble) -> Callable[[], None]:
    def check() -> None:
        assert double.received_prompts == []
        assert leftovers(settings.work_dir) == []

    return check


def _with_root(request_input: dict[str, Any], root: str) -> dict[str, Any]:
    return {
        k: v.replace("{root}", root) if isinstance(v, str) else v for k, v in request_input.items()
    }


@pytest.fixture
def ask(
    handler: Handler, allowed_root: Any
) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """Sends a request through the handler, ``{root}`` standing for the allowed input folder."""

    async def send(request_input: dict[str, Any]) -> dict[str, Any]:
        return await handler(
            {"id": "hostile", "input": _with_root(request_input, str(allowed_root))}
        )

    return send


@pytest.mark.parametrize(("request_input", "code", "field"), CASES)
async def test_a_hostile_request_gets_its_code_and_leaves_nothing(
    ask: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    nothing_left: Callable[[], None],
    request_input: dict[str, Any],
    code: str,
    field: str | None,
) -> None:
    out = await ask(request_input)
    assert out.get("error_code") == code, out
    assert out["error"].startswith(f"{code}: ")
    assert out["details"].get("field") == field, out
    nothing_left()


@pytest.mark.parametrize(
    "host",
    ["linklocal6.test", "cgnat.test", "mapped.test", "unspecified.test", "ula.test"],
)
async def test_a_name_that_resolves_to_a_refused_address_is_never_fetched(
    handler: Handler,
    resolver: MapResolver,
    nothing_left: Callable[[], None],
    file_server: FileServer,
    host: str,
) -> None:
    out = await handler(
        {"id": "ssrf", "input": {"action": "i2v", "image_url": f"http://{host}/a.png"}}
    )
    assert out["error_code"] == "invalid_input", out
    assert out["details"]["field"] == "image_url"
    assert host in resolver.asked
    assert file_server.requests == []
    nothing_left()


@pytest.mark.parametrize("target_host", ["internal.test", "metadata.test", "loopback.test"])
async def test_a_redirect_to_a_refused_address_is_not_followed(
    nothing_left: Callable[[], None],
    redirector: Recorder,
    settings: ServiceSettings,
    file_server: FileServer,
    target_host: str,
) -> None:
    """The first hop is allowed (a trusted origin); the hop it redirects to is vetted anew."""
    assert redirector.url("/").startswith("http://127.0.0.1")
    redirector.target = f"http://{target_host}:{file_server.port}/files/a.png"
    file_server.files["a.png"] = png_bytes()
    allowed = (*settings.input_limits.allowed_origins, f"http://127.0.0.1:{redirector.port}")
    limits = replace(settings.input_limits, allowed_origins=allowed)
    worker = new_worker(replace(settings, input_limits=limits), MapResolver(dict(TEST_NAMES)))
    try:
        out = await worker.respond(
            {"action": "i2v", "image_url": redirector.url("/start.png")}, job_id="redirect"
        )
    finally:
        await worker.close()
    assert out["error_code"] == "invalid_input", out
    assert out["details"]["field"] == "image_url"
    assert redirector.requests == ["/start.png"]
    assert file_server.requests == []
    nothing_left()


async def test_an_oversize_download_is_cut_at_the_cap(
    nothing_left: Callable[[], None], settings: ServiceSettings, file_server: FileServer
) -> None:
    file_server.files["big.png"] = png_bytes(2000, 2000) + b"\0" * 300_000
    limits = replace(settings.input_limits, max_image_bytes=100_000)
    worker = new_worker(replace(settings, input_limits=limits))
    try:
        out = await worker.respond(
            {"action": "i2v", "image_url": file_server.url("big.png")}, job_id="oversize"
        )
    finally:
        await worker.close()
    assert out["error_code"] == "input_too_large", out
    assert out["details"]["field"] == "image_url"
    nothing_left()


@pytest.mark.parametrize("body", ["not a dict", 42, None, ["action", "t2v"]])
async def test_an_input_that_is_not_an_object_is_invalid(
    handler: Handler, nothing_left: Callable[[], None], body: Any
) -> None:
    out = await handler({"id": "shape", "input": body})
    assert out["error_code"] == "invalid_input", out
    nothing_left()
