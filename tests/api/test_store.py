"""The SQLite job store on real files: persistence, FIFO claims, final states, retention, and
no secrets kept once a job has finished."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Clock
from wan_worker.api.store import (
    JOB_STATUSES,
    PURGED_ERROR,
    TERMINAL_STATUSES,
    JobStore,
    redacted_input,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobs.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: Clock) -> Iterator[JobStore]:
    made = JobStore(db_path, clock=clock)
    yield made
    made.close()


def test_a_new_job_is_queued_with_its_request(store: JobStore, clock: Clock) -> None:
    record = store.add(
        "job-1",
        {"mode": "i2v", "prompt": "a fox"},
        webhook="https://hooks.example/x",
        s3_config={"bucket": "b"},
    )
    assert record.status == "IN_QUEUE"
    assert record.input == {"mode": "i2v", "prompt": "a fox"}
    assert record.webhook == "https://hooks.example/x"
    assert record.s3_config == {"bucket": "b"}
    assert record.created_at == clock.now
    assert (record.started_at, record.finished_at, record.output, record.error) == (
        None,
        None,
        None,
        None,
    )
    assert store.get("job-1") == record
    assert store.get("missing") is None


def test_a_duplicate_id_is_refused(store: JobStore) -> None:
    store.add("job-1", {})
    with pytest.raises(ValueError, match="already exists"):
        store.add("job-1", {})


def test_the_database_and_its_folder_are_created_in_wal_mode(
    store: JobStore, db_path: Path
) -> None:
    store.add("job-1", {})
    assert db_path.is_file()
    with sqlite3.connect(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_queued_jobs_survive_reopening_the_file(db_path: Path, clock: Clock) -> None:
    first = JobStore(db_path, clock=clock)
    first.add("a", {"prompt": "one"})
    first.add("b", {"prompt": "two"}, webhook="https://hooks.example/b")
    first.close()

    second = JobStore(db_path, clock=clock)
    try:
        assert second.queue_depth() == 2
        b = second.get("b")
        assert b is not None and b.webhook == "https://hooks.example/b"
        claimed = second.claim_next()
        assert claimed is not None and claimed.id == "a"
        assert claimed.input == {"prompt": "one"}
    finally:
        second.close()


def test_jobs_are_claimed_first_in_first_out(store: JobStore, clock: Clock) -> None:
    for name in ("a", "b", "c"):
        store.add(name, {})
    clock.now += 5
    claimed = [store.claim_next() for _ in range(4)]
    assert [r.id if r else None for r in claimed] == ["a", "b", "c", None]
    assert all(r is not None and r.status == "IN_PROGRESS" for r in claimed[:3])
    first = claimed[0]
    assert first is not None and first.started_at == clock.now and first.delay_ms == 5000


def test_fifo_follows_insertion_even_when_the_clock_goes_backwards(
    store: JobStore, clock: Clock
) -> None:
    store.add("first", {})
    clock.now -= 100
    store.add("second", {})
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == "first"


def test_concurrent_claims_never_hand_out_a_job_twice(store: JobStore) -> None:
    total = 200
    for index in range(total):
        store.add(f"job-{index}", {"index": index})
    claimed: list[str] = []
    claimed_lock = threading.Lock()
    start = threading.Barrier(8)

    def claim_all() -> None:
        start.wait()
        while (record := store.claim_next()) is not None:
            with claimed_lock:
                claimed.append(record.id)

    threads = [threading.Thread(target=claim_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed) == sorted(f"job-{index}" for index in range(total))
    assert len(set(claimed)) == total
    assert store.queue_depth() == 0


def test_finishing_records_the_outcome_and_times(store: JobStore, clock: Clock) -> None:
    store.add("job-1", {})
    clock.now += 2
    store.claim_next()
    store.set_progress("job-1", {"stage": "sampling", "percent": 40})
    progressed = store.get("job-1")
    assert progressed is not None and progressed.progress == {"stage": "sampling", "percent": 40}
    clock.now += 7.5
    done = store.finish("job-1", "COMPLETED", output={"video": "abc"})
    assert done.status == "COMPLETED"
    assert done.output == {"video": "abc"}
    assert done.finished_at == clock.now
    assert (done.delay_ms, done.execution_ms) == (2000, 7500)
    assert done.terminal


def test_a_terminal_status_is_final(store: JobStore, clock: Clock) -> None:
    store.add("job-1", {})
    store.claim_next()
    failed = store.finish(
        "job-1", "FAILED", error="execution_failed: node 3 failed", error_code="execution_failed"
    )
    clock.now += 1
    again = store.finish("job-1", "COMPLETED", output={"video": "late"})
    assert again == failed
    store.set_progress("job-1", {"percent": 99})
    assert store.cancel_queued("job-1") is None
    assert store.get("job-1") == failed


def test_finish_refuses_unknown_jobs_and_non_terminal_statuses(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.finish("missing", "COMPLETED")
    store.add("job-1", {})
    with pytest.raises(ValueError, match="not a terminal status"):
        store.finish("job-1", "IN_PROGRESS")


def test_only_a_queued_job_can_be_cancelled_from_the_queue(store: JobStore) -> None:
    store.add("running", {})
    store.add("waiting", {})
    store.claim_next()
    assert store.cancel_queued("running") is None
    assert store.cancel_queued("missing") is None
    cancelled = store.cancel_queued("waiting")
    assert cancelled is not None
    assert cancelled.status == "CANCELLED"
    assert cancelled.error_code == "cancelled"
    assert cancelled.error is not None and cancelled.error.startswith("cancelled: ")
    assert cancelled.started_at is None and cancelled.execution_ms is None
    assert cancelled.delay_ms == 0
    assert store.claim_next() is None


def test_purging_cancels_every_queued_job_and_nothing_else(store: JobStore) -> None:
    for name in ("running", "a", "b", "c"):
        store.add(name, {}, webhook=f"https://hooks.test/{name}")
    store.claim_next()
    purged = store.purge_queue()
    assert [record.id for record in purged] == ["a", "b", "c"]
    assert [record.webhook for record in purged] == [f"https://hooks.test/{n}" for n in "abc"]
    assert {record.status for record in purged} == {"CANCELLED"}
    assert store.queue_depth() == 0
    for name in ("a", "b", "c"):
        record = store.get(name)
        assert record is not None and record.status == "CANCELLED"
        assert record.error == PURGED_ERROR
    running = store.get("running")
    assert running is not None and running.status == "IN_PROGRESS"
    assert store.purge_queue() == []


def test_queued_ids_lists_the_waiting_jobs_first_in_first(store: JobStore) -> None:
    for name in ("running", "b", "a", "cancelled", "c"):
        store.add(name, {})
    store.claim_next()
    store.cancel_queued("cancelled")
    assert store.queued_ids() == ["b", "a", "c"]
    store.claim_next()
    assert store.queued_ids() == ["a", "c"]


def test_counts_cover_every_status(store: JobStore) -> None:
    assert store.counts() == dict.fromkeys(JOB_STATUSES, 0)
    for name in ("a", "b", "c", "d", "e"):
        store.add(name, {})
    store.claim_next()
    store.claim_next()
    store.finish("a", "COMPLETED")
    store.finish("b", "TIMED_OUT", error="timeout: too slow", error_code="timeout")
    store.cancel_queued("e")
    assert store.counts() == {
        "IN_QUEUE": 2,
        "IN_PROGRESS": 0,
        "COMPLETED": 1,
        "FAILED": 0,
        "CANCELLED": 1,
        "TIMED_OUT": 1,
    }
    assert store.queue_depth() == 2
    assert set(TERMINAL_STATUSES) == set(JOB_STATUSES) - {"IN_QUEUE", "IN_PROGRESS"}


def test_recover_fails_jobs_a_dead_process_left_running(db_path: Path, clock: Clock) -> None:
    first = JobStore(db_path, clock=clock)
    for name in ("a", "b", "c"):
        first.add(name, {})
    first.claim_next()
    first.claim_next()
    first.close()

    clock.now += 30
    second = JobStore(db_path, clock=clock)
    try:
        reason = "the server stopped while the job was running; submit it again"
        assert second.recover(reason) == ["a", "b"]
        for name in ("a", "b"):
            record = second.get(name)
            assert record is not None and record.status == "FAILED"
            assert record.error_code == "execution_failed"
            assert record.error == f"execution_failed: {reason}"
            assert record.finished_at == clock.now
        queued = second.get("c")
        assert queued is not None and queued.status == "IN_QUEUE"
        assert second.recover(reason) == []
    finally:
        second.close()


def test_recover_takes_the_error_code_that_fits(store: JobStore) -> None:
    store.add("a", {})
    store.claim_next()
    assert store.recover("ComfyUI stopped", error_code="comfyui_unavailable") == ["a"]
    record = store.get("a")
    assert record is not None
    assert (record.error_code, record.error) == (
        "comfyui_unavailable",
        "comfyui_unavailable: ComfyUI stopped",
    )


def test_expire_deletes_only_finished_jobs_past_retention(store: JobStore, clock: Clock) -> None:
    for name in ("old", "recent", "running", "queued"):
        store.add(name, {})
    store.claim_next()
    store.claim_next()
    store.claim_next()
    store.finish("old", "COMPLETED")
    clock.now += 50
    store.finish("recent", "FAILED", error="execution_failed: x", error_code="execution_failed")
    clock.now += 60
    assert store.expire(100) == 1
    assert store.get("old") is None
    assert store.get("recent") is not None
    assert store.get("running") is not None
    assert store.get("queued") is not None
    clock.now += 10_000
    assert store.expire(100) == 1
    assert store.get("recent") is None
    assert store.get("running") is not None and store.get("queued") is not None


def test_close_twice_is_harmless(db_path: Path) -> None:
    made = JobStore(db_path)
    made.close()
    made.close()


SECRET = "s3-secret-7a1f"
SIGNATURE = "X-Amz-Signature=0badc0ffee"
IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB" * 400  # 12.8 kB: over a page


def secret_request() -> dict[str, Any]:
    return {
        "action": "comfyui_i2v",
        "prompt": "a fox runs",
        "seed": 7,
        "timeout_s": 30.0,
        "image_base64": IMAGE,
        "image_url": f"https://user:pw@images.test/fox.png?{SIGNATURE}#frag",
        "upload_url": f"https://bucket.test/out.mp4?{SIGNATURE}",
        "s3Config": {"accessId": "AKIA", "accessSecret": SECRET, "bucketName": "b"},
        "loras": [{"name": "style.safetensors", "strength": 0.8}],
    }


@pytest.mark.parametrize(
    ("job_input", "summary"),
    [
        (
            secret_request(),
            {
                "action": "comfyui_i2v",
                "prompt": "a fox runs",
                "seed": 7,
                "timeout_s": 30.0,
                "image_url": "https://images.test/fox.png",
                "loras": [{"name": "style.safetensors", "strength": 0.8}],
                "redacted": ["image_base64", "upload_url", "s3Config"],
            },
        ),
        (
            {
                "action": "comfyui_workflow",
                "workflow": {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}},
                "images": [{"name": "a.png", "image": IMAGE}],
                "audio": [{"name": "v.wav", "audio": f"https://sounds.test/v.wav?{SIGNATURE}"}],
            },
            {
                "action": "comfyui_workflow",
                "images": [{"name": "a.png"}],
                "audio": [{"name": "v.wav"}],
                "redacted": ["workflow", "images[0].image", "audio[0].audio"],
            },
        ),
        (
            {"action": "t2v", "end_image_url": f"data:image/png;base64,{IMAGE}", "frames": 5},
            {"action": "t2v", "frames": 5, "redacted": ["end_image_url"]},
        ),
        ({"action": "t2v", "prompt": "waves"}, {"action": "t2v", "prompt": "waves"}),
    ],
)
def test_a_finished_jobs_input_keeps_a_summary_without_secrets(
    job_input: dict[str, Any], summary: dict[str, Any]
) -> None:
    assert redacted_input(job_input) == summary


def raw_rows(db_path: Path) -> str:
    """Every stored row as text, read with sqlite3 directly."""
    with sqlite3.connect(db_path) as db:
        return repr(db.execute("SELECT * FROM jobs").fetchall())


def file_bytes(db_path: Path) -> bytes:
    """The database file and its write-ahead log, byte for byte."""
    wal = db_path.with_name(db_path.name + "-wal")
    return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def finish(store: JobStore) -> None:
    store.claim_next()
    store.finish("job", "COMPLETED", output={"video": "v"})


def cancel(store: JobStore) -> None:
    store.cancel_queued("job")


def purge(store: JobStore) -> None:
    store.purge_queue()


def recover(store: JobStore) -> None:
    store.claim_next()
    store.recover("the server stopped")


@pytest.mark.parametrize("end", [finish, cancel, purge, recover])
def test_every_way_a_job_ends_forgets_its_secrets(
    db_path: Path, store: JobStore, end: Callable[[JobStore], None]
) -> None:
    s3_config = {"accessId": "AKIA", "accessSecret": SECRET, "bucketName": "b"}
    store.add("job", secret_request(), webhook="https://hooks.test/h", s3_config=s3_config)
    assert SECRET in raw_rows(db_path)
    end(store)
    record = store.get("job")
    assert record is not None and record.terminal
    assert record.s3_config is None
    assert record.input["action"] == "comfyui_i2v" and record.input["seed"] == 7
    assert record.webhook == "https://hooks.test/h"
    rows = raw_rows(db_path)
    for secret in (SECRET, SIGNATURE, IMAGE[:40], "user:pw"):
        assert secret not in rows
        assert secret.encode() not in file_bytes(db_path)
    assert record.input == redacted_input(secret_request())


def test_a_queued_or_running_job_keeps_what_it_needs_to_run(store: JobStore) -> None:
    s3_config = {"accessId": "AKIA", "accessSecret": SECRET, "bucketName": "b"}
    store.add("job", secret_request(), s3_config=s3_config)
    claimed = store.claim_next()
    assert claimed is not None
    assert claimed.input == secret_request() and claimed.s3_config == s3_config
