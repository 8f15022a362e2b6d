"""Analytic estimate of what the HLS tool will report for an hls4ml ModelGraph.

The estimate reads the graph *after* conversion, so the strategy, reuse factor,
parallelisation and precisions are the ones hls4ml's optimizers settled on, and the
weights are the constants the HLS tool will see. It models the hls4ml Vivado/Vitis
templates (``nnet_dense_latency.h``, ``nnet_conv1d_latency.h``, ``nnet_pooling.h``,
``nnet_activation.h``) the way C synthesis maps them:

- every product by a zero weight disappears, a power-of-two weight is a free shift and a
  weight with two set bits is a shift-and-add in LUTs; other products go to DSPs when both
  operand types are wider than ``LUT_MULT_MAX_BITS``, else to LUT shift-add networks;
- each output sums its non-zero products and bias in an adder tree of ``ceil(log2 n)``
  levels at one LUT per bit;
- DSP products take ``ctx.dsp_mult_cycles`` pipeline stages, the adder tree as many cycles as
  its delay needs at the clock period less the clock uncertainty;
- io_parallel: the layers form one pipeline, latencies add, II is the largest layer II;
  io_stream: each layer also reads and writes its streams, FIFOs join the layers and the
  dataflow region adds a cycle to the latency and to the II.

All model constants are below, each with where its value comes from; the validation
against real reports is in ``docs/cost-model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_ml.cost.sections import make_section

# --- model constants (docs/cost-model.md explains and validates each) -------------------
# Timing per device family, as the HLS tool's own delay model schedules hls4ml's layers.
# 7-series: DSP products get a 3-stage multiplier (the reference report's dense layer;
# hls4ml issue #49, "NUM_STAGE => 3") and a 16-bit adder takes 1.44 ns (reference report:
# 5 adder levels in 2 cycles at 5 ns). UltraScale(+): the product is chained with the
# adder tree (hls4ml tutorial report: every 16-bit dense layer of the 16-64-32-32-5
# network in 1 cycle at 5 ns, 7 adder levels after the product).
TIMING = {
    "7series": {"dsp_mult_cycles": 3, "dsp_mult_ns": 0.0, "add_base_ns": 0.8, "add_per_bit_ns": 0.04},
    "ultrascale": {"dsp_mult_cycles": 0, "dsp_mult_ns": 1.5, "add_base_ns": 0.2, "add_per_bit_ns": 0.0125},
}
# Products whose operand types are both wider than this many bits may use a DSP.
LUT_MULT_MAX_BITS = 10
# Constant weights with at most this many set bits become shift(-and-add) logic, not a DSP
# (calibrated on the reference report: 73 DSPs for 80 products of random 16-bit weights).
SHIFT_ADD_MAX_SET_BITS = 2
# DSP48 operand widths (A x B); 7-series DSP48E1 has a 25-bit A port, UltraScale DSP48E2 27.
DSP_B_BITS = 18
DSP_A_BITS_7SERIES = 25
DSP_A_BITS_ULTRASCALE = 27
# LUTs per partial-product bit of a non-constant multiplier in fabric (hls4ml issue #99:
# 365-401 LUTs for an 18x18 LUT multiplier).
GENERIC_MULT_LUT_PER_PP_BIT = 1.2
# io_stream overheads, calibrated on the reference report's ReLU and FIFO rows:
STREAM_LAYER_CYCLES = 2  # one cycle to read the input stream, one to write the output stream
STREAM_LUT_PER_BIT = 1.1  # handshake and data muxing per stream bit read or written
FIFO_LUT_PER_BIT = 1.75  # depth-1 FIFO between two layers
FIFO_FF_PER_CHANNEL = 5
DATAFLOW_EXTRA_CYCLES = 1
# Look-up tables (sigmoid, tanh, softmax exp/inv): ROMs of at least this many bits go to
# BRAM_18K, smaller ones to LUTs (64 bits each); each BRAM serves two parallel reads.
ROM_BRAM_MIN_BITS = 1024
BRAM_18K_BITS = 18 * 1024
LUTROM_BITS_PER_LUT = 64
BRAM_READ_CYCLES = 2
LUTROM_READ_CYCLES = 1
# Latency-strategy designs with reuse factor > 1 and the resource strategy: a k-to-1
# multiplexer costs ceil((k - 1) / 3) LUT6 per bit; the resource strategy adds this many
# cycles to fill and drain its accumulation loop.
RESOURCE_EXTRA_CYCLES = 3
# hls4ml's default clock uncertainty when the config does not give one.
DEFAULT_CLOCK_UNCERTAINTY = 0.125

FREE_CLASSES = {"Input", "InputLayer", "Transpose", "Reshape", "Flatten", "Dropout", "Identity"}
DENSE_CLASSES = {"Dense", "Conv1D", "PointwiseConv1D"}
POOL_CLASSES = {"GlobalPooling1D"}
ACTIVATION_CLASSES = {
    "Activation",
    "ReLU",
    "Softmax",
    "ParametrizedActivation",
    "LeakyReLU",
    "HardActivation",
}


@dataclass
class LayerCost:
    """Estimated cost of one layer; ``initiation_interval`` is in cycles."""

    name: str
    class_name: str
    latency_cycles: int = 0
    initiation_interval: int = 1
    LUT: float = 0.0
    FF: float = 0.0
    DSP: int = 0
    BRAM_18K: int = 0
    computes: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": self.class_name,
            "latency_cycles": int(self.latency_cycles),
            "initiation_interval": int(self.initiation_interval),
            "LUT": int(round(self.LUT)),
            "FF": int(round(self.FF)),
            "DSP": int(self.DSP),
            "BRAM_18K": int(self.BRAM_18K),
            "notes": list(self.notes),
        }


@dataclass
class _Context:
    clock_period_ns: float
    effective_period_ns: float
    dsp_a_bits: int
    io_type: str
    dsp_mult_cycles: int
    dsp_mult_ns: float
    add_base_ns: float
    add_per_bit_ns: float

    def add_ns(self, bits: int) -> float:
        """Delay of one carry-chain adder of ``bits`` bits."""
        return self.add_base_ns + self.add_per_bit_ns * bits


# --- precisions and constants -----------------------------------------------------------


def _width(precision: Any) -> int:
    return int(getattr(precision, "width", 16))


def _fractional(precision: Any) -> int:
    integer = getattr(precision, "integer", None)
    return _width(precision) - int(integer) if integer is not None else 0


def quantize(values: np.ndarray, precision: Any) -> np.ndarray:
    """Integer mantissas of ``values`` in ``precision`` (value = mantissa * 2**-fractional).

    Rounding follows the type (TRN truncates, the RND modes round), overflow saturates for
    SAT types and wraps otherwise, as ``ap_fixed`` does when hls4ml writes the weights.
    """
    frac = _fractional(precision)
    scaled = np.asarray(values, dtype=float) * 2.0**frac
    rounding = getattr(getattr(precision, "rounding_mode", None), "name", "TRN")
    mant = np.floor(scaled) if rounding == "TRN" else np.round(scaled)
    width = _width(precision)
    signed = bool(getattr(precision, "signed", True))
    low, high = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
    if getattr(getattr(precision, "saturation_mode", None), "name", "WRAP").startswith("SAT"):
        return np.clip(mant, low, high).astype(np.int64)
    span = 2**width
    return ((mant.astype(np.int64) - low) % span + low).astype(np.int64)


def csd_digits(value: int) -> int:
    """Non-zero digits of ``value`` in canonical signed-digit form (adders needed + 1)."""
    value, digits = abs(int(value)), 0
    while value:
        if value & 1:
            digits += 1
            value -= 2 - (value & 3)  # +1 digit if ...01, -1 digit if ...11
        value >>= 1
    return digits


def _is_po2_type(precision: Any) -> bool:
    return type(precision).__name__ in ("ExponentPrecisionType", "XnorPrecisionType")


def _cycles(delay_ns: float, ctx: _Context) -> int:
    return math.ceil(delay_ns / ctx.effective_period_ns - 1e-9) if delay_ns > 0 else 0


def _levels(terms: int) -> int:
    return math.ceil(math.log2(terms)) if terms > 1 else 0


def _mux_luts(ways: int, bits: int) -> int:
    return bits * math.ceil((ways - 1) / 3) if ways > 1 else 0


def _dsps_per_product(a_bits: int, b_bits: int, ctx: _Context) -> int:
    wide, narrow = max(a_bits, b_bits), min(a_bits, b_bits)
    return math.ceil(wide / ctx.dsp_a_bits) * math.ceil(narrow / DSP_B_BITS)


# --- multiply-accumulate layers ---------------------------------------------------------


@dataclass
class _Products:
    """How the constant products of one kernel instance map to hardware."""

    dsp: int = 0  # DSP48 slices
    dsp_products: int = 0
    other_products: int = 0  # shifts and LUT shift-add products
    lut: float = 0.0
    lut_levels: int = 0  # extra adder levels of LUT shift-add products
    terms_per_output: list[int] = field(default_factory=list)


def _constant_products(
    mant: np.ndarray, bias: np.ndarray | None, data_bits: int, weight_bits: int, ctx: _Context
) -> _Products:
    """Map the constant products of an (n_in, n_out) mantissa matrix (latency strategy, RF 1)."""
    out = _Products()
    narrow = min(data_bits, weight_bits) <= LUT_MULT_MAX_BITS
    for value in mant.ravel():
        magnitude = abs(int(value))
        if magnitude == 0:
            continue
        set_bits = bin(magnitude).count("1")
        terms = min(set_bits, csd_digits(magnitude))
        if not narrow and set_bits > SHIFT_ADD_MAX_SET_BITS:
            out.dsp += _dsps_per_product(data_bits, magnitude.bit_length() + 1, ctx)
            out.dsp_products += 1
            continue
        out.other_products += 1
        out.lut += (terms - 1) * (data_bits + magnitude.bit_length())
        out.lut_levels = max(out.lut_levels, _levels(terms))
    nonzero = np.count_nonzero(mant, axis=0)
    has_bias = np.zeros(mant.shape[1], dtype=int) if bias is None else (np.asarray(bias) != 0).astype(int)
    out.terms_per_output = [int(n + b) for n, b in zip(nonzero, has_bias, strict=True)]
    return out


def _adder_tree(
    terms: list[int], acc_bits: int, extra_levels: int, ctx: _Context, lead_ns: float = 0.0
) -> tuple[float, int, float]:
    """(LUTs, cycles, FFs at the cycle boundaries inside the tree) of one adder tree per output.

    ``lead_ns`` is combinational delay chained in front of the tree (an unregistered product).
    """
    luts = sum(max(t - 1, 0) for t in terms) * acc_bits
    levels = max((_levels(t) for t in terms), default=0) + extra_levels
    cycles = _cycles(lead_ns + levels * ctx.add_ns(acc_bits), ctx)
    ffs = 0.0
    for boundary in range(1, cycles):
        done = levels * boundary / cycles
        ffs += sum(math.ceil(t / 2**done) for t in terms if t > 0) * acc_bits
    return luts, cycles, ffs


def _mac_layer(layer: Any, ctx: _Context) -> LayerCost:
    """Dense, Conv1D and PointwiseConv1D (kernel width 1: one dense per track/position)."""
    cost = LayerCost(layer.name, layer.class_name)
    weights = layer.get_weights("weight")
    bias_var = layer.get_weights("bias") if "bias" in layer.weights else None
    w_prec = weights.type.precision
    data_bits = _width(layer.get_input_variable().type.precision)
    weight_bits = _width(w_prec)
    acc_prec = layer.get_attr("accum_t").precision if layer.get_attr("accum_t") is not None else w_prec
    acc_bits = _width(acc_prec)
    out_var = layer.get_output_variable()
    out_bits = _width(out_var.type.precision)
    rf = int(layer.get_attr("reuse_factor", 1))
    strategy = str(layer.get_attr("strategy", "latency")).lower()

    if layer.class_name == "Dense":
        n_in, n_out = int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))
        instances, sequential = 1, 1
    else:
        n_in = int(layer.get_attr("n_chan")) * int(layer.get_attr("filt_width", 1))
        n_out = int(layer.get_attr("n_filt"))
        out_width = int(layer.get_attr("out_width"))
        sequential = int(layer.get_attr("n_partitions", out_width))
        instances = out_width // sequential
        if ctx.io_type == "io_stream":
            instances, sequential = 1, out_width
        cost.notes.append(
            f"{instances} parallel kernel(s) of {n_in}x{n_out}, {sequential} position(s) in sequence"
        )
    mant = quantize(weights.data, w_prec).reshape(n_in, n_out) if not _is_po2_type(w_prec) else None
    bias = (
        quantize(bias_var.data, bias_var.type.precision).ravel()
        if bias_var is not None and not _is_po2_type(bias_var.type.precision)
        else None
    )
    if mant is None:
        # Power-of-two (po2) or binary quantizers: every product is a shift or a sign flip.
        mant = np.where(np.asarray(weights.data).reshape(n_in, n_out) != 0, 1, 0)
        cost.notes.append("power-of-two/binary weights: products are shifts")

    if strategy == "distributed_arithmetic":
        da_cost = layer.get_attr("da_kernel_cost")
        terms = [
            int(np.sum([csd_digits(v) for v in mant[:, j]])) + int(bias is not None and bias[j] != 0)
            for j in range(n_out)
        ]
        if da_cost is not None:
            lut = float(da_cost)
            cost.notes.append("distributed arithmetic: adder cost from da4ml")
        else:
            lut = sum(max(t - 1, 0) for t in terms) * acc_bits
            cost.notes.append("distributed arithmetic without da4ml: CSD shift-add upper bound (no sharing)")
        _, tree_cycles, tree_ff = _adder_tree(terms, acc_bits, 0, ctx)
        cost.LUT = lut * instances
        cost.FF = (tree_ff + n_out * out_bits) * instances
        cost.latency_cycles = max(tree_cycles, 1)
        cost.initiation_interval = sequential
        return cost

    if strategy == "latency" and rf == 1:
        products = _constant_products(mant, bias, data_bits, weight_bits, ctx)
        mult_cycles = ctx.dsp_mult_cycles if products.dsp_products else 0
        lead = ctx.dsp_mult_ns if products.dsp_products else 0.0
        tree_lut, tree_cycles, tree_ff = _adder_tree(
            products.terms_per_output, acc_bits, products.lut_levels, ctx, lead
        )
        prod_bits = data_bits + weight_bits
        cost.DSP = products.dsp * instances
        cost.LUT = (products.lut + tree_lut) * instances
        # Products are registered at full width through the multiplier stages (balanced).
        product_ff = mult_cycles * (products.dsp_products + products.other_products) * prod_bits
        cost.FF = (product_ff + tree_ff + n_out * out_bits) * instances
        compute = mult_cycles + tree_cycles
        cost.latency_cycles = max(compute, 1) + (sequential - 1)
        cost.initiation_interval = sequential
        cost.notes.append(
            f"{products.dsp_products} DSP products, {products.other_products} shift/LUT products, "
            f"{int(mant.size - np.count_nonzero(mant))} zero weights"
        )
        return cost

    # Reuse factor > 1 (latency strategy) or resource strategy: shared, non-constant products.
    nonzero = int(np.count_nonzero(mant))
    units = math.ceil(nonzero / rf)
    if min(data_bits, weight_bits) > LUT_MULT_MAX_BITS:
        cost.DSP = units * _dsps_per_product(data_bits, weight_bits, ctx) * instances
        mult_lut = 0.0
    else:
        mult_lut = units * GENERIC_MULT_LUT_PER_PP_BIT * data_bits * weight_bits
    mux_lut = units * (_mux_luts(rf, data_bits) + _mux_luts(rf, weight_bits))
    terms = [math.ceil(t / rf) + 1 for t in np.count_nonzero(mant, axis=0)]
    tree_lut, tree_cycles, tree_ff = _adder_tree(terms, acc_bits, 0, ctx)
    prod_bits = data_bits + weight_bits
    cost.LUT = (mult_lut + mux_lut + tree_lut) * instances
    cost.FF = (ctx.dsp_mult_cycles * units * prod_bits + tree_ff + n_out * (acc_bits + out_bits)) * instances
    if strategy == "resource":
        rom_bits = rf * weight_bits
        if rom_bits >= ROM_BRAM_MIN_BITS:
            cost.BRAM_18K = units * math.ceil(rom_bits / BRAM_18K_BITS) * instances
        else:
            cost.LUT += units * weight_bits * math.ceil(rf / LUTROM_BITS_PER_LUT) * instances
        cost.latency_cycles = (rf + ctx.dsp_mult_cycles + tree_cycles + RESOURCE_EXTRA_CYCLES) * sequential
    else:
        cost.latency_cycles = (rf - 1 + ctx.dsp_mult_cycles + tree_cycles) + (sequential - 1) * rf
    cost.initiation_interval = rf * sequential
    cost.notes.append(f"{strategy} strategy, reuse factor {rf}: {units} shared multiplier(s) per kernel")
    return cost


# --- other layers -----------------------------------------------------------------------


def _rom(entries: int, bits: int, parallel_reads: int) -> tuple[int, float, int]:
    """(BRAM_18K, LUTs, read cycles) of a ROM read ``parallel_reads`` times per cycle."""
    total = entries * bits
    if total >= ROM_BRAM_MIN_BITS:
        return math.ceil(parallel_reads / 2) * math.ceil(total / BRAM_18K_BITS), 0.0, BRAM_READ_CYCLES
    return 0, parallel_reads * bits * math.ceil(entries / LUTROM_BITS_PER_LUT), LUTROM_READ_CYCLES


def _activation(layer: Any, ctx: _Context) -> LayerCost:
    cost = LayerCost(layer.name, layer.class_name)
    kind = str(layer.get_attr("activation", layer.class_name)).lower()
    n = int(np.prod(layer.get_output_variable().shape))
    in_bits = _width(layer.get_input_variable().type.precision)
    out_bits = _width(layer.get_output_variable().type.precision)
    if kind in ("linear",):
        cost.computes = False
        return cost
    if kind in ("relu", "leaky_relu", "relu6", "hard_sigmoid", "hard_tanh", "leakyrelu"):
        # Sign test and multiplexer (plus saturation for the bounded ones): chained into the
        # neighbouring pipeline stage, no cycle of its own.
        cost.LUT = n * out_bits * (1 if kind == "relu" else 2)
        if kind != "relu":
            cost.notes.append(f"{kind} modelled as a comparator and multiplexer per element")
        return cost
    table_size = int(layer.get_attr("table_size", 1024))
    table_bits = _width(layer.get_attr("table_t").precision) if layer.get_attr("table_t") is not None else 18
    if kind == "softmax":
        exp_bits = _width(layer.get_attr("exp_table_t").precision) if layer.get_attr("exp_table_t") else 18
        inv_bits = _width(layer.get_attr("inv_table_t").precision) if layer.get_attr("inv_table_t") else 18
        impl = str(layer.get_attr("implementation", "stable")).lower()
        exp_bram, exp_lut, exp_cycles = _rom(table_size, exp_bits, n)
        inv_bram, inv_lut, inv_cycles = _rom(table_size, inv_bits, 1)
        sum_lut, sum_cycles, sum_ff = _adder_tree([n], exp_bits, 0, ctx)
        cost.BRAM_18K = exp_bram + inv_bram
        cost.LUT = exp_lut + inv_lut + sum_lut + n * in_bits  # + index arithmetic per element
        cost.DSP = n * _dsps_per_product(exp_bits, inv_bits, ctx)
        cost.latency_cycles = exp_cycles + sum_cycles + inv_cycles + ctx.dsp_mult_cycles + 1
        if impl == "stable":
            max_lut = (n - 1) * 2 * in_bits + n * in_bits  # comparator tree + subtraction
            cost.LUT += max_lut
            cost.latency_cycles += _cycles(_levels(n) * ctx.add_ns(in_bits), ctx) + 1
        cost.FF = sum_ff + n * (exp_bits + in_bits) * 2 + ctx.dsp_mult_cycles * n * (exp_bits + inv_bits)
        cost.notes.append(f"softmax ({impl}): exp/inv tables, {n} multipliers")
        return cost
    if kind in ("sigmoid", "tanh", "softsign", "elu", "selu", "softplus"):
        bram, lut, cycles = _rom(table_size, table_bits, n)
        cost.BRAM_18K, cost.LUT = bram, lut + n * in_bits
        cost.FF = n * (in_bits + out_bits)
        cost.latency_cycles = cycles + 1
        cost.notes.append(f"{kind}: {table_size}-entry table per element")
        return cost
    cost.notes.append(f"no cost model for activation {kind!r}: counted as 0")
    return cost


def _global_pooling(layer: Any, ctx: _Context) -> LayerCost:
    cost = LayerCost(layer.name, layer.class_name)
    n_in, n_filt = int(layer.get_attr("n_in")), int(layer.get_attr("n_filt"))
    acc = layer.get_attr("accum_t")
    acc_bits = (
        _width(acc.precision) if acc is not None else _width(layer.get_output_variable().type.precision)
    )
    in_bits = _width(layer.get_input_variable().type.precision)
    if str(layer.get_attr("pool_op", "Average")).lower().startswith("max"):
        cost.LUT = n_filt * (n_in - 1) * 2 * in_bits
        cost.latency_cycles = _cycles(_levels(n_in) * ctx.add_ns(in_bits), ctx)
        return cost
    tree_lut, tree_cycles, tree_ff = _adder_tree([n_in] * n_filt, acc_bits, 0, ctx)
    cost.LUT, cost.FF, cost.latency_cycles = tree_lut, tree_ff, tree_cycles
    if n_in & (n_in - 1):
        # Division by a constant that is not a power of two: a product by its reciprocal.
        recip = int(quantize(np.array([1.0 / n_in]), acc.precision if acc is not None else None)[0]) or 1
        if bin(recip).count("1") > SHIFT_ADD_MAX_SET_BITS and acc_bits > LUT_MULT_MAX_BITS:
            cost.DSP = n_filt * _dsps_per_product(acc_bits, recip.bit_length() + 1, ctx)
            cost.latency_cycles += ctx.dsp_mult_cycles
            cost.FF += ctx.dsp_mult_cycles * n_filt * 2 * acc_bits
        else:
            cost.LUT += n_filt * (csd_digits(recip) - 1) * 2 * acc_bits
        cost.notes.append(f"average over {n_in}: division as a product by the reciprocal")
    cost.latency_cycles = max(cost.latency_cycles, 1)
    return cost


def _layer_cost(layer: Any, ctx: _Context) -> LayerCost:
    name = layer.class_name
    if name in FREE_CLASSES:
        return LayerCost(layer.name, name, computes=False)
    if name in DENSE_CLASSES:
        return _mac_layer(layer, ctx)
    if name in POOL_CLASSES:
        return _global_pooling(layer, ctx)
    if name in ACTIVATION_CLASSES:
        return _activation(layer, ctx)
    return LayerCost(
        layer.name, name, computes=False, notes=[f"no cost model for class {name}: counted as 0"]
    )


# --- the whole graph --------------------------------------------------------------------


def _clock_uncertainty_ns(value: Any, period: float) -> float:
    if value is None:
        return DEFAULT_CLOCK_UNCERTAINTY * period
    text = str(value).strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100.0 * period
    return float(text)


def _stream_costs(layers: list[Any], costs: list[LayerCost]) -> None:
    """Add io_stream read/write stages and the FIFOs between computing layers, in place.

    A stream element holds the last dimension of a tensor (all of a Dense layer's input,
    one track's features for Conv1D); earlier dimensions arrive one element per cycle.
    """
    computing = [(layer, cost) for layer, cost in zip(layers, costs, strict=True) if cost.computes]
    for position, (layer, cost) in enumerate(computing):
        in_var, out_var = layer.get_input_variable(), layer.get_output_variable()
        in_bits = int(in_var.shape[-1]) * _width(in_var.type.precision)
        out_bits = int(out_var.shape[-1]) * _width(out_var.type.precision)
        elements = int(np.prod(in_var.shape[:-1]))
        cost.LUT += STREAM_LUT_PER_BIT * (in_bits + out_bits)
        cost.latency_cycles += STREAM_LAYER_CYCLES
        if layer.class_name in DENSE_CLASSES or layer.class_name in POOL_CLASSES:
            cost.FF += in_bits  # the input element is registered before the kernel runs
        if layer.class_name not in DENSE_CLASSES:
            cost.latency_cycles += elements - 1  # the MAC model already counts its positions
        if elements == 1 and layer.class_name in DENSE_CLASSES:
            # read, compute and write run in sequence (the reference report: II = latency)
            cost.initiation_interval = cost.latency_cycles
        else:
            cost.initiation_interval = max(cost.initiation_interval, elements)
        if position < len(computing) - 1:
            n_channels = int(out_var.shape[-1])
            cost.LUT += FIFO_LUT_PER_BIT * out_bits
            cost.FF += FIFO_FF_PER_CHANNEL * n_channels
            cost.notes.append(f"FIFO to the next layer: {n_channels} channel(s)")


def estimate_cost(hls_model: Any, clock_period_ns: float | None = None) -> dict[str, Any]:
    """Estimated cost section of a converted hls4ml ``ModelGraph`` (no vendor tool needed).

    ``clock_period_ns`` defaults to the model's ``ClockPeriod``; the uncertainty is the
    model's ``ClockUncertainty`` (hls4ml's default 12.5 %).
    """
    config = hls_model.config
    period = float(
        clock_period_ns if clock_period_ns is not None else config.get_config_value("ClockPeriod", 5)
    )
    uncertainty = _clock_uncertainty_ns(config.get_config_value("ClockUncertainty", None), period)
    part = config.get_config_value("Part", None)
    io_type = str(config.get_config_value("IOType", "io_parallel"))
    family = "7series" if str(part or "").lower().startswith("xc7") else "ultrascale"
    ctx = _Context(
        clock_period_ns=period,
        effective_period_ns=max(period - uncertainty, 0.1 * period),
        dsp_a_bits=DSP_A_BITS_7SERIES if family == "7series" else DSP_A_BITS_ULTRASCALE,
        io_type=io_type,
        **TIMING[family],
    )
    layers = list(hls_model.get_layers())
    costs = [_layer_cost(layer, ctx) for layer in layers]
    notes = [
        f"analytic model of hls4ml's {config.get_config_value('Backend', 'Vivado')} templates, {io_type}",
        f"clock {period:g} ns less {uncertainty:.3g} ns uncertainty, {family} timing",
    ]
    if io_type == "io_stream":
        _stream_costs(layers, costs)
        latency = sum(cost.latency_cycles for cost in costs) + DATAFLOW_EXTRA_CYCLES
        interval = max((cost.initiation_interval for cost in costs), default=1) + DATAFLOW_EXTRA_CYCLES
    else:
        latency = sum(cost.latency_cycles for cost in costs)
        interval = max((cost.initiation_interval for cost in costs), default=1)
    notes += [f"{cost.name}: {note}" for cost in costs for note in cost.notes if "counted as 0" in note]
    totals = {
        "LUT": round(sum(cost.LUT for cost in costs)),
        "FF": round(sum(cost.FF for cost in costs)),
        "DSP": sum(cost.DSP for cost in costs),
        "BRAM_18K": sum(cost.BRAM_18K for cost in costs),
        "URAM": 0,
    }
    return make_section(
        source="estimate",
        tool=None,
        tool_version=None,
        part=part,
        clock_period_ns=period,
        latency_cycles=(latency, latency),
        initiation_interval=interval,
        resources=totals,
        per_layer=[cost.as_dict() for cost in costs if cost.computes or cost.notes],
        notes=notes,
    )
