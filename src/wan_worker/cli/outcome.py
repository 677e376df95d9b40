"""How a command-line job ends: the exit statuses, and a failure in the one error shape."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_INVALID_INPUT = 2
EXIT_SERVER_FAILED = 3
EXIT_TIMEOUT = 4

INPUT_CODES = frozenset({"invalid_input", "unsupported_action", "input_too_large"})
"""Error codes that mean the request itself was wrong (exit 2)."""
TIMEOUT_CODES = frozenset({"timeout", "cancelled"})
"""Error codes that mean the job ran out of time or was cancelled (exit 4)."""


def exit_status(error_code: str) -> int:
    """The exit status for a job that failed with ``error_code``; anything else is 3."""
    if error_code in INPUT_CODES:
        return EXIT_INVALID_INPUT
    if error_code in TIMEOUT_CODES:
        return EXIT_TIMEOUT
    return EXIT_SERVER_FAILED


class JobFailed(Exception):
    """A job ended without a video; ``response`` is ``{"error", "error_code", "details"}``."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(str(response.get("error") or "the job failed"))
        self.response = response

    @property
    def error_code(self) -> str:
        return str(self.response.get("error_code") or "internal_error")

    @property
    def exit_status(self) -> int:
        return exit_status(self.error_code)


def failure(error_code: str, sentence: str, **details: Any) -> JobFailed:
    """A failure found by the command line itself, in the same shape as the service's."""
    return JobFailed(
        {"error": f"{error_code}: {sentence}", "error_code": error_code, "details": details}
    )
