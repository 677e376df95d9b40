from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from wan_worker.delivery.inline import base64_file, base64_length
from wan_worker.errors import OutputMissing

CHUNK = 3 * 256 * 1024


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 2])
def test_chunked_encoding_equals_one_shot_base64(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "video.bin"
    path.write_bytes(data)

    encoded = base64_file(path, size)

    assert encoded == base64.b64encode(data).decode("ascii")
    assert len(encoded) == base64_length(size)


def test_a_file_that_changed_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "video.bin"
    path.write_bytes(b"x" * 10)

    with pytest.raises(OutputMissing, match="changed size"):
        base64_file(path, 7)
