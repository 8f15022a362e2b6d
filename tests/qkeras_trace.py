"""An independent second tracer for the tests: the QKeras layers themselves (not the converted
hls4ml graph that trigger_ml.cost.da4ml_cost traces) as da4ml symbolic arrays. Two tracers
built from different descriptions of the network that agree on cost and outputs are a check
on both.

- ``quantized_relu(bits, integer)`` is ReLU, round half to even onto ``bits - integer``
  fractional bits, saturate: what QKeras (``tf.round``) and hls4ml (``ufixed<...,
  RND_CONV, SAT>``) do, built from da4ml's truncation;
- a Dense is the constant-matrix-vector product of the quantized kernel plus the bias;
- the track average is the sum over the slots times 2^-k.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.errors import UsageError

HARD_DC = 2


def _relu_rne_sat_one(v: Any, integer: int, frac: int) -> Any:
    """ReLU, round half to even onto ``frac`` fractional bits, saturate to ``integer`` bits."""
    from da4ml.trace import FixedVariable

    top = 2.0**integer - 2.0**-frac
    r = v.relu()
    if r.low == r.high:  # a constant (e.g. a Dense output whose kernel column is zero)
        value = min(max(float(np.round(float(r.low) * 2.0**frac)) * 2.0**-frac, 0.0), top)
        return FixedVariable.from_const(value, hwconf=v.hwconf)
    in_frac = int(r.kif[2])
    if in_frac > frac:
        lsb = r.quantize(0, 1 - frac, frac)  # the lowest kept bit, weight 2^-frac (wrap, truncate)
        r = r + lsb * 2.0 ** (frac - in_frac) + (2.0 ** (-frac - 1) - 2.0**-in_frac)
    return r.quantize(0, integer, frac, overflow_mode="SAT", round_mode="TRN")


def relu_round_half_even(x: Any, bits: int, integer: int) -> Any:
    """QKeras ``quantized_relu(bits, integer)`` = hls4ml ``ufixed<bits, integer, RND_CONV, SAT>``
    of a ReLU, on every element of ``x``."""
    from da4ml.trace import FixedVariableArray

    flat = x.ravel()
    values = [_relu_rne_sat_one(flat[i], integer, bits - integer) for i in range(flat.size)]
    return FixedVariableArray(np.array(values, dtype=object).reshape(x.shape), x.solver_options)


def _quantized_weights(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The kernel and bias of a QDense as its quantizers make them (float64, exact)."""
    kernel = np.asarray(layer.kernel_quantizer_internal(layer.kernel), dtype=np.float64)
    bias = None
    if layer.use_bias:
        bias = np.asarray(layer.bias, dtype=np.float64)
        if layer.bias_quantizer_internal is not None:
            bias = np.asarray(layer.bias_quantizer_internal(layer.bias), dtype=np.float64)
    return kernel, bias


def trace_network(model: Any) -> tuple[Any, Any]:
    """(inputs, logits) of ``model`` as da4ml symbolic arrays (one jet, no batch axis).

    Walks the layers of a QKeras model built by :mod:`trigger_ml.models` (a chain of
    ``input_quant``, QDense, quantized_relu QActivation, GlobalAveragePooling1D); any other
    layer raises UsageError.
    """
    import tensorflow as tf
    from da4ml.trace import FixedVariableArray, HWConfig
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    layers = [layer for layer in model.layers if not isinstance(layer, tf.keras.layers.InputLayer)]
    first = layers[0] if layers else None
    quantizer = getattr(first, "quantizer", None)
    if not isinstance(first, QActivation) or not isinstance(quantizer, quantized_bits):
        raise UsageError(
            f"{model.name}: the first layer is not an input quantizer (quantized_bits)",
            "the RTL needs a fixed-point input type",
        )
    shape = tuple(int(n) for n in model.input_shape[1:])
    fractional = int(quantizer.bits) - 1 - int(quantizer.integer)
    options = {"hard_dc": HARD_DC, "search_all_decompose_dc": True}
    inputs = FixedVariableArray.from_kif(
        np.ones(shape, dtype=int),
        np.full(shape, int(quantizer.integer)),
        np.full(shape, fractional),
        hwconf=HWConfig(1, -1, -1),
        solver_options=options,
    )
    x = inputs
    for layer in layers[1:]:
        if isinstance(layer, QDense):
            kernel, bias = _quantized_weights(layer)
            x = x @ kernel
            if bias is not None:
                x = x + bias
        elif isinstance(layer, QActivation):
            relu = layer.quantizer
            if (
                not isinstance(relu, quantized_relu)
                or relu.negative_slope
                or relu.use_sigmoid
                or relu.relu_upper_bound is not None
                or relu.use_stochastic_rounding
            ):
                raise UsageError(
                    f"{model.name}: layer {layer.name} is not a plain quantized_relu",
                    "the RTL implements quantized_relu(bits, integer) only",
                )
            x = relu_round_half_even(x, int(relu.bits), int(relu.integer))
        elif isinstance(layer, tf.keras.layers.GlobalAveragePooling1D):
            slots = x.shape[0]
            if slots & (slots - 1):
                raise UsageError(f"{model.name}: {slots} track slots", "use a power of two (an exact shift)")
            x = np.sum(x, axis=0) * 2.0 ** -int(math.log2(slots))
        else:
            raise UsageError(
                f"{model.name}: layer {layer.name} ({type(layer).__name__}) has no RTL mapping",
                "the RTL stage maps QDense, quantized_relu and GlobalAveragePooling1D",
            )
    return inputs, x
