"""Progress messages and timings of the stages: the standard ``logging`` module.

Every stage logs to its logger in one hierarchy, ``trigger_ml.<stage>`` (:func:`stage_logger`),
e.g. ``trigger_ml.hls``, ``trigger_ml.data``, ``trigger_ml.scan``; the stage name is the
bracket of the line the command line prints::

    [hls] dips-small: compiling the C simulation with g++

Library code never configures logging: without configuration Python's defaults apply
(warnings only, INFO progress not shown, no progress bars). The command line calls
:func:`configure` (``-v``: DEBUG, ``-q``: WARNING, default INFO).

:func:`timed` measures wall time into a ``timings`` dict (report.json ``timings_s`` and
the like) and logs it at DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

ROOT = "trigger_ml"
"""Name of the project's root logger; each stage's logger is a child of it."""

_timing_logger = logging.getLogger(f"{ROOT}.timing")


def stage_logger(stage: str) -> logging.Logger:
    """The logger of ``stage`` (``trigger_ml.<stage>``); its messages print as ``[stage] message``."""
    return logging.getLogger(f"{ROOT}.{stage}")


def level_of(verbosity: int) -> int:
    """INFO for 0, DEBUG above (``-v``), WARNING below (``-q``)."""
    return logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO


class _StageFormatter(logging.Formatter):
    """``[stage] message``, the stage being the logger's name below ``trigger_ml``."""

    def __init__(self) -> None:
        super().__init__("[%(stage)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.stage = record.name.removeprefix(f"{ROOT}.")
        return super().format(record)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (as ``print`` does), flushing each line."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(verbosity: int = 0) -> None:
    """Print the project's messages on stdout as ``[stage] message`` from the level of
    ``verbosity`` (:func:`level_of`). One handler: a second call replaces the first's."""
    root = logging.getLogger(ROOT)
    for handler in [h for h in root.handlers if isinstance(h, _StdoutHandler)]:
        root.removeHandler(handler)
    handler = _StdoutHandler()
    handler.setFormatter(_StageFormatter())
    root.addHandler(handler)
    root.setLevel(level_of(verbosity))


def shows_progress(logger: logging.Logger) -> bool:
    """Are ``logger``'s INFO messages shown (and so progress bars and per-epoch lines)?"""
    return logger.isEnabledFor(logging.INFO)


def _console_loggers() -> list[logging.Logger]:
    """The project's root logger and the root logger, where they print on the console."""

    def console(handler: logging.Handler) -> bool:
        return isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr)

    return [lg for lg in (logging.getLogger(ROOT), logging.root) if any(map(console, lg.handlers))]


@contextlib.contextmanager
def progress_bar(logger: logging.Logger, **tqdm_kwargs: Any) -> Iterator[Any]:
    """A tqdm bar (``tqdm_kwargs``), disabled unless ``logger`` shows progress; while it is
    shown, console messages are written above it (``tqdm.write``) instead of through it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(disable=not shows_progress(logger), **tqdm_kwargs) as bar:
        if bar.disable:
            yield bar
            return
        with logging_redirect_tqdm(_console_loggers()):
            yield bar


class Stopwatch:
    """Wall seconds since it was started; frozen once stopped."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._end: float | None = None

    def stop(self) -> float:
        self._end = time.perf_counter()
        return self.seconds

    @property
    def seconds(self) -> float:
        end = self._end if self._end is not None else time.perf_counter()
        return end - self._start


@contextlib.contextmanager
def timed(timings: dict[str, Any] | None = None, key: str | None = None) -> Iterator[Stopwatch]:
    """Time the block: the wall seconds are stored under ``timings[key]`` (if given) when it
    finishes without an exception, and are the yielded stopwatch's ``seconds`` after it.

        with timed(timings, "convert_s"):
            hls_model = convert(...)
    """
    if (timings is None) != (key is None):
        raise ValueError("timed() takes both timings and key, or neither")
    clock = Stopwatch()
    yield clock
    seconds = clock.stop()
    if timings is not None:
        timings[key] = seconds
        _timing_logger.debug("%s %.3f s", key, seconds)
