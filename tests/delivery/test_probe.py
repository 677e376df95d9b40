from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from wan_worker.delivery import VideoInfo, probe_video
from wan_worker.errors import OutputMissing


def test_probe_reports_exact_facts_of_a_silent_mp4(video: Path) -> None:
    info = probe_video(video)

    assert info == VideoInfo(
        width=64,
        height=48,
        fps=16.0,
        frames=17,
        duration_s=17 / 16,
        codec="h264",
        has_audio=False,
        bytes=video.stat().st_size,
        sha256=hashlib.sha256(video.read_bytes()).hexdigest(),
    )


def test_probe_sees_an_audio_track(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    path = make_video(tmp_path / "talk.mp4", frames=33, fps=24, width=80, height=64, audio=True)

    info = probe_video(path)

    assert (info.width, info.height, info.fps, info.frames) == (80, 64, 24.0, 33)
    assert info.has_audio is True
    assert info.duration_s == 33 / 24


def test_probe_counts_frames_when_the_container_has_no_count(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    path = make_video(tmp_path / "clip.mkv", frames=21, container_format="matroska")

    info = probe_video(path)

    assert info.frames == 21
    assert info.fps == 16.0


def test_probe_hash_matches_the_file_bytes(video: Path) -> None:
    assert probe_video(str(video)).sha256 == hashlib.sha256(video.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "cannot be read as a video"),
        (b"this is a text file, not a video\n" * 40, "cannot be read as a video"),
    ],
)
def test_probe_rejects_a_file_that_is_not_a_video(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)

    with pytest.raises(OutputMissing, match=reason) as caught:
        probe_video(path)

    assert caught.value.details == {"path": str(path)}


def test_probe_rejects_a_truncated_mp4(video: Path) -> None:
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 3])

    with pytest.raises(OutputMissing, match="unusable"):
        probe_video(video)


def test_probe_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OutputMissing, match="does not exist"):
        probe_video(tmp_path / "never-written.mp4")
