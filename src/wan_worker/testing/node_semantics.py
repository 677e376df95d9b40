"""What each node class does in the ComfyUI double: shapes in, shapes out, real files at the end.

No model runs. Images, latents and videos are tracked by their sizes (frames, width, height),
with ComfyUI's arithmetic (latent_t = (length-1)//4+1, decode to 4(t-1)+1 frames, batch
slicing), so the saved MP4 has exactly the frames a real server would write.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wan_worker.testing import media_files
from wan_worker.testing.media_files import AudioClip


@dataclass(frozen=True)
class Images:
    """An IMAGE batch: ``frames`` pictures of ``width`` x ``height``."""

    frames: int
    width: int
    height: int


@dataclass(frozen=True)
class Latent:
    """A video LATENT: ``t`` latent frames for a ``width`` x ``height`` picture."""

    t: int
    width: int
    height: int
    batch: int = 1


@dataclass(frozen=True)
class Video:
    images: Images
    fps: float
    audio: AudioClip | None = None


@dataclass(frozen=True)
class Opaque:
    """A value the double does not model (MODEL, CLIP, CONDITIONING...)."""

    kind: str
    source: str = ""


class NodeFailure(Exception):
    """An error a node raises at execution, reported as ComfyUI's ``execution_error``."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message


class Context(Protocol):
    """What a running node may touch: the server folders and the step loop."""

    input_dir: Path
    output_dir: Path
    temp_dir: Path

    async def step(self, value: int, total: int) -> None:
        """Report sampler step ``value`` of ``total``; pauses and raises when interrupted."""


@dataclass
class NodeResult:
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


@dataclass
class _Call:
    class_type: str
    inputs: Mapping[str, Any]
    output_types: tuple[str, ...]
    ctx: Context
    extras: dict[str, Any] = field(default_factory=dict)

    def int(self, name: str, default: int = 0) -> int:
        return int(self.inputs.get(name, default))

    def float(self, name: str, default: float = 0.0) -> float:
        return float(self.inputs.get(name, default))

    def get(self, name: str, default: Any = None) -> Any:
        return self.inputs.get(name, default)


_Handler = Callable[[_Call], Awaitable[NodeResult]]
_NODES: dict[str, _Handler] = {}


def _node(*class_types: str) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        for class_type in class_types:
            _NODES[class_type] = handler
        return handler

    return register


def abstract_type(value: Any) -> str:
    """The ComfyUI type name of an abstract value."""
    if isinstance(value, Images):
        return "IMAGE"
    if isinstance(value, Latent):
        return "LATENT"
    if isinstance(value, Video):
        return "VIDEO"
    if isinstance(value, AudioClip):
        return "AUDIO"
    if isinstance(value, Opaque):
        return value.kind
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INT"
    if isinstance(value, float):
        return "FLOAT"
    return "STRING"


def sampler_steps(class_type: str, inputs: Mapping[str, Any]) -> int:
    """How many steps a sampler node runs (0 for nodes without a step loop)."""
    if class_type == "KSampler":
        return int(inputs.get("steps", 0))
    if class_type == "KSamplerAdvanced":
        steps = int(inputs.get("steps", 0))
        start = int(inputs.get("start_at_step", 0))
        end = min(int(inputs.get("end_at_step", 10000)), steps)
        return max(0, end - start)
    return 0


async def run_node(
    class_type: str, inputs: Mapping[str, Any], output_types: tuple[str, ...], ctx: Context
) -> NodeResult:
    """Execute one node on abstract values; unknown classes pass matching inputs through."""
    handler = _NODES.get(class_type, _pass_through)
    return await handler(_Call(class_type, inputs, output_types, ctx))


async def _pass_through(call: _Call) -> NodeResult:
    values = list(call.inputs.values())
    outputs = []
    for kind in call.output_types:
        match = next((v for v in values if abstract_type(v) == kind), None)
        outputs.append(match if match is not None else Opaque(kind, call.class_type))
    return NodeResult(tuple(outputs))


def _images(call: _Call, name: str) -> Images:
    value = call.get(name)
    if not isinstance(value, Images):
        raise NodeFailure("TypeError", f"{call.class_type}: input '{name}' is not an image batch")
    return value


def _latent(call: _Call, name: str) -> Latent:
    value = call.get(name)
    if not isinstance(value, Latent):
        raise NodeFailure("TypeError", f"{call.class_type}: input '{name}' is not a latent")
    return value


def _input_path(ctx: Context, name: str) -> Path:
    relative = str(name).removesuffix(" [input]")
    path = (ctx.input_dir / relative).resolve()
    if not path.is_relative_to(ctx.input_dir.resolve()) or not path.is_file():
        raise NodeFailure("FileNotFoundError", f"[Errno 2] No such file or directory: '{path}'")
    return path


@_node(
    "UNETLoader",
    "CLIPLoader",
    "DualCLIPLoader",
    "VAELoader",
    "CLIPVisionLoader",
    "AudioEncoderLoader",
    "CheckpointLoaderSimple",
)
async def _loader(call: _Call) -> NodeResult:
    return NodeResult(tuple(Opaque(kind, call.class_type) for kind in call.output_types))


@_node("LoadImage")
async def _load_image(call: _Call) -> NodeResult:
    path = _input_path(call.ctx, call.get("image", ""))
    frames, width, height = await asyncio.to_thread(media_files.image_size, path)
    return NodeResult((Images(frames, width, height), Opaque("MASK", "LoadImage")))


@_node("LoadAudio")
async def _load_audio(call: _Call) -> NodeResult:
    path = _input_path(call.ctx, call.get("audio", ""))
    try:
        clip = await asyncio.to_thread(media_files.probe_audio, path)
    except Exception as exc:
        raise NodeFailure("RuntimeError", f"Failed to load audio: {exc}") from exc
    return NodeResult((clip,))


@_node("LoadVideo")
async def _load_video(call: _Call) -> NodeResult:
    path = _input_path(call.ctx, call.get("file", ""))
    info = await asyncio.to_thread(media_files.probe_video, path)
    images = Images(info.frames, info.width, info.height)
    return NodeResult((Video(images, info.fps, info.audio),))


@_node("GetVideoComponents")
async def _video_components(call: _Call) -> NodeResult:
    video = call.get("video")
    if not isinstance(video, Video):
        raise NodeFailure("TypeError", "GetVideoComponents: input 'video' is not a video")
    audio = video.audio or Opaque("AUDIO", "silence")
    return NodeResult((video.images, audio, video.fps, 8, "sRGB")[: len(call.output_types)])


@_node("ImageScale")
async def _image_scale(call: _Call) -> NodeResult:
    image = _images(call, "image")
    width, height = call.int("width"), call.int("height")
    if width == 0 and height == 0:
        width, height = image.width, image.height
    elif width == 0:
        width = max(1, round(image.width * height / image.height))
    elif height == 0:
        height = max(1, round(image.height * width / image.width))
    return NodeResult((Images(image.frames, width, height),))


@_node("RepeatImageBatch")
async def _repeat(call: _Call) -> NodeResult:
    image = _images(call, "image")
    return NodeResult((Images(image.frames * call.int("amount", 1), image.width, image.height),))


@_node("ImageBatch")
async def _image_batch(call: _Call) -> NodeResult:
    first, second = _images(call, "image1"), _images(call, "image2")
    return NodeResult((Images(first.frames + second.frames, first.width, first.height),))


@_node("ImageFromBatch")
async def _image_from_batch(call: _Call) -> NodeResult:
    image = _images(call, "image")
    index = call.int("batch_index")
    if index < 0:
        index = max(0, image.frames + index)
    index = min(image.frames - 1, index)
    length = min(image.frames - index, call.int("length", 1))
    return NodeResult((Images(max(length, 0), image.width, image.height),))


def _latent_frames(length: int) -> int:
    return (length - 1) // 4 + 1


@_node(
    "WanImageToVideo",
    "WanFirstLastFrameToVideo",
    "WanSoundImageToVideo",
)
async def _wan_latent(call: _Call) -> NodeResult:
    latent = Latent(
        _latent_frames(call.int("length", 81)),
        call.int("width", 832),
        call.int("height", 480),
        call.int("batch_size", 1),
    )
    positive = call.get("positive", Opaque("CONDITIONING"))
    negative = call.get("negative", Opaque("CONDITIONING"))
    return NodeResult((positive, negative, latent))


@_node("WanSoundImageToVideoExtend")
async def _wan_sound_extend(call: _Call) -> NodeResult:
    previous = _latent(call, "video_latent")
    latent = Latent(
        _latent_frames(call.int("length", 77)), previous.width, previous.height, previous.batch
    )
    positive = call.get("positive", Opaque("CONDITIONING"))
    negative = call.get("negative", Opaque("CONDITIONING"))
    return NodeResult((positive, negative, latent))


@_node("EmptyHunyuanLatentVideo", "Wan22ImageToVideoLatent")
async def _empty_latent(call: _Call) -> NodeResult:
    latent = Latent(
        _latent_frames(call.int("length", 25)),
        call.int("width", 848),
        call.int("height", 480),
        call.int("batch_size", 1),
    )
    return NodeResult((latent,))


@_node("KSampler", "KSamplerAdvanced")
async def _sampler(call: _Call) -> NodeResult:
    latent = _latent(call, "latent_image")
    total = sampler_steps(call.class_type, call.inputs)
    for step in range(1, total + 1):
        await call.ctx.step(step, total)
    return NodeResult((latent,))


@_node("LatentConcat")
async def _latent_concat(call: _Call) -> NodeResult:
    first, second = _latent(call, "samples1"), _latent(call, "samples2")
    dim = str(call.get("dim", "t")).lstrip("-")
    if dim == "t":
        out = Latent(first.t + second.t, first.width, first.height, first.batch)
    elif dim == "x":
        out = Latent(first.t, first.width + second.width, first.height, first.batch)
    else:
        out = Latent(first.t, first.width, first.height + second.height, first.batch)
    return NodeResult((out,))


def _cut(size: int, index: int, amount: int) -> int:
    if index >= 0:
        index = min(index, size - 1)
        return max(0, min(size - index, amount))
    index = max(index, -size)
    return max(0, min(-index, amount))


@_node("LatentCut")
async def _latent_cut(call: _Call) -> NodeResult:
    latent = _latent(call, "samples")
    dim, index, amount = str(call.get("dim", "t")), call.int("index"), call.int("amount", 1)
    if dim == "t":
        out = Latent(_cut(latent.t, index, amount), latent.width, latent.height, latent.batch)
    elif dim == "x":
        width = _cut(latent.width // 8, index, amount) * 8
        out = Latent(latent.t, width, latent.height, latent.batch)
    else:
        height = _cut(latent.height // 8, index, amount) * 8
        out = Latent(latent.t, latent.width, height, latent.batch)
    return NodeResult((out,))


@_node("TrimVideoLatent")
async def _trim_latent(call: _Call) -> NodeResult:
    latent = _latent(call, "samples")
    trimmed = max(0, latent.t - call.int("trim_amount"))
    return NodeResult((Latent(trimmed, latent.width, latent.height, latent.batch),))


@_node("VAEDecode")
async def _vae_decode(call: _Call) -> NodeResult:
    latent = _latent(call, "samples")
    frames = (4 * (latent.t - 1) + 1) * latent.batch if latent.t > 0 else 0
    return NodeResult((Images(frames, latent.width, latent.height),))


@_node("VAEEncode")
async def _vae_encode(call: _Call) -> NodeResult:
    pixels = _images(call, "pixels")
    return NodeResult((Latent(_latent_frames(pixels.frames), pixels.width, pixels.height),))


@_node("PrimitiveInt", "PrimitiveFloat")
async def _primitive(call: _Call) -> NodeResult:
    value = call.get("value", 0)
    return NodeResult((int(value) if call.class_type == "PrimitiveInt" else float(value),))


@_node("CreateVideo")
async def _create_video(call: _Call) -> NodeResult:
    audio = call.get("audio")
    clip = audio if isinstance(audio, AudioClip) else None
    return NodeResult((Video(_images(call, "images"), call.float("fps", 30.0), clip),))


@dataclass(frozen=True)
class _Target:
    folder: Path
    name: str
    subfolder: str


def _target(base: Path, prefix: str) -> _Target:
    """Where ``prefix`` ("video/ComfyUI") saves: refuses folders outside ``base``."""
    subfolder, _, name = str(prefix).replace("\\", "/").rpartition("/")
    folder = (base / subfolder).resolve()
    if not folder.is_relative_to(base.resolve()):
        raise NodeFailure(
            "Exception",
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {folder}\n         output_dir: {base}",
        )
    folder.mkdir(parents=True, exist_ok=True)
    return _Target(folder, name, subfolder)


def _next_counter(target: _Target) -> int:
    pattern = re.compile(rf"^{re.escape(target.name)}_(\d+)")
    found = [int(m.group(1)) for p in target.folder.iterdir() if (m := pattern.match(p.name))]
    return max(found, default=0) + 1


def _saved(filename: str, target: _Target, kind: str) -> dict[str, Any]:
    return {"filename": filename, "subfolder": target.subfolder, "type": kind}


_SAVE_VIDEO_FORMATS = {"auto": "mp4", "mp4": "mp4", "mkv": "matroska", "webm": "webm"}
_EXTENSIONS = {"mp4": "mp4", "matroska": "mkv", "webm": "webm"}


@_node("SaveVideo")
async def _save_video(call: _Call) -> NodeResult:
    video = call.get("video")
    if not isinstance(video, Video):
        raise NodeFailure("TypeError", "SaveVideo: input 'video' is not a video")
    fmt = str(call.get("format", "auto"))
    if fmt not in _SAVE_VIDEO_FORMATS:
        raise NodeFailure(
            "TypeError", "SaveVideo.execute() missing 1 required positional argument: 'format'"
        )
    container = _SAVE_VIDEO_FORMATS[fmt]
    codec = str(call.get("format.codec", call.get("codec", "auto")))
    target = _target(call.ctx.output_dir, call.get("filename_prefix", "video/ComfyUI"))
    filename = f"{target.name}_{_next_counter(target):05}_.{_EXTENSIONS[container]}"
    await asyncio.to_thread(
        media_files.write_video,
        target.folder / filename,
        frames=video.images.frames,
        width=video.images.width,
        height=video.images.height,
        fps=video.fps,
        audio=video.audio,
        container_format=container,
        codec=codec,
    )
    ui = {"images": [_saved(filename, target, "output")], "animated": [True]}
    return NodeResult((video,), ui)


@_node("SaveImage", "PreviewImage")
async def _save_image(call: _Call) -> NodeResult:
    image = _images(call, "images")
    if call.class_type == "PreviewImage":
        base, kind, prefix = call.ctx.temp_dir, "temp", "ComfyUI_temp_double"
    else:
        base, kind, prefix = call.ctx.output_dir, "output", call.get("filename_prefix", "ComfyUI")
    target = _target(base, prefix)
    counter = _next_counter(target)
    saved = []
    for index in range(image.frames):
        filename = f"{target.name}_{counter + index:05}_.png"
        await asyncio.to_thread(
            media_files.write_png, target.folder / filename, image.width, image.height, index
        )
        saved.append(_saved(filename, target, kind))
    return NodeResult((), {"images": saved})


@_node("SaveAudio")
async def _save_audio(call: _Call) -> NodeResult:
    audio = call.get("audio")
    if not isinstance(audio, AudioClip):
        raise NodeFailure("TypeError", "SaveAudio: input 'audio' is not audio")
    target = _target(call.ctx.output_dir, call.get("filename_prefix", "audio/ComfyUI"))
    filename = f"{target.name}_{_next_counter(target):05}.flac"
    await asyncio.to_thread(media_files.write_flac, target.folder / filename, audio)
    return NodeResult((audio,), {"audio": [_saved(filename, target, "output")]})


@_node("VHS_VideoCombine")
async def _vhs_video_combine(call: _Call) -> NodeResult:
    images = _images(call, "images")
    fps = call.float("frame_rate", 8.0)
    fmt = str(call.get("format", "image/gif"))
    save_output = bool(call.get("save_output", True))
    base, kind = (call.ctx.output_dir, "output") if save_output else (call.ctx.temp_dir, "temp")
    target = _target(base, call.get("filename_prefix", "AnimateDiff"))
    stem = f"{target.name}_{_next_counter(target):05}"
    await asyncio.to_thread(
        media_files.write_png, target.folder / f"{stem}.png", images.width, images.height
    )
    await call.ctx.step(1, images.frames)
    if fmt.startswith("image/"):
        filename = f"{stem}.{fmt.split('/')[1]}"
        await asyncio.to_thread(
            media_files.write_gif,
            target.folder / filename,
            frames=images.frames,
            width=images.width,
            height=images.height,
            fps=fps,
        )
    else:
        container = "webm" if "webm" in fmt else "mp4"
        filename = f"{stem}.{container}"
        write = media_files.write_video
        kwargs: dict[str, Any] = {
            "frames": images.frames,
            "width": images.width,
            "height": images.height,
            "fps": fps,
            "container_format": container,
        }
        await asyncio.to_thread(write, target.folder / filename, audio=None, **kwargs)
        audio = call.get("audio")
        if isinstance(audio, AudioClip):
            filename = f"{stem}-audio.{container}"
            await asyncio.to_thread(write, target.folder / filename, audio=audio, **kwargs)
    await call.ctx.step(images.frames, images.frames)
    entry = {
        **_saved(filename, target, kind),
        "format": fmt,
        "frame_rate": fps,
        "workflow": f"{stem}.png",
        "fullpath": str(target.folder / filename),
    }
    return NodeResult(((save_output, [str(target.folder / filename)]),), {"gifs": [entry]})
