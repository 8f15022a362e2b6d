"""The chain of stages, each cached on disk: data -> train -> hls.

Each ``ensure_*`` function returns the stage's output, producing it only when it is
missing or its inputs changed (outputs are keyed by hashes of what went in).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from trigger_ml.config import ModelConfig
from trigger_ml.data.generate import GeneratorSettings, generate_sample
from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_file
from trigger_ml.logs import stage_logger
from trigger_ml.workspace import Workspace

_data_logger = stage_logger("data")
_hls_logger = stage_logger("hls")

REQUIRED_SAMPLE_SETTINGS = ("process", "n_jets", "seed", "jets_per_shard")
"""SampleConfig fields every sample sets; ``detector`` becomes the DetectorModel; every other
field is an optional generator setting of the same name (None = the generator's default)."""


def generator_settings(config: ModelConfig) -> GeneratorSettings:
    """The generator settings of a model's sample; unset optional settings keep the generator's defaults."""
    s = config.sample
    optional = {
        k: getattr(s, k)
        for k in type(s).model_fields
        if k not in (*REQUIRED_SAMPLE_SETTINGS, "detector") and getattr(s, k) is not None
    }
    return GeneratorSettings(
        process=s.process,
        n_jets=s.n_jets,
        seed=s.seed,
        jets_per_shard=s.jets_per_shard,
        detector=s.detector_model(),
        **optional,
    )


def evaluation_settings(config: ModelConfig) -> GeneratorSettings:
    """The generator settings of the model's evaluation sample: the training sample's, with the
    evaluation's own seed, size and shard size."""
    e = config.evaluation
    return replace(generator_settings(config), n_jets=e.n_jets, seed=e.seed, jets_per_shard=e.jets_per_shard)


def _generate(settings: GeneratorSettings, ws: Workspace) -> Path:
    workers = int(os.environ.get("TRIGGER_ML_WORKERS", "0")) or None
    return generate_sample(settings, ws.data_dir, n_workers=workers)


def ensure_data(config: ModelConfig, ws: Workspace) -> Path:
    """The jets.h5 of the model's sample, generated with all cores if it is not there yet."""
    return _generate(generator_settings(config), ws)


def ensure_evaluation_data(config: ModelConfig, ws: Workspace) -> Path:
    """The jets.h5 of the model's evaluation sample, generated with all cores if it is not there yet."""
    if not evaluation_data_exists(config, ws):
        _data_logger.info(
            f"evaluation sample: {config.evaluation.n_jets} jets, seed {config.evaluation.seed}"
        )
    return _generate(evaluation_settings(config), ws)


def evaluation_data_exists(config: ModelConfig, ws: Workspace) -> bool:
    from trigger_ml.data.generate import sample_dir

    return (sample_dir(evaluation_settings(config), ws.data_dir) / "jets.h5").is_file()


def ensure_trained(config: ModelConfig, ws: Workspace) -> Any:
    from trigger_ml.training import train

    data_path = ensure_data(config, ws)
    return train(config, data_path, ws.run_dir(config.name, config.training_digest()))


def ensure_hls(config: ModelConfig, ws: Workspace, force: bool = False) -> dict[str, Any]:
    """Train if needed, then build ``hls_projects/<model>/`` unless it is current."""
    from trigger_ml.fileio import read_json
    from trigger_ml.hls.stage import REPORT_FORMAT, build_hls_project, is_current

    if not config.hls.enabled:
        raise UsageError(
            f"{config.name} is a physics-only reference (hls.enabled: false): it has no firmware",
            f"use `trigger-ml train {config.name}`",
        )
    run = ensure_trained(config, ws)
    data_path = ensure_data(config, ws)
    evaluation_path = ensure_evaluation_data(config, ws)
    project_dir = ws.hls_dir(config.name)
    if not force and is_current(
        project_dir,
        config.digest(),
        sha256_of_file(data_path),
        REPORT_FORMAT,
        sha256_of_file(evaluation_path),
        config.training_digest(),
    ):
        _hls_logger.info(f"{config.name}: {project_dir} is current; nothing to do")
        return read_json(project_dir / "report.json")
    return build_hls_project(config, run, data_path, project_dir, evaluation_path)
