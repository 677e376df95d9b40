"""Memory readings for the benchmarks: this process's resident set, read from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def rss_kib(field: str = "VmRSS") -> int:
    """A ``/proc/self/status`` size in KiB: ``VmRSS`` (now) or ``VmHWM`` (the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Start the peak (``VmHWM``) again from the current RSS; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
