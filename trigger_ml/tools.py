"""External tools (Yosys, g++, Verilator, the vendor's HLS) run with a time limit, a heartbeat,
their log kept, and a check that the run fits the machine before it starts.

:func:`run_tool` starts the command with its output going to a log file in the project, and
while it runs logs one line every ``heartbeat_s`` seconds::

    [rtl] Yosys (dips-small): running 12 min 30 s, 3.1 GB resident (peak 3.4 GB); log hls_projects/dips-small/logs/yosys.log

It stops the tool and every process it started when the time limit (``TRIGGER_ML_<TOOL>_TIMEOUT_S``,
e.g. ``TRIGGER_ML_YOSYS_TIMEOUT_S``) or the memory limit (``TRIGGER_ML_TOOL_MEMORY_GB``) is
exceeded, and raises one clear TriggerMLError naming the limit, the variable that sets it and
the log. A log larger than :data:`GZIP_ABOVE_BYTES` is compressed (``.log.gz``).

:func:`check_fits` compares an :class:`Estimate` of the run's peak memory and duration (made by
the caller from the size of the design) with the memory the machine has available and with
the time limit, and refuses a run that cannot fit before it starts (warns when it may not;
``TRIGGER_ML_IGNORE_ESTIMATES=1`` runs it anyway).

Logs of tools that failed inside a build whose output directory is then removed are copied
to the directory :func:`failed_logs_in` names (the runner names ``<TRIGGER_ML_HOME>/logs/``),
so the error can point at them.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path

GZIP_ABOVE_BYTES = 1 << 20
"""Logs larger than this are kept gzip-compressed."""
POLL_S = 0.5
MEMORY_ENV = "TRIGGER_ML_TOOL_MEMORY_GB"
IGNORE_ESTIMATES_ENV = "TRIGGER_ML_IGNORE_ESTIMATES"
GB = 1e9

_failed_logs: ContextVar[Path | None] = ContextVar("trigger_ml_failed_logs", default=None)


@contextlib.contextmanager
def failed_logs_in(directory: Path) -> Iterator[None]:
    """Inside the block, a failed tool's log is also copied into ``directory``."""
    token = _failed_logs.set(directory)
    try:
        yield
    finally:
        _failed_logs.reset(token)


def env_seconds(variable: str, default: float | None) -> float | None:
    """Seconds from the environment variable (``0`` or ``none``: no limit), else ``default``."""
    raw = os.environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in ("0", "none", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise TriggerMLError(
            f"{variable}={raw!r} is not a number of seconds",
            f"set {variable} to e.g. 3600, or 0 for no limit",
        ) from None
    if value <= 0:
        return None
    return value


def timeout_variable(tool: str) -> str:
    """The environment variable of ``tool``'s time limit: ``TRIGGER_ML_<TOOL>_TIMEOUT_S``."""
    return f"TRIGGER_ML_{re.sub(r'[^A-Z0-9]+', '_', tool.upper()).strip('_')}_TIMEOUT_S"


def tool_timeout(tool: str, default: float | None) -> float | None:
    """``tool``'s time limit in seconds: its environment variable, else ``default`` (None: none)."""
    return env_seconds(timeout_variable(tool), default)


def memory_limit() -> float | None:
    """The memory limit of a tool and its children in bytes (``TRIGGER_ML_TOOL_MEMORY_GB``), or None."""
    raw = os.environ.get(MEMORY_ENV)
    if not raw:
        return None
    try:
        return float(raw) * GB
    except ValueError:
        raise TriggerMLError(f"{MEMORY_ENV}={raw!r} is not a number of GB", f"unset {MEMORY_ENV}") from None


def duration(seconds: float) -> str:
    """``45 s``, ``12 min 30 s``, ``2 h 05 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass(frozen=True)
class Estimate:
    """What a run is expected to need: peak memory (low, high bytes) and wall time (low, high
    seconds), and what the figures are scaled from (shown to the user)."""

    memory_bytes: tuple[float, float]
    seconds: tuple[float, float]
    basis: str

    def describe(self) -> str:
        (m_low, m_high), (low, high) = self.memory_bytes, self.seconds
        return (
            f"{m_low / GB:.1f} to {m_high / GB:.1f} GB and {duration(low)} to {duration(high)} ({self.basis})"
        )


def check_fits(
    name: str, estimate: Estimate, timeout_s: float | None, variable: str, logger: logging.Logger
) -> None:
    """Refuse (TriggerMLError) a run that cannot fit: even the low ``estimate`` needs more memory
    than is available now (or than ``TRIGGER_ML_TOOL_MEMORY_GB``), or more time than its limit
    ``timeout_s`` (set by ``variable``); warn when only the high estimate does.
    ``TRIGGER_ML_IGNORE_ESTIMATES=1`` skips the check."""
    if os.environ.get(IGNORE_ESTIMATES_ENV, "") not in ("", "0"):
        return
    available = float(psutil.virtual_memory().available)
    limit = memory_limit()
    room, have = available, f"{available / GB:.1f} GB available"
    if limit is not None and limit < available:
        room, have = limit, f"{MEMORY_ENV}={limit / GB:g}"
    if estimate.memory_bytes[0] > room:
        raise TriggerMLError(
            f"{name} would need {estimate.describe()}; this machine has {have}",
            f"run it on a machine with more memory, or set {IGNORE_ESTIMATES_ENV}=1 to try anyway",
        )
    if timeout_s is not None and estimate.seconds[0] > timeout_s:
        raise TriggerMLError(
            f"{name} would take {estimate.describe()}, longer than its limit {variable}={timeout_s:g}",
            f"raise {variable} (seconds; 0 for no limit), or set {IGNORE_ESTIMATES_ENV}=1 to try anyway",
        )
    if estimate.memory_bytes[1] > room:
        logger.warning(f"{name} may need more memory than the {have}; it is stopped if it runs out")
    if timeout_s is not None and estimate.seconds[1] > timeout_s:
        logger.warning(f"{name} may take longer than its limit {variable}={timeout_s:g}")


@dataclass(frozen=True)
class ToolRun:
    """A finished run: wall seconds, peak resident memory of the tool and its children
    (sampled every :data:`POLL_S`), and where its log is."""

    seconds: float
    peak_rss_bytes: int
    log_path: Path


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(processes: Sequence[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def _kill_tree(process: psutil.Process) -> None:
    for member in reversed(_tree(process)):
        with contextlib.suppress(psutil.Error):
            member.send_signal(signal.SIGKILL)


def _last_line(log_path: Path) -> str:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, log_path.stat().st_size - 8192))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines()]
    except OSError:
        return "no output"
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else "no output"


def keep_log(log_path: Path) -> Path:
    """Compress ``log_path`` to ``<log>.gz`` (atomically, reproducibly) if it is larger than
    :data:`GZIP_ABOVE_BYTES`; the path of the log kept."""
    if not log_path.is_file() or log_path.stat().st_size <= GZIP_ABOVE_BYTES:
        return log_path
    packed = log_path.with_name(log_path.name + ".gz")
    with atomic_path(packed) as tmp, open(log_path, "rb") as src, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    log_path.unlink()
    return packed


def _copy_failed_log(log_path: Path, name: str) -> Path:
    directory = _failed_logs.get()
    if directory is None or not log_path.is_file():
        return log_path
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", name).strip("-")[:80]
    target = directory / f"{stamp}-{slug}-{os.getpid()}{''.join(log_path.suffixes[-2:])}"
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(log_path, tmp)
        return target
    return log_path


def run_tool(
    command: Sequence[str],
    *,
    name: str,
    log_path: Path,
    timeout_s: float | None,
    timeout_variable: str,
    logger: logging.Logger,
    heartbeat_s: float = 30.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ToolRun:
    """Run ``command`` (in ``cwd``), its output into ``log_path``; see the module docstring.

    ``name`` names the tool in lines and errors ("Yosys (dips-small)"); ``timeout_variable`` is
    the environment variable that set ``timeout_s`` (named in the error). Raises TriggerMLError
    when the tool cannot start, exits with a non-zero status, is killed, or exceeds a limit;
    the error names the log (copied to :func:`failed_logs_in`'s directory when one is set).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    limit = memory_limit()
    start = time.monotonic()
    peak = 0
    exceeded: str | None = None
    with open(log_path, "wb") as log:
        try:
            popen = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            raise TriggerMLError(
                f"{name}: cannot run {command[0]} ({error.strerror})", "check that it is installed"
            ) from None
        process = psutil.Process(popen.pid)
        said = start
        try:
            while True:
                try:
                    popen.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                rss = _rss(_tree(process))
                peak = max(peak, rss)
                if timeout_s is not None and now - start > timeout_s:
                    exceeded = f"did not finish in {duration(timeout_s)} ({timeout_variable}={timeout_s:g})"
                elif limit is not None and rss > limit:
                    exceeded = f"used {rss / GB:.1f} GB, more than {MEMORY_ENV}={limit / GB:g}"
                if exceeded:
                    _kill_tree(process)
                    popen.wait()
                    break
                if now - said >= heartbeat_s:
                    logger.info(
                        f"{name}: running {duration(now - start)}, {rss / GB:.2f} GB resident "
                        f"(peak {peak / GB:.2f} GB); log {log_path}"
                    )
                    said = now
        except BaseException:
            _kill_tree(process)
            popen.wait()
            raise
    seconds = time.monotonic() - start
    code = popen.returncode
    if exceeded is None and code == 0:
        return ToolRun(seconds, peak, keep_log(log_path))
    last = _last_line(log_path)
    kept = _copy_failed_log(keep_log(log_path), name)
    if exceeded is not None:
        raise TriggerMLError(
            f"{name} {exceeded}: stopped after {duration(seconds)}, peak {peak / GB:.2f} GB",
            f"raise the limit, or run it on a larger machine; its log: {kept}",
        )
    if code < 0:
        how = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        oom = {signal.SIGKILL: " (out of memory?)", signal.SIGXFSZ: " (the file size limit, ulimit -f)"}.get(
            -code, ""
        )
        raise TriggerMLError(
            f"{name} was killed by {how}{oom} after {duration(seconds)}, peak {peak / GB:.2f} GB",
            f"see its log {kept}",
        )
    raise TriggerMLError(f"{name} failed with exit code {code}: {last}", f"see {kept}")
