"""The one error type that reaches the user, caught once at the CLI edge."""

from __future__ import annotations


class HopError(Exception):
    """A failure the user can act on.

    The message is one line naming the bad value and what is allowed or what to do next; `detail` carries
    evidence (a log tail, raw tool output) that is printed after it.
    """

    def __init__(self, message: str, *, detail: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.exit_code = exit_code
