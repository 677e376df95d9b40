"""Request models of the workflow library, presets, and the rules that turn a request into settings.

Policy for values the model cannot take: a near miss (frames not 4n+1, a size off the model's grid)
is rounded to the nearest valid value and reported as an :class:`Adjustment`; a value outside the
node schemas' bounds, or one that cannot be rounded meaningfully (a split outside the step range),
is rejected with an :class:`~wan_worker.errors.InvalidInput` naming the field, the value, the rule
and the nearest valid value. Nothing changes silently.
"""

from __future__ import annotations

import difflib
import math
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wan_worker import catalogue
from wan_worker.errors import InvalidInput, Problem

Mode = Literal["i2v", "t2v", "flf2v", "ti2v", "s2v"]
Preset = Literal["standard", "lightning"]
LoraStage = Literal["high", "low", "both"]
WeightDtype = Literal["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]

MAX_RESOLUTION = 16384
"""ComfyUI's ``MAX_RESOLUTION``: the upper bound of every width, height and length input."""
MAX_SEED = 2**64 - 1
RANDOM_SEED_BOUND = 2**53
"""Random seeds stay below 2**53 so that JavaScript clients read them back exactly."""
MAX_PROMPT_CHARS = 20_000

S2V_CHUNK_FRAMES = 77
"""Frames per S2V chunk: the official template's "Chunk Length" (the model needs at least 73)."""
S2V_FPS = 16
"""WanSoundImageToVideo aligns audio features to video at a hard-coded 16 fps."""
MAX_S2V_CHUNKS = 24
"""About two minutes of video; each chunk is a full sampling pass."""

NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
"""The official WAN negative prompt (every WAN 2.2 template but T2V)."""
NEGATIVE_PROMPT_T2V = NEGATIVE_PROMPT + "，裸露，NSFW"
"""The T2V templates append two words to it."""

SAMPLERS = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "exp_heun_2_x0", "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast",
    "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde",
    "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm",
    "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece",
    "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
"""KSampler's sampler_name choices in ComfyUI 0.33.0 core."""
SCHEDULERS = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal",
)  # fmt: skip
"""KSampler's scheduler choices in ComfyUI 0.33.0 core."""

_FILE_NAME = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[\w\-. /()+]+$")
_PREFIX = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[\w\-./]+$")


@dataclass(frozen=True)
class PresetValues:
    """Sampling settings of one preset in one mode, as the official templates set them."""

    steps: int
    cfg: float
    shift: float
    sampler: str
    scheduler: str
    split_step: int | None = None


PRESETS: dict[tuple[Mode, Preset], PresetValues] = {
    # Current I2V/T2V subgraph templates (json 0.1.123), turbo off: shift 5 on both stages.
    ("i2v", "standard"): PresetValues(20, 3.5, 5.0, "euler", "simple", split_step=10),
    ("t2v", "standard"): PresetValues(20, 3.5, 5.0, "euler", "simple", split_step=10),
    # Classic 0.2.11 LightX2V groups.
    ("i2v", "lightning"): PresetValues(4, 1.0, 5.0, "euler", "simple", split_step=2),
    ("t2v", "lightning"): PresetValues(4, 1.0, 5.0, "euler", "simple", split_step=2),
    # FLF2V: the active 20-step group uses cfg 4 and shift 8; its LightX2V group shift 5.
    ("flf2v", "standard"): PresetValues(20, 4.0, 8.0, "euler", "simple", split_step=10),
    ("flf2v", "lightning"): PresetValues(4, 1.0, 5.0, "euler", "simple", split_step=2),
    ("ti2v", "standard"): PresetValues(20, 5.0, 8.0, "uni_pc", "simple"),
    ("s2v", "standard"): PresetValues(20, 6.0, 8.0, "uni_pc", "simple"),
    ("s2v", "lightning"): PresetValues(4, 1.0, 8.0, "uni_pc", "simple"),
}

DEFAULT_PRESET: dict[Mode, Preset] = {
    "i2v": "lightning",
    "t2v": "lightning",
    "flf2v": "lightning",
    "ti2v": "standard",
    "s2v": "lightning",
}
"""Fast by default; the 5B model has no LightX2V LoRA in the official templates."""


@dataclass(frozen=True)
class ModeDefaults:
    """Template defaults of a mode: size, length, frame rate, and the size grid of its model."""

    width: int
    height: int
    frames: int
    fps: float
    grid: int


MODE_DEFAULTS: dict[Mode, ModeDefaults] = {
    "i2v": ModeDefaults(640, 640, 81, 16, 16),
    "t2v": ModeDefaults(640, 640, 81, 16, 16),
    "flf2v": ModeDefaults(640, 640, 81, 16, 16),
    "ti2v": ModeDefaults(1280, 704, 121, 24, 32),
    "s2v": ModeDefaults(640, 640, S2V_CHUNK_FRAMES, S2V_FPS, 16),
}


class FieldValueError(ValueError):
    """A whole-request check's failure that still names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class LoraSpec(BaseModel):
    """A user LoRA, chained after the preset's on the stage(s) it names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="LoRA file name in ComfyUI's models/loras folder.")
    strength: float = Field(1.0, ge=-100, le=100, description="strength_model, -100..100.")
    stage: LoraStage = Field(
        "both",
        description="Model(s) of a high/low pair it applies to; single-model modes: high or both.",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_file_name(value)


def check_file_name(value: str) -> str:
    if not value or len(value) > 255 or not _FILE_NAME.match(value):
        raise ValueError("must be a plain file name (optionally in a subfolder), without '..'")
    return value


FileName = Annotated[str, Field(min_length=1, max_length=255)]

_LEGACY_FIELDS = {
    "cfg_scale": "cfg",
    "num_frames": "frames",
    "vae_model": "vae",
    "split": "split_step",
}


class WorkflowRequest(BaseModel):
    """Fields every mode accepts. ``None`` means: the preset's or the template's default."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset | None = Field(
        None, description="standard (template settings) or lightning (LightX2V 4-step)."
    )
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS, description="What the video shows.")
    negative_prompt: str | None = Field(
        None, max_length=MAX_PROMPT_CHARS, description="Default: the official WAN negative prompt."
    )
    width: int | None = Field(
        None, ge=1, le=MAX_RESOLUTION, description="Pixels; rounded to the model's grid."
    )
    height: int | None = Field(
        None, ge=1, le=MAX_RESOLUTION, description="Pixels; rounded to the model's grid."
    )
    fps: float | None = Field(None, ge=1, le=120, description="Frames per second of the MP4.")
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 picks a random seed, reported back.")
    steps: int | None = Field(None, ge=1, le=10000, description="Sampling steps.")
    cfg: float | None = Field(None, ge=0, le=100, description="Classifier-free guidance scale.")
    shift: float | None = Field(None, ge=0, le=100, description="ModelSamplingSD3 shift.")
    sampler: str | None = Field(None, description="KSampler sampler_name.")
    scheduler: str | None = Field(None, description="KSampler scheduler.")
    vae: FileName | None = Field(None, description="VAE file (models/vae).")
    text_encoder: FileName | None = Field(
        None, description="umt5-xxl text encoder file (models/text_encoders)."
    )
    weight_dtype: WeightDtype = Field("default", description="UNETLoader weight_dtype.")
    loras: list[LoraSpec] = Field(default_factory=list, max_length=16, description="User LoRAs.")
    filename_prefix: str | None = Field(
        None, max_length=200, description="SaveVideo filename_prefix (subfolder/name)."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, data: Any) -> Any:
        """Accept the first draft's field names where they map onto ours unambiguously."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in _LEGACY_FIELDS.items():
            if old in data:
                if new in data:
                    raise FieldValueError(old, f"give either {old} or {new}, not both")
                data[new] = data.pop(old)
        if "use_lora" in data:
            use_lora = data.pop("use_lora")
            if not isinstance(use_lora, bool):
                raise FieldValueError("use_lora", "use_lora must be true or false")
            preset = "lightning" if use_lora else "standard"
            if data.get("preset") not in (None, preset):
                raise FieldValueError(
                    "use_lora", f"use_lora={use_lora} contradicts preset={data['preset']}"
                )
            data["preset"] = preset
        if "lora_name" in data:
            lora = {"name": data.pop("lora_name"), "strength": data.pop("lora_strength", 1.0)}
            others = data.get("loras") or []
            if not isinstance(others, list):
                raise FieldValueError("loras", "loras must be a list of LoRAs")
            data["loras"] = [*others, lora]
        if "diffusion_model" in data:
            target = "high_noise_model" if "high_noise_model" in cls.model_fields else "model"
            if target in data:
                raise FieldValueError(
                    "diffusion_model", f"give either diffusion_model or {target}, not both"
                )
            data[target] = data.pop("diffusion_model")
        return data

    @field_validator("vae", "text_encoder")
    @classmethod
    def _safe_model_name(cls, value: str | None) -> str | None:
        return None if value is None else check_file_name(value)

    @field_validator("filename_prefix")
    @classmethod
    def _safe_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.match(value):
            raise ValueError("must be letters, digits, _-./ without '..' or a leading '/'")
        return value


class TwoStageRequest(WorkflowRequest):
    """The 14B MoE modes: a high-noise and a low-noise model, sampled in two stages."""

    frames: int | None = Field(
        None, ge=1, le=MAX_RESOLUTION, description="Length; rounded to 4n+1."
    )
    split_step: int | None = Field(
        None, ge=1, le=10000, description="Step where the low-noise model takes over."
    )
    high_noise_model: FileName | None = Field(None, description="High-noise diffusion model file.")
    low_noise_model: FileName | None = Field(None, description="Low-noise diffusion model file.")

    @field_validator("high_noise_model", "low_noise_model")
    @classmethod
    def _safe_unet(cls, value: str | None) -> str | None:
        return None if value is None else check_file_name(value)


class SingleModelRequest(WorkflowRequest):
    """The modes with one diffusion model (5B TI2V, 14B S2V)."""

    model: FileName | None = Field(
        None, description="Diffusion model file (models/diffusion_models)."
    )

    @field_validator("model")
    @classmethod
    def _safe_unet(cls, value: str | None) -> str | None:
        return None if value is None else check_file_name(value)


_R = TypeVar("_R", bound=BaseModel)


class Adjustment(BaseModel):
    """A value rounded to what the model accepts, reported back to the caller."""

    model_config = ConfigDict(frozen=True)

    field: str
    requested: Any
    used: Any
    rule: str


@dataclass(frozen=True)
class Settings:
    """Everything a builder needs, every default filled, every rule applied."""

    mode: Mode
    preset: Preset
    prompt: str
    negative_prompt: str
    width: int
    height: int
    frames: int
    fps: float
    seed: int
    steps: int
    cfg: float
    shift: float
    sampler: str
    scheduler: str
    split_step: int | None
    vae: str
    text_encoder: str
    weight_dtype: str
    high_loras: tuple[LoraSpec, ...]
    low_loras: tuple[LoraSpec, ...]
    filename_prefix: str
    adjustments: tuple[Adjustment, ...]


def parse_request(model: type[_R], params: Any) -> _R:
    """Validate raw parameters into a request model; every problem becomes an ``InvalidInput``."""
    if isinstance(params, model):
        return params
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise InvalidInput(
            "the request has " + _count(len(exc.errors()), "invalid field"),
            problems=[_problem_from_pydantic(err) for err in exc.errors()],
        ) from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _problem_from_pydantic(err: Any) -> Problem:
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    located = cause.field if isinstance(cause, FieldValueError) and not err["loc"] else None
    field = ".".join(str(part) for part in err["loc"]) or located
    message = str(err["msg"]).removeprefix("Value error, ")
    if located:
        message = message.removeprefix(f"{located} ")
    suggestion = None
    for bound in ("ge", "le", "gt", "lt"):
        if bound in ctx:
            suggestion = ctx[bound]
    if err["type"] == "extra_forbidden":
        message = "is not a parameter of this mode"
    value = err.get("input")
    if isinstance(value, dict | list):
        value = None
    return Problem(
        message=f"{field}: {message}" if field else message,
        field=field,
        value=value,
        rule=err["type"],
        suggestion=suggestion,
    )


def nearest_frames(frames: int) -> int:
    """The nearest 4n+1 frame count (ties round up), at least 1."""
    n = math.floor((frames - 1) / 4 + 0.5)
    return max(1, 4 * n + 1)


def nearest_multiple(value: int, grid: int) -> int:
    """The nearest multiple of ``grid`` (ties round up), at least ``grid``."""
    return max(grid, math.floor(value / grid + 0.5) * grid)


def random_seed() -> int:
    return secrets.randbelow(RANDOM_SEED_BOUND)


class _Rules:
    """Collects adjustments and problems while settings are resolved."""

    def __init__(self) -> None:
        self.adjustments: list[Adjustment] = []
        self.problems: list[Problem] = []

    def adjust(self, field: str, requested: Any, used: Any, rule: str) -> Any:
        if requested != used:
            self.adjustments.append(
                Adjustment(field=field, requested=requested, used=used, rule=rule)
            )
        return used

    def reject(self, field: str, value: Any, rule: str, suggestion: Any = None) -> None:
        hint = "" if suggestion is None else f"; nearest valid value: {suggestion}"
        self.problems.append(
            Problem(
                message=f"{field}={value!r}: {rule}{hint}",
                field=field,
                value=value,
                rule=rule,
                suggestion=suggestion,
            )
        )

    def choice(self, field: str, value: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            self.reject(
                field,
                value,
                f"must be one of {len(choices)} known values",
                close[0] if close else None,
            )
        return value

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidInput(
                "the request breaks "
                + _count(len(self.problems), "rule")
                + ": "
                + "; ".join(p.message for p in self.problems),
                problems=self.problems,
            )


def resolve(
    request: WorkflowRequest,
    mode: Mode,
    *,
    frames: int | None = None,
    high_model_role: bool = True,
) -> Settings:
    """Apply defaults, presets and rules to a request; raise ``InvalidInput`` on any violation.

    ``frames`` overrides the request's own (S2V derives its length from its chunks).
    ``high_model_role`` is False for single-model modes, where LoRAs may not target "low".
    """
    rules = _Rules()
    defaults = MODE_DEFAULTS[mode]
    preset = request.preset or DEFAULT_PRESET[mode]
    values = PRESETS.get((mode, preset))
    if values is None:
        rules.reject("preset", preset, f"{mode} has no {preset} preset", DEFAULT_PRESET[mode])
        rules.raise_if_any()
        raise AssertionError("unreachable")

    grid = defaults.grid
    sizes: dict[str, int] = {}
    for name, requested in (("width", request.width), ("height", request.height)):
        value = requested if requested is not None else getattr(defaults, name)
        sizes[name] = rules.adjust(
            name, value, nearest_multiple(value, grid), f"a multiple of {grid} for this model"
        )

    requested_frames = frames if frames is not None else getattr(request, "frames", None)
    if requested_frames is None:
        requested_frames = defaults.frames
    used_frames = rules.adjust(
        "frames", requested_frames, nearest_frames(requested_frames), "4n+1 frames"
    )
    if used_frames > MAX_RESOLUTION:
        rules.reject("frames", requested_frames, f"at most {MAX_RESOLUTION}", MAX_RESOLUTION - 3)

    steps = request.steps if request.steps is not None else values.steps
    split_step: int | None = None
    if values.split_step is not None:
        requested_split = getattr(request, "split_step", None)
        if requested_split is None:
            # Keep the preset's proportion when only the step count changes.
            split_step = max(1, min(steps - 1, round(steps * values.split_step / values.steps)))
        else:
            split_step = requested_split
        if steps < 2:
            rules.reject("steps", steps, "two-stage sampling needs at least 2 steps", 2)
        elif not 1 <= split_step < steps:
            rules.reject(
                "split_step",
                split_step,
                f"must be inside the step range, 1..{steps - 1}",
                max(1, min(steps - 1, split_step)),
            )

    sampler = rules.choice("sampler", request.sampler or values.sampler, SAMPLERS)
    scheduler = rules.choice("scheduler", request.scheduler or values.scheduler, SCHEDULERS)

    high_loras: list[LoraSpec] = []
    low_loras: list[LoraSpec] = []
    for preset_lora in catalogue.preset_loras(mode, preset):
        (low_loras if preset_lora.stage == "low" else high_loras).append(
            LoraSpec(name=preset_lora.file, strength=1.0, stage=preset_lora.stage or "both")
        )
    for index, lora in enumerate(request.loras):
        if lora.stage == "low" and not high_model_role:
            rules.reject(
                f"loras.{index}.stage",
                lora.stage,
                f"{mode} has one model: use high or both",
                "both",
            )
        if lora.stage in ("high", "both"):
            high_loras.append(lora)
        if lora.stage in ("low", "both") and high_model_role:
            low_loras.append(lora)

    rules.raise_if_any()
    negative_default = NEGATIVE_PROMPT_T2V if mode == "t2v" else NEGATIVE_PROMPT
    return Settings(
        mode=mode,
        preset=preset,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt
        if request.negative_prompt is not None
        else negative_default,
        width=sizes["width"],
        height=sizes["height"],
        frames=used_frames,
        fps=request.fps if request.fps is not None else defaults.fps,
        seed=request.seed if request.seed >= 0 else random_seed(),
        steps=steps,
        cfg=request.cfg if request.cfg is not None else values.cfg,
        shift=request.shift if request.shift is not None else values.shift,
        sampler=sampler,
        scheduler=scheduler,
        split_step=split_step,
        vae=request.vae or catalogue.default_file(mode, "vae"),
        text_encoder=request.text_encoder or catalogue.default_file(mode, "text_encoder"),
        weight_dtype=request.weight_dtype,
        high_loras=tuple(high_loras),
        low_loras=tuple(low_loras),
        filename_prefix=request.filename_prefix or f"video/wan-worker_{mode}",
        adjustments=tuple(rules.adjustments),
    )
