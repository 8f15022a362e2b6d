"""Training stage: fit the quantization-aware model and its float twin, measure them.

Writes ``runs/<model>/<training hash>/`` atomically (the directory appears whole or not
at all)::

    config.json            resolved configuration, its digests, the data file and its sha256
    scaling.json           track-feature scaling fitted on the training split
    jet_scaling.json       jet-feature scaling (flat models only)
    qkeras.weights.h5      weights of the QKeras model
    float.weights.h5       weights of the float twin (when trained)
    history.json           loss per epoch of each model
    predictions.h5         test-split row numbers, classes and logits of each model
    metrics.json           physics metrics on the test split, parameter counts, timings

The same configuration, data and seed give the same weights (op determinism is enabled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tensorflow as tf

from trigger_ml.config import ModelConfig
from trigger_ml.data.dataset import FeatureScaling, PreparedData, model_inputs, prepare, read_sample
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import atomic_path, read_json, sha256_of_file, write_json_atomic
from trigger_ml.kinds import QUANTIZED, kind_of
from trigger_ml.logs import shows_progress, stage_logger, timed
from trigger_ml.numerics import numerics_record
from trigger_ml.physics import tagging_metrics
from trigger_ml.runner import Stage
from trigger_ml.workspace import Workspace

logger = stage_logger("train")


@dataclass(frozen=True)
class TrainedRun:
    """A finished training run on disk."""

    path: Path

    @property
    def config(self) -> dict:
        return read_json(self.path / "config.json")

    @property
    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json")

    @property
    def scaling(self) -> FeatureScaling:
        return FeatureScaling.load(self.path / "scaling.json")

    @property
    def jet_scaling(self) -> FeatureScaling | None:
        path = self.path / "jet_scaling.json"
        return FeatureScaling.load(path) if path.is_file() else None

    def weights_path(self, kind: str) -> Path:
        return self.path / f"{kind}.weights.h5"

    def load_model(self, config: ModelConfig, kind: str = QUANTIZED) -> tf.keras.Model:
        """The trained ``qkeras`` (quantization-aware; for HGQ its proxy, what the firmware
        computes) or ``float`` model."""
        path = self.weights_path(kind)
        if not path.is_file():
            raise TriggerMLError(f"{path} is missing", f"delete {self.path} and rerun `trigger-ml train`")
        return kind_of(config).load(config, path, quantized=(kind == QUANTIZED))

    def load_reference(self, config: ModelConfig) -> tf.keras.Model:
        """The trained model the firmware must reproduce (the model kind's reference)."""
        return self.load_model(config, kind_of(config).reference(config))

    def test_predictions(self) -> dict[str, np.ndarray]:
        with h5py.File(self.path / "predictions.h5", "r") as handle:
            return {key: handle[key][()] for key in handle}


def seed_everything(seed: int) -> None:
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


PRUNING_UPDATES = 20
"""Mask updates between the start and the end of pruning (fewer when there are fewer steps)."""


@dataclass(frozen=True)
class PruningSchedule:
    """Training steps of the pruning (1-based, as tfmot's pruning wrapper counts them)."""

    begin_step: int
    end_step: int  # the step whose mask update reaches the final sparsity
    frequency: int  # steps between mask updates; divides end_step - begin_step
    steps_per_epoch: int
    sparsity: dict[str, float]  # final sparsity of each pruned Dense layer

    @property
    def final_epoch(self) -> int:
        """The (0-based) epoch at whose end every pruned kernel has its final sparsity."""
        return (self.end_step - 1) // self.steps_per_epoch


def pruning_schedule(config: ModelConfig, n_train: int) -> PruningSchedule:
    """Steps of ``config.training.pruning`` for ``n_train`` training jets."""
    t = config.training
    p = t.pruning
    if p is None:
        raise TriggerMLError(
            f"{config.name}: no training.pruning", "this is a bug: only call it when pruning"
        )
    steps_per_epoch = math.ceil(n_train / t.batch_size)
    total = steps_per_epoch * t.epochs
    begin = max(1, round(p.begin_fraction * total))
    end = min(total, max(begin + 1, round(p.end_fraction * total)))
    if end <= begin:
        raise UsageError(
            f"{config.name}: pruning would start at step {begin} of {total}, too late to end",
            "lower training.pruning.begin_fraction or train more epochs",
        )
    frequency = max(1, (end - begin) // PRUNING_UPDATES)
    end = begin + frequency * ((end - begin) // frequency)
    sparsity = p.sparsity_by_layer(config.architecture.dense_layer_names())
    return PruningSchedule(begin, end, frequency, steps_per_epoch, sparsity)


def _wrap_for_pruning(model: tf.keras.Model, schedule: PruningSchedule) -> tf.keras.Model:
    """``model`` with its pruned Dense layers in tfmot's prune_low_magnitude wrapper (the
    layers themselves, with their initial weights, are shared, not copied)."""
    import tensorflow_model_optimization as tfmot

    def wrap(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        if layer.name not in schedule.sparsity:
            return layer
        decay = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=schedule.sparsity[layer.name],
            begin_step=schedule.begin_step,
            end_step=schedule.end_step,
            frequency=schedule.frequency,
        )
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=decay)

    return tf.keras.models.clone_model(model, clone_function=wrap)


def _update_pruning_step() -> tf.keras.callbacks.Callback:
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.UpdatePruningStep()


def _strip_pruning(model: tf.keras.Model) -> tf.keras.Model:
    """Apply the final masks to the kernels and remove the wrappers: the plain model of
    trigger_ml.models, same layer names, zeros where the masks are zero."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    for layer in model.layers:
        if isinstance(layer, PruneLowMagnitude):
            layer.pruning_obj.weight_mask_op()
    return tfmot.sparsity.keras.strip_pruning(model)


def kernel_zero_fractions(model: tf.keras.Model) -> dict[str, dict[str, float]]:
    """Per quantized Dense layer: fraction of zero weights of the stored (float) kernel and of
    the quantized kernel the firmware uses (small weights also quantize to zero)."""
    out = {}
    for layer in model.layers:
        quantizer = getattr(layer, "kernel_quantizer_internal", None)
        if quantizer is None:
            continue
        kernel = np.asarray(layer.kernel)
        out[layer.name] = {
            "kernel": float(np.mean(kernel == 0)),
            "quantized_kernel": float(np.mean(np.asarray(quantizer(layer.kernel)) == 0)),
            "n_weights": int(kernel.size),
        }
    return out


def _pruning_metrics(config: ModelConfig, model: tf.keras.Model, n_train: int) -> dict:
    """Schedule, target and measured sparsity of the pruned QKeras model; raises if a kernel
    does not have its final sparsity (to within tfmot's rounding to whole weights)."""
    schedule = pruning_schedule(config, n_train)
    measured = kernel_zero_fractions(model)
    for name, target in schedule.sparsity.items():
        got = measured[name]
        if got["kernel"] < target - 0.5 / got["n_weights"] - 1e-9:
            raise TriggerMLError(
                f"{config.name}: layer {name} has sparsity {got['kernel']:.3f} after training, not {target}",
                "report this with the model name (the pruning schedule did not complete)",
            )
    return {
        "target_sparsity": schedule.sparsity,
        "begin_step": schedule.begin_step,
        "end_step": schedule.end_step,
        "frequency_steps": schedule.frequency,
        "steps_per_epoch": schedule.steps_per_epoch,
        "measured_zero_fraction": measured,
    }


def _fit(config: ModelConfig, data: PreparedData, quantized: bool) -> tuple[tf.keras.Model, dict]:
    t = config.training
    seed_everything(t.seed)
    kind = kind_of(config)
    model = kind.build(config, quantized=quantized)
    callbacks = kind.callbacks(config, quantized)
    first_stop_epoch = 0
    prune = quantized and t.pruning is not None
    if prune:
        schedule = pruning_schedule(config, len(data.classes["train"]))
        model = _wrap_for_pruning(model, schedule)
        # First, so that the masks are applied before early stopping copies the weights.
        callbacks.append(_update_pruning_step())
        first_stop_epoch = schedule.final_epoch
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=t.learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if t.early_stopping_patience > 0:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=t.early_stopping_patience,
                restore_best_weights=True,
                # Only epochs at the final sparsity count (and may be restored).
                start_from_epoch=first_stop_epoch,
            )
        )
    x_train = model_inputs(data.inputs["train"], config) if quantized else data.inputs["train"]
    x_val = model_inputs(data.inputs["val"], config) if quantized else data.inputs["val"]
    history = model.fit(
        x_train,
        data.classes["train"],
        validation_data=(x_val, data.classes["val"]),
        epochs=t.epochs,
        batch_size=t.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=2 if shows_progress(logger) else 0,  # one line per epoch
    )
    if prune:
        model = _strip_pruning(model)
    kind.after_fit(model, config, x_train, quantized)
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train(config: ModelConfig, data_path: Path, run_dir: Path) -> TrainedRun:
    """Train ``config`` on ``data_path`` into ``run_dir`` (written atomically, replacing what
    was there); returns the finished run. The pipeline's ``train`` stage caches this."""
    with atomic_path(run_dir) as tmp:
        tmp.mkdir()
        kind_of(config).write_run(config, data_path, tmp)
    return TrainedRun(run_dir)


class TrainStage(Stage[TrainedRun]):
    """``train``: ``runs/<model>/<training hash>/`` from the model's sample."""

    name = "train"
    requires = ("data",)

    def output_dir(self, subject: ModelConfig, ws: Workspace) -> Path:
        return ws.run_dir(subject.name, subject.training_digest())

    def key(self, subject: ModelConfig, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"training_sha256": subject.training_digest(), "data_sha256": inputs["data"].sha256}

    def run(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> None:
        kind_of(subject).write_run(subject, inputs["data"].path, out)

    def load(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> TrainedRun:
        return TrainedRun(out)


def write_run_inputs(
    out: Path, config: ModelConfig, data_path: Path, data: PreparedData, **provenance: Any
) -> None:
    """The files of a run that say what it was trained on: ``config.json`` (the configuration,
    its hashes, the sample's path and sha256, and any ``provenance`` entries) and the feature
    scalings (``scaling.json``, ``jet_scaling.json``) the firmware's inputs are scaled with."""
    write_json_atomic(
        out / "config.json",
        {
            "config": config.model_dump(mode="json"),
            "config_sha256": config.digest(),
            "training_sha256": config.training_digest(),
            "data": {"path": str(data_path), "sha256": sha256_of_file(data_path)},
            **provenance,
        },
    )
    data.scaling.save(out / "scaling.json")
    if data.jet_scaling is not None:
        data.jet_scaling.save(out / "jet_scaling.json")


def write_run(config: ModelConfig, data_path: Path, out: Path) -> None:
    """Fit the Keras models of ``config`` (a network kind) on ``data_path`` and write the run's
    files into ``out``."""
    kind = kind_of(config)
    models = kind.trained_models(config)
    if not models:
        raise TriggerMLError(f"{config.name}: nothing to train", "enable quantization or training.float_twin")
    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        sample = read_sample(data_path)
        data = prepare(sample, config)

    trained: dict[str, tf.keras.Model] = {}
    histories: dict[str, dict] = {}
    for name in models:
        logger.info(f"{config.name}: fitting the {name} model")
        with timed(timings, f"fit_{name}_s"):
            trained[name], histories[name] = _fit(config, data, quantized=(name == QUANTIZED))

    f_c = config.physics.f_c
    logits = {}
    x_test_quantized = model_inputs(data.inputs["test"], config)
    for name, model in trained.items():
        quantized = name == QUANTIZED
        x_test = x_test_quantized if quantized else data.inputs["test"]
        predictor = kind.predictor(model, config, quantized)  # what the firmware computes
        logits[name] = predictor.predict(x_test, batch_size=4096, verbose=0)
    metrics = {
        "numerics": numerics_record(),
        "models": {name: tagging_metrics(logits[name], data.classes["test"], f_c) for name in logits},
        "n_params": {
            name: kind.count_parameters(model, quantized=(name == QUANTIZED))
            for name, model in trained.items()
        },
        "epochs_run": {name: len(histories[name]["loss"]) for name in histories},
        "n_jets": {split: int(len(idx)) for split, idx in data.indices.items()},
        "n_truncated_jets": data.n_truncated_jets,
        "timings_s": timings,
    }
    if QUANTIZED in trained:
        metrics.update(kind.training_metrics(trained[QUANTIZED], x_test_quantized, logits[QUANTIZED]))
    if config.training.pruning is not None and "qkeras" in trained:
        metrics["pruning"] = _pruning_metrics(config, trained["qkeras"], len(data.classes["train"]))
    write_run_inputs(out, config, data_path, data)
    for name, model in trained.items():
        model.save_weights(out / f"{name}.weights.h5")
    write_json_atomic(out / "history.json", histories)
    write_run_predictions(out, data, logits)
    write_json_atomic(out / "metrics.json", metrics)


def write_run_predictions(out: Path, data: Any, logits: dict[str, np.ndarray]) -> None:
    """A run's ``predictions.h5``: the test split's rows of the sample, their classes and each
    trained model's logits (``logits_<name>``), without timestamps (byte-reproducible)."""
    with h5py.File(out / "predictions.h5", "w") as handle:
        handle.create_dataset("test_index", data=data.indices["test"], track_times=False)
        handle.create_dataset("classes", data=data.classes["test"], track_times=False)
        for name, values in logits.items():
            handle.create_dataset(f"logits_{name}", data=values, track_times=False)
