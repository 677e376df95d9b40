"""The one request schema of the service: what a RunPod job input (or HTTP body) may say.

Two forms. A generation request names an ``action`` (``comfyui_i2v``, ... or the short ``i2v``),
gives its inputs as ``<slot>_base64|_url|_path`` and passes every workflow parameter through to
the workflow library, legacy names included. A raw request carries a ComfyUI API graph in
``workflow`` with ``images``/``audio`` to upload, as runpod-workers/worker-comfyui accepts it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wan_worker.errors import InvalidInput, Problem, UnsupportedAction
from wan_worker.media import SIZE_TIERS, Fit, InputForm, InputSource
from wan_worker.workflows import MODES, Mode, request_model
from wan_worker.workflows import build as build_workflow
from wan_worker.workflows.params import check_file_name, parse_request

MODE_NAMES: tuple[Mode, ...] = ("i2v", "t2v", "flf2v", "ti2v", "s2v")
ACTIONS: dict[str, Mode] = {f"comfyui_{mode}": mode for mode in MODE_NAMES}
"""Action name -> workflow mode; the short mode names are accepted as aliases."""
RAW_ACTIONS = ("comfyui_workflow", "workflow")
"""Optional ``action`` of a raw request (a raw request is known by its ``workflow`` field)."""

Slot = Literal["image", "end_image", "audio"]
FORMS: tuple[InputForm, ...] = ("base64", "url", "path")
MODE_SLOTS: dict[Mode, tuple[Slot, ...]] = {
    "i2v": ("image",),
    "t2v": (),
    "flf2v": ("image", "end_image"),
    "ti2v": ("image",),
    "s2v": ("image", "audio"),
}
"""The inputs each mode takes."""
REQUIRED_SLOTS: dict[Mode, tuple[Slot, ...]] = {
    "i2v": ("image",),
    "t2v": (),
    "flf2v": ("image", "end_image"),
    "ti2v": (),
    "s2v": ("image", "audio"),
}
PLACEHOLDER_FILES: dict[Slot, str] = {
    "image": "start.png",
    "end_image": "end.png",
    "audio": "audio.wav",
}
"""Graph file names of the inputs; the ComfyUI client renames them into the job's subfolder."""

LEGACY_PARAMETERS: dict[str, dict[str, Any]] = {
    "use_lora": {"type": "boolean", "description": "Legacy: true = preset lightning."},
    "cfg_scale": {"type": "number", "description": "Legacy name of cfg."},
    "num_frames": {"type": "integer", "description": "Legacy name of frames."},
    "vae_model": {"type": "string", "description": "Legacy name of vae."},
    "split": {"type": "integer", "description": "Legacy name of split_step."},
    "lora_name": {"type": "string", "description": "Legacy: one LoRA on both stages."},
    "lora_strength": {"type": "number", "description": "Legacy: strength of lora_name."},
    "diffusion_model": {"type": "string", "description": "Legacy: high_noise_model or model."},
}
"""The first draft's field names the workflow library still accepts (docs/workflows.md)."""


class S3Config(BaseModel):
    """A bucket to upload the video to, in RunPod's ``s3Config`` shape."""

    model_config = ConfigDict(extra="forbid")

    accessId: str = Field(min_length=1)
    accessSecret: str = Field(min_length=1, repr=False)
    bucketName: str = Field(min_length=1)
    endpointUrl: str = Field(min_length=1)
    region: str | None = None


class DeliveryOptions(BaseModel):
    """Where the finished video goes; without any it comes back inline (or the worker's bucket)."""

    upload_url: str | None = Field(
        None, min_length=1, description="Presigned PUT URL the MP4 is uploaded to."
    )
    download_url: str | None = Field(
        None, min_length=1, description="URL returned for the upload_url object (optional)."
    )
    s3Config: S3Config | None = Field(None, description="Upload to this bucket (RunPod shape).")
    timeout_s: float | None = Field(
        None, gt=0, description="Deadline of the whole job in seconds (default: JOB_TIMEOUT_S)."
    )


def _input_field(slot: str, form: str) -> Any:
    what = {"base64": "base64 text or a data: URI", "url": "http(s) URL", "path": "local path"}
    return Field(None, min_length=1, description=f"The {slot.replace('_', ' ')} as {what[form]}.")


class JobOptions(DeliveryOptions):
    """The service's own fields of a generation request (the rest goes to the workflow)."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(
        description="comfyui_i2v|comfyui_t2v|comfyui_flf2v|comfyui_ti2v|comfyui_s2v"
    )
    image_base64: str | None = _input_field("image", "base64")
    image_url: str | None = _input_field("image", "url")
    image_path: str | None = _input_field("image", "path")
    end_image_base64: str | None = _input_field("end_image", "base64")
    end_image_url: str | None = _input_field("end_image", "url")
    end_image_path: str | None = _input_field("end_image", "path")
    audio_base64: str | None = _input_field("audio", "base64")
    audio_url: str | None = _input_field("audio", "url")
    audio_path: str | None = _input_field("audio", "path")
    fit: Fit = Field("cover", description="How images meet the video size: cover|contain|stretch.")
    resolution: Literal["480p", "720p"] | None = Field(
        None,
        description="Pixel budget when width/height are absent: the size follows the image's "
        "aspect (or 16:9 without an image). Default: 480p, 720p for ti2v.",
    )


class RawFile(BaseModel):
    """One file a raw graph loads: its name in ComfyUI's input folder and its content."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_file_name(value)


class RawImage(RawFile):
    image: str = Field(min_length=1, description="Base64 (plain or data URI) or http(s) URL.")


class RawAudio(RawFile):
    audio: str = Field(min_length=1, description="Base64 (plain or data URI) or http(s) URL.")


class RawRequest(DeliveryOptions):
    """A ComfyUI API graph run as given (worker-comfyui compatible); its video is delivered."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["comfyui_workflow", "workflow"] | None = None
    workflow: dict[str, dict[str, Any]] = Field(
        min_length=1, description="ComfyUI API-format graph: node id -> {class_type, inputs}."
    )
    images: list[RawImage] = Field(default_factory=list, max_length=16)
    audio: list[RawAudio] = Field(default_factory=list, max_length=4)


@dataclass(frozen=True)
class GenerationJob:
    """A validated generation request: the mode, its inputs, options and workflow parameters."""

    mode: Mode
    options: JobOptions
    inputs: dict[Slot, InputSource]
    parameters: dict[str, Any]
    width: int | None
    """The requested width (None: from the image or the size tier); likewise height."""
    height: int | None


@dataclass(frozen=True)
class RawJob:
    """A validated raw request."""

    request: RawRequest


Job = GenerationJob | RawJob


def parse_job(data: Any) -> Job:
    """Validate a request; raises UnsupportedAction or InvalidInput naming every bad field.

    The workflow parameters are checked here too (a dry build with placeholder files), so a bad
    value is refused before any input is fetched.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput(
            "the job input must be a JSON object",
            problems=[Problem(message="not an object", field="input")],
        )
    if "workflow" in data:
        return RawJob(parse_request(RawRequest, dict(data)))
    mode = _mode_of(data.get("action"))
    option_names = set(JobOptions.model_fields)
    options = parse_request(JobOptions, {k: v for k, v in data.items() if k in option_names})
    parameters = {k: v for k, v in data.items() if k not in option_names}
    inputs = _inputs(mode, options, parameters)
    request = _dry_build(mode, parameters)
    width, height = getattr(request, "width", None), getattr(request, "height", None)
    return GenerationJob(mode, options, inputs, parameters, width, height)


def _mode_of(action: Any) -> Mode:
    if action is None:
        raise InvalidInput(
            "action is required: one of " + ", ".join(ACTIONS),
            problems=[Problem(message="missing", field="action", suggestion=list(ACTIONS))],
        )
    if isinstance(action, str):
        if action in ACTIONS:
            return ACTIONS[action]
        for mode in MODE_NAMES:
            if action == mode:
                return mode
    raise UnsupportedAction(
        f"unknown action {action!r}; actions: {', '.join(ACTIONS)} (or {', '.join(MODES)})",
        problems=[
            Problem(
                message="unknown action",
                field="action",
                value=action if isinstance(action, str) else None,
                suggestion=list(ACTIONS),
            )
        ],
    )


def _inputs(mode: Mode, options: JobOptions, parameters: Mapping[str, Any]) -> dict[Slot, Any]:
    problems: list[Problem] = []
    inputs: dict[Slot, InputSource] = {}
    slot: Slot
    for slot in ("image", "end_image", "audio"):
        if slot in parameters:
            problems.append(
                Problem(
                    message=f"{slot}: give the input as {slot}_base64, {slot}_url or {slot}_path",
                    field=slot,
                )
            )
        given = {
            form: getattr(options, f"{slot}_{form}")
            for form in FORMS
            if getattr(options, f"{slot}_{form}") is not None
        }
        first = f"{slot}_{next(iter(given))}" if given else None
        if given and slot not in MODE_SLOTS[mode]:
            problems.append(Problem(message=f"{mode} takes no {slot} input", field=first))
        elif len(given) > 1:
            problems.append(
                Problem(
                    message=f"give one of {', '.join(f'{slot}_{f}' for f in given)}, not several",
                    field=first,
                )
            )
        elif given:
            form, value = next(iter(given.items()))
            inputs[slot] = InputSource(form, value)
        elif slot in REQUIRED_SLOTS[mode]:
            problems.append(
                Problem(
                    message=f"{mode} needs {slot}_base64, {slot}_url or {slot}_path",
                    field=f"{slot}_base64",
                )
            )
    if problems:
        raise InvalidInput(
            "; ".join(p.message for p in problems),
            problems=problems,
        )
    return inputs


def _dry_build(mode: Mode, parameters: Mapping[str, Any]) -> BaseModel:
    """Build once with placeholder inputs: every parameter rule is checked before any fetch."""
    params: dict[str, Any] = dict(parameters)
    for slot in MODE_SLOTS[mode]:
        params[slot] = PLACEHOLDER_FILES[slot]
    if mode == "s2v" and "audio_seconds" not in params and "chunks" not in params:
        params["chunks"] = 1
    request = parse_request(request_model(mode), params)
    build_workflow(mode, request)
    return request


def default_budget(mode: Mode, resolution: str | None) -> int:
    """The pixel budget of a derived size: the requested tier, else 480p (720p for ti2v)."""
    return SIZE_TIERS[resolution or ("720p" if mode == "ti2v" else "480p")]


def request_json_schema() -> dict[str, Any]:
    """The JSON schema of a job input: one branch per action, and the raw form."""
    defs: dict[str, Any] = {}
    branches = [_action_schema(mode, defs) for mode in MODE_NAMES]
    raw = RawRequest.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(raw.pop("$defs", {}))
    raw["title"] = "Raw ComfyUI graph"
    branches.append(raw)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "wan-worker job input",
        "description": __doc__.strip() if __doc__ else "",
        "oneOf": branches,
        "$defs": dict(sorted(defs.items())),
    }


def _action_schema(mode: Mode, defs: dict[str, Any]) -> dict[str, Any]:
    options = JobOptions.model_json_schema(ref_template="#/$defs/{model}")
    workflow = request_model(mode).model_json_schema(ref_template="#/$defs/{model}")
    defs.update(options.pop("$defs", {}))
    defs.update(workflow.pop("$defs", {}))
    properties: dict[str, Any] = {}
    for name, prop in options["properties"].items():
        slot = next((s for s in PLACEHOLDER_FILES if name.startswith(f"{s}_")), None)
        if slot is None or slot in MODE_SLOTS[mode]:
            properties[name] = prop
    properties["action"] = {
        "enum": [f"comfyui_{mode}", mode],
        "description": f"comfyui_{mode} (or {mode}).",
    }
    for name, prop in workflow["properties"].items():
        if name not in PLACEHOLDER_FILES:
            properties[name] = prop
    properties.update(LEGACY_PARAMETERS)
    schema: dict[str, Any] = {
        "title": f"comfyui_{mode}",
        "description": workflow.get("description", ""),
        "type": "object",
        "properties": properties,
        "required": ["action"],
        "additionalProperties": False,
    }
    required = REQUIRED_SLOTS[mode]
    if required:
        schema["allOf"] = [
            {"anyOf": [{"required": [f"{slot}_{form}"]} for form in FORMS]} for slot in required
        ]
    return schema


def request_json_schema_text() -> str:
    """The schema as committed in docs/input-schema.json (``python -m wan_worker.service``)."""
    return json.dumps(request_json_schema(), indent=2, ensure_ascii=False) + "\n"
