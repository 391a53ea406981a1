"""The one exception type the command line turns into a one-line message."""

from __future__ import annotations

from pathlib import Path


class IsclError(Exception):
    """A problem the user can fix (bad input, bad option, unwritable output).

    The CLI prints ``str(error)`` on one line and exits with status 1, never a traceback.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


def unexpected_error_line(error: BaseException) -> str:
    """One line for an exception that is a bug in iscl rather than the user's problem."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"unexpected {type(error).__name__}: {first_line} (a bug in iscl; `iscl --debug ...` prints the traceback)"
