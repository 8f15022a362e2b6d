"""The one error type the CLI turns into a single line and a non-zero exit code."""

from __future__ import annotations


class TriggerMLError(Exception):
    """A problem the user can fix: ``message`` names it, ``fix`` says what to do.

    ``exit_code`` is 2 for bad input on the command line or in a config (unknown model,
    malformed override), 1 for everything else (missing or corrupt files, failed tools).
    """

    def __init__(self, message: str, fix: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code

    def one_line(self) -> str:
        return f"error: {self.message}" + (f" -> {self.fix}" if self.fix else "")


class UsageError(TriggerMLError):
    """Bad input on the command line or in a configuration file (exit code 2)."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message, fix, exit_code=2)
