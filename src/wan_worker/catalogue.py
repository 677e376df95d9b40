"""The model catalogue: every model file a wan-worker graph can reference, and where it comes from.

One data file (``data/models.json``) drives the builders' default file names, ``wan-worker models``,
preflight download hints and the downloader, so they never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Role = Literal[
    "high_noise_model", "low_noise_model", "model", "lora", "vae", "text_encoder", "audio_encoder"
]


@dataclass(frozen=True)
class ModelFile:
    """One model file: its name, its ComfyUI models folder and its download source."""

    file: str
    folder: str
    repository: str
    path: str
    approx_bytes: int | None
    role: Role
    modes: tuple[str, ...]
    presets: tuple[str, ...] = ()
    stage: Literal["high", "low"] | None = None
    alternative_to: str | None = None

    @property
    def url(self) -> str:
        """The direct download URL on the Hugging Face hub."""
        return f"https://huggingface.co/{self.repository}/resolve/main/{self.path}"

    @property
    def source(self) -> str:
        """A short human description of where to get the file."""
        return f"{self.repository} ({self.path})"


@cache
def all_models() -> tuple[ModelFile, ...]:
    """Every catalogue entry, in file order."""
    raw = json.loads(resources.files("wan_worker").joinpath("data/models.json").read_text("utf-8"))
    repos: dict[str, str] = raw["repositories"]
    return tuple(
        ModelFile(
            file=entry["file"],
            folder=entry["folder"],
            repository=repos[entry["repository"]],
            path=entry["path"],
            approx_bytes=entry["approx_bytes"],
            role=entry["role"],
            modes=tuple(entry["modes"]),
            presets=tuple(entry.get("presets", ())),
            stage=entry.get("stage"),
            alternative_to=entry.get("alternative_to"),
        )
        for entry in raw["models"]
    )


def find(file: str) -> ModelFile | None:
    """The catalogue entry of a file name, if it is one we know."""
    return next((m for m in all_models() if m.file == file), None)


def default_file(mode: str, role: Role) -> str:
    """The default file of a role (model, vae, text encoder...) in a mode."""
    matches = [
        m
        for m in all_models()
        if m.role == role and mode in m.modes and m.role != "lora" and m.alternative_to is None
    ]
    if len(matches) != 1:
        raise LookupError(f"catalogue has {len(matches)} default {role} files for mode {mode}")
    return matches[0].file


def preset_loras(mode: str, preset: str) -> tuple[ModelFile, ...]:
    """The LoRAs a preset applies in a mode, high-noise stage first."""
    loras = [
        m for m in all_models() if m.role == "lora" and mode in m.modes and preset in m.presets
    ]
    return tuple(sorted(loras, key=lambda m: (m.stage != "high", m.file)))


def download_hint(file: str) -> str | None:
    """Where to download a file from, for error messages; ``None`` for unknown files."""
    entry = find(file)
    return None if entry is None else f"models/{entry.folder}/ from {entry.url}"
