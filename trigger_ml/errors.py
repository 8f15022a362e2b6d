"""The one error type the CLI turns into a single line and a non-zero exit code."""

from __future__ import annotations

import errno
import re


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


_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "a file would exceed the file size limit (ulimit -f)",
}
# HDF5 and some libraries report the system error in their message only.
_STORAGE_TEXTS = {
    "No space left on device": errno.ENOSPC,
    "errno = 28,": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "errno = 122,": errno.EDQUOT,
    "File too large": errno.EFBIG,
    "errno = 27,": errno.EFBIG,
}


def storage_error(error: BaseException) -> TriggerMLError | None:
    """The one-line error for a write that failed because the disk is full, the quota or the
    file size limit is reached (``error`` or an exception it was raised from); None otherwise.
    Outputs are written atomically (trigger_ml.fileio), so nothing half-written is left."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = current.errno if isinstance(current, OSError) else None
        if code not in _STORAGE_ERRNOS:
            text = str(current)
            code = next((c for marker, c in _STORAGE_TEXTS.items() if marker in text), None)
        if code in _STORAGE_ERRNOS:
            name = getattr(current, "filename", None) or _named_file(str(current))
            # The temporary of an atomic write (trigger_ml.fileio) is reported as its final name.
            name = re.sub(r"/\.([^/]+)\.[a-z0-9_]{8}\.tmp/\1(?=/|$)", r"/\1", str(name)) if name else None
            where = f" while writing {name}" if name else ""
            return TriggerMLError(
                f"{_STORAGE_ERRNOS[code]}{where}",
                "free space (or raise the limit) and rerun: finished stages are kept and "
                "nothing half-written was left",
            )
        current = current.__cause__ or current.__context__
    return None


def _named_file(text: str) -> str | None:
    """The file an HDF5 error message names (``filename = '...'``), if any."""
    match = re.search(r"filename = '([^']+)'", text)
    return match.group(1) if match else None
