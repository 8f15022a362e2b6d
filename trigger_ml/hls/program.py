"""The firmware as a program: the converted hls4ml graph written down as the arithmetic its
C simulation performs, layer by layer, with exact weights and every fixed-point cast.

``extract_program(hls_model)`` reads the graph after all of hls4ml's passes (so with the
types and weights the HLS tool sees) and returns a JSON-able list of steps; the HLS stage
stores it as ``firmware_program.json`` in the project. Two interpreters run it:

- :mod:`trigger_ml.cost.da4ml_cost` symbolically, with da4ml (the adder graph and its cost);
- :mod:`trigger_ml.hls.emulator` numerically, vectorised over jets (a fast bit-exact
  emulator of the C simulation).

Steps (``T`` is a fixed-point type ``{"k": signed, "i": integer bits without sign, "f":
fractional bits, "rounding": TRN|RND|RND_CONV, "overflow": WRAP|SAT|SAT_SYM}``, the
semantics of an ``ap_fixed`` conversion: round first, then overflow)::

    {"op": "input", "shape": [...], "type": T}
    {"op": "dense", "name", "kernel": [[...]], "bias": [...] | None, "product_type": T | None,
     "sum_type": T | None, "result_type": T}
        y = cast(sum_j cast(x_j w_jk, product_type) + bias_k, sum_type), then result_type;
        on the last axis (a Dense on tracks is applied to every track). hls4ml's latency
        template converts each product to the accumulator type; distributed-arithmetic code
        sums exactly (product_type and sum_type None). An interpreter skips a conversion it
        can prove is the identity on every value it can receive.
    {"op": "relu" | "linear", "name", "result_type": T}
    {"op": "mean", "name", "slots": n, "sum_type": T, "result_type": T}
        sum over the first axis (2^k slots) in sum_type, times 2^-k in sum_type, cast
    {"op": "quantize_each", "name", "k", "b", "i": per-element lists (ap_fixed<b, i>),
     "rounding", "overflow", "result_type": T}    HGQ's heterogeneous quantizer
    {"op": "reshape", "name", "shape": [...], "result_type": T}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.errors import TriggerMLError

PROGRAM_FILE = "firmware_program.json"
PROGRAM_FORMAT = 1
ROUNDINGS = ("TRN", "RND", "RND_CONV")
OVERFLOWS = ("WRAP", "SAT", "SAT_SYM")
PASS_THROUGH = {"Reshape", "Flatten", "Dropout", "Identity"}


class NotAProgram(TriggerMLError):
    """The converted graph has a layer or type this module cannot write down exactly."""


def fixed_type(precision: Any, where: str) -> dict[str, Any]:
    """The ``T`` of an hls4ml precision; NotAProgram for anything but supported fixed point."""
    width = getattr(precision, "width", None)
    integer = getattr(precision, "integer", None)
    if width is None or integer is None:
        raise NotAProgram(f"{where}: type {precision} is not fixed point", "no exact program of this model")
    signed = int(bool(precision.signed))
    rounding = str(getattr(precision, "rounding_mode", "TRN") or "TRN")
    overflow = str(getattr(precision, "saturation_mode", "WRAP") or "WRAP")
    check_modes(rounding, overflow, where)
    return {
        "k": signed,
        "i": int(integer) - signed,
        "f": int(width) - int(integer),
        "rounding": rounding,
        "overflow": overflow,
    }


def check_modes(rounding: str, overflow: str, where: str) -> None:
    if rounding not in ROUNDINGS:
        raise NotAProgram(
            f"{where}: rounding mode {rounding} is not mapped", f"use one of {', '.join(ROUNDINGS)}"
        )
    if overflow not in OVERFLOWS:
        raise NotAProgram(
            f"{where}: overflow mode {overflow} is not mapped", f"use one of {', '.join(OVERFLOWS)}"
        )


def cast_values(values: np.ndarray, t: dict[str, Any], relu: bool = False) -> np.ndarray:
    """``values`` (exact float64) converted to type ``t`` as ``ap_fixed`` converts; ``k``, ``i``
    and ``f`` may be arrays broadcasting against ``values`` (one type per element).
    ``relu=True`` converts ``max(values, 0)`` instead."""
    codes = np.multiply(values, 2.0 ** t["f"], dtype=np.float64)
    if t["rounding"] == "RND_CONV":
        np.round(codes, out=codes)  # numpy rounds half to even
    elif t["rounding"] == "RND":
        np.floor(np.add(codes, 0.5, out=codes), out=codes)
    else:
        np.floor(codes, out=codes)
    bits = t["i"] + t["f"]
    low, high = -t["k"] * 2.0**bits, 2.0**bits - 1
    if t["overflow"] == "SAT_SYM":
        low = -high * t["k"]
    if relu:  # rounding is monotone and keeps 0, so max(round(x), 0) == round(max(x, 0))
        low = np.maximum(low, 0.0)
    if t["overflow"] != "WRAP":
        np.clip(codes, low, high, out=codes)
    else:
        if relu:
            np.maximum(codes, 0.0, out=codes)
        if np.ndim(low):  # per-element types (HGQ's quantizer)
            outside = bool(np.any(codes < low) or np.any(codes > high))
        else:
            outside = bool(codes.size and (codes.min() < low or codes.max() > high))
        if outside:
            codes = np.mod(codes - low, 2.0 ** (bits + t["k"])) + low
    return np.multiply(codes, 2.0 ** -t["f"], out=codes)


def element_types(step: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """The per-element type ``T`` (arrays ``k``, ``i``, ``f``) of a ``quantize_each`` step, and
    which elements have any bits at all (``ap_fixed<b, i>`` with b = 0 is the constant 0)."""
    k, b, i = (np.asarray(step[key], dtype=np.int64) for key in ("k", "b", "i"))
    t = {"k": k, "i": i - k, "f": b - i, "rounding": step["rounding"], "overflow": step["overflow"]}
    return t, b > 0


def _weights(layer: Any, name: str) -> np.ndarray | None:
    """A weight array as the HLS code holds it: the written values converted to its type."""
    variable = layer.weights.get(name)
    if variable is None:
        return None
    data = np.asarray(variable.data, dtype=np.float64)
    precision = getattr(variable.type, "precision", None)
    if getattr(precision, "width", None) is None:
        return data
    t = fixed_type(precision, f"{layer.name}.{name}")
    return cast_values(data, {**t, "rounding": "TRN"})


def _kernel_and_bias(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Kernel (n_in, n_out) and bias of a Dense or pointwise layer. hls4ml's
    distributed-arithmetic pass consumes them into generated code and drops them from the
    layer; then they come from the converted Keras model's layer of the same name (its
    weights are the quantized values: baked QKeras weights, or an HGQ proxy model's)."""
    if "weight" in layer.weights:
        kernel, bias = _weights(layer, "weight"), _weights(layer, "bias")
    else:
        keras_model = layer.model.config.config.get("KerasModel")
        try:
            source = keras_model.get_layer(layer.name)
        except (AttributeError, ValueError):
            raise NotAProgram(
                f"{layer.name}: its weights are neither in the converted graph nor in a Keras model",
                "no exact program of this model",
            ) from None
        kernel = np.asarray(source.kernel.numpy(), dtype=np.float64)
        has_bias = getattr(source, "use_bias", False) and getattr(source, "bias", None) is not None
        bias = np.asarray(source.bias.numpy(), dtype=np.float64) if has_bias else None
    if bias is not None and not np.any(bias):
        bias = None
    return kernel.reshape(-1, kernel.shape[-1]), bias


def _dense_step(layer: Any) -> dict[str, Any]:
    kernel, bias = _kernel_and_bias(layer)
    result = fixed_type(layer.get_output_variable().type.precision, layer.name)
    step = {
        "op": "dense",
        "name": layer.name,
        "kernel": kernel.tolist(),
        "bias": None if bias is None else bias.tolist(),
    }
    if layer.get_attr("strategy") == "distributed_arithmetic":
        # da4ml's generated code computes the exact sums, then converts to the result type
        return {**step, "product_type": None, "sum_type": None, "result_type": result}
    # hls4ml's latency template converts every product to the accumulator type before the sum
    accum = fixed_type(layer.get_attr("accum_t").precision, f"{layer.name}.accum_t")
    return {**step, "product_type": accum, "sum_type": accum, "result_type": result}


def extract_program(hls_model: Any) -> list[dict[str, Any]]:
    """The steps of a converted io_parallel hls4ml graph; NotAProgram naming the first layer
    it cannot write down."""
    layers = list(hls_model.get_layers())
    first = layers[0]
    x_type = fixed_type(first.get_output_variable().type.precision, first.name)
    program = [{"op": "input", "shape": [int(n) for n in first.get_output_variable().shape], "type": x_type}]
    for layer in layers[1:]:
        kind = layer.class_name
        result = fixed_type(layer.get_output_variable().type.precision, layer.name)
        if kind in ("Dense", "PointwiseConv1D") or (kind == "Conv1D" and layer.get_attr("filt_width") == 1):
            step = _dense_step(layer)
        elif kind in ("Activation", "ReLU"):
            activation = str(layer.get_attr("activation", "")).lower()
            if activation not in ("relu", "linear"):
                raise NotAProgram(
                    f"{layer.name}: activation {activation} is not mapped", "use relu or linear"
                )
            step = {"op": activation, "name": layer.name, "result_type": result}
        elif kind == "GlobalPooling1D":
            slots = int(layer.get_input_variable().shape[0])
            if str(layer.get_attr("pool_op")) != "Average" or slots & (slots - 1):
                raise NotAProgram(
                    f"{layer.name}: only an average over a power-of-two number of slots is mapped",
                    "use an average pooling over 2^k slots",
                )
            accum = fixed_type(layer.get_attr("accum_t").precision, f"{layer.name}.accum_t")
            step = {
                "op": "mean",
                "name": layer.name,
                "slots": slots,
                "sum_type": accum,
                "result_type": result,
            }
        elif kind == "FixedPointQuantizer":
            rounding, overflow = str(layer.get_attr("RND")), str(layer.get_attr("SAT"))
            check_modes(rounding, overflow, layer.name)
            shape = tuple(int(n) for n in layer.get_input_variable().shape)
            k, b, i = (
                np.broadcast_to(np.asarray(a)[0], shape).astype(int).tolist()
                for a in layer.get_attr("mask_kbi")
            )
            step = {"op": "quantize_each", "name": layer.name, "k": k, "b": b, "i": i}
            step.update(rounding=rounding, overflow=overflow, result_type=result)
        elif kind in PASS_THROUGH:
            shape = [int(n) for n in layer.get_output_variable().shape]
            step = {"op": "reshape", "name": layer.name, "shape": shape, "result_type": result}
        else:
            raise NotAProgram(
                f"layer {layer.name} ({kind}) is not mapped",
                "mapped: Dense, pointwise Conv1D, ReLU, average pooling, HGQ quantizers, reshapes",
            )
        program.append(step)
    return program


def program_document(program: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON document stored as ``firmware_program.json``."""
    return {"format": PROGRAM_FORMAT, "steps": program}


def program_steps(document: Any, where: str) -> list[dict[str, Any]]:
    """The steps of a stored document; TriggerMLError naming ``where`` if it is not one."""
    if (
        not isinstance(document, dict)
        or document.get("format") != PROGRAM_FORMAT
        or not document.get("steps")
    ):
        raise TriggerMLError(
            f"{where} is not a firmware program of format {PROGRAM_FORMAT}", "rerun `trigger-ml hls --force`"
        )
    return document["steps"]


def mean_shift(slots: int) -> int:
    return int(math.log2(slots))
