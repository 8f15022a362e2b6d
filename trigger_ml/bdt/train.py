"""The ``train`` stage of a BDT: fit scikit-learn's GradientBoostingClassifier on the flat inputs
(quantized onto ``quantization.input``, what the firmware receives) and write the run::

    config.json, scaling.json, jet_scaling.json   as for every run (trigger_ml.training)
    trees.json       the ensemble as conifer's sklearn converter describes it (float)
    predictions.h5   test-split rows, classes, logits of the float and the quantized trees
    metrics.json     test-split physics of both, node counts, timings
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.bdt.ensemble import Ensemble, QuantizedEnsemble
from trigger_ml.config import ModelConfig
from trigger_ml.data.dataset import model_inputs, prepare, read_sample
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import read_json, write_json_atomic
from trigger_ml.logs import stage_logger, timed
from trigger_ml.numerics import numerics_record
from trigger_ml.physics import tagging_metrics

logger = stage_logger("train")

TREES_FILE = "trees.json"
QUANTIZED_TREES, FLOAT_TREES = "qkeras", "float"
"""The run's two models under the names every run uses: the quantized trees (what the firmware
computes; ``qkeras`` is the name of a run's quantized model, trigger_ml.kinds) and the float trees."""


def fit_classifier(config: ModelConfig, x: np.ndarray, y: np.ndarray) -> Any:
    """The fitted GradientBoostingClassifier of ``config.bdt`` (deterministic for a seed)."""
    from sklearn.ensemble import GradientBoostingClassifier

    settings = config.bdt
    if settings is None:
        raise TriggerMLError(f"{config.name}: no bdt section", "this is a bug: only BDT models get here")
    classifier = GradientBoostingClassifier(
        n_estimators=settings.n_trees,
        max_depth=settings.max_depth,
        learning_rate=settings.learning_rate,
        subsample=settings.subsample,
        random_state=config.training.seed,
    )
    return classifier.fit(x, y)


def conifer_document(classifier: Any) -> dict[str, Any]:
    """conifer's description of a fitted ensemble (its sklearn converter), as JSON-able data."""
    from conifer.converters import get_converter

    document = get_converter("sklearn").convert(classifier)
    return json_clean(document)


def json_clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def quantized_ensemble(config: ModelConfig, document: dict[str, Any]) -> QuantizedEnsemble:
    settings = config.bdt
    assert settings is not None
    return QuantizedEnsemble(
        Ensemble.from_conifer(document), config.quantization.input, settings.threshold, settings.score
    )


def load_trees(run_path: Path) -> dict[str, Any]:
    path = run_path / TREES_FILE
    if not path.is_file():
        raise TriggerMLError(f"{path} is missing", f"delete {run_path} and rerun `trigger-ml train`")
    return read_json(path)


def write_bdt_run(config: ModelConfig, data_path: Path, out: Path) -> None:
    """Fit the ensemble of ``config`` on the training split of ``data_path`` into ``out``."""
    from trigger_ml.training import write_run_inputs, write_run_predictions

    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        sample = read_sample(data_path)
        data = prepare(sample, config)
        x = {split: model_inputs(values, config) for split, values in data.inputs.items()}
    settings = config.bdt
    assert settings is not None
    logger.info(
        f"{config.name}: fitting {settings.n_trees} boosting rounds x {len(config.architecture.classes)} "
        f"classes, depth {settings.max_depth}, on {len(x['train'])} jets"
    )
    with timed(timings, "fit_s"):
        classifier = fit_classifier(config, x["train"], data.classes["train"])
    document = conifer_document(classifier)
    quantized = quantized_ensemble(config, document)
    logits = {
        FLOAT_TREES: quantized.ensemble.float_logits(x["test"])[0],
        QUANTIZED_TREES: quantized.logits(x["test"])[0],
    }
    f_c = config.physics.f_c
    ensemble = quantized.ensemble
    metrics = {
        "numerics": numerics_record(),
        "models": {name: tagging_metrics(v, data.classes["test"], f_c) for name, v in logits.items()},
        # A tree's parameters: a feature index and a threshold per split, a score per leaf.
        "n_params": {name: 2 * ensemble.n_splits + ensemble.n_leaves for name in logits},
        "bdt": {
            "n_trees_total": ensemble.n_trees,
            "n_splits": ensemble.n_splits,
            "n_leaves": ensemble.n_leaves,
            "score_range_fits": quantized.score_range_fits(),
        },
        "n_jets": {split: int(len(idx)) for split, idx in data.indices.items()},
        "n_truncated_jets": data.n_truncated_jets,
        "timings_s": timings,
    }
    write_run_inputs(out, config, data_path, data)
    write_json_atomic(out / TREES_FILE, document)
    write_run_predictions(out, data, logits)
    write_json_atomic(out / "metrics.json", metrics)
