"""Fidelity of the firmware: does the C simulation compute what the QKeras model computes?

* bit-exactness: fraction of jets whose C-simulation logits equal the QKeras logits exactly;
* blame: where jets differ, the first layer (in graph order) whose traced C-simulation
  output differs from the Keras layer output, and by how much;
* permutation invariance: fraction of jets whose C-simulation logits do not change, bit
  for bit, when the valid tracks of the jet are shuffled among their slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

MAX_BLAME_JETS = 256


def exact_match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per jet: are all outputs equal bit for bit (compared as float64)?"""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return np.all(a == b, axis=1)


def csim_predict(hls_model: Any, inputs: np.ndarray) -> np.ndarray:
    return np.asarray(
        hls_model.predict(np.ascontiguousarray(inputs, dtype=np.float32)), dtype=np.float64
    ).reshape(len(inputs), -1)


def shuffle_valid_tracks(inputs: np.ndarray, valid: np.ndarray, seed: int) -> np.ndarray:
    """A copy with each jet's valid tracks permuted among the valid slots (padding stays put)."""
    rng = np.random.default_rng(seed)
    shuffled = inputs.copy()
    n_valid = valid.sum(axis=1)
    for row, n in enumerate(n_valid):
        if n > 1:
            slots = np.flatnonzero(valid[row])
            shuffled[row, slots] = inputs[row, rng.permutation(slots)]
    return shuffled


def permutation_invariance(
    hls_model: Any, inputs: np.ndarray, valid: np.ndarray, reference: np.ndarray, seed: int
) -> dict:
    shuffled = shuffle_valid_tracks(inputs, valid, seed)
    same = exact_match(csim_predict(hls_model, shuffled), reference)
    return {
        "permutation_invariant_fraction": float(same.mean()),
        "permutation_n_jets": int(len(same)),
        "permutation_n_jets_with_2plus_tracks": int(np.count_nonzero(valid.sum(axis=1) > 1)),
    }


def keras_layer_outputs(model: tf.keras.Model, inputs: np.ndarray) -> dict[str, np.ndarray]:
    layers = [layer for layer in model.layers if not isinstance(layer, tf.keras.layers.InputLayer)]
    probe = tf.keras.Model(model.input, [layer.output for layer in layers])
    outputs = probe.predict(inputs, batch_size=4096, verbose=0)
    return {layer.name: np.asarray(out) for layer, out in zip(layers, outputs, strict=True)}


def blame_first_divergence(traced_hls_model: Any, model: tf.keras.Model, inputs: np.ndarray) -> dict | None:
    """Trace the C simulation on ``inputs`` (jets that differ) and name the first layer whose
    output differs from Keras. None when no traced layer differs."""
    inputs = inputs[:MAX_BLAME_JETS]
    _, trace = traced_hls_model.trace(np.ascontiguousarray(inputs, dtype=np.float32))
    keras_out = keras_layer_outputs(model, inputs)
    compared = []
    for layer in traced_hls_model.get_layers():
        name = layer.name
        if name not in trace or name not in keras_out:
            continue
        ours = np.asarray(trace[name], dtype=np.float64).reshape(len(inputs), -1)
        theirs = np.asarray(keras_out[name], dtype=np.float64).reshape(len(inputs), -1)
        if ours.shape != theirs.shape:
            continue
        compared.append(name)
        differs = ~exact_match(ours, theirs)
        if differs.any():
            return {
                "layer": name,
                "class": layer.class_name,
                "result_type": str(layer.get_output_variable().type.precision),
                "fraction_of_traced_jets_differing": float(differs.mean()),
                "max_abs_diff": float(np.abs(ours - theirs).max()),
                "n_traced_jets": int(len(inputs)),
                "layers_compared": compared,
            }
    return None
