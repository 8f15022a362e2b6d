"""What a distillation starts from: the teacher, its sample, the flat inputs and the cache key.

``distill_inputs`` trains the teacher (and builds its firmware) if needed and hashes what
determines a distillation; ``load_distill_data`` reads the flat jet-level inputs and the
teacher's outputs of each split used. Inputs are the *flat* jet-level inputs: a dense
teacher's own inputs; for a Deep Set teacher those of ``dense-small`` (leading tracks'
features flattened, plus jet features) on the teacher's sample and split. Targets are the
teacher's outputs on a subsample of the training split (its discriminant D_b and/or its
logits). ``teacher_test`` gives the teacher's test-split outputs the reports compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.config import FixedPoint, ModelConfig, load_model_config, parse_model_config
from trigger_ml.data.dataset import PreparedData, model_inputs, prepare, quantize_to_fixed, read_sample
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.kinds import kind_of
from trigger_ml.physics import tagging_metrics
from trigger_ml.symbolic import SR_SUFFIX
from trigger_ml.symbolic.backends import BackendChoice
from trigger_ml.symbolic.firmware import fixed_type
from trigger_ml.symbolic.settings import FLAT_INPUT_MODEL, SymbolicConfig
from trigger_ml.workspace import Workspace


def symbolic_name(teacher: ModelConfig) -> str:
    """Name of the distilled model: ``<teacher>-sr``."""
    return teacher.name + SR_SUFFIX


def flat_input_config(teacher: ModelConfig) -> ModelConfig:
    """The configuration whose (dense) inputs the expressions read.

    A dense teacher: itself. A Deep Set: the teacher's sample, split and input type with the
    inputs of the ``dense-small`` zoo model (``architecture.kind: dense``); the teacher's
    per-layer types, pruning and HGQ settings belong to its own layers and are dropped.
    """
    if teacher.architecture.kind == "dense":
        return teacher
    flat = load_model_config(FLAT_INPUT_MODEL)
    data = teacher.model_dump(mode="json")
    data["name"] = f"{teacher.name}-flat-inputs"
    data["inputs"] = flat.inputs.model_dump(mode="json")
    data["architecture"] = flat.architecture.model_dump(mode="json")
    data["hls"]["track_parallelization"] = None
    # the teacher's per-layer types, pruning and quantization kind describe its own layers
    for key in ("layers", "kind", "hgq"):
        data["quantization"][key] = None
    data["training"]["pruning"] = None
    return parse_model_config(data, f"flat inputs of {teacher.name}")


def flat_feature_names(config: ModelConfig) -> list[str]:
    """Column names of the flat inputs: ``<feature>_<track number>`` then the jet features."""
    names = [
        f"{feature}_{track + 1}"
        for track in range(config.inputs.max_tracks)
        for feature in config.inputs.track_features
    ]
    return names + list(config.inputs.jet_features)


@dataclass(frozen=True)
class DistillData:
    """Flat inputs (quantized onto the input type) and teacher outputs of each split used."""

    x: dict[str, np.ndarray]  # "fit" (training subsample), "val", "test" -> (n, n_flat) float64
    logits: dict[str, np.ndarray]  # same keys -> teacher logits (n, 3) float64
    classes: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]  # row numbers in the sample file
    feature_names: list[str]
    flat: PreparedData


def _teacher_model(teacher: ModelConfig, run: Any) -> tuple[Any, str]:
    kind = kind_of(teacher).reference(teacher)
    return run.load_model(teacher, kind), kind


def load_distill_data(
    teacher: ModelConfig, run: Any, data_path: Path, settings: SymbolicConfig
) -> DistillData:
    """Flat inputs and the teacher's logits on the fit subsample, validation and test splits."""
    sample = read_sample(data_path)
    teacher_data = prepare(sample, teacher, scaling=run.scaling, jet_scaling=run.jet_scaling)
    flat_config = flat_input_config(teacher)
    flat = teacher_data if flat_config is teacher else prepare(sample, flat_config)
    for split, rows in teacher_data.indices.items():
        if not np.array_equal(rows, flat.indices[split]):
            raise TriggerMLError(f"flat inputs and teacher disagree on the {split} split rows")
    n_train = len(teacher_data.indices["train"])
    pick = np.sort(
        np.random.default_rng(settings.seed).choice(n_train, min(settings.subsample, n_train), replace=False)
    )
    model, _ = _teacher_model(teacher, run)
    x, logits, classes, indices = {}, {}, {}, {}
    for key, split, rows in (("fit", "train", pick), ("val", "val", None), ("test", "test", None)):
        rows = slice(None) if rows is None else rows
        teacher_x = model_inputs(teacher_data.inputs[split][rows], teacher)
        logits[key] = model.predict(teacher_x, batch_size=4096, verbose=0).astype(np.float64)
        # The firmware's input encoding, whether or not the teacher itself is quantized.
        x[key] = quantize_to_fixed(flat.inputs[split][rows], flat_config.quantization.input).astype(
            np.float64
        )
        classes[key] = teacher_data.classes[split][rows]
        indices[key] = teacher_data.indices[split][rows]
    return DistillData(x, logits, classes, indices, flat_feature_names(flat_config), flat)


def teacher_test(
    teacher: ModelConfig,
    ws: Workspace,
    report: dict[str, Any] | None,
    test_rows: np.ndarray,
    test_classes: np.ndarray,
    keras_logits: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Teacher logits on the test split (rows ``test_rows`` of the sample) as its firmware
    computes them: its C simulation when it has one on the same rows, else ``keras_logits``
    (the QKeras or float model); with their metrics and which of the two they are."""
    if report is not None:
        with h5py.File(ws.hls_dir(teacher.name) / "csim_predictions.h5", "r") as handle:
            rows, logits = handle["test_index"][()], handle["logits_csim"][()].astype(np.float64)
        if np.array_equal(rows, test_rows):
            return logits, tagging_metrics(logits, test_classes, teacher.physics.f_c), "C simulation"
    return keras_logits, tagging_metrics(keras_logits, test_classes, teacher.physics.f_c), "Keras model"


def check_precision_holds(precision: FixedPoint, input_type: FixedPoint) -> None:
    """One-line error unless the expressions' precision holds every value of the input type."""
    if (
        precision.integer < input_type.integer
        or precision.bits - precision.integer < input_type.bits - input_type.integer
    ):
        raise UsageError(
            f"symbolic precision {fixed_type(precision)} cannot hold the input type "
            f"(bits {input_type.bits}, integer {input_type.integer}) exactly",
            "widen precision.bits / precision.integer",
        )


@dataclass(frozen=True)
class DistillInputs:
    """What a distillation starts from: the teacher, its sample, and the cache key."""

    teacher_report: dict[str, Any] | None  # the teacher's HLS report (None: no firmware)
    run: Any  # the teacher's trained run
    teacher_cost: dict[str, Any] | None  # its best cost section
    data_path: Path
    data_sha256: str
    key: str  # hash of teacher, data, settings, backend (+ key_extra)


@dataclass(frozen=True)
class Job:
    """One distillation: what it distils, with what, from what, where it writes."""

    name: str  # <teacher>-sr or <teacher>-srds
    teacher: ModelConfig
    settings: SymbolicConfig
    choice: BackendChoice
    ws: Workspace
    inputs: DistillInputs  # the teacher's report, run and cost, the sample, the cache key

    @property
    def key(self) -> str:
        """Hash of teacher, data, settings, backend: names the fit, marks the project."""
        return self.inputs.key

    @property
    def fit_dir(self) -> Path:
        return self.ws.run_dir(self.name, self.key)

    @property
    def project_dir(self) -> Path:
        return self.ws.hls_dir(self.name)


def distill_key_material(
    teacher: ModelConfig,
    settings: SymbolicConfig,
    choice: BackendChoice,
    data_sha256: str,
    teacher_cost: dict[str, Any] | None,
    **key_extra: Any,
) -> dict[str, Any]:
    """What determines a distillation (its hash names the fit and keys the project):
    ``key_extra`` (format version, structure), the teacher, its sample, settings, backend."""
    return {
        **key_extra,
        "teacher": teacher.digest(),
        "teacher_training": teacher.training_digest(),  # weights also depend on trigger_ml.numerics
        "data": data_sha256,
        "settings": settings.key_dump(),
        "backend": [choice.backend.name, choice.backend.version()],
        "teacher_latency": teacher_cost["latency_cycles"] if teacher_cost else None,
    }
