"""The stage protocol and the one runner that owns caching, stamps, atomic writes, timing and logs.

A stage (data, train, hls, rtl, distill, ...) says what it is and nothing about its callers::

    class Stage:
        name                         "train"
        version                      format of its outputs; a new version rebuilds them once
        needs(subject)               {input name: Need(stage name, subject)}: what it reads
        output_dir(subject, ws)      where its artefact lives
        key(subject, inputs)         the JSON-able material its outputs depend on
        run(subject, inputs, out)    write the outputs into ``out`` (a temporary directory)
        load(subject, inputs, out)   the artefact of a finished ``out``

The :class:`Runner` resolves ``needs`` (each at most once per runner), compares the key with
``stamp.json`` in the output directory, and only when they differ runs the stage into a
temporary directory renamed into place on success (stages that resume their own partial work,
such as the sharded generator, write in place and get their stamp last). The stamp is written
only after the stage succeeded, so a killed run is never mistaken for a finished one.

A stamp matches when every item of the wanted key material equals the stored one, so a stage
may record more than it is asked for (an RTL build that was also simulated with Verilator
serves a request that did not ask for the simulation).

Several processes asking for one artefact (the command line, scan workers, Dask tasks on other
nodes sharing ``TRIGGER_ML_HOME``) build it once: a stale output is built under its lock
(:func:`trigger_ml.locks.output_lock`, released by the kernel when its holder dies); the
others wait, logging whom they wait for, find its stamp current once they hold the lock and
load it. The one that builds first removes what killed builds of the same output left
(:func:`trigger_ml.fileio.leftovers`).

The stamp also records the files of the finished output (:mod:`trigger_ml.manifest`); one
that was truncated or changed afterwards is named in a warning and the stage rebuilt.

The registry (which stage names exist) lives in :mod:`trigger_ml.pipeline`; stages never
import their callers.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import (
    atomic_path,
    canonical_json,
    read_json,
    remove_leftovers,
    sha256_of_obj,
    write_json_atomic,
)
from trigger_ml.locks import output_lock
from trigger_ml.logs import stage_logger, timed
from trigger_ml.manifest import problems, snapshot
from trigger_ml.tools import failed_logs_in
from trigger_ml.workspace import Workspace

STAMP = "stamp.json"
"""The file in every stage's output directory that says what it was built from."""
FAILED_LOGS = "logs"
"""Where the log of an external tool that failed during a build is kept (under the workspace
root), since the build's temporary directory is removed (trigger_ml.tools)."""

Artefact = TypeVar("Artefact")


@dataclass(frozen=True)
class Need:
    """One input of a stage: the artefact of ``stage`` for ``subject`` (a model configuration,
    or whatever that stage takes)."""

    stage: str
    subject: Any


class Inputs(dict[str, Any]):
    """The artefacts a stage reads, by input name, and the workspace they live in (``ws``)."""

    def __init__(self, ws: Workspace, artefacts: Mapping[str, Any]) -> None:
        super().__init__(artefacts)
        self.ws = ws


class Stage(ABC, Generic[Artefact]):
    """One stage of the chain; see the module docstring for the contract."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ()
    """Stages of the same subject whose artefacts this one reads (``needs`` may add others)."""
    writes_in_place: ClassVar[bool] = False
    """Run into the output directory itself (the stage resumes and replaces its own partial work)."""
    mutable_outputs: ClassVar[tuple[str, ...]] = ()
    """Files (glob patterns relative to the output directory) that later commands update in a
    finished output; the stamp does not vouch for them (trigger_ml.manifest)."""

    def needs(self, subject: Any) -> dict[str, Need]:
        """What this stage reads, by input name (default: ``requires`` of the same subject)."""
        return {name: Need(name, subject) for name in self.requires}

    def label(self, subject: Any) -> str:
        """The name in log lines (the model's name)."""
        return str(getattr(subject, "name", subject))

    @abstractmethod
    def output_dir(self, subject: Any, ws: Workspace) -> Path: ...

    @abstractmethod
    def key(self, subject: Any, inputs: Inputs) -> dict[str, Any]: ...

    @abstractmethod
    def run(self, subject: Any, inputs: Inputs, out: Path) -> None: ...

    @abstractmethod
    def load(self, subject: Any, inputs: Inputs, out: Path) -> Artefact: ...


def stamp_material(stage: Stage[Any], subject: Any, inputs: Inputs) -> dict[str, Any]:
    """What the stamp of ``stage`` records: its name, version and key material."""
    return {"stage": stage.name, "version": stage.version, **stage.key(subject, inputs)}


def read_stamp(out: Path) -> dict[str, Any] | None:
    """The stamp of a finished output directory (None if there is none or it is unreadable)."""
    try:
        stamp = read_json(out / STAMP)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and isinstance(stamp.get("material"), dict) else None


def stamp_matches(out: Path, material: Mapping[str, Any]) -> bool:
    """Was ``out`` finished from this material (every wanted item equal to the stored one)?"""
    return _material_matches(read_stamp(out), material)


def _material_matches(stamp: Mapping[str, Any] | None, material: Mapping[str, Any]) -> bool:
    if stamp is None:
        return False
    stored = stamp["material"]
    return all(
        key in stored and canonical_json(stored[key]) == canonical_json(value)
        for key, value in material.items()
    )


def damaged_outputs(out: Path) -> list[tuple[str, str]]:
    """(file, what is wrong) for every file the stamp of ``out`` records that is missing,
    truncated or changed (trigger_ml.manifest); empty for an intact output or a stamp from
    before files were recorded."""
    stamp = read_stamp(out)
    files = stamp.get("outputs") if stamp else None
    return problems(out, files) if isinstance(files, dict) else []


def is_intact(out: Path, material: Mapping[str, Any]) -> bool:
    """Is ``out`` finished from this material, with every recorded file as it was written?"""
    return stamp_matches(out, material) and not damaged_outputs(out)


def write_stamp(out: Path, material: Mapping[str, Any], mutable: Sequence[str] = ()) -> None:
    """The stamp of the finished ``out``: its material, its sha256 (what scans compare) and the
    files it vouches for (all but ``mutable``)."""
    write_json_atomic(
        out / STAMP,
        {
            "sha256": sha256_of_obj(dict(material)),
            "material": dict(material),
            "outputs": snapshot(out, mutable, STAMP),
        },
    )


def _reuse_or_build(
    out: Path,
    material: Mapping[str, Any],
    build: Callable[[Path], None],
    *,
    what: str,
    logger: logging.Logger,
    force: bool = False,
    in_place: bool = False,
    mutable: Sequence[str] = (),
) -> bool:
    """Build ``out`` under its lock unless (not ``force``) it is intact, or another process
    built it while this one waited; True if this process built it."""
    with output_lock(out, what, logger) as lock:
        if not force or lock.waited:
            if stamp_matches(out, material):
                damaged = damaged_outputs(out)
                if not damaged:
                    if lock.waited:
                        logger.info(f"{what}: built by the process waited for; reusing {out}")
                    return False
                for name, problem in damaged:
                    logger.warning(f"{what}: {problem}; rebuilding")
                    if in_place:
                        (out / name).unlink(missing_ok=True)
        for path in remove_leftovers(out):
            logger.debug(f"{what}: removed {path}, left by an interrupted build")
        build_once(out, material, build, in_place, mutable)
        return True


class Runner:
    """Runs stages of one registry in one workspace, each artefact resolved at most once."""

    def __init__(self, stages: Mapping[str, Stage[Any]], ws: Workspace) -> None:
        self.stages = stages
        self.ws = ws
        self._resolved: dict[tuple[str, Path], Any] = {}
        self._depth = 0

    def stage(self, name: str) -> Stage[Any]:
        try:
            return self.stages[name]
        except KeyError:
            raise TriggerMLError(
                f"no stage named {name!r}", f"the stages are: {', '.join(sorted(self.stages))}"
            ) from None

    def inputs(self, name: str, subject: Any) -> Inputs:
        """The artefacts ``name`` reads for ``subject``, each ensured first."""
        needs = self.stage(name).needs(subject)
        self._depth += 1
        try:
            return Inputs(
                self.ws, {key: self.ensure(need.stage, need.subject) for key, need in needs.items()}
            )
        finally:
            self._depth -= 1

    def ensure(self, name: str, subject: Any, force: bool = False) -> Any:
        """The artefact of stage ``name`` for ``subject``: loaded when its stamp matches what
        goes in, else (or with ``force``) built first. Needs are never forced."""
        stage = self.stage(name)
        out = stage.output_dir(subject, self.ws)
        memo = (name, out)
        if memo in self._resolved and not force:
            return self._resolved[memo]
        inputs = self.inputs(name, subject)
        material = stamp_material(stage, subject, inputs)
        logger = stage_logger(name)
        label = stage.label(subject)
        built = False
        if force or not is_intact(out, material):
            with timed() as clock, failed_logs_in(self.ws.root / FAILED_LOGS):
                built = _reuse_or_build(
                    out,
                    material,
                    lambda target: stage.run(subject, inputs, target),
                    what=f"{name} of {label}",
                    logger=logger,
                    force=force,
                    in_place=stage.writes_in_place,
                    mutable=stage.mutable_outputs,
                )
            if built:
                logger.debug(f"{label}: {name} took {clock.seconds:.1f} s")
        if not built:
            # The stage asked for says so; the ones it needs only in debug lines.
            level = logging.INFO if self._depth == 0 else logging.DEBUG
            logger.log(level, f"{label}: {out} is current; nothing to do")
        artefact = stage.load(subject, inputs, out)
        self._resolved[memo] = artefact
        return artefact

    def is_current(self, name: str, subject: Any) -> bool:
        """Would ``ensure`` reuse the stored artefact (its needs are built if missing)?"""
        stage = self.stage(name)
        out = stage.output_dir(subject, self.ws)
        return is_intact(out, stamp_material(stage, subject, self.inputs(name, subject)))


def build_once(
    out: Path,
    material: Mapping[str, Any],
    build: Callable[[Path], None],
    in_place: bool = False,
    mutable: Sequence[str] = (),
) -> None:
    """Run ``build`` into a temporary directory renamed to ``out`` with its stamp (or, ``in_place``,
    into ``out`` itself, its old stamp removed first and the new one written last). The caller
    holds the lock of ``out`` (:func:`cached_dir` and :class:`Runner` do)."""
    if in_place:
        out.mkdir(parents=True, exist_ok=True)
        (out / STAMP).unlink(missing_ok=True)
        build(out)
        write_stamp(out, material, mutable)
        return
    with atomic_path(out) as tmp:
        tmp.mkdir()
        build(tmp)
        write_stamp(tmp, material, mutable)


def cached_dir(
    out: Path, material: Mapping[str, Any], build: Callable[[Path], None], stage: str = "runner"
) -> bool:
    """Build ``out`` unless it is intact and its stamp matches ``material``; True if it was built
    now (by this process: one that waited for another's build reuses it). For a stage's own
    intermediate outputs (a symbolic fit beside its project); ``stage`` names the logger."""
    if is_intact(out, material):
        return False
    return _reuse_or_build(out, material, build, what=str(out), logger=stage_logger(stage))
