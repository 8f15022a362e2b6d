"""The ``da4ml`` cost source: da4ml's own cost model of the firmware's adder graph.

The converted hls4ml graph (after all of hls4ml's passes, so with the types and weights the
HLS tool sees) is traced layer by layer with da4ml's symbolic fixed-point arithmetic:

- a Dense or pointwise Conv1D is a constant-matrix-vector product of its quantized kernel
  (da4ml's CMVM optimiser turns it into shared shift-and-add trees, no multiplier), its
  bias, then the cast to the layer's result type; a pointwise layer on tracks repeats the
  product for every track (fully unrolled, II 1). When hls4ml's accumulator type would
  round or wrap an individual product (post-training quantized models), each product is
  cast on its own first, as ``nnet_dense_latency.h`` does;
- every cast follows the type's rounding (``TRN``, ``RND``, ``RND_CONV`` = round half to
  even, built from da4ml's truncation as ``trunc(x + 2^-(f+1) - 2^-F + b·2^-F)`` with ``b``
  the lowest kept bit) and overflow mode (``WRAP``, ``SAT``, ``SAT_SYM``);
- ReLU is a comparison and a cast; the average pooling is the sum over the slots in the
  accumulator type, divided by a power of two (a shift), then cast; HGQ's
  ``FixedPointQuantizer`` casts each element to its own learned type.

The traced graph is cut into pipeline stages at the target clock (da4ml's convention: one
adder level per ns, as :mod:`trigger_ml.cost.rtl` writes the Verilog). Its cost figure is
da4ml's: LUTs of the adders (one LUT per adder bit), register bits between the stages as
FF, no DSP unless a variable-by-variable product remains. That figure predicted the
post-route LUTs of all 20 published JEDI-linear designs within 0.97–1.13× (arXiv:2508.15468).

The traced graph is also a bit-exact software model of the firmware (da4ml's DAIS
interpreter): the stage refuses to store a cost unless it reproduces the C simulation bit
for bit on the jets it is given, so the cost is of the computation the firmware does.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path

if TYPE_CHECKING:
    from da4ml.cmvm.types import CombLogic, Pipeline
    from da4ml.trace import FixedVariable, FixedVariableArray

# da4ml's delay model and CMVM options as hls4ml 1.3's distributed_arithmetic pass sets
# them: every adder is one delay unit whatever its width, adder trees at most 2 adders
# deeper than the minimum.
HARD_DC = 2
# Pipeline stages are cut every `clock_period_ns * ADDER_LEVELS_PER_NS` delay units: da4ml's
# own convention (its evaluation converts with --latency-cutoff equal to the period in ns).
ADDER_LEVELS_PER_NS = 1.0
PASS_THROUGH = {"Input", "InputLayer", "Reshape", "Flatten", "Dropout", "Identity"}
# da4ml's opcode of a variable-by-variable product: the only operation a DSP could hold.
VARIABLE_PRODUCT_OPCODE = 7


class NoDa4mlMapping(TriggerMLError):
    """The converted graph has a layer or type the da4ml tracer does not map."""


def da4ml_version() -> str:
    try:
        return importlib.metadata.version("da4ml")
    except importlib.metadata.PackageNotFoundError:
        raise TriggerMLError(
            "da4ml is not installed (the da4ml cost source needs it)",
            "run `make setup`, or `pip install 'da4ml>=0.5.2,<0.6'`",
        ) from None


def _kif(precision: Any, where: str) -> tuple[int, int, int, str, str]:
    """(signed, integer bits without sign, fractional bits, rounding, overflow) of an hls4ml type."""
    width = getattr(precision, "width", None)
    integer = getattr(precision, "integer", None)
    if width is None or integer is None:
        raise NoDa4mlMapping(f"{where}: type {precision} is not fixed point", "no da4ml cost for this model")
    signed = int(bool(precision.signed))
    rounding = str(getattr(precision, "rounding_mode", "TRN") or "TRN")
    overflow = str(getattr(precision, "saturation_mode", "WRAP") or "WRAP")
    return signed, int(integer) - signed, int(width) - int(integer), rounding, overflow


def cast(v: FixedVariable, k: int, i: int, f: int, rounding: str, overflow: str, where: str) -> FixedVariable:
    """``v`` converted to ``ap_fixed``-style type (k, i, f) with the given modes, as the C
    simulation converts (round first, then overflow)."""
    from da4ml.trace import FixedVariable

    rounding, overflow = rounding.upper(), overflow.upper()
    if overflow not in ("WRAP", "SAT", "SAT_SYM"):
        raise NoDa4mlMapping(f"{where}: overflow mode {overflow} has no da4ml mapping", "use WRAP or SAT")
    if v.low == v.high:  # a constant: compute it exactly
        value = float(v.low) * 2.0**f
        if rounding == "RND_CONV":
            value = float(np.round(value))
        elif rounding == "RND":
            value = math.floor(value + 0.5)
        elif rounding == "TRN":
            value = math.floor(value)
        else:
            raise NoDa4mlMapping(f"{where}: rounding mode {rounding} has no da4ml mapping", "use TRN or RND")
        low, high = -k * 2.0 ** (i + f), 2.0 ** (i + f) - 1
        if overflow == "SAT_SYM":
            low = -high * k
        if overflow == "WRAP":
            span = 2.0 ** (i + f + k)
            value = (value - low) % span + low
        else:
            value = min(max(value, low), high)
        return FixedVariable.from_const(value * 2.0**-f, hwconf=v.hwconf)
    in_frac = int(v.kif[2])
    if rounding == "RND_CONV":
        if in_frac > f:
            lsb = v.quantize(0, 1 - f, f)  # the lowest kept bit, weight 2^-f
            v = v + lsb * 2.0 ** (f - in_frac) + (2.0 ** (-f - 1) - 2.0**-in_frac)
        rounding = "TRN"
    elif rounding not in ("TRN", "RND"):
        raise NoDa4mlMapping(
            f"{where}: rounding mode {rounding} has no da4ml mapping", "use TRN, RND or RND_CONV"
        )
    return v.quantize(k, i, f, overflow_mode=overflow, round_mode=rounding)


def cast_array(x: FixedVariableArray, precision: Any, where: str) -> FixedVariableArray:
    from da4ml.trace import FixedVariableArray

    k, i, f, rounding, overflow = _kif(precision, where)
    flat = x.ravel()
    values = [cast(flat._vars[n], k, i, f, rounding, overflow, where) for n in range(flat.size)]
    return FixedVariableArray(np.array(values, dtype=object).reshape(x.shape), x.solver_options)


def _weights(layer: Any, name: str) -> np.ndarray | None:
    """A layer's weight array as the HLS code holds it: the values cast to its type (TRN, WRAP
    of ``<name>_t`` as C++ converts the written literals)."""
    variable = layer.weights.get(name)
    if variable is None:
        return None
    data = np.asarray(variable.data, dtype=np.float64)
    precision = getattr(variable.type, "precision", None)
    if getattr(precision, "width", None) is None:
        return data
    k, i, f, _, overflow = _kif(precision, f"{layer.name}.{name}")
    codes = np.floor(data * 2.0**f)
    low, high = -k * 2.0 ** (i + f), 2.0 ** (i + f) - 1
    if overflow == "WRAP":
        codes = (codes - low) % 2.0 ** (i + f + k) + low
    else:
        codes = np.clip(codes, low, high)
    return codes * 2.0**-f


def _products_fit(x: FixedVariableArray, kernel: np.ndarray, accum: Any, where: str) -> bool:
    """Is every product x_j · w_jk exactly representable in the accumulator type (so hls4ml's
    cast of each product to it neither rounds nor wraps)?"""
    k, i, f, _, _ = _kif(accum, where)
    low_acc, high_acc = -k * 2.0**i, 2.0**i - 2.0**-f
    rows = x.reshape(-1, kernel.shape[0])
    for j in range(kernel.shape[0]):
        weights = kernel[j][kernel[j] != 0]
        if not weights.size:
            continue
        lows = np.array([float(v.low) for v in rows._vars[:, j]])
        highs = np.array([float(v.high) for v in rows._vars[:, j]])
        steps = np.array([float(v.step) for v in rows._vars[:, j]])
        for w in weights:
            ends = np.concatenate([lows * w, highs * w])
            if ends.min() < low_acc or ends.max() > high_acc:
                return False
            if np.any(np.mod(steps * abs(w) * 2.0**f, 1.0) != 0):
                return False
    return True


def _kernel_and_bias(layer: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The kernel (n_in, n_out) and bias of a Dense or pointwise layer. hls4ml's
    distributed-arithmetic pass consumes them into generated code and drops them from the
    layer; then they are read from the converted Keras model's layer of the same name (its
    weights are the quantized values: baked QKeras weights, or an HGQ proxy model's)."""
    if "weight" in layer.weights:
        kernel, bias = _weights(layer, "weight"), _weights(layer, "bias")
    else:
        keras_model = layer.model.config.config.get("KerasModel")
        try:
            source = keras_model.get_layer(layer.name)
        except (AttributeError, ValueError):
            raise NoDa4mlMapping(
                f"{layer.name}: its weights are not in the converted graph nor in a Keras model",
                "no da4ml cost for this model",
            ) from None
        kernel = np.asarray(source.kernel.numpy(), dtype=np.float64)
        use_bias = getattr(source, "use_bias", False) and getattr(source, "bias", None) is not None
        bias = np.asarray(source.bias.numpy(), dtype=np.float64) if use_bias else None
    return kernel.reshape(-1, kernel.shape[-1]), bias


def _dense(layer: Any, x: FixedVariableArray) -> FixedVariableArray:
    """Dense / pointwise Conv1D: products, bias, accumulator, result type (hls4ml's latency
    template; the distributed-arithmetic code computes the exact sums, then the result type)."""
    from da4ml.trace import FixedVariableArray

    where = layer.name
    kernel, bias = _kernel_and_bias(layer)
    if layer.get_attr("strategy") == "distributed_arithmetic":
        y = x @ kernel
        if bias is not None and np.any(bias != 0):
            y = y + bias
        return cast_array(y, layer.get_output_variable().type.precision, where)
    accum = layer.get_attr("accum_t").precision
    if _products_fit(x, kernel, accum, where):
        y = x @ kernel
    else:  # each product is cast to the accumulator type before the sum
        k, i, f, rounding, overflow = _kif(accum, where)
        rows = x.reshape(-1, kernel.shape[0])
        out = np.empty((rows.shape[0], kernel.shape[1]), dtype=object)
        for r in range(rows.shape[0]):
            for c in range(kernel.shape[1]):
                terms = [
                    cast(rows._vars[r, j] * float(kernel[j, c]), k, i, f, rounding, overflow, where)
                    for j in range(kernel.shape[0])
                    if kernel[j, c] != 0
                ]
                out[r, c] = sum(terms[1:], terms[0]) if terms else 0.0
        y = FixedVariableArray(out.reshape(x.shape[:-1] + (kernel.shape[1],)), x.solver_options)
    if bias is not None and np.any(bias != 0):
        y = y + bias
    y = cast_array(y, accum, where)
    return cast_array(y, layer.get_output_variable().type.precision, where)


def _activation(layer: Any, x: FixedVariableArray) -> FixedVariableArray:
    name = str(layer.get_attr("activation", "")).lower()
    if name == "relu":
        x = x.relu()
    elif name != "linear":
        raise NoDa4mlMapping(f"{layer.name}: activation {name} has no da4ml mapping", "use relu or linear")
    return cast_array(x, layer.get_output_variable().type.precision, layer.name)


def _global_average(layer: Any, x: FixedVariableArray) -> FixedVariableArray:
    if str(layer.get_attr("pool_op")) != "Average":
        raise NoDa4mlMapping(f"{layer.name}: only average pooling is mapped", "use an average pooling")
    slots = int(x.shape[0])
    if slots & (slots - 1):
        raise NoDa4mlMapping(f"{layer.name}: {slots} slots", "use a power of two (an exact shift)")
    accum = layer.get_attr("accum_t").precision
    total = cast_array(np.sum(x, axis=0), accum, layer.name)
    mean = cast_array(total * 2.0 ** -int(math.log2(slots)), accum, layer.name)
    return cast_array(mean, layer.get_output_variable().type.precision, layer.name)


def _fixed_point_quantizer(layer: Any, x: FixedVariableArray) -> FixedVariableArray:
    """HGQ's heterogeneous quantizer: every element cast to its own ``ap_fixed<b, i>``."""
    from da4ml.trace import FixedVariable, FixedVariableArray

    k, b, i = (np.broadcast_to(np.asarray(a)[0], x.shape).ravel() for a in layer.get_attr("mask_kbi"))
    rounding, overflow = str(layer.get_attr("RND")), str(layer.get_attr("SAT"))
    flat = x.ravel()
    values = []
    for n in range(flat.size):
        v = flat._vars[n]
        if b[n] <= 0:
            values.append(FixedVariable.from_const(0.0, hwconf=v.hwconf))
        else:
            values.append(
                cast(
                    v, int(k[n]), int(i[n]) - int(k[n]), int(b[n]) - int(i[n]), rounding, overflow, layer.name
                )
            )
    y = FixedVariableArray(np.array(values, dtype=object).reshape(x.shape), x.solver_options)
    return cast_array(y, layer.get_output_variable().type.precision, layer.name)


def trace_hls_model(hls_model: Any) -> tuple[FixedVariableArray, FixedVariableArray]:
    """(inputs, outputs) of a converted io_parallel hls4ml graph as da4ml symbolic arrays (one
    jet, no batch axis). Raises NoDa4mlMapping naming the first layer it cannot map."""
    from da4ml.trace import FixedVariableArray, HWConfig

    layers = list(hls_model.get_layers())
    first = layers[0]
    shape = tuple(int(n) for n in first.get_output_variable().shape)
    k, i, f, _, _ = _kif(first.get_output_variable().type.precision, first.name)
    inputs = FixedVariableArray.from_kif(
        np.full(shape, k),
        np.full(shape, i),
        np.full(shape, f),
        hwconf=HWConfig(1, -1, -1),
        solver_options={"hard_dc": HARD_DC, "search_all_decompose_dc": True},
    )
    x = inputs
    for layer in layers[1:]:
        kind = layer.class_name
        if kind in ("Dense", "PointwiseConv1D") or (kind == "Conv1D" and layer.get_attr("filt_width") == 1):
            x = _dense(layer, x)
        elif kind in ("Activation", "ReLU"):
            x = _activation(layer, x)
        elif kind == "GlobalPooling1D":
            x = _global_average(layer, x)
        elif kind == "FixedPointQuantizer":
            x = _fixed_point_quantizer(layer, x)
        elif kind in PASS_THROUGH:
            x = cast_array(
                x.reshape(tuple(layer.get_output_variable().shape)),
                layer.get_output_variable().type.precision,
                layer.name,
            )
        else:
            raise NoDa4mlMapping(
                f"layer {layer.name} ({kind}) has no da4ml mapping",
                "the da4ml cost source maps Dense, pointwise Conv1D, ReLU, average pooling and HGQ quantizers",
            )
    return inputs, x


def pipeline_predict(pipeline: Pipeline, inputs: np.ndarray) -> np.ndarray:
    """Bit-exact software model of the pipelined graph: da4ml's DAIS interpreter (integer
    arithmetic), stage by stage."""
    values = np.ascontiguousarray(inputs.reshape(len(inputs), -1), dtype=np.float64)
    for stage in pipeline.solutions:
        values = stage.predict(values, n_threads=1).reshape(len(inputs), -1)
    return values


def trace_and_pipeline(hls_model: Any, clock_period_ns: float) -> tuple[CombLogic, Pipeline]:
    """The combinational graph of ``hls_model`` and its pipeline at ``clock_period_ns``."""
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    inputs, outputs = trace_hls_model(hls_model)
    comb = comb_trace(inputs, outputs)
    if comb.lookup_tables:
        raise NoDa4mlMapping("the traced graph uses lookup tables", "no da4ml cost for this model")
    return comb, to_pipeline(comb, clock_period_ns * ADDER_LEVELS_PER_NS, verbose=False)


PIPELINE_FILE = "da4ml_pipeline.json.gz"
"""The checked, pipelined adder graph of a project (da4ml's JSON, gzip): what the RTL stage
writes as Verilog and what emulates the firmware bit for bit."""


def save_pipeline(pipeline: Pipeline, path: Path) -> None:
    """Write ``pipeline`` as gzip'd JSON, byte-reproducibly (no timestamp in the gzip header)."""
    from da4ml.cmvm.types import JSONEncoder

    text = json.dumps(pipeline, cls=JSONEncoder, separators=(",", ":"))
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
            handle.write(text.encode())


def load_pipeline(path: Path) -> Pipeline:
    """The pipeline written by :func:`save_pipeline`; TriggerMLError naming the file if unreadable."""
    from da4ml.cmvm.types import Pipeline

    try:
        with gzip.open(path, "rt") as handle:
            return Pipeline.deserialize(json.load(handle))
    except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError) as error:
        raise TriggerMLError(
            f"{path} is unreadable ({error.__class__.__name__})", "rerun `trigger-ml hls MODEL --force`"
        ) from None


def da4ml_section(
    hls_model: Any, clock_period_ns: float, part: str, x: np.ndarray, expected: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any], Pipeline]:
    """(cost section, summary, pipeline) of ``hls_model`` by da4ml's cost model.

    ``x`` are quantized inputs and ``expected`` the C simulation's outputs on them: the
    pipelined graph must reproduce them bit for bit, else TriggerMLError (nothing stored).
    """
    version = da4ml_version()
    start = time.perf_counter()
    comb, pipeline = trace_and_pipeline(hls_model, clock_period_ns)
    trace_s = time.perf_counter() - start
    start = time.perf_counter()
    emulated = pipeline_predict(pipeline, x)
    emulate_s = time.perf_counter() - start
    same = np.all(emulated == np.asarray(expected, dtype=np.float64).reshape(len(x), -1), axis=1)
    if not same.all():
        raise TriggerMLError(
            f"da4ml's trace of the firmware differs from the C simulation on {int((~same).sum())} of "
            f"{len(same)} jets",
            "the da4ml cost would not be of the firmware's computation; report this with the model name",
        )
    stages = len(pipeline.solutions)
    latency = stages + 1  # inputs and outputs registered, as the RTL stage writes it
    multipliers = sum(
        op.opcode == VARIABLE_PRODUCT_OPCODE for stage in pipeline.solutions for op in stage.ops
    )
    luts = int(round(comb.cost))
    section = make_section(
        source="da4ml",
        tool="da4ml",
        tool_version=version,
        part=part,
        clock_period_ns=clock_period_ns,
        latency_cycles=(latency, latency),
        initiation_interval=1,
        resources={"LUT": luts, "FF": int(pipeline.reg_bits), "DSP": int(multipliers)},
        notes=[
            "da4ml's cost model of the firmware's adder graph (one LUT per adder bit, register bits as FF); "
            "validated against post-route Vivado on 20 published designs within 0.97-1.13x (arXiv:2508.15468)",
            f"{stages} pipeline stages cut every {clock_period_ns * ADDER_LEVELS_PER_NS:g} adder levels "
            f"(da4ml's convention: the clock period in ns), inputs and outputs registered: {latency} cycles",
            f"the traced graph == C simulation, bit for bit, on {len(same)} jets",
        ],
    )
    summary = {
        "da4ml_version": version,
        "pipeline_stages": stages,
        "luts": luts,
        "register_bits": int(pipeline.reg_bits),
        "multipliers": int(multipliers),
        "n_jets_checked": int(len(same)),
        "timings_s": {"trace_s": trace_s, "emulate_s": emulate_s},
    }
    return section, summary, pipeline


def why_not_traced(
    strategy: str, reuse_factor: int, track_parallelization: int | None, max_tracks: int
) -> str | None:
    """Why the da4ml source does not apply to a design (None if it does): it costs the fully
    unrolled graph, one jet per clock."""
    if strategy not in ("Latency", "distributed_arithmetic") or reuse_factor != 1:
        return f"not fully unrolled (strategy {strategy}, reuse factor {reuse_factor})"
    if track_parallelization not in (None, max_tracks):
        return f"tracks processed {track_parallelization} per clock, not all at once"
    return None


def da4ml_cost_of(
    hls_model: Any,
    config: ModelConfig,
    x: np.ndarray,
    logits_csim: np.ndarray,
    project_dir: Path,
    log: bool = True,
) -> dict[str, Any]:
    """The cost dict of a freshly converted project with its da4ml section, or the reason why
    there is none under ``unavailable`` (the C simulation's outputs on ``x`` are the check).
    The checked pipeline is written to ``project_dir / PIPELINE_FILE``::

        {"sources": {"da4ml": section} | {}, "unavailable": {"da4ml": reason} | {},
         "da4ml": summary | None, "timings_s": {...}}
    """
    h = config.hls
    reason = why_not_traced(h.strategy, h.reuse_factor, h.track_parallelization, config.inputs.max_tracks)
    result: dict[str, Any] = {"sources": {}, "unavailable": {}, "da4ml": None, "timings_s": {}}
    if reason is None:
        if log:
            print(f"[hls] {config.name}: da4ml cost of the adder graph, checked on {len(x)} jets", flush=True)
        try:
            section, summary, pipeline = da4ml_section(hls_model, h.clock_period_ns, h.part, x, logits_csim)
        except NoDa4mlMapping as error:
            reason = error.message
        else:
            save_pipeline(pipeline, project_dir / PIPELINE_FILE)
            result["sources"]["da4ml"] = section
            result["da4ml"] = summary
            result["timings_s"] = {f"da4ml_{key}": value for key, value in summary["timings_s"].items()}
    if reason is not None:
        result["unavailable"]["da4ml"] = reason
        if log:
            print(f"[hls] {config.name}: no da4ml cost: {reason}", flush=True)
    return result
