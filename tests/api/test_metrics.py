"""Metrics as Prometheus renders them, parsed back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from wan_worker.api.metrics import Metrics


def samples(metrics: Metrics) -> list[Sample]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples(metrics) if s.name == name and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else None


def test_every_metric_is_named_for_the_project() -> None:
    body, _ = Metrics().render()
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert all(name.startswith("wan_worker_") for name in names)
    assert names >= {
        "wan_worker_jobs",
        "wan_worker_job_stage_seconds",
        "wan_worker_queue_depth",
        "wan_worker_jobs_in_progress",
        "wan_worker_comfyui_up",
    }


def test_finished_jobs_are_counted_by_status_from_zero() -> None:
    metrics = Metrics()
    for status in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
        assert value(metrics, "wan_worker_jobs_total", status=status) == 0
    metrics.job_finished("COMPLETED", {})
    metrics.job_finished("COMPLETED", {})
    metrics.job_finished("FAILED", {})
    assert value(metrics, "wan_worker_jobs_total", status="COMPLETED") == 2
    assert value(metrics, "wan_worker_jobs_total", status="FAILED") == 1
    assert value(metrics, "wan_worker_jobs_total", status="TIMED_OUT") == 0


def test_stage_timings_feed_a_histogram_per_stage() -> None:
    metrics = Metrics()
    metrics.job_finished(
        "COMPLETED",
        {"input_s": 0.02, "queue_wait_s": 1.5, "execution_s": 42.0, "total_s": 44.0},
    )
    metrics.job_finished("COMPLETED", {"execution_s": 80.0, "total_s": 81.0})
    name = "wan_worker_job_stage_seconds"
    assert value(metrics, f"{name}_count", stage="execution") == 2
    assert value(metrics, f"{name}_sum", stage="execution") == 122.0
    assert value(metrics, f"{name}_bucket", stage="execution", le="60.0") == 1
    assert value(metrics, f"{name}_bucket", stage="execution", le="+Inf") == 2
    assert value(metrics, f"{name}_count", stage="input") == 1
    assert value(metrics, f"{name}_bucket", stage="input", le="0.05") == 1
    assert value(metrics, f"{name}_count", stage="queue_wait") == 1


def test_timings_that_are_not_durations_are_ignored() -> None:
    metrics = Metrics()
    timings: dict[str, object] = {
        "steps": 8,
        "total_s": -1.0,
        "execution_s": float("nan"),
        "delivery_s": True,
        "download_s": "3",
    }
    metrics.job_finished("COMPLETED", timings)  # type: ignore[arg-type]
    stages = {s.labels.get("stage") for s in samples(metrics) if "stage" in s.labels}
    assert stages == set()


def test_gauges_follow_the_latest_value() -> None:
    metrics = Metrics()
    metrics.set_queue_depth(7)
    metrics.set_in_progress(1)
    metrics.set_comfyui_up(True)
    assert value(metrics, "wan_worker_queue_depth") == 7
    assert value(metrics, "wan_worker_jobs_in_progress") == 1
    assert value(metrics, "wan_worker_comfyui_up") == 1
    metrics.set_queue_depth(0)
    metrics.set_comfyui_up(False)
    assert value(metrics, "wan_worker_queue_depth") == 0
    assert value(metrics, "wan_worker_comfyui_up") == 0


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.job_finished("COMPLETED", {})
    assert value(first, "wan_worker_jobs_total", status="COMPLETED") == 1
    assert value(second, "wan_worker_jobs_total", status="COMPLETED") == 0
