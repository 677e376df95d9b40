"""The downloader against a loopback hub and CDN: placement, resume, checks, space, skips."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.models.hub import Faults, HubDouble, HubFile
from wan_worker.catalogue import ModelFile
from wan_worker.errors import DownloadFailed, NotEnoughSpace
from wan_worker.models import ModelSettings
from wan_worker.models.download import STAGING_DIR, DiskUsage, DownloadProgress, ModelDownloader

REPO = "Test-Org/Wan_Test"
TOKEN = "hf_test_token"


def _model(file: str, folder: str, approx: int | None = None) -> ModelFile:
    return ModelFile(
        file=file,
        folder=folder,
        repository=REPO,
        path=f"split_files/{folder}/{file}",
        approx_bytes=approx,
        role="model",
        modes=("i2v",),
    )


HIGH = _model("tiny_high.safetensors", "diffusion_models")
VAE = _model("tiny_vae.safetensors", "vae", approx=300_000)
HIGH_BYTES = os.urandom(700_000)
VAE_BYTES = os.urandom(300_100)


def _hub_files() -> list[HubFile]:
    return [HubFile(REPO, HIGH.path, HIGH_BYTES), HubFile(REPO, VAE.path, VAE_BYTES)]


@pytest.fixture
async def hub() -> AsyncIterator[HubDouble]:
    async with HubDouble(_hub_files()) as double:
        yield double


def _downloader(
    hub: HubDouble, free: int = 10**12, attempts: int = 3, **kwargs: object
) -> ModelDownloader:
    settings = ModelSettings(models_dir=Path("unused"), hf_endpoint=hub.url, hf_token=TOKEN)
    return ModelDownloader(
        settings,
        disk_usage=lambda _: DiskUsage(2 * 10**12, 10**12, free),
        attempts=attempts,
        retry_delay_s=0,
        chunk_bytes=16 * 1024,
        **kwargs,  # type: ignore[arg-type]
    )


def _children(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _leftovers(dest: Path) -> list[Path]:
    return [p for p in (dest / STAGING_DIR).rglob("*") if p.is_file()]


async def test_files_land_in_their_comfyui_folders(hub: HubDouble, tmp_path: Path) -> None:
    events: list[DownloadProgress] = []
    downloader = _downloader(hub, on_progress=events.append)
    plan = await downloader.download([HIGH, VAE], tmp_path)
    assert (tmp_path / "diffusion_models" / HIGH.file).read_bytes() == HIGH_BYTES
    assert (tmp_path / "vae" / VAE.file).read_bytes() == VAE_BYTES
    assert plan.download_bytes == len(HIGH_BYTES) + len(VAE_BYTES)
    assert sorted(p.name for p in _children(tmp_path)) == ["diffusion_models", "vae"]
    assert events[-1] == DownloadProgress(VAE.file, len(VAE_BYTES), len(VAE_BYTES), 2, 2)
    assert {e.file for e in events if e.index == 1} == {HIGH.file}


async def test_the_token_goes_to_the_hub_and_never_to_the_cdn(
    hub: HubDouble, tmp_path: Path
) -> None:
    await _downloader(hub).download([HIGH], tmp_path)
    assert [s.authorization for s in hub.requests("hub")] == [f"Bearer {TOKEN}"]
    assert [s.authorization for s in hub.requests("cdn")] == [None]


async def test_a_cut_connection_resumes_on_the_next_run(hub: HubDouble, tmp_path: Path) -> None:
    hub.faults = Faults(cut_at=[250_000])
    with pytest.raises(DownloadFailed, match="run the command again to resume") as err:
        await _downloader(hub, attempts=1).download([HIGH], tmp_path)
    assert err.value.details["kept_bytes"] == 250_000
    assert not (tmp_path / "diffusion_models" / HIGH.file).exists()
    (partial,) = _leftovers(tmp_path)
    assert partial.read_bytes() == HIGH_BYTES[:250_000]

    plan = await _downloader(hub, attempts=1).download([HIGH], tmp_path)
    assert plan.staged_bytes == 250_000
    assert plan.download_bytes == len(HIGH_BYTES) - 250_000
    assert [s.range for s in hub.requests("cdn")] == [None, "bytes=250000-"]
    assert (tmp_path / "diffusion_models" / HIGH.file).read_bytes() == HIGH_BYTES
    assert _leftovers(tmp_path) == []


async def test_a_cut_connection_is_resumed_within_the_run(hub: HubDouble, tmp_path: Path) -> None:
    hub.faults = Faults(cut_at=[100_000, 400_000])
    await _downloader(hub, attempts=3).download([HIGH], tmp_path)
    assert [s.range for s in hub.requests("cdn")] == [None, "bytes=100000-", "bytes=400000-"]
    assert (tmp_path / "diffusion_models" / HIGH.file).read_bytes() == HIGH_BYTES


async def test_a_server_ignoring_range_restarts_the_file_cleanly(
    hub: HubDouble, tmp_path: Path
) -> None:
    hub.faults = Faults(cut_at=[300_000], ignore_range=True)
    await _downloader(hub, attempts=2).download([HIGH], tmp_path)
    assert [s.range for s in hub.requests("cdn")] == [None, "bytes=300000-"]
    assert (tmp_path / "diffusion_models" / HIGH.file).read_bytes() == HIGH_BYTES


async def test_a_size_mismatch_is_rejected_and_nothing_stays(tmp_path: Path) -> None:
    files = [HubFile(REPO, HIGH.path, HIGH_BYTES, announced_size=len(HIGH_BYTES) + 10)]
    async with HubDouble(files) as hub:
        with pytest.raises(DownloadFailed, match="arrived where the hub announced") as err:
            await _downloader(hub).download([HIGH], tmp_path)
    assert "the bad file was deleted" in str(err.value)
    assert not (tmp_path / "diffusion_models" / HIGH.file).exists()
    assert _leftovers(tmp_path) == []


async def test_more_bytes_than_announced_are_rejected(tmp_path: Path) -> None:
    files = [HubFile(REPO, HIGH.path, HIGH_BYTES, announced_size=len(HIGH_BYTES) - 1)]
    async with HubDouble(files) as hub:
        with pytest.raises(DownloadFailed, match="arrived where the hub announced"):
            await _downloader(hub).download([HIGH], tmp_path)
    assert not (tmp_path / "diffusion_models" / HIGH.file).exists()
    assert _leftovers(tmp_path) == []


async def test_a_hash_mismatch_is_rejected(tmp_path: Path) -> None:
    wrong = hashlib.sha256(b"another file").hexdigest()
    files = [HubFile(REPO, HIGH.path, HIGH_BYTES, announced_sha256=wrong)]
    async with HubDouble(files) as hub:
        with pytest.raises(DownloadFailed, match="sha256 differs"):
            await _downloader(hub).download([HIGH], tmp_path)
    assert not (tmp_path / "diffusion_models" / HIGH.file).exists()
    assert _leftovers(tmp_path) == []


async def test_a_hub_size_far_from_the_catalogue_is_refused_before_fetching(
    tmp_path: Path,
) -> None:
    expects_more = _model(VAE.file, "vae", approx=3_000_000)
    async with HubDouble(_hub_files()) as hub:
        with pytest.raises(DownloadFailed, match=r"catalogue expects about 3\.0 MB"):
            await _downloader(hub).download([expects_more], tmp_path)
        assert hub.requests("cdn") == []


async def test_no_space_is_refused_before_any_byte(hub: HubDouble, tmp_path: Path) -> None:
    downloader = _downloader(hub, free=500_000)
    with pytest.raises(NotEnoughSpace) as err:
        await downloader.download([HIGH, VAE], tmp_path)
    assert str(err.value) == (
        f"not_enough_space: not enough free space in {tmp_path}: the download needs 1.0 MB "
        "and 500.0 kB is free; free 500.1 kB more or choose another --dest"
    )
    assert err.value.details == {
        "needed_bytes": 1_000_100,
        "free_bytes": 500_000,
        "dest": str(tmp_path),
    }
    assert hub.requests("cdn") == []
    assert {s.method for s in hub.seen} == {"HEAD"}
    assert _children(tmp_path) == []


async def test_free_space_is_read_where_the_destination_will_be(
    hub: HubDouble, tmp_path: Path
) -> None:
    asked: list[Path] = []

    def usage(path: Path) -> DiskUsage:
        asked.append(path)
        return DiskUsage(10**9, 0, 10**9)

    settings = ModelSettings(models_dir=tmp_path, hf_endpoint=hub.url)
    plan = await ModelDownloader(settings, disk_usage=usage).plan([HIGH], tmp_path / "a" / "b")
    assert asked == [tmp_path]
    assert plan.free_bytes == 10**9


async def test_files_already_in_place_are_skipped(hub: HubDouble, tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / VAE.file).write_bytes(VAE_BYTES)
    plan = await _downloader(hub).download([HIGH, VAE], tmp_path)
    assert plan.present == (VAE,)
    assert [p.remote.model for p in plan.fetch] == [HIGH]
    assert len(hub.requests("cdn")) == 1


async def test_a_file_of_the_wrong_size_in_place_is_replaced(
    hub: HubDouble, tmp_path: Path
) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / VAE.file).write_bytes(VAE_BYTES[:1000])
    plan = await _downloader(hub).download([VAE], tmp_path)
    assert plan.present == ()
    assert (tmp_path / "vae" / VAE.file).read_bytes() == VAE_BYTES


async def test_a_missing_file_on_the_hub_names_the_url(hub: HubDouble, tmp_path: Path) -> None:
    absent = _model("absent.safetensors", "loras")
    with pytest.raises(DownloadFailed, match=r"could not read absent\.safetensors") as err:
        await _downloader(hub).download([absent], tmp_path)
    assert err.value.details["url"] == (
        f"{hub.url}/{REPO}/resolve/main/split_files/loras/absent.safetensors"
    )
    assert "secret-signature" not in str(err.value)


async def test_a_second_downloader_waits_then_finds_the_file_in_place(
    hub: HubDouble, tmp_path: Path
) -> None:
    events: list[DownloadProgress] = []
    downloader = _downloader(hub, on_progress=events.append, lock_poll_s=0.01)
    plan = await downloader.plan([HIGH], tmp_path)
    part = plan.fetch[0].part
    part.parent.mkdir(parents=True)
    with part.open("ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        waiting = asyncio.create_task(downloader.fetch(plan))
        await _until(lambda: any(e.waiting for e in events))
        # The first downloader finishes: the file goes in place, its staging file goes away.
        held.write(HIGH_BYTES)
        held.flush()
        plan.fetch[0].target.parent.mkdir(parents=True)
        os.replace(part, plan.fetch[0].target)
    assert await asyncio.wait_for(waiting, 30) == [plan.fetch[0].target]
    assert hub.requests("cdn") == []
    assert plan.fetch[0].target.read_bytes() == HIGH_BYTES
    assert not (tmp_path / STAGING_DIR).exists()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_a_partial_of_another_revision_is_not_resumed(hub: HubDouble, tmp_path: Path) -> None:
    stale = tmp_path / STAGING_DIR / "diffusion_models" / f"{HIGH.file}.oldrevision.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x" * 1000)
    plan = await _downloader(hub).download([HIGH], tmp_path)
    assert plan.staged_bytes == 0
    assert [s.range for s in hub.requests("cdn")] == [None]
    assert (tmp_path / "diffusion_models" / HIGH.file).read_bytes() == HIGH_BYTES
    assert _leftovers(tmp_path) == []


async def test_an_expired_link_is_retried_with_a_fresh_one(hub: HubDouble, tmp_path: Path) -> None:
    hub.faults = Faults(refuse_gets=[403])
    await _downloader(hub, attempts=2).download([HIGH], tmp_path)
    assert [s.method for s in hub.requests("hub")] == ["HEAD", "HEAD"]
    assert len(hub.requests("cdn")) == 2
    assert (tmp_path / "diffusion_models" / HIGH.file).read_bytes() == HIGH_BYTES


async def test_a_refused_last_attempt_fails_and_leaves_nothing(
    hub: HubDouble, tmp_path: Path
) -> None:
    hub.faults = Faults(refuse_gets=[503])
    with pytest.raises(DownloadFailed, match="failed with HTTP 503"):
        await _downloader(hub, attempts=1).download([HIGH], tmp_path)
    assert _children(tmp_path) == []
