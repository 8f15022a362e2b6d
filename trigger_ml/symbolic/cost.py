"""Analytic latency and resource estimate of an expression in hls4ml's symbolic firmware.

``trigger_ml.cost.estimate_cost`` models the layers of neural networks; hls4ml's
``SymbolicExpression`` layer is one line of C++ per output, ``y[i] = <expression>;``,
whose operators the HLS tool maps one by one. This module walks the (deployed) sympy
expression with the *same* device constants (``trigger_ml.cost.estimate``: adder and DSP
delays per family, the shift-add/DSP rules for constant products, ROM sizes), so the
figures compare with the networks' estimates:

- operands are ``ap_fixed`` values; products and sums are exact (full precision), so a
  product's width is the sum of its operands', a sum's the widest operand's plus one;
- a product by a constant follows ``estimate.py``'s rule for weights: free for a power of
  two, DSP48 slices when both the signal and the constant's type are wider than
  ``LUT_MULT_MAX_BITS`` and the constant has more than ``SHIFT_ADD_MAX_SET_BITS`` set bits,
  else a shift-and-add of its CSD digits in LUTs; a product of two signals uses DSPs when
  both are wider than ``LUT_MULT_MAX_BITS``, else a LUT multiplier;
- sums and products of several terms are balanced trees (the HLS tool's expression
  balancing), the earliest-ready operands combined first;
- an operation whose delay would cross a clock edge starts at that edge (a register);
  DSP pipeline stages (7-series) and look-up-table reads are registered;
- a saturation ``Min(x, t)`` / ``Max(x, t)`` of an input at a constant is a comparator (an
  adder's carry chain) and a multiplexer (one LUT level), two LUTs per bit: the rule of
  ``estimate.py`` for the bounded activations (relu6, hard_tanh), with the comparator's delay
  as in its softmax maximum;
- a look-up table (hls4ml ``nnet::lookup_table``) rounds its argument onto the result
  type, computes the index with a subtraction and a shift, and reads a ROM of
  ``table_size`` words: BRAM from ``ROM_BRAM_MIN_BITS`` bits up, else LUT ROM;
- the result is truncated (free) and saturated (one LUT level) onto the result type and
  registered; latency = clock edges crossed, at least one; the design takes a new
  input every clock (initiation interval 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sympy

from trigger_ml.config import FixedPoint, HLSConfig
from trigger_ml.cost.estimate import (
    BRAM_18K_BITS,
    BRAM_READ_CYCLES,
    DSP_A_BITS_7SERIES,
    DSP_A_BITS_ULTRASCALE,
    DSP_B_BITS,
    GENERIC_MULT_LUT_PER_PP_BIT,
    LUT_MULT_MAX_BITS,
    LUTROM_BITS_PER_LUT,
    LUTROM_READ_CYCLES,
    ROM_BRAM_MIN_BITS,
    SHIFT_ADD_MAX_SET_BITS,
    TIMING,
    csd_digits,
)
from trigger_ml.cost.sections import make_section
from trigger_ml.symbolic.firmware import CLOCK_UNCERTAINTY, is_cast_constant
from trigger_ml.symbolic.settings import SymbolicConfig

EPS = 1e-9
SYMBOLIC_COST_UNAVAILABLE = {
    "da4ml": "symbolic expressions are costed by the analytic estimate only "
    "(their firmware is hls4ml's expression code, not a traced adder graph)",
}
"""Why a symbolic project has no figure from the other cost sources (report ``cost.unavailable``)."""


@dataclass
class _Signal:
    ready_ns: float  # time the value is available, from the start of the first cycle
    width: int  # bits of its (full-precision) ap_fixed type


@dataclass
class _Estimator:
    effective_period_ns: float
    width: int  # bits of the result/input type
    fractional: int  # its fractional bits
    table_size: int
    dsp_a_bits: int
    dsp_mult_cycles: int
    dsp_mult_ns: float
    add_base_ns: float
    add_per_bit_ns: float
    lut: float = 0.0
    ff: float = 0.0
    dsp: int = 0
    bram: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    # --- timing --------------------------------------------------------------------
    def _edge_after(self, t: float) -> float:
        return math.ceil(t / self.effective_period_ns - EPS) * self.effective_period_ns

    def _combinational(self, inputs: list[_Signal], delay: float, width: int) -> _Signal:
        """An operation of ``delay`` ns; it starts at the next clock edge if it would cross one."""
        start = max((s.ready_ns for s in inputs), default=0.0)
        period = self.effective_period_ns
        if delay > 0 and math.floor(start / period + EPS) != math.floor((start + delay) / period - EPS):
            edge = self._edge_after(start)
            if edge > start + EPS:
                self.ff += sum(s.width for s in inputs)  # operands registered at the edge
                start = edge
        return _Signal(start + delay, width)

    def _registered(self, inputs: list[_Signal], cycles: int, width: int) -> _Signal:
        """An operation of ``cycles`` registered pipeline stages."""
        start = self._edge_after(max((s.ready_ns for s in inputs), default=0.0))
        self.ff += cycles * width
        return _Signal(start + cycles * self.effective_period_ns, width)

    def _add_ns(self, bits: int) -> float:
        return self.add_base_ns + self.add_per_bit_ns * bits

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # --- operators -----------------------------------------------------------------
    def _adder(self, a: _Signal, b: _Signal) -> _Signal:
        width = max(a.width, b.width) + 1
        self.lut += width
        self._count("adders")
        return self._combinational([a, b], self._add_ns(width), width)

    def _multiplier(self, a: _Signal, b: _Signal) -> _Signal:
        width = a.width + b.width
        wide, narrow = max(a.width, b.width), min(a.width, b.width)
        if narrow > LUT_MULT_MAX_BITS:
            self.dsp += math.ceil(wide / self.dsp_a_bits) * math.ceil(narrow / DSP_B_BITS)
            self._count("DSP products")
            product = self._combinational([a, b], self.dsp_mult_ns, width)
            return (
                self._registered([product], self.dsp_mult_cycles, width) if self.dsp_mult_cycles else product
            )
        self.lut += GENERIC_MULT_LUT_PER_PP_BIT * a.width * b.width
        self._count("LUT products")
        levels = math.ceil(math.log2(narrow)) if narrow > 1 else 0
        return self._combinational([a, b], levels * self._add_ns(width), width)

    def _constant_product(self, value: _Signal, constant: sympy.Number) -> _Signal:
        """The rule of ``trigger_ml.cost.estimate`` for a product by a constant weight."""
        mantissa = abs(int(round(float(constant) * 2.0**self.fractional)))
        if mantissa == 0:
            return _Signal(0.0, 1)
        width = value.width + self.width
        if mantissa & (mantissa - 1) == 0:
            self._count("shifts")
            return _Signal(value.ready_ns, width)
        set_bits = bin(mantissa).count("1")
        narrow = min(value.width, self.width) <= LUT_MULT_MAX_BITS
        if not narrow and set_bits > SHIFT_ADD_MAX_SET_BITS:
            return self._multiplier(value, _Signal(0.0, mantissa.bit_length() + 1))
        terms = min(set_bits, csd_digits(mantissa))
        self.lut += (terms - 1) * (value.width + mantissa.bit_length())
        self._count("shift-add products")
        return self._combinational([value], math.ceil(math.log2(terms)) * self._add_ns(width), width)

    def _tree(self, signals: list[_Signal], combine: Any) -> _Signal:
        """Balanced tree: the two earliest-ready operands are combined first."""
        pool = sorted(signals, key=lambda s: s.ready_ns)
        while len(pool) > 1:
            a, b = pool.pop(0), pool.pop(0)
            pool.append(combine(a, b))
            pool.sort(key=lambda s: s.ready_ns)
        return pool[0]

    def _lookup(self, argument: _Signal) -> _Signal:
        # Truncate and saturate the argument onto the table type, then (x - start) * N / range:
        # a subtraction and a shift for power-of-two ranges and sizes.
        cast = self._combinational([argument], self.add_base_ns, self.width)
        self.lut += 2 * self.width
        index = self._combinational([cast], self._add_ns(self.width), self.width)
        bits = self.table_size * self.width
        self._count("look-up tables")
        if bits >= ROM_BRAM_MIN_BITS:
            self.bram += math.ceil(bits / BRAM_18K_BITS)
            return self._registered([index], BRAM_READ_CYCLES, self.width)
        self.lut += self.width * math.ceil(self.table_size / LUTROM_BITS_PER_LUT)
        return self._registered([index], LUTROM_READ_CYCLES, self.width)

    def _saturation(self, value: _Signal) -> _Signal:
        """Compare with a constant, then select: a carry chain and one LUT level."""
        self.lut += 2 * value.width
        self._count("saturations")
        return self._combinational([value], self._add_ns(value.width) + self.add_base_ns, value.width)

    def visit(self, expr: sympy.Expr) -> _Signal:
        if expr.is_Symbol:
            return _Signal(0.0, self.width)
        if expr.is_Number:
            return _Signal(0.0, self.width)
        if expr.is_Add:
            terms = [self.visit(arg) for arg in expr.args]
            return self._tree(terms, self._adder)
        if is_cast_constant(expr):
            return _Signal(0.0, self.width)
        if expr.is_Mul:
            coefficient, rest = expr.as_coeff_Mul()
            # result_t(c) factors (the symbolic Deep Set's kept constants) are products by
            # constants like the leading coefficient, one after the other.
            constants: list[sympy.Number] = []
            signals = []
            for arg in sympy.Mul.make_args(rest):
                base, power = arg.as_base_exp() if arg.is_Pow else (arg, 1)
                if is_cast_constant(base) and getattr(power, "is_Integer", power == 1):
                    constants += [base.args[0]] * int(power)
                else:
                    signals.append(arg)
            if not signals:
                return _Signal(0.0, self.width)
            factors = [self.visit(arg) for arg in signals]
            product = self._tree(factors, self._multiplier)
            for value in constants:
                product = self._constant_product(product, value)
            if abs(coefficient) == 1:  # a sign: absorbed by the adder that uses it
                return product
            return self._constant_product(product, coefficient)
        if expr.is_Pow and expr.exp.is_Integer and int(expr.exp) >= 2:
            base = self.visit(expr.base)
            return self._tree([base] * int(expr.exp), self._multiplier)
        if (
            isinstance(expr, (sympy.Min, sympy.Max))
            and len(expr.args) == 2
            and any(a.is_Number for a in expr.args)
        ):
            (signal,) = [a for a in expr.args if not a.is_Number]
            return self._saturation(self.visit(signal))
        if isinstance(expr, sympy.Function) and len(expr.args) == 1:
            return self._lookup(self.visit(expr.args[0]))
        raise ValueError(f"no cost model for {expr.func.__name__} in {expr}")

    def output(self, signal: _Signal) -> _Signal:
        """Truncate (free) and saturate (a comparator and multiplexer) onto the result type,
        then register the output."""
        saturated = self._combinational([signal], self.add_base_ns, self.width)
        self.lut += self.width
        self.ff += self.width
        return saturated


def _uncertainty_ns(value: Any, period: float) -> float:
    text = str(value).strip()
    return float(text[:-1]) / 100.0 * period if text.endswith("%") else float(text)


def expression_cost(
    expressions: list[sympy.Expr],
    precision: FixedPoint,
    part: str,
    clock_period_ns: float,
    clock_uncertainty: str | float,
    table_size: int,
) -> dict[str, Any]:
    """Cost section (source ``estimate``) of the firmware computing ``expressions``.

    ``expressions`` are the deployed ones (constants on the fixed-point grid, look-up-table
    functions as single-argument functions); ``clock_uncertainty`` as hls4ml writes it
    (``"12.5%"`` or ns).
    """
    family = "7series" if part.lower().startswith("xc7") else "ultrascale"
    period = float(clock_period_ns)
    uncertainty = _uncertainty_ns(clock_uncertainty, period)
    estimator = _Estimator(
        effective_period_ns=max(period - uncertainty, 0.1 * period),
        width=precision.bits,
        fractional=precision.bits - 1 - precision.integer,
        table_size=table_size,
        dsp_a_bits=DSP_A_BITS_7SERIES if family == "7series" else DSP_A_BITS_ULTRASCALE,
        **TIMING[family],
    )
    ready = [estimator.output(estimator.visit(expr)).ready_ns for expr in expressions]
    latency = max(1, max(math.ceil(t / estimator.effective_period_ns - EPS) for t in ready))
    resources = {
        "LUT": round(estimator.lut),
        "FF": round(estimator.ff),
        "DSP": estimator.dsp,
        "BRAM_18K": estimator.bram,
        "URAM": 0,
    }
    operators = ", ".join(f"{n} {what}" for what, n in sorted(estimator.counts.items()))
    per_layer = [
        {
            "name": "expr1",
            "class": "SymbolicExpression",
            "latency_cycles": latency,
            "initiation_interval": 1,
            **{key: resources[key] for key in ("LUT", "FF", "DSP", "BRAM_18K")},
            "notes": [operators or "constant output"],
        }
    ]
    return make_section(
        source="estimate",
        part=part,
        clock_period_ns=period,
        latency_cycles=(latency, latency),
        initiation_interval=1,
        resources=resources,
        per_layer=per_layer,
        notes=[
            "trigger_ml.symbolic analytic model of hls4ml's SymbolicExpression line "
            "(device constants of trigger_ml.cost.estimate; docs/symbolic.md)",
            f"clock {period:g} ns less {uncertainty:.3g} ns uncertainty, {family} timing",
        ],
    )


def firmware_cost(deployed: list[sympy.Expr], settings: SymbolicConfig, hls: HLSConfig) -> dict[str, Any]:
    """:func:`expression_cost` of the firmware of ``deployed`` as the stages build it: the
    settings' type and table size, the teacher's part and clock, hls4ml's clock uncertainty."""
    return expression_cost(
        deployed,
        settings.precision,
        hls.part,
        hls.clock_period_ns,
        CLOCK_UNCERTAINTY,
        settings.lut.table_size,
    )
