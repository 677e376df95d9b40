"""Served outputs on real files: adoption, safe lookups, expiry and the disk budget."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.api.conftest import Clock
from wan_worker.api.outputs import OutputStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture
def store(root: Path, clock: Clock) -> OutputStore:
    return OutputStore(root, ttl_s=3600, budget_bytes=1000, clock=clock)


def made(tmp_path: Path, name: str, size: int = 100) -> Path:
    """A finished video of ``size`` bytes in the job's work folder."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    path = work / name
    path.write_bytes(os.urandom(size))
    return path


def test_an_adopted_file_moves_into_its_job_folder(
    store: OutputStore, root: Path, tmp_path: Path
) -> None:
    source = made(tmp_path, "wan_00001_.mp4")
    content = source.read_bytes()
    stored = store.adopt("job-1", source)
    assert stored == root / "job-1" / "wan_00001_.mp4"
    assert stored.read_bytes() == content
    assert not source.exists()
    assert store.find("job-1", "wan_00001_.mp4") == stored.resolve()
    assert store.usage_bytes() == 100


def test_adopting_across_file_systems_copies_then_removes_the_source(
    store: OutputStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = made(tmp_path, "video.mp4")
    content = source.read_bytes()
    real_replace = os.replace

    def cross_device(src: str | Path, dst: str | Path) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    stored = store.adopt("job-1", source)
    assert stored.read_bytes() == content
    assert not source.exists()
    assert sorted(p.name for p in stored.parent.iterdir()) == ["video.mp4"]


@pytest.mark.parametrize("job_id", ["", "..", ".", "a/b", "../x", "/abs", ".hidden", "a\x00b"])
def test_adopt_refuses_a_job_id_that_is_not_a_plain_name(
    store: OutputStore, tmp_path: Path, job_id: str
) -> None:
    source = made(tmp_path, "video.mp4")
    with pytest.raises(ValueError, match="job id"):
        store.adopt(job_id, source)
    assert source.exists()


@pytest.mark.parametrize(
    ("job_id", "name"),
    [
        ("job-1", "../job-2/video.mp4"),
        ("..", "outside.mp4"),
        ("job-1/..", "video.mp4"),
        ("job-1", "/etc/passwd"),
        ("/etc", "passwd"),
        ("job-1", ""),
        ("job-1", "."),
        ("job-1", ".."),
        ("job-1", "sub/video.mp4"),
        ("job-1", "video.mp4\x00.txt"),
        ("job-1", ".video.mp4.part"),
        ("job-1", "missing.mp4"),
        ("job-9", "video.mp4"),
    ],
)
def test_find_answers_none_for_anything_but_a_stored_plain_name(
    store: OutputStore, root: Path, tmp_path: Path, job_id: str, name: str
) -> None:
    store.adopt("job-1", made(tmp_path, "video.mp4"))
    (root / "job-1" / ".video.mp4.part").write_bytes(b"partial")
    (tmp_path / "outside.mp4").write_bytes(b"secret")
    assert store.find(job_id, name) is None


def test_find_refuses_symlinks_that_leave_the_root(
    store: OutputStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"secret")
    store.adopt("job-1", made(tmp_path, "video.mp4"))
    (root / "job-1" / "escape.mp4").symlink_to(outside / "secret.mp4")
    (root / "job-2").symlink_to(outside, target_is_directory=True)
    assert store.find("job-1", "escape.mp4") is None
    assert store.find("job-2", "secret.mp4") is None
    assert store.find("job-1", "video.mp4") is not None


def test_symlinks_count_neither_as_usage_nor_as_evictable(
    store: OutputStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"x" * 5000)
    store.adopt("job-1", made(tmp_path, "video.mp4"))
    (root / "job-1" / "link.bin").symlink_to(outside / "big.bin")
    assert store.usage_bytes() == 100
    store.sweep()
    assert (outside / "big.bin").exists()


def test_outputs_expire_after_their_time_to_live(
    store: OutputStore, root: Path, tmp_path: Path, clock: Clock
) -> None:
    old = store.adopt("job-old", made(tmp_path, "a.mp4"))
    clock.now += 1800
    fresh = store.adopt("job-new", made(tmp_path, "b.mp4"))
    clock.now += 1801
    assert store.find("job-old", "a.mp4") is None
    assert store.find("job-new", "b.mp4") == fresh.resolve()
    assert store.sweep() == [old]
    assert not (root / "job-old").exists()
    assert fresh.exists()
    clock.now += 1800
    assert store.sweep() == [fresh]
    assert list(root.iterdir()) == []
    assert store.usage_bytes() == 0


def test_adopting_over_budget_evicts_the_oldest_other_jobs(
    store: OutputStore, root: Path, tmp_path: Path, clock: Clock
) -> None:
    for index in range(4):
        store.adopt(f"job-{index}", made(tmp_path, "video.mp4", size=300))
        clock.now += 10
    assert sorted(p.name for p in root.iterdir()) == ["job-1", "job-2", "job-3"]
    assert store.usage_bytes() == 900
    store.adopt("job-4", made(tmp_path, "video.mp4", size=550))
    assert sorted(p.name for p in root.iterdir()) == ["job-3", "job-4"]
    assert store.usage_bytes() == 850


def test_an_output_larger_than_the_budget_is_kept_for_its_own_job(
    store: OutputStore, root: Path, tmp_path: Path, clock: Clock
) -> None:
    store.adopt("job-small", made(tmp_path, "video.mp4", size=100))
    clock.now += 1
    big = store.adopt("job-big", made(tmp_path, "video.mp4", size=2000))
    assert [p.name for p in root.iterdir()] == ["job-big"]
    assert store.find("job-big", "video.mp4") == big.resolve()


def test_sweep_evicts_the_oldest_jobs_while_over_budget(
    root: Path, tmp_path: Path, clock: Clock
) -> None:
    roomy = OutputStore(root, ttl_s=3600, budget_bytes=10_000, clock=clock)
    for index in range(5):
        roomy.adopt(f"job-{index}", made(tmp_path, "video.mp4", size=200))
        clock.now += 10
    tight = OutputStore(root, ttl_s=3600, budget_bytes=450, clock=clock)
    removed = tight.sweep()
    assert removed == [root / f"job-{index}" / "video.mp4" for index in range(3)]
    assert sorted(p.name for p in root.iterdir()) == ["job-3", "job-4"]
    assert tight.usage_bytes() == 400


def test_stored_outputs_and_their_ages_survive_a_new_store(
    root: Path, tmp_path: Path, clock: Clock
) -> None:
    first = OutputStore(root, ttl_s=100, budget_bytes=1000, clock=clock)
    first.adopt("job-1", made(tmp_path, "video.mp4"))
    clock.now += 60
    second = OutputStore(root, ttl_s=100, budget_bytes=1000, clock=clock)
    assert second.find("job-1", "video.mp4") is not None
    clock.now += 41
    assert second.find("job-1", "video.mp4") is None
