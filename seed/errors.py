"""The one exception the seed's commands turn into a one-line message and exit status."""

from __future__ import annotations


class SeedError(RuntimeError):
    """A problem worded as one line for the user (never containing a key)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
