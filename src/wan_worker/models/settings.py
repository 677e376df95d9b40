"""Where model files go and how the Hugging Face hub is reached, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wan_worker.errors import Problem
from wan_worker.models.paths import RUNPOD_VOLUME
from wan_worker.service.settings import EnvReader

DEFAULT_HF_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class ModelSettings:
    """The models root, the hub endpoint and the optional hub token (never printed)."""

    models_dir: Path
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    hf_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, runpod_volume: Path = RUNPOD_VOLUME
    ) -> ModelSettings:
        """MODELS_DIR, else ``<volume>/models`` when a RunPod volume is mounted, else
        ``$COMFYUI_PATH/models``, else ``./models``; HF_TOKEN; HF_ENDPOINT."""
        reader = EnvReader(env)
        models_dir = reader.optional("MODELS_DIR", Path)
        if models_dir is None:
            comfyui = reader.optional("COMFYUI_PATH", Path)
            if runpod_volume.is_dir():
                models_dir = runpod_volume / "models"
            elif comfyui is not None:
                models_dir = comfyui / "models"
            else:
                models_dir = Path("models")
        endpoint = reader.value("HF_ENDPOINT", str, DEFAULT_HF_ENDPOINT).rstrip("/")
        if not endpoint.startswith(("http://", "https://")):
            reader.problems.append(
                Problem(
                    message="HF_ENDPOINT must be an http(s) URL such as https://huggingface.co",
                    field="HF_ENDPOINT",
                    value=endpoint,
                )
            )
        reader.raise_if_any()
        return cls(
            models_dir=models_dir,
            hf_endpoint=endpoint,
            hf_token=reader.optional("HF_TOKEN", str),
        )
