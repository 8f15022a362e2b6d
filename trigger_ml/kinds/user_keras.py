"""``user-keras``: a QKeras model trained elsewhere, imported instead of trained.

``trigger-ml hls --keras MODEL.h5 --meta MODEL.yaml`` (the metadata defaults to the YAML file
next to the model) builds a configuration whose ``user_model`` section names the file and its
sha256. The ``train`` stage's ``write_run`` imports the model into ``runs/<name>/<hash>/``: the
model itself (``qkeras.weights.h5``, a whole Keras file), the input scaling (given, or fitted
on the training split), its test-split predictions and metrics. From there the ``hls`` stage,
the firmware bundle and ``trigger-ml verify`` run as for every QKeras model: the C simulation
must equal the user's model bit for bit on every test jet.

The metadata file (docs/stages-and-kinds.md, *Your own model*)::

    name: my-tagger                  # the project name (default: the model file's stem)
    sample: {path: data/ftag-…/jets.h5}   # the jets to evaluate on (or generator settings)
    evaluation: {path: …}            # optional: an independent file (file samples)
    inputs: {max_tracks: 16, track_features: [sd0, sz0, log_ptfrac, log_dr, valid], jet_features: []}
    classes: [b, c, light]           # the order of the model's outputs
    input_type: {bits: 10, integer: 3}     # the fixed-point type the inputs are quantized to
    scaling: fit                     # or {offsets: {sd0: 0.1, …}, scales: {sd0: 1.3, …}}
    hls: {…}                         # optional, as in a model configuration

The model takes ``(max_tracks, n_track_features)`` per jet (a Deep Set: per-track layers Φ, a
pooling over tracks, layers F) or a flat vector (dense). Exactness rules applied: the quantized
weights are baked in, the input layer takes ``input_type``, and an average pooling fed by a
``quantized_relu`` gets the exact accumulator and result types. What defeats exactness or the
padding rule is named per layer (``structure_problems``) in the run's metrics and the log; the
hls stage names the first layer where the C simulation diverges.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tensorflow as tf

from trigger_ml.config import ModelConfig, parse_model_config, read_yaml_mapping
from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_file, write_json_atomic
from trigger_ml.kinds.base import QUANTIZED, NetworkKind
from trigger_ml.logs import stage_logger, timed
from trigger_ml.models import bake_quantized_weights

logger = stage_logger("train")

META_KEYS = (
    "name",
    "description",
    "sample",
    "evaluation",
    "split",
    "inputs",
    "classes",
    "input_type",
    "scaling",
    "hls",
    "physics",
)
_POOLINGS = ("GlobalAveragePooling1D", "AveragePooling1D")


def load_keras_file(path: Path) -> tf.keras.Model:
    """A (Q)Keras model from a whole-model file; one-line error if it is not one."""
    from qkeras.utils import _add_supported_quantized_objects

    objects: dict[str, Any] = {}
    _add_supported_quantized_objects(objects)
    if not Path(path).is_file():
        raise UsageError(f"model file {path} does not exist", "check the path")
    try:
        return tf.keras.models.load_model(path, custom_objects=objects, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        first = re.sub(r" at <[^>]*>", "", first)  # no object addresses: the same input, the same line
        raise UsageError(
            f"{path}: not a loadable Keras/QKeras model ({first})", "save it with model.save('MODEL.h5')"
        ) from None


def load_user_model(keras: Path, meta: Path | None = None) -> ModelConfig:
    """The configuration of the user's model ``keras`` described by ``meta`` (default: the
    ``.yaml`` file next to the model)."""
    keras = Path(keras).resolve()
    if keras.is_dir():
        raise UsageError(
            f"model file {keras} is a directory", "give the .h5 file model.save('MODEL.h5') wrote"
        )
    if not keras.is_file():
        raise UsageError(f"model file {keras} does not exist", "check the path")
    meta = Path(meta) if meta is not None else keras.with_suffix(".yaml")
    if not meta.is_file():
        raise UsageError(
            f"no metadata file {meta} for {keras.name}",
            "write it (see docs/stages-and-kinds.md) or pass --meta",
        )
    data = read_yaml_mapping(meta, "metadata file", "docs/stages-and-kinds.md (Your own model)")
    unknown = sorted(set(data) - set(META_KEYS))
    if unknown:
        raise UsageError(f"{meta}: unknown key(s) {unknown}", f"the keys are {', '.join(META_KEYS)}")
    if "sample" not in data:
        raise UsageError(
            f"{meta}: no 'sample' (the jets to evaluate on)", "add sample: {path: data/…/jets.h5}"
        )
    if (data.get("hls") or {}).get("enabled") is False:
        raise UsageError(
            f"{meta}: hls.enabled false: an imported model is imported for its firmware", "drop it"
        )
    model = load_keras_file(keras)
    rank = len(model.inputs[0].shape) if len(model.inputs) == 1 else 0
    if rank not in (2, 3):
        raise UsageError(
            f"{keras.name}: input shape {[tuple(i.shape) for i in model.inputs]}",
            "take one input: (tracks, features) for a Deep Set or (features,) for a dense model",
        )
    config = {
        "name": data.get("name") or keras.stem,
        "description": data.get("description", f"user model {keras.name}"),
        "sample": data["sample"],
        "inputs": data.get("inputs", {}),
        "architecture": {
            "kind": "deepsets" if rank == 3 else "dense",
            "phi_widths": [],
            "f_widths": [],
            "classes": data.get("classes", ["b", "c", "light"]),
        },
        "quantization": {"input": data.get("input_type", {"bits": 10, "integer": 3})},
        "training": {"float_twin": False},
        "user_model": {
            "keras": str(keras),
            "sha256": sha256_of_file(keras),
            "scaling": data.get("scaling", "fit"),
        },
    }
    config.update({key: data[key] for key in ("evaluation", "split", "hls", "physics") if key in data})
    return parse_model_config(config, str(meta))


def structure_problems(model: tf.keras.Model, config: ModelConfig) -> list[str]:
    """Per layer, what defeats the firmware's exactness or the Deep Set's padding rule."""
    problems = []
    for layer in model.layers:
        cls = type(layer).__name__
        shape = getattr(layer, "input_shape", None)
        per_track = isinstance(shape, tuple) and len(shape) == 3
        if per_track and cls in ("Dense", "QDense") and layer.use_bias:
            problems.append(
                f"layer {layer.name}: a per-track {cls} with a bias makes padded track slots non-zero, so "
                "the pooled value depends on the padding (rule: Φ layers without bias; the valid feature "
                "gives real tracks theirs)"
            )
        if cls == "Dense" or (
            cls.startswith("Q") and hasattr(layer, "kernel") and layer.kernel_quantizer is None
        ):
            problems.append(
                f"layer {layer.name}: {cls} with float weights: hls4ml rounds them to its default type "
                f"{config.hls.default_precision} (rule: quantize every weight, e.g. QDense with kernel_quantizer)"
            )
        if cls in ("Activation", "ReLU") or (
            cls == "QActivation" and "quantized_" not in str(layer.activation)
        ):
            problems.append(
                f"layer {layer.name}: an unquantized activation ({cls}) is computed in hls4ml's default "
                "type (rule: quantized_relu / quantized_bits)"
            )
    return problems


def _pooling_types(model: tf.keras.Model, config: ModelConfig) -> dict[str, dict[str, str]]:
    """Exact types of each average pooling fed by a quantized ReLU (rule 3 of trigger_ml.hls.convert)."""
    out = {}
    n = config.inputs.max_tracks
    for layer in model.layers:
        if type(layer).__name__ not in _POOLINGS or n & (n - 1):
            continue
        source = layer._inbound_nodes[0].inbound_layers
        quantizer = getattr(source, "quantizer", None)
        if quantizer is None or type(quantizer).__name__ != "quantized_relu":
            continue
        k = int(math.log2(n))
        bits, integer = int(quantizer.bits), int(quantizer.integer)
        out[layer.name] = {
            "accum": f"ufixed<{bits + 2 * k},{integer + k}>",
            "result": f"ufixed<{bits + k},{integer}>",
        }
    return out


class UserKeras(NetworkKind):
    """A user's QKeras model (Deep Set or dense), imported instead of trained."""

    name = "user-keras"
    summary = "user QKeras"

    def __init__(self) -> None:
        self._pooling: dict[str, dict[str, dict[str, str]]] = {}

    def claims(self, config: ModelConfig) -> bool:
        return config.user_model is not None

    def write_run(self, config: ModelConfig, data_path: Path, out: Path) -> None:
        write_user_run(config, data_path, out)

    def load(self, config: ModelConfig, weights: Path, quantized: bool) -> tf.keras.Model:
        return load_keras_file(weights)

    def build(self, config: ModelConfig, quantized: bool) -> tf.keras.Model:
        assert config.user_model is not None
        return load_keras_file(Path(config.user_model.keras))

    def prepare_for_conversion(self, model: tf.keras.Model, config: ModelConfig) -> None:
        bake_quantized_weights(model)
        self._pooling[config.digest()] = _pooling_types(model, config)

    def configure_hls(self, layers: dict[str, Any], config: ModelConfig) -> None:
        from trigger_ml.hls.precision import fixed_type

        first = next(iter(layers))  # the input layer
        layers[first].setdefault("Precision", {})["result"] = fixed_type(config.quantization.input)
        for name, types in self._pooling.get(config.digest(), {}).items():
            if name in layers:
                layers[name]["Precision"] = dict(types)

    def label(self, config: ModelConfig) -> str:
        return f"{config.architecture.kind}, {self.summary}"


def _given_scaling(config: ModelConfig) -> tuple[Any, Any]:
    """The (track, jet) FeatureScaling the metadata gives (None, None: fit on the sample)."""
    from trigger_ml.data.dataset import FeatureScaling

    assert config.user_model is not None
    given = config.user_model.scaling
    if given == "fit":
        return None, None
    scalings = []
    for names in (config.inputs.track_features, config.inputs.jet_features):
        missing = [n for n in names if n != "valid" and (n not in given.offsets or n not in given.scales)]
        if missing:
            raise UsageError(
                f"{config.name}: scaling has no offset/scale for {missing}", "add them or use scaling: fit"
            )
        offsets = tuple(0.0 if n == "valid" else given.offsets[n] for n in names)
        scales = tuple(1.0 if n == "valid" else given.scales[n] for n in names)
        scalings.append(FeatureScaling(tuple(names), offsets, scales) if names else None)
    return scalings[0], scalings[1]


def write_user_run(config: ModelConfig, data_path: Path, out: Path) -> None:
    """Import the user's model into the run directory ``out``: the model, the scaling, the
    test-split predictions and metrics (the files a trained run holds)."""
    from trigger_ml.data.dataset import model_inputs, prepare, read_sample
    from trigger_ml.physics import tagging_metrics
    from trigger_ml.training import write_run_inputs

    assert config.user_model is not None
    timings: dict[str, float] = {}
    model = load_keras_file(Path(config.user_model.keras))
    if sha256_of_file(config.user_model.keras) != config.user_model.sha256:
        raise UsageError(f"{config.user_model.keras} changed since it was named", "run the command again")
    with timed(timings, "prepare_s"):
        scaling, jet_scaling = _given_scaling(config)
        data = prepare(read_sample(data_path), config, scaling=scaling, jet_scaling=jet_scaling)
    x_test = np.asarray(model_inputs(data.inputs["test"], config))
    expected = tuple(model.inputs[0].shape[1:])
    if expected != x_test.shape[1:]:
        raise UsageError(
            f"{config.name}: the model takes inputs of shape {expected}, the metadata gives {x_test.shape[1:]} "
            f"({config.inputs.max_tracks} tracks x {list(config.inputs.track_features)}"
            + (f" + {list(config.inputs.jet_features)}" if config.inputs.jet_features else "")
            + ")",
            "make inputs.max_tracks and the feature lists match the model",
        )
    if model.outputs[0].shape[-1] != len(config.architecture.classes):
        raise UsageError(
            f"{config.name}: the model has {model.outputs[0].shape[-1]} outputs, not 3 (b, c, light)",
            "give a model with the logits of b, c and light",
        )
    problems = structure_problems(model, config)
    for problem in problems:
        logger.warning(f"{config.name}: {problem}")
    with timed(timings, "predict_s"):
        logits = model.predict(x_test, batch_size=4096, verbose=0)
    write_run_inputs(out, config, data_path, data, imported_from=config.user_model.keras)
    model.save(out / f"{QUANTIZED}.weights.h5")
    write_json_atomic(out / "history.json", {})
    with h5py.File(out / "predictions.h5", "w") as handle:
        handle.create_dataset("test_index", data=data.indices["test"], track_times=False)
        handle.create_dataset("classes", data=data.classes["test"], track_times=False)
        handle.create_dataset(f"logits_{QUANTIZED}", data=logits, track_times=False)
    write_json_atomic(
        out / "metrics.json",
        {
            "models": {QUANTIZED: tagging_metrics(logits, data.classes["test"], config.physics.f_c)},
            "n_params": {QUANTIZED: int(sum(int(tf.size(w)) for w in model.trainable_weights))},
            "epochs_run": {},
            "n_jets": {split: int(len(idx)) for split, idx in data.indices.items()},
            "n_truncated_jets": data.n_truncated_jets,
            "structure_problems": problems,
            "imported": True,
            "timings_s": timings,
        },
    )
