"""The data stages: a model's training sample (``data``) and its evaluation sample of record
(``evaluation-data``), generated with Pythia 8 and FastJet into ``data/<process>-<hash>/``.

The generator resumes its own partial work (finished shards are reused), so these stages write
in place; the runner stamps the directory when ``jets.h5`` is complete.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trigger_ml.config import ModelConfig
from trigger_ml.data.generate import generate_sample, sample_dir
from trigger_ml.data.settings import GeneratorSettings
from trigger_ml.fileio import sha256_of_file
from trigger_ml.logs import stage_logger
from trigger_ml.runner import Stage
from trigger_ml.workspace import Workspace

logger = stage_logger("data")

def generator_settings(config: ModelConfig) -> GeneratorSettings:
    """The generator settings of a model's sample (the settings its ``sample:`` section leaves
    out keep the generator's defaults)."""
    return GeneratorSettings(**config.sample.model_dump(exclude_none=True))


def evaluation_settings(config: ModelConfig) -> GeneratorSettings:
    """The generator settings of the model's evaluation sample: the training sample's, with the
    evaluation's own seed, size and shard size."""
    return generator_settings(config).replace(**config.evaluation.model_dump())


@dataclass(frozen=True)
class SampleFile:
    """A finished sample: its ``jets.h5`` and that file's sha256 (what later stages key on)."""

    path: Path
    sha256: str


def _generate(settings: GeneratorSettings, data_root: Path) -> Path:
    """Generate with ``TRIGGER_ML_WORKERS`` processes (default: all cores)."""
    workers = int(os.environ.get("TRIGGER_ML_WORKERS", "0")) or None
    return generate_sample(settings, data_root, n_workers=workers)


class SampleStage(Stage[SampleFile]):
    """``data``: the training sample of a model (shared by every model with its settings)."""

    name = "data"
    writes_in_place = True

    def settings(self, config: ModelConfig) -> GeneratorSettings:
        return generator_settings(config)

    def output_dir(self, subject: ModelConfig, ws: Workspace) -> Path:
        return sample_dir(self.settings(subject), ws.data_dir)

    def key(self, subject: ModelConfig, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"settings": self.settings(subject).canonical_dict()}

    def run(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> None:
        settings = self.settings(subject)
        self.announce(subject, settings)
        _generate(settings, out.parent)

    def announce(self, subject: ModelConfig, settings: GeneratorSettings) -> None:
        logger.debug(f"{subject.name}: sample {settings.process}, {settings.n_jets} jets, seed {settings.seed}")

    def load(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> SampleFile:
        path = out / "jets.h5"
        return SampleFile(path, sha256_of_file(path))


class EvaluationSampleStage(SampleStage):
    """``evaluation-data``: the evaluation sample of record (trigger_ml.evaluation)."""

    name = "evaluation-data"

    def settings(self, config: ModelConfig) -> GeneratorSettings:
        return evaluation_settings(config)

    def announce(self, subject: ModelConfig, settings: GeneratorSettings) -> None:
        logger.info(f"evaluation sample: {settings.n_jets} jets, seed {settings.seed}")
