"""What a finished output directory held: the files its stamp vouches for.

The runner (trigger_ml.runner) records every file of a stage's output directory in the stamp
(size, modification time and sha256) when the stage finishes, and checks them before it
reuses the directory. A truncated or overwritten file (a full disk during a copy, an editor,
a bad sync) is found, named in a warning and the stage rebuilt, instead of being read::

    [train] dips-small: qkeras.weights.h5 has 4096 bytes, its stamp says 18944; rebuilding

A file whose size and modification time are the stamped ones is taken as it is (the check
costs one ``stat`` per file); a file with the stamped size but another modification time is
hashed again (a workspace copied without keeping times is slower to check, not wrong).

Not recorded: the stamp itself, hidden names (locks, temporaries), subdirectories that are
other stages' outputs (they have their own stamp), and the files a stage declares it updates
after it finished (``Stage.mutable_outputs``, e.g. report.json, to which ``trigger-ml rtl``
adds its cost section; report.json is validated whenever it is read).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from trigger_ml.fileio import sha256_of_file


def _files(out: Path, exclude: Sequence[str], stamp: str) -> Iterator[tuple[str, Path]]:
    def walk(directory: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        for path in sorted(directory.iterdir()):
            if path.name.startswith(".") or path.is_symlink():
                continue
            rel = f"{prefix}{path.name}"
            if path.is_dir():
                if not (path / stamp).exists():
                    yield from walk(path, f"{rel}/")
            elif path.is_file() and rel != stamp and not any(fnmatch.fnmatch(rel, p) for p in exclude):
                yield rel, path

    yield from walk(out, "")


def snapshot(out: Path, exclude: Sequence[str] = (), stamp: str = "stamp.json") -> dict[str, dict[str, Any]]:
    """Every file of ``out`` (but the excluded ones, see the module docstring) by relative path:
    its size, modification time (ns) and sha256."""
    files = {}
    for rel, path in _files(out, exclude, stamp):
        stat = path.stat()
        files[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_of_file(path)}
    return files


def problems(out: Path, files: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(relative path, what is wrong with it) for every recorded file of ``out`` that is missing
    or no longer what was recorded; empty when all are intact."""
    found = []
    for rel, want in files.items():
        path = out / rel
        try:
            stat = path.stat()
        except OSError:
            found.append((rel, f"{rel} is missing"))
            continue
        if stat.st_size != want.get("size"):
            found.append((rel, f"{rel} has {stat.st_size} bytes, its stamp says {want.get('size')}"))
        elif stat.st_mtime_ns != want.get("mtime_ns") and sha256_of_file(path) != want.get("sha256"):
            found.append((rel, f"{rel} was changed after it was written (sha256 differs from its stamp)"))
    return found
