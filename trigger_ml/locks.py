"""One builder per output: a lock beside every output directory a stage builds.

Several processes may ask for the same artefact at once: the command line and a scan's Dask
workers, or tasks on other nodes sharing ``TRIGGER_ML_HOME``. :func:`output_lock` lets one of
them build it; the others wait, say whom they wait for, and then find it current::

    [train] waiting for train of dips-small: built by pid 4242 on host node07 since
            2026-12-03T07:30:12Z (trigger-ml hls dips-small)

The lock is ``fcntl.flock`` on ``.<dirname>.lock`` beside the output directory. The kernel
releases it when its holder exits for any reason, SIGKILL and the OOM killer included, so a
lock left by a killed process is recovered without anyone removing a file: the next process
takes it at once. The lock file itself is never deleted (deleting it would let two processes
hold locks on two different files of one name) and only says who holds it now.

Children started with ``fork`` (the generator's worker pool) would otherwise share the lock
and keep it after their parent was killed: they close their copy at fork time.

Shared file systems: on NFS (v3 with a lock manager, v4) Linux implements ``flock`` with the
server's byte-range locks, which other nodes see; a node that dies holds its locks until the
server's lease expires (about 90 s on NFSv4). File systems without locks (some FUSE mounts)
refuse ``flock``: the error names the directory (``TRIGGER_ML_HOME`` on a local disk, or
``TRIGGER_ML_LOCKS=off`` to build without locks, one process at a time).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trigger_ml.errors import TriggerMLError

LOCKS_ENV = "TRIGGER_ML_LOCKS"
"""``off`` disables the locks (a file system without ``flock``)."""
WAIT_ENV = "TRIGGER_ML_LOCK_WAIT_S"
"""The longest wait for another process's build, in seconds (default: no limit)."""
POLL_S = 0.2
STILL_WAITING_S = 60.0
"""How often a waiting process repeats whom it waits for."""

_held: set[int] = set()
"""File descriptors of the locks this process holds (closed in forked children)."""


def _close_in_child() -> None:
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def lock_path(out: Path) -> Path:
    """The lock file of the output directory (or file) ``out``: ``.<name>.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file by the process that took it."""

    pid: int
    host: str
    since: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {self.since} ({self.command})"


def _me() -> Holder:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        since=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=command[:200],
    )


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in the lock file ``path`` (None: unreadable, or nobody wrote yet)."""
    try:
        fields = json.loads(path.read_text())
        return Holder(int(fields["pid"]), str(fields["host"]), str(fields["since"]), str(fields["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _try_lock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise TriggerMLError(
                f"cannot lock {path}: the file system does not support locks ({error.strerror})",
                f"put TRIGGER_ML_HOME on a local disk or NFS with locking, or set {LOCKS_ENV}=off "
                "and run one process at a time",
            ) from None
        raise


def _max_wait() -> float | None:
    raw = os.environ.get(WAIT_ENV)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise TriggerMLError(f"{WAIT_ENV}={raw!r} is not a number of seconds", f"unset {WAIT_ENV}") from None


@dataclass
class Acquired:
    """What happened on the way to the lock."""

    waited_s: float = 0.0
    holder: Holder | None = None

    @property
    def waited(self) -> bool:
        return self.waited_s > 0


@contextlib.contextmanager
def output_lock(out: Path, what: str, logger: logging.Logger) -> Iterator[Acquired]:
    """Hold the lock of the output ``out`` for the block; ``what`` names the build in the lines
    logged while waiting ("train of dips-small"). Waits for another holder (for at most
    ``TRIGGER_ML_LOCK_WAIT_S`` seconds when set, then a one-line error)."""
    acquired = Acquired()
    if os.environ.get(LOCKS_ENV, "").lower() == "off":
        yield acquired
        return
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd, path):
            acquired.holder = read_holder(path)
            _wait(fd, path, what, logger, acquired)
        _held.add(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_me().__dict__) + "\n").encode(), 0)
        try:
            yield acquired
        finally:
            _held.discard(fd)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _wait(fd: int, path: Path, what: str, logger: logging.Logger, acquired: Acquired) -> None:
    start = time.monotonic()
    limit = _max_wait()

    def whom() -> str:
        holder = acquired.holder
        return f"built by {holder.describe()}" if holder else "built by another process"

    logger.info(f"waiting for {what}: {whom()}")
    said = start
    while not _try_lock(fd, path):
        now = time.monotonic()
        if limit is not None and now - start > limit:
            raise TriggerMLError(
                f"gave up waiting {now - start:.0f} s for {what}, {whom()}",
                f"wait for it to finish, or stop that process (its lock is {path}); "
                f"{WAIT_ENV} sets how long to wait",
            )
        if now - said >= STILL_WAITING_S:
            acquired.holder = read_holder(path) or acquired.holder
            logger.info(f"still waiting for {what} ({now - start:.0f} s): {whom()}")
            said = now
        time.sleep(POLL_S)
    acquired.waited_s = max(time.monotonic() - start, 1e-6)
