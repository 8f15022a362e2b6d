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

The registry (which stage names exist) lives in :mod:`trigger_ml.pipeline`; stages never
import their callers.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path, canonical_json, read_json, sha256_of_obj, write_json_atomic
from trigger_ml.logs import stage_logger, timed
from trigger_ml.workspace import Workspace

STAMP = "stamp.json"
"""The file in every stage's output directory that says what it was built from."""

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
    stamp = read_stamp(out)
    if stamp is None:
        return False
    stored = stamp["material"]
    return all(
        key in stored and canonical_json(stored[key]) == canonical_json(value)
        for key, value in material.items()
    )


def write_stamp(out: Path, material: Mapping[str, Any]) -> None:
    write_json_atomic(out / STAMP, {"sha256": sha256_of_obj(dict(material)), "material": dict(material)})


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
        if not force and stamp_matches(out, material):
            # The stage asked for says so; the ones it needs only in debug lines.
            level = logging.INFO if self._depth == 0 else logging.DEBUG
            logger.log(level, f"{stage.label(subject)}: {out} is current; nothing to do")
        else:
            with timed() as clock:
                build_once(
                    out, material, lambda target: stage.run(subject, inputs, target), stage.writes_in_place
                )
            logger.debug(f"{stage.label(subject)}: {name} took {clock.seconds:.1f} s")
        artefact = stage.load(subject, inputs, out)
        self._resolved[memo] = artefact
        return artefact

    def is_current(self, name: str, subject: Any) -> bool:
        """Would ``ensure`` reuse the stored artefact (its needs are built if missing)?"""
        stage = self.stage(name)
        out = stage.output_dir(subject, self.ws)
        return stamp_matches(out, stamp_material(stage, subject, self.inputs(name, subject)))


def build_once(
    out: Path, material: Mapping[str, Any], build: Callable[[Path], None], in_place: bool = False
) -> None:
    """Run ``build`` into a temporary directory renamed to ``out`` with its stamp (or, ``in_place``,
    into ``out`` itself, its old stamp removed first and the new one written last)."""
    if in_place:
        out.mkdir(parents=True, exist_ok=True)
        (out / STAMP).unlink(missing_ok=True)
        build(out)
        write_stamp(out, material)
        return
    with atomic_path(out) as tmp:
        tmp.mkdir()
        build(tmp)
        write_stamp(tmp, material)


def cached_dir(out: Path, material: Mapping[str, Any], build: Callable[[Path], None]) -> bool:
    """Build ``out`` unless its stamp matches ``material``; True if it was built now. For a
    stage's own intermediate outputs (a symbolic fit beside its project)."""
    if stamp_matches(out, material):
        return False
    build_once(out, material, build)
    return True
