"""Atomic output files: written under a hidden temporary name, renamed only when complete."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import BinaryIO


def new_name(dest_dir: Path, field: str, suffix: str) -> Path:
    """A fresh, collision-free file name in ``dest_dir`` that still says which field it holds."""
    return dest_dir / f"{field}-{uuid.uuid4().hex}{suffix}"


def temp_name(final: Path) -> Path:
    """The hidden name a file carries while it is being written."""
    return final.with_name(f".{final.name}.part")


def discard(path: Path) -> None:
    """Remove a file if it is there; cleanup must never mask the error that caused it."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class PartFile:
    """A file written in pieces that appears under its final name only on ``commit()``.

    Leaving the ``with`` block without committing (an error, a cancellation) removes it.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = temp_name(final)
        self.size = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> PartFile:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.temp.open("xb")
        return self

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self.size += len(data)

    def commit(self) -> Path:
        assert self._file is not None
        self._file.close()
        self._file = None
        os.replace(self.temp, self.final)
        return self.final

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        discard(self.temp)
