"""The progress bar of ``generate``: one redrawn line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from wan_worker.cli.progress_bar import ProgressBar, Update, clock_text


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_one_line_redrawn_with_a_bar_and_an_eta() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, tty=True, columns=120, clock=clock)
    clock.now += 2
    bar.update(Update("sampling", 50.0, step=2, steps=4))
    clock.now += 2
    bar.update(Update("done", 100.0))
    bar.close()

    first, second = out.getvalue().split("\r")[1:]
    assert first == (
        "[##########..........] sampling      step 2/4      50%  elapsed 0:02  eta 0:02"
    )
    assert second.startswith("[####################] done                       100%")
    assert second.endswith("elapsed 0:04  eta 0:00\n")
    assert "\n" not in first


def test_a_shorter_line_pads_over_the_longer_one_before_it() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, tty=True, columns=120, clock=Clock())
    bar.update(Update("encoding_text", 3.0, step=10, steps=20))
    bar.update(Update("saving", 4.0))
    first, second = out.getvalue().split("\r")[1:]
    assert len(second) == len(first)
    assert "encoding text" in first


def test_a_narrow_terminal_drops_the_bar_and_the_clock_moves_between_updates() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, tty=True, columns=60, clock=clock)
    bar.update(Update("sampling", 25.0, step=1, steps=4))
    bar.update(Update("sampling", 25.0, step=1, steps=4))
    clock.now += 61
    bar.tick()

    first, second = out.getvalue().split("\r")[1:]
    assert first == "sampling      step 1/4      25%  elapsed 0:00  eta ?"
    assert second == "sampling      step 1/4      25%  elapsed 1:01  eta 3:03"
    narrow = io.StringIO()
    ProgressBar(narrow, tty=True, columns=30, clock=clock).update(Update("decoding", 90.0))
    assert narrow.getvalue() == "\rdecoding                    9"


def test_plain_output_writes_a_line_only_when_something_shown_changes() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, tty=False, clock=clock)
    for percent in (10.0, 10.2, 10.4, 11.0):
        bar.update(Update("sampling", percent, step=1, steps=4))
    clock.now += 65
    bar.update(Update("sampling", 40.0, step=2, steps=4))
    bar.close()

    assert out.getvalue().splitlines() == [
        "sampling      step 1/4      10%  elapsed 0:00  eta ?",
        "sampling      step 1/4      11%  elapsed 0:00  eta ?",
        "sampling      step 2/4      40%  elapsed 1:05  eta 1:38",
    ]


def test_durations_read_as_minutes_or_hours() -> None:
    assert [clock_text(s) for s in (0, 59.6, 61, 3600 * 2 + 5)] == [
        "0:00",
        "1:00",
        "1:01",
        "2:00:05",
    ]
