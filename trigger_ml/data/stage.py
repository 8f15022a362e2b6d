"""The data stages: a model's training sample (``data``) and its evaluation sample of record
(``evaluation-data``).

A generated sample (Pythia 8 and FastJet) goes into ``data/<process>-<hash>/``; the generator
resumes its own partial work (finished shards are reused), so these stages write in place and
the runner stamps the directory when ``jets.h5`` is complete.

A file sample (``sample: {path: FILE}``, e.g. written by ``trigger-ml convert-ftag``) is
checked, not generated: the stage's directory ``data/file-<hash of the path>/`` holds its
stamp and ``source.json`` (path, sha256, jets), and the artefact is the file itself with its
sha256, so a changed file retrains everything after it. Its evaluation sample is the file
``evaluation.path``, or without one the test split of the training file, written to
``data/file-<hash>-test-<hash of the split>/jets.h5`` (jets no model trained on; the report
says where the evaluation jets come from).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.data.generate import generate_sample, sample_dir
from trigger_ml.data.settings import GeneratorSettings
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import atomic_path, sha256_of_file, sha256_of_obj, write_json_atomic
from trigger_ml.logs import stage_logger
from trigger_ml.runner import Stage
from trigger_ml.sample_config import resolve_data_path
from trigger_ml.workspace import Workspace

logger = stage_logger("data")


def generator_settings(config: ModelConfig) -> GeneratorSettings:
    """The generator settings of a model's sample (the settings its ``sample:`` section leaves
    out keep the generator's defaults)."""
    if config.sample.is_file:
        raise TriggerMLError(
            f"{config.name} trains on the file {config.sample.path}: it has no generator settings"
        )
    return GeneratorSettings(**config.sample.generator_fields())


def evaluation_settings(config: ModelConfig) -> GeneratorSettings:
    """The generator settings of the model's evaluation sample: the training sample's, with the
    evaluation's own seed, size and shard size."""
    return generator_settings(config).replace(**config.evaluation.generator_fields())


def sample_identity(config: ModelConfig) -> Hashable:
    """What makes two models' training samples the same one (to build each once)."""
    return ("file", config.sample.path) if config.sample.is_file else generator_settings(config)


def evaluation_identity(config: ModelConfig) -> Hashable:
    """What makes two models' evaluation samples the same one."""
    if config.sample.is_file:
        return ("file", config.sample.path, config.evaluation.path, config.split)
    return evaluation_settings(config)


def evaluation_origin(config: ModelConfig) -> str:
    """Where the evaluation sample of record comes from, for reports."""
    if not config.sample.is_file:
        return f"generated with seed {config.evaluation.seed}, independent of the training sample"
    if config.evaluation.path is not None:
        return "the file evaluation.path, independent of the training file"
    return (
        "the test split of the training file (no evaluation.path given): jets the model was not "
        "trained on, from the same file; name an independent file as evaluation.path"
    )


@dataclass(frozen=True)
class SampleFile:
    """A finished sample: its ``jets.h5`` and that file's sha256 (what later stages key on)."""

    path: Path
    sha256: str


def _generate(settings: GeneratorSettings, data_root: Path) -> Path:
    """Generate with ``TRIGGER_ML_WORKERS`` processes (default: all cores)."""
    workers = int(os.environ.get("TRIGGER_ML_WORKERS", "0")) or None
    return generate_sample(settings, data_root, n_workers=workers)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


FILE_FIX = "convert your file with `trigger-ml convert-ftag SRC.h5` and name its jets.h5, or fix the path"
"""What to do about a named sample file that is not a usable jets.h5 (never: delete its folder)."""


def _file_sha256(path: Path, what: str) -> str:
    """sha256 of a named sample file (cached by path, size and modification time), after checking
    that it is a jets.h5 sample: the stages' keys call this before anything is written, so a
    bad file leaves no directory behind."""
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist", FILE_FIX)
    if not path.is_file():
        raise UsageError(f"{what} {path} is not a file", FILE_FIX)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        from trigger_ml.data.dataset import check_sample_file

        check_sample_file(path, FILE_FIX)
        _SHA_CACHE[key] = sha256_of_file(path)
    return _SHA_CACHE[key]


def _file_dir(path: Path, ws: Workspace) -> Path:
    return ws.data_dir / f"file-{sha256_of_obj(str(path.resolve()))[:12]}"


def _check_file(path: Path, sha256: str, out: Path) -> None:
    """Read ``path`` as a sample (one-line error if it is not one) and record it in ``out``."""
    from trigger_ml.data.dataset import read_sample

    sample = read_sample(path, FILE_FIX)
    counts = {
        str(f): int(n) for f, n in zip(*np.unique(sample.jets["flavour"], return_counts=True), strict=True)
    }
    write_json_atomic(
        out / "source.json",
        {
            "path": str(path.resolve()),
            "sha256": sha256,
            "n_jets": len(sample.jets),
            "jets_per_flavour": counts,
        },
    )


class SampleStage(Stage[SampleFile]):
    """``data``: the training sample of a model (shared by every model with its settings)."""

    name = "data"
    writes_in_place = True

    def settings(self, config: ModelConfig) -> GeneratorSettings:
        return generator_settings(config)

    def named_file(self, config: ModelConfig, ws: Workspace) -> Path | None:
        """The file the model names for this sample (None: generated)."""
        return resolve_data_path(config.sample.path, ws.root) if config.sample.path is not None else None

    def output_dir(self, subject: ModelConfig, ws: Workspace) -> Path:
        named = self.named_file(subject, ws)
        if named is not None:
            return _file_dir(named, ws)
        return sample_dir(self.settings(subject), ws.data_dir)

    def key(self, subject: ModelConfig, inputs: Mapping[str, Any]) -> dict[str, Any]:
        named = self.named_file(subject, inputs.ws)  # type: ignore[attr-defined]
        if named is not None:
            return {"file": {"path": str(named.resolve()), "sha256": _file_sha256(named, "sample file")}}
        return {"settings": self.settings(subject).canonical_dict()}

    def run(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> None:
        named = self.named_file(subject, inputs.ws)  # type: ignore[attr-defined]
        if named is not None:
            logger.info(f"{subject.name}: sample file {named}")
            _check_file(named, _file_sha256(named, "sample file"), out)
            return
        settings = self.settings(subject)
        self.announce(subject, settings)
        _generate(settings, out.parent)

    def announce(self, subject: ModelConfig, settings: GeneratorSettings) -> None:
        logger.debug(
            f"{subject.name}: sample {settings.process}, {settings.n_jets} jets, seed {settings.seed}"
        )

    def load(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> SampleFile:
        named = self.named_file(subject, inputs.ws)  # type: ignore[attr-defined]
        if named is not None:
            return SampleFile(named.resolve(), _file_sha256(named, "sample file"))
        path = out / "jets.h5"
        return SampleFile(path, sha256_of_file(path))


class EvaluationSampleStage(SampleStage):
    """``evaluation-data``: the evaluation sample of record (trigger_ml.evaluation)."""

    name = "evaluation-data"

    def settings(self, config: ModelConfig) -> GeneratorSettings:
        return evaluation_settings(config)

    def named_file(self, config: ModelConfig, ws: Workspace) -> Path | None:
        path = config.evaluation.path
        return resolve_data_path(path, ws.root) if path is not None else None

    def _test_split_of(self, config: ModelConfig, ws: Workspace) -> Path | None:
        """The training file whose test split is the evaluation sample (None: not this case)."""
        if config.sample.path is None or config.evaluation.path is not None:
            return None
        return resolve_data_path(config.sample.path, ws.root)

    def output_dir(self, subject: ModelConfig, ws: Workspace) -> Path:
        training = self._test_split_of(subject, ws)
        if training is None:
            return super().output_dir(subject, ws)
        split = sha256_of_obj(subject.split.model_dump(mode="json"))[:12]
        return ws.data_dir / f"{_file_dir(training, ws).name}-test-{split}"

    def key(self, subject: ModelConfig, inputs: Mapping[str, Any]) -> dict[str, Any]:
        training = self._test_split_of(subject, inputs.ws)  # type: ignore[attr-defined]
        if training is None:
            return super().key(subject, inputs)
        return {
            "test_split_of": {
                "path": str(training.resolve()),
                "sha256": _file_sha256(training, "sample file"),
            },
            "split": subject.split.model_dump(mode="json"),
        }

    def run(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> None:
        training = self._test_split_of(subject, inputs.ws)  # type: ignore[attr-defined]
        if training is None:
            super().run(subject, inputs, out)
            return
        from trigger_ml.data.dataset import read_sample, split_indices

        logger.info(f"{subject.name}: no evaluation.path; evaluating on the test split of {training}")
        sample = read_sample(training, FILE_FIX)
        rows = np.sort(split_indices(len(sample.jets), subject)["test"])
        with atomic_path(out / "jets.h5") as tmp, h5py.File(tmp, "w") as handle:
            handle.create_dataset("jets", data=sample.jets[rows], compression="gzip", track_times=False)
            handle.create_dataset("tracks", data=sample.tracks[rows], compression="gzip", track_times=False)
            handle.attrs["source"] = str(training.resolve())
            handle.attrs["selection"] = "test split"

    def load(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> SampleFile:
        if self._test_split_of(subject, inputs.ws) is None:  # type: ignore[attr-defined]
            return super().load(subject, inputs, out)
        path = out / "jets.h5"
        return SampleFile(path, sha256_of_file(path))

    def announce(self, subject: ModelConfig, settings: GeneratorSettings) -> None:
        logger.info(f"evaluation sample: {settings.n_jets} jets, seed {settings.seed}")


def sample_path(config: ModelConfig, ws: Workspace) -> Path:
    """Where the model's training sample is (whether or not it exists yet)."""
    named = SampleStage().named_file(config, ws)
    return (
        named.resolve()
        if named is not None
        else sample_dir(generator_settings(config), ws.data_dir) / "jets.h5"
    )
