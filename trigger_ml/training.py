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

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf

from trigger_ml.config import ModelConfig
from trigger_ml.data.dataset import FeatureScaling, PreparedData, model_inputs, prepare, read_sample
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path, read_json, sha256_of_file, write_json_atomic
from trigger_ml.models import build_model, count_parameters
from trigger_ml.physics import tagging_metrics

MODEL_KINDS = ("qkeras", "float")


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

    def load_model(self, config: ModelConfig, kind: str = "qkeras") -> tf.keras.Model:
        path = self.weights_path(kind)
        if not path.is_file():
            raise TriggerMLError(f"{path} is missing", f"delete {self.path} and rerun `trigger-ml train`")
        model = build_model(config, quantized=(kind == "qkeras"))
        model.load_weights(path)
        return model

    def test_predictions(self) -> dict[str, np.ndarray]:
        with h5py.File(self.path / "predictions.h5", "r") as handle:
            return {key: handle[key][()] for key in handle}


def seed_everything(seed: int) -> None:
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _fit(config: ModelConfig, data: PreparedData, quantized: bool, log: bool) -> tuple[tf.keras.Model, dict]:
    t = config.training
    seed_everything(t.seed)
    model = build_model(config, quantized=quantized)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=t.learning_rate),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = []
    if t.early_stopping_patience > 0:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=t.early_stopping_patience, restore_best_weights=True
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
        verbose=2 if log else 0,
    )
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train(config: ModelConfig, data_path: Path, run_dir: Path, log: bool = True) -> TrainedRun:
    """Train (or reuse) the run of ``config`` on ``data_path``; returns the finished run."""
    if (run_dir / "metrics.json").is_file():
        return TrainedRun(run_dir)
    if not config.quantization.enabled and not config.training.float_twin:
        raise TriggerMLError(f"{config.name}: nothing to train", "enable quantization or training.float_twin")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    sample = read_sample(data_path)
    data = prepare(sample, config)
    timings["prepare_s"] = time.perf_counter() - start

    trained: dict[str, tf.keras.Model] = {}
    histories: dict[str, dict] = {}
    kinds = [
        kind
        for kind in MODEL_KINDS
        if (kind == "qkeras" and config.quantization.enabled)
        or (kind == "float" and config.training.float_twin)
    ]
    for kind in kinds:
        if log:
            print(f"[train] {config.name}: fitting the {kind} model", flush=True)
        start = time.perf_counter()
        trained[kind], histories[kind] = _fit(config, data, quantized=(kind == "qkeras"), log=log)
        timings[f"fit_{kind}_s"] = time.perf_counter() - start

    f_c = config.physics.f_c
    logits = {}
    for kind, model in trained.items():
        x_test = model_inputs(data.inputs["test"], config) if kind == "qkeras" else data.inputs["test"]
        logits[kind] = model.predict(x_test, batch_size=4096, verbose=0)
    metrics = {
        "models": {kind: tagging_metrics(logits[kind], data.classes["test"], f_c) for kind in logits},
        "n_params": {kind: count_parameters(model) for kind, model in trained.items()},
        "epochs_run": {kind: len(histories[kind]["loss"]) for kind in histories},
        "n_jets": {split: int(len(idx)) for split, idx in data.indices.items()},
        "n_truncated_jets": data.n_truncated_jets,
        "timings_s": timings,
    }
    with atomic_path(run_dir) as tmp:
        tmp.mkdir()
        write_json_atomic(
            tmp / "config.json",
            {
                "config": config.model_dump(mode="json"),
                "config_sha256": config.digest(),
                "training_sha256": config.training_digest(),
                "data": {"path": str(data_path), "sha256": sha256_of_file(data_path)},
            },
        )
        data.scaling.save(tmp / "scaling.json")
        if data.jet_scaling is not None:
            data.jet_scaling.save(tmp / "jet_scaling.json")
        for kind, model in trained.items():
            model.save_weights(tmp / f"{kind}.weights.h5")
        write_json_atomic(tmp / "history.json", histories)
        with h5py.File(tmp / "predictions.h5", "w") as handle:
            handle.create_dataset("test_index", data=data.indices["test"], track_times=False)
            handle.create_dataset("classes", data=data.classes["test"], track_times=False)
            for kind, values in logits.items():
                handle.create_dataset(f"logits_{kind}", data=values, track_times=False)
        write_json_atomic(tmp / "metrics.json", metrics)
    return TrainedRun(run_dir)
