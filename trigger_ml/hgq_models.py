"""HGQ networks (``quantization.kind: hgq``): the Deep Set and the dense tagger of
:mod:`trigger_ml.models`, trained with high-granularity quantization (HGQ 0.2).

Every weight learns its own number of fractional bits, every activation channel too; the
integer bits of each activation come from the ranges traced on the training split after the
fit, and ``beta`` times the network's BOPs (bit operations) joins the loss. The layers and
their names follow :mod:`trigger_ml.models`:

* input ``tracks`` (or ``features``), then ``input_quant``: an HQuantize with the fixed
  ``quantization.input`` type (not learned; its range is the whole type, so it is the
  identity on inputs already quantized onto that type, and nothing in range wraps);
* Deep Set: Φ as bias-free ``phi_i`` HDense layers with ReLU applied to every track slot
  (hls4ml's ParallelizationFactor = number of slots). Every quantizer on tracks shares its
  bits and range across the slots, so the network stays permutation invariant, and a padded
  all-zero track gives exactly zero; ``track_pool`` averages the (power-of-two) slots
  (:class:`PGlobalAveragePooling1D`); F as ``f_i`` HDense with ReLU;
* dense model: ``dense_i`` HDense with ReLU;
* ``logits``: HDense, linear.

What the firmware computes is HGQ's *proxy model* (:func:`to_proxy`): Keras layers with the
quantized weights, each followed by a ``FixedPointQuantizer`` holding the learned types
(wrapping on overflow, like the firmware). It differs from the HGQ model only where an
activation leaves the range traced on the training split. hls4ml 1.3 converts it bit-exactly.

The weights file of the run holds the HGQ model's weights including the traced ranges
(:func:`build_hgq_model` makes them weights of their layers), so :func:`load_proxy` rebuilds
the proxy model exactly.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trigger_ml.errors import TriggerMLError  # noqa: E402

try:
    with contextlib.redirect_stdout(io.StringIO()):
        from HGQ import (  # noqa: E402
            FreeBOPs,
            HDense,
            HQuantize,
            ResetMinMax,
            to_proxy_model,
            trace_minmax,
        )
        from HGQ.layers import HLayerBase, PLayerBase  # noqa: E402
        from HGQ.utils import get_default_kq_conf, get_default_paq_conf  # noqa: E402
except ImportError:
    raise TriggerMLError(
        "HGQ is not installed (quantization.kind: hgq needs it)",
        "run `make setup`, or `pip install --no-deps hgq==0.2.6` in the venv",
    ) from None

from trigger_ml.config import FixedPoint, ModelConfig  # noqa: E402
from trigger_ml.data.dataset import fixed_point_grid  # noqa: E402
from trigger_ml.models import INPUT_NAMES, LOGITS_NAME, POOL_NAME, flat_input_size  # noqa: E402

INPUT_QUANT_NAME = "input_quant"
_RANGES_ATTR = "_traced_ranges"


class PGlobalAveragePooling1D(PLayerBase, tf.keras.layers.GlobalAveragePooling1D):
    """HGQ passive layer: the average over the track slots. Its output carries, per channel,
    the widest bit width of its input over the slots (HGQ's BOPs of the next layer); the
    proxy model holds a plain GlobalAveragePooling1D (HGQ maps ``P<name>`` to ``<name>``),
    which hls4ml converts, with exact types, like the QKeras Deep Set's pooling."""

    @property
    def act_bw(self) -> tf.Tensor:
        return tf.reduce_max(self.input_bw, axis=1)

    @property
    def act_bw_exact(self) -> np.ndarray:
        return np.max(self.input_bw_exact, axis=1)


def _kernel_quantizer(config: ModelConfig) -> dict[str, Any]:
    conf = get_default_kq_conf()
    conf["init_bw"] = config.quantization.hgq_settings().init_bw_k
    return conf


def _activation_quantizer(config: ModelConfig, per_track: bool) -> dict[str, Any]:
    """One type per channel: on tracks (batch, slot, channel) the slots share it."""
    conf = get_default_paq_conf()
    conf["init_bw"] = config.quantization.hgq_settings().init_bw_a
    conf["skip_dims"] = (0, 1) if per_track else (0,)
    return conf


def _input_quantizer(fp: FixedPoint) -> HQuantize:
    conf = get_default_paq_conf()
    conf["init_bw"] = fp.bits - fp.integer - 1  # fractional bits of the input type
    conf["skip_dims"] = "all"
    conf["trainable"] = False
    conf["regularizer"] = None
    return HQuantize(paq_conf=conf, name=INPUT_QUANT_NAME)


def _hdense(
    config: ModelConfig, width: int, name: str, relu: bool, use_bias: bool, tracks: int | None
) -> HDense:
    return HDense(
        width,
        activation="relu" if relu else None,
        use_bias=use_bias,
        kq_conf=_kernel_quantizer(config),
        paq_conf=_activation_quantizer(config, per_track=tracks is not None),
        beta=config.quantization.hgq_settings().beta,
        parallel_factor=tracks,
        name=name,
    )


def _track_ranges_as_weights(model: tf.keras.Model) -> None:
    """Make each activation quantizer's traced min/max weights of its layer, so that
    ``save_weights``/``load_weights`` carry them (HGQ keeps them outside the layer's weights)."""
    for layer in model.layers:
        if isinstance(layer, HLayerBase):
            setattr(layer, _RANGES_ATTR, [layer.paq._min, layer.paq._max])


def _finish(config: ModelConfig, inputs: tf.Tensor, x: tf.Tensor) -> tf.keras.Model:
    n_classes = len(config.architecture.classes)
    outputs = _hdense(config, n_classes, LOGITS_NAME, relu=False, use_bias=True, tracks=None)(x)
    model = tf.keras.Model(inputs, outputs, name=f"{config.architecture.kind}_hgq")
    _track_ranges_as_weights(model)
    return model


def build_hgq_deepsets(config: ModelConfig) -> tf.keras.Model:
    """The HGQ Deep Set of ``config`` (see the module docstring)."""
    n_tracks = config.inputs.max_tracks
    inputs = tf.keras.Input(shape=(n_tracks, len(config.inputs.track_features)), name=INPUT_NAMES["deepsets"])
    x = _input_quantizer(config.quantization.input)(inputs)
    for i, width in enumerate(config.architecture.phi_widths, start=1):
        x = _hdense(config, width, f"phi_{i}", relu=True, use_bias=False, tracks=n_tracks)(x)
    x = PGlobalAveragePooling1D(name=POOL_NAME)(x)
    for i, width in enumerate(config.architecture.f_widths, start=1):
        x = _hdense(config, width, f"f_{i}", relu=True, use_bias=True, tracks=None)(x)
    return _finish(config, inputs, x)


def build_hgq_dense(config: ModelConfig) -> tf.keras.Model:
    """The HGQ dense tagger on flat inputs (hidden layers ``architecture.f_widths``)."""
    inputs = tf.keras.Input(shape=(flat_input_size(config),), name=INPUT_NAMES["dense"])
    x = _input_quantizer(config.quantization.input)(inputs)
    for i, width in enumerate(config.architecture.f_widths, start=1):
        x = _hdense(config, width, f"dense_{i}", relu=True, use_bias=True, tracks=None)(x)
    return _finish(config, inputs, x)


def build_hgq_model(config: ModelConfig) -> tf.keras.Model:
    """The HGQ model of ``config`` (``architecture.kind`` picks the builder)."""
    builders = {"deepsets": build_hgq_deepsets, "dense": build_hgq_dense}
    return builders[config.architecture.kind](config)


def hgq_callbacks() -> list[tf.keras.callbacks.Callback]:
    """HGQ's training callbacks: fresh activation ranges every epoch, BOPs in the history."""
    return [ResetMinMax(), FreeBOPs()]


def _hgq_layers(model: tf.keras.Model) -> list[HLayerBase]:
    return [layer for layer in model.layers if isinstance(layer, HLayerBase)]


def exact_bops(model: tf.keras.Model) -> float:
    """HGQ's BOPs of the traced model (each product: input bits × weight bits)."""
    return float(sum(float(layer.compute_exact_bops) for layer in _hgq_layers(model)))


def trace_ranges(model: tf.keras.Model, config: ModelConfig, inputs: np.ndarray) -> float:
    """Trace every activation's range on ``inputs`` (the quantized training inputs), which
    fixes the integer bits; the input quantizer's range is the whole input type. Returns the
    exact BOPs."""
    with contextlib.redirect_stdout(io.StringIO()):
        trace_minmax(model, inputs, bsz=4096, verbose=False, no_bops_computation=True)
    _, low, high = fixed_point_grid(config.quantization.input)
    paq = model.get_layer(INPUT_QUANT_NAME).paq
    paq._min.assign(tf.fill(paq._min.shape, float(low)))
    paq._max.assign(tf.fill(paq._max.shape, float(high)))
    for layer in _hgq_layers(model):
        layer.record_minmax = False
    return exact_bops(model)


def _renamed(model: tf.keras.Model, names: dict[str, str]) -> tf.keras.Model:
    """A copy of functional ``model`` (same weights) with layers renamed by ``names``."""

    def rename(name: str) -> str:
        return names.get(name, name)

    def rename_refs(refs: list) -> list:
        if refs and isinstance(refs[0], str):  # a single [name, node, tensor] reference
            return [rename(refs[0]), *refs[1:]]
        return [rename_refs(ref) for ref in refs]

    cfg = model.get_config()
    for layer in cfg["layers"]:
        layer["name"] = layer["config"]["name"] = rename(layer["name"])
        layer["inbound_nodes"] = [rename_refs(node) for node in layer["inbound_nodes"]]
    cfg["input_layers"] = rename_refs(cfg["input_layers"])
    cfg["output_layers"] = rename_refs(cfg["output_layers"])
    copy = tf.keras.Model.from_config(cfg)
    copy.set_weights(model.get_weights())
    return copy


def to_proxy(model: tf.keras.Model, config: ModelConfig) -> tf.keras.Model:
    """HGQ's proxy of a traced HGQ model: what the firmware computes, bit for bit.

    The input keeps its name (``tracks``/``features``), the ReLU after Dense layer ``X`` is
    named ``X_relu`` as in :mod:`trigger_ml.models`; HGQ names the quantizers
    ``X_quantizer`` (before the ReLU) and ``X_relu_quantizer``."""
    with contextlib.redirect_stdout(io.StringIO()):
        proxy = to_proxy_model(model)
    # The input quantizer is the input type itself (round half to even, saturate), as
    # quantize_to_fixed applies it; hls4ml fuses it into the input layer's type.
    input_quant = proxy.get_layer(INPUT_QUANT_NAME)
    input_quant.RND, input_quant.SAT = "RND_CONV", "SAT"
    names = {proxy.layers[0].name: INPUT_NAMES[config.architecture.kind]}
    for layer in proxy.layers:
        if isinstance(layer, tf.keras.layers.ReLU):
            parent = layer._inbound_nodes[0].inbound_layers
            names[layer.name] = parent.name.removesuffix("_quantizer") + "_relu"
    return _renamed(proxy, names)


def load_proxy(config: ModelConfig, weights_path: Path) -> tf.keras.Model:
    """The proxy model of the HGQ weights (with traced ranges) saved at ``weights_path``."""
    model = build_hgq_model(config)
    model.load_weights(weights_path)
    for layer in _hgq_layers(model):
        layer.record_minmax = False
    return to_proxy(model, config)


def hgq_summary(model: tf.keras.Model) -> dict[str, Any]:
    """BOPs and learned weight bits of a traced HGQ model (for the run's metrics)."""
    layers: dict[str, Any] = {}
    n_weights = n_pruned = 0
    for layer in _hgq_layers(model):
        if not getattr(layer, "_has_kernel", False):
            continue
        bits = np.asarray(layer.kernel_bw_exact, dtype=np.float64)
        alive = bits > 0
        n_weights += bits.size
        n_pruned += int((~alive).sum())
        layers[layer.name] = {
            "bops": float(layer.compute_exact_bops),
            "n_weights": int(bits.size),
            "n_zero_weights": int((~alive).sum()),
            "mean_weight_bits": float(bits[alive].mean()) if alive.any() else 0.0,
            "max_weight_bits": int(bits.max()),
        }
    return {
        "bops": exact_bops(model),
        "n_weights": n_weights,
        "n_zero_weights": n_pruned,
        "layers": layers,
    }


def count_hgq_parameters(model: tf.keras.Model) -> int:
    """Kernels and biases of the HGQ model (its bit-width variables are not parameters)."""
    total = 0
    for layer in _hgq_layers(model):
        for name in ("kernel", "bias"):
            weight = getattr(layer, name, None)
            if weight is not None:
                total += int(tf.size(weight))
    return total


def hgq_metrics(model: tf.keras.Model, inputs: np.ndarray, proxy_logits: np.ndarray) -> dict[str, Any]:
    """:func:`hgq_summary` plus how often the HGQ model itself (no integer limits) agrees
    with its proxy on ``inputs``: they differ only where an activation leaves the range
    traced on the training split (the proxy, like the firmware, wraps)."""
    own = model.predict(inputs, batch_size=4096, verbose=0)
    same = np.all(np.asarray(own, np.float64) == np.asarray(proxy_logits, np.float64), axis=1)
    return {**hgq_summary(model), "hgq_vs_proxy_exact_fraction": float(same.mean())}
