"""Which required model files are in place, missing, or the wrong size, without the network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wan_worker.catalogue import ModelFile
from wan_worker.models.download import size_matches_approx
from wan_worker.models.paths import model_path

FileState = Literal["present", "missing", "wrong_size"]


@dataclass(frozen=True)
class FileCheck:
    """One file's state; ``path`` is where it was found, or where it belongs in the first root."""

    model: ModelFile
    state: FileState
    path: Path
    actual_bytes: int | None = None

    @property
    def size_checked(self) -> bool:
        """Whether the catalogue knows the size, so a present file's size was compared."""
        return self.model.approx_bytes is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.model.file,
            "folder": self.model.folder,
            "state": self.state,
            "path": str(self.path),
            "bytes": self.actual_bytes,
            "approx_bytes": self.model.approx_bytes,
            "url": self.model.url,
        }


def verify_models(models: Sequence[ModelFile], roots: Sequence[Path]) -> list[FileCheck]:
    """Check each file under the roots in order, as ComfyUI searches them: the first root that
    holds the file decides; a size more than 1 % off the catalogue's is ``wrong_size``."""
    if not roots:
        raise ValueError("verify_models needs at least one models root")
    checks: list[FileCheck] = []
    for model in models:
        found = next((p for p in (model_path(r, model) for r in roots) if p.is_file()), None)
        if found is None:
            checks.append(FileCheck(model, "missing", model_path(roots[0], model)))
            continue
        size = found.stat().st_size
        state: FileState = (
            "present" if size_matches_approx(size, model.approx_bytes) else "wrong_size"
        )
        checks.append(FileCheck(model, state, found, size))
    return checks
