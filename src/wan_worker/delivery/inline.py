"""Base64 a video for an inline response without holding its raw bytes whole."""

from __future__ import annotations

import binascii
from pathlib import Path

from wan_worker.errors import OutputMissing

# A multiple of 3, so every chunk but the last encodes without padding and the pieces concatenate.
_READ_CHUNK = 3 * 256 * 1024


def base64_length(size: int) -> int:
    """Length of the padded base64 text for ``size`` bytes."""
    return 4 * ((size + 2) // 3)


def base64_file(path: Path, size: int) -> str:
    """Encode ``path`` chunk by chunk into one preallocated buffer, then into the result string.

    Raw bytes are read 768 KiB at a time; the base64 text exists twice only for the moment the
    buffer becomes a ``str`` (CPython cannot build a str in place).
    """
    encoded = bytearray(base64_length(size))
    view = memoryview(encoded)
    filled = 0
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK):
            piece = binascii.b2a_base64(chunk, newline=False)
            if filled + len(piece) > len(encoded):
                break
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
    view.release()
    if filled != len(encoded):
        raise OutputMissing(
            f"The video at {path} changed size while it was being encoded.",
            details={"path": str(path), "expected_bytes": size},
        )
    return encoded.decode("ascii")
