"""Log lines carry their job's id, come as plain text or JSON, and never show a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import pytest

from wan_worker.logs import (
    REDACTED,
    configure_logging,
    current_job_id,
    job_context,
    redact,
    register_secret,
)

log = logging.getLogger("wan_worker.tests.logs")


@pytest.fixture
def plain() -> io.StringIO:
    out = io.StringIO()
    configure_logging(level="DEBUG", stream=out)
    return out


@pytest.fixture
def json_out() -> io.StringIO:
    out = io.StringIO()
    configure_logging(level="DEBUG", json_logs=True, stream=out)
    return out


def plain_lines(out: io.StringIO) -> list[str]:
    """This module's lines (other threads of the test process may log meanwhile)."""
    return [line for line in out.getvalue().splitlines() if f" {log.name}: " in line]


def json_lines(out: io.StringIO) -> list[dict[str, object]]:
    """This module's entries, decoded."""
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    return [entry for entry in entries if entry["logger"] == log.name]


def test_a_plain_line_carries_time_level_job_logger_and_message(plain: io.StringIO) -> None:
    log.info("outside")
    with job_context("job-42"):
        log.warning("inside %s", "a job")
    first, second = plain_lines(plain)
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert re.match(stamp + r"INFO \[-\] wan_worker\.tests\.logs: outside$", first)
    assert re.match(stamp + r"WARNING \[job-42\] wan_worker\.tests\.logs: inside a job$", second)


def test_the_job_context_nests_and_is_restored() -> None:
    assert current_job_id() == "-"
    with job_context("outer"):
        with job_context("inner"):
            assert current_job_id() == "inner"
        assert current_job_id() == "outer"
    assert current_job_id() == "-"


async def test_tasks_and_threads_started_in_a_job_keep_its_id(json_out: io.StringIO) -> None:
    release = asyncio.Event()

    async def step(label: str) -> None:
        await release.wait()
        log.info("%s task", label)
        await asyncio.to_thread(log.info, "%s thread", label)

    with job_context("job-a"):
        task_a = asyncio.create_task(step("a"))
    with job_context("job-b"):
        task_b = asyncio.create_task(step("b"))
    log.info("between")
    release.set()
    await asyncio.gather(task_a, task_b)

    seen = {str(entry["message"]): entry["job_id"] for entry in json_lines(json_out)}
    assert seen == {
        "between": "-",
        "a task": "job-a",
        "a thread": "job-a",
        "b task": "job-b",
        "b thread": "job-b",
    }


def test_json_lines_hold_one_object_each_with_the_exception_when_present(
    json_out: io.StringIO,
) -> None:
    with job_context("job-7"):
        log.info("plain message")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("it failed")
    first, second = json_lines(json_out)
    assert set(first) == {"time", "level", "logger", "job_id", "message"}
    assert first["level"] == "INFO"
    assert first["logger"] == "wan_worker.tests.logs"
    assert first["job_id"] == "job-7"
    assert first["message"] == "plain message"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", str(first["time"]))
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in str(second["exc_info"])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123_XYZ", "abc.def-123_XYZ"),
        ("header bearer tok3nv4lu3", "tok3nv4lu3"),
        (
            "PUT https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00d",
            "f00d",
        ),
        ("https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=AKIAEXAMPLE&x=1", "AKIAEXAMPLE"),
        ("https://store.example/v?Signature=c0ffee&Expires=1", "c0ffee"),
        ("https://blob.example/v.mp4?sv=2024&sig=Zm9vYmFy%3D", "Zm9vYmFy%3D"),
        ("token hf_abcdefghijklmnopqrstuvwxyz used", "hf_abcdefghijklmnopqrstuvwxyz"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_ordinary_words_are_left_alone() -> None:
    text = "basic settings; max_token=5; the bearer of news"
    assert redact(text) == text


def test_redaction_covers_arguments_and_exceptions_in_both_formats() -> None:
    register_secret("s3cr3t-webhook-key")
    for json_logs in (False, True):
        out = io.StringIO()
        configure_logging(json_logs=json_logs, stream=out)
        log.info("calling %s", "https://x.example/v?sig=abcdef with Bearer zzzzzzzz")
        try:
            raise ValueError("key was s3cr3t-webhook-key")
        except ValueError:
            log.exception("failed with Bearer yyyyyyyy")
        written = out.getvalue()
        for secret in ("abcdef", "zzzzzzzz", "yyyyyyyy", "s3cr3t-webhook-key"):
            assert secret not in written
        assert "ValueError: key was [redacted]" in written


def test_a_secret_containing_another_is_redacted_whole() -> None:
    register_secret("abcd1234")
    register_secret("abcd1234-longer-secret")
    assert redact("key abcd1234-longer-secret") == f"key {REDACTED}"


def test_configuring_twice_installs_one_handler(plain: io.StringIO) -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    second = io.StringIO()
    configure_logging(level="WARNING", stream=second)
    assert len(root.handlers) == before
    log.info("hidden")
    log.warning("shown")
    assert plain_lines(plain) == []
    assert [line.rsplit(": ", 1)[1] for line in plain_lines(second)] == ["shown"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging(level="LOUD")
