"""Physics of record: every model measured on the evaluation sample.

The evaluation sample (``ModelConfig.evaluation``) is generated with the training sample's
settings and its own seed, and used whole: no split, the scaling fitted on the training
sample. A firmware model is evaluated on it by the fast emulator of its firmware program
(:mod:`trigger_ml.hls.emulator`), which is checked against hls4ml's C simulation on the
first ``CSIM_CHECK_JETS`` evaluation jets of every build (and on every test jet by the HLS
stage); a model without an exact program is evaluated by the C simulation itself. The
QKeras (or HGQ proxy) and float models of the same run are evaluated beside it.

Files: ``hls_projects/<model>/evaluation_predictions.h5`` (classes and logits of each model
kind on the whole sample) and ``ftag_evaluation.h5`` (the same as probabilities in the FTAG
``jets`` layout, :mod:`trigger_ml.ftag`); for physics-only float references, ``runs/<model>/<hash>/
evaluation-<sample sha256[:16]>.h5`` plus ``.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml import ftag
from trigger_ml.config import ModelConfig
from trigger_ml.data.stage import evaluation_origin
from trigger_ml.fileio import atomic_path, read_json, sha256_of_file, write_json_atomic
from trigger_ml.kinds import kind_of
from trigger_ml.logs import stage_logger, timed
from trigger_ml.physics import CLASS_NAMES, light_rejection_uncertainties, tagging_metrics

PREDICTIONS_FILE = "evaluation_predictions.h5"
CSIM_CHECK_JETS = 2000
"""Evaluation jets on which every build runs the C simulation beside the emulator."""

FIRMWARE = "firmware"

logger = stage_logger("evaluate")


@dataclass(frozen=True)
class EvaluationSample:
    """The evaluation jets as one model sees them."""

    path: Path
    sha256: str
    scaled: np.ndarray  # float inputs (what a float model takes)
    inputs: np.ndarray  # the model's exact inputs: on the firmware's input type when quantized
    classes: np.ndarray
    jets: np.ndarray  # the sample's jets rows (pT, eta, flavour label, ...: the jets.h5 layout)

    def describe(self, config: ModelConfig) -> dict[str, Any]:
        """The ``evaluation`` fields that say which sample this is."""
        counts = np.bincount(self.classes, minlength=len(CLASS_NAMES))
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "seed": None if config.sample.is_file else config.evaluation.seed,
            "origin": evaluation_origin(config),
            "n_jets": int(len(self.classes)),
            "jets_per_class": {name: int(n) for name, n in zip(CLASS_NAMES, counts, strict=True)},
        }


def load_evaluation_sample(config: ModelConfig, run: Any, path: Path) -> EvaluationSample:
    """Read ``path`` and prepare every jet with the training run's scaling."""
    from trigger_ml.data.dataset import model_inputs, prepare_all, read_sample

    raw = read_sample(path)
    scaled, classes = prepare_all(raw, config, run.scaling, run.jet_scaling)
    return EvaluationSample(
        Path(path), sha256_of_file(path), scaled, np.asarray(model_inputs(scaled, config)), classes, raw.jets
    )


def physics(logits: np.ndarray, classes: np.ndarray, f_c: float) -> dict[str, Any]:
    """Tagging metrics with the binomial uncertainties of the light rejections."""
    return {**tagging_metrics(logits, classes, f_c), **light_rejection_uncertainties(logits, classes, f_c)}


def reference_logits(config: ModelConfig, run: Any, sample: EvaluationSample) -> dict[str, np.ndarray]:
    """Logits of each Keras model kind the run holds (QKeras/HGQ proxy on the quantized
    inputs, the float twin on the scaled floats)."""
    logits = {}
    for kind in ("float", "qkeras"):
        if not run.weights_path(kind).is_file():
            continue
        x = sample.inputs if kind == "qkeras" else sample.scaled
        model = run.load_model(config, kind)
        logits[kind] = model.predict(x, batch_size=8192, verbose=0).astype(np.float64)
    return logits


def evaluate_firmware(
    config: ModelConfig,
    run: Any,
    hls_model: Any,
    program: list[dict[str, Any]] | None,
    sample_path: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """The report's ``evaluation`` section of a firmware model; writes ``PREDICTIONS_FILE``
    into ``out_dir``. ``program`` is the checked firmware program (None: C simulation)."""
    from trigger_ml.hls.emulator import run_program
    from trigger_ml.hls.fidelity import csim_predict

    sample = load_evaluation_sample(config, run, sample_path)
    x = sample.inputs
    section: dict[str, Any] = sample.describe(config)
    check: dict[str, Any] = {"n_jets": 0, "emulator_vs_csim_exact_fraction": None}
    logits_firmware = None
    if program is not None:
        logger.info(f"{config.name}: emulating the firmware on {len(x)} evaluation jets")
        with timed() as clock:
            emulated = run_program(program, x)
        seconds = clock.seconds
        n_check = min(CSIM_CHECK_JETS, len(x))
        same = np.all(emulated[:n_check] == csim_predict(hls_model, x[:n_check]), axis=1)
        check = {"n_jets": int(n_check), "emulator_vs_csim_exact_fraction": float(same.mean())}
        if same.all():
            logits_firmware, section["evaluated_by"] = emulated, "emulator"
            section["evaluated_by_reason"] = None
        else:  # the C simulation is the reference: evaluate with it
            section["evaluated_by_reason"] = (
                f"the emulator differs from the C simulation on {int((~same).sum())} jets"
            )
    else:
        section["evaluated_by_reason"] = "no exact firmware program (see fidelity.emulator.reason)"
    if logits_firmware is None:
        logger.info(
            f"{config.name}: C simulation of {len(x)} evaluation jets ({section['evaluated_by_reason']})"
        )
        with timed() as clock:
            logits_firmware = csim_predict(hls_model, x)
        seconds = clock.seconds
        section["evaluated_by"] = "C simulation"
    section["csim_check"] = check
    section["firmware_jets_per_s"] = float(len(x) / seconds) if seconds > 0 else None

    logits = {**reference_logits(config, run, sample), FIRMWARE: logits_firmware}
    reference = kind_of(config).reference(config)
    if reference in logits:
        same = np.all(logits_firmware == logits[reference], axis=1)
        section["firmware_vs_reference_exact_fraction"] = float(same.mean())
    section["reference"] = reference
    section["metrics"] = {
        kind: physics(values, sample.classes, config.physics.f_c) for kind, values in logits.items()
    }
    write_predictions(out_dir / PREDICTIONS_FILE, sample.classes, logits)
    ftag.write_predictions(
        out_dir / ftag.EVALUATION_FILE,
        config,
        sample.jets,
        logits,
        {"path": str(sample.path), "sha256": sample.sha256, "jets": "the whole evaluation sample of record"},
    )
    return section


def write_predictions(path: Path, classes: np.ndarray, logits: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("classes", data=classes, track_times=False)
        for kind, values in logits.items():
            handle.create_dataset(f"logits_{kind}", data=values, track_times=False, compression="gzip")


def read_predictions(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(logits of ``kind``, classes) stored by an evaluation."""
    with h5py.File(path, "r") as handle:
        return handle[f"logits_{kind}"][()].astype(np.float64), handle["classes"][()]


def evaluate_float_reference(config: ModelConfig, run: Any, sample_path: Path) -> tuple[dict[str, Any], Path]:
    """The ``evaluation`` section of a physics-only float model and its predictions file, kept
    in the run directory and keyed by the evaluation sample's hash."""
    sha = sha256_of_file(sample_path)
    stem = run.path / f"evaluation-{sha[:16]}"
    json_path, h5_path = stem.with_suffix(".json"), stem.with_suffix(".h5")
    if json_path.is_file() and h5_path.is_file():
        section = read_json(json_path)
        if section.get("sha256") == sha:
            return section, h5_path
    logger.info(f"{config.name}: float model on the evaluation sample")
    sample = load_evaluation_sample(config, run, sample_path)
    logits = reference_logits(config, run, sample)
    section = {
        **sample.describe(config),
        "evaluated_by": "float model",
        "reference": "float",
        "metrics": {
            kind: physics(values, sample.classes, config.physics.f_c) for kind, values in logits.items()
        },
    }
    write_predictions(h5_path, sample.classes, logits)
    write_json_atomic(json_path, section)
    return section, h5_path


def firmware_record(
    kind: str,
    model_kind: str,
    n_params: int,
    evaluation: dict[str, Any],
    exact_fraction: float,
    reference: str,
) -> dict[str, Any]:
    """A report's ``record`` for firmware whose physics of record is its own output on the
    evaluation sample and whose C simulation is bit-exact with ``reference`` on the test split."""
    from trigger_ml.artefacts import BIT_EXACT

    return {
        "kind": kind,
        "model_kind": model_kind,
        "n_params": n_params,
        "physics": {
            "sample": "evaluation",
            "n_jets": evaluation["n_jets"],
            "metrics": evaluation["metrics"][FIRMWARE],
            "predictions": {"path": PREDICTIONS_FILE, "dataset": f"logits_{FIRMWARE}"},
        },
        "fidelity": {"exact_fraction": exact_fraction, "rule": BIT_EXACT, "reference": reference},
    }
