"""From chosen expressions to an hls4ml symbolic project and its g++ C simulation.

The deployed expression is the chosen one with every constant rounded onto the firmware's
fixed-point type (what ``result_t(c)`` in the generated C++ holds anyway, made explicit),
and each non-polynomial function replaced by an hls4ml look-up table ``<name>_lut``.
All of the design (inputs, constants, tables, result) uses one type,
``ap_fixed<bits, integer + 1, AP_TRN, AP_SAT>`` (truncation is free in hardware, saturation
keeps outliers at the ends of the range); products and sums between them are exact in
``ap_fixed`` arithmetic, so a polynomial expression differs from its float evaluation only
by the final truncation: less than one step. Look-up tables add their own approximation;
:func:`evaluate` can emulate them to separate the two.

The C simulation needs no vendor header: hls4ml's ``hls_math.h`` stand-in defines the
functions its tables are filled with (exp, sin, cos), and the expression uses nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from trigger_ml.config import FixedPoint
from trigger_ml.data.dataset import fixed_point_grid
from trigger_ml.errors import TriggerMLError
from trigger_ml.symbolic.settings import LUT_UNARY, LUTSettings

LUT_SUFFIX = "_lut"
CLOCK_UNCERTAINTY = "12.5%"  # hls4ml's default for its symbolic backend, stated explicitly
CONSTANT_CAST = "result_t"
"""``result_t(c)``: a constant kept as a factor. hls4ml re-parses the expression text, and
sympy distributes a bare number over a sum (``2*(a + b)`` -> ``2*a + 2*b``); a constant
written as the design type's constructor (what hls4ml prints for every number anyway) stays
where it is, so a factored expression (the symbolic Deep Set's pooled sums) keeps its
structure in the firmware. Its value is already on the design grid."""
_NUMPY_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
}


def fixed_type(fp: FixedPoint) -> str:
    """The ap_fixed type of the design: QKeras integer bits + the sign bit, truncation, saturation."""
    return f"ap_fixed<{fp.bits},{fp.integer + 1},AP_TRN,AP_SAT>"


def fixed_point_step(fp: FixedPoint) -> float:
    return fixed_point_grid(fp)[0]


def round_to_type(values: np.ndarray, fp: FixedPoint, truncate: bool = False) -> np.ndarray:
    """float64 values on the grid of ``fp``, saturated: rounded half to even, or truncated
    (towards minus infinity, as AP_TRN); float64 keeps types wider than float32's mantissa exact."""
    step, low, high = fixed_point_grid(fp)
    scaled = np.asarray(values, dtype=np.float64) / step
    return np.clip((np.floor(scaled) if truncate else np.round(scaled)) * step, low, high)


def cast_constant(value: float) -> sympy.Expr:
    """``result_t(value)``: a constant factor that sympy will not distribute (CONSTANT_CAST)."""
    number = sympy.Integer(int(value)) if value == int(value) else sympy.Float(value, 17)
    return sympy.Function(CONSTANT_CAST)(number)


def is_cast_constant(node: sympy.Basic) -> bool:
    """Is ``node`` a ``result_t(<number>)`` constant?"""
    return (
        isinstance(node, sympy.Function)
        and node.func.__name__ == CONSTANT_CAST
        and len(node.args) == 1
        and node.args[0].is_Number
    )


def is_saturation(node: sympy.Basic) -> bool:
    """``Min(x_j, t)`` or ``Max(x_j, t)``: an input clipped at a constant (a comparator and a
    multiplexer, written as a C++ conditional for hls4ml)."""
    return (
        isinstance(node, (sympy.Min, sympy.Max))
        and len(node.args) == 2
        and sum(a.is_Symbol for a in node.args) == 1
        and sum(a.is_Number for a in node.args) == 1
    )


def unsupported_reason(expr: sympy.Expr) -> str | None:
    """Why ``expr`` cannot become firmware without vendor headers, or None if it can."""
    for node in sympy.preorder_traversal(expr):
        if is_cast_constant(node):
            continue
        if isinstance(node, (sympy.Min, sympy.Max)):
            if not is_saturation(node):
                return f"{node} (min/max only between an input and a constant)"
            continue
        if node.is_Pow and not (node.exp.is_Integer and int(node.exp) >= 2):
            return f"power {node} (only integer powers >= 2 are products)"
        if isinstance(node, sympy.Function) and node.func.__name__ not in LUT_UNARY:
            return f"function {node.func.__name__} has no look-up table"
        if node.is_Number and not node.is_real:
            return f"non-real constant {node}"
    return None


def snap_constants(expr: sympy.Expr, fp: FixedPoint) -> sympy.Expr:
    """Round every constant (not the integer exponents) onto the fixed-point grid of ``fp``."""
    if expr.is_Number:
        value = float(round_to_type(np.array([float(expr)]), fp)[0])
        return sympy.Integer(int(value)) if value == int(value) else sympy.Float(value, 17)
    if expr.is_Pow:
        return sympy.Pow(snap_constants(expr.base, fp), expr.exp)
    if not expr.args:
        return expr
    return expr.func(*[snap_constants(arg, fp) for arg in expr.args])


def count_constants(expr: sympy.Expr) -> int:
    """Free parameters of an expression: its numeric constants other than ±1 and exponents."""
    if expr.is_Pow:
        return count_constants(expr.base)
    if expr.is_Number:
        return int(abs(float(expr)) != 1.0)
    return sum(count_constants(arg) for arg in expr.args)


def lut_specs(expressions: list[sympy.Expr], x: np.ndarray, lut: LUTSettings) -> dict[str, dict[str, Any]]:
    """hls4ml LUT definitions for the functions in ``expressions``, ranges from the data.

    A table spans [-2^k, 2^k) with the smallest k (at most ``lut.max_range_log2``) holding
    every argument of that function over the rows of ``x``: power-of-two ranges and sizes
    make the index computation a shift.
    """
    symbols = sorted(set().union(*(e.free_symbols for e in expressions)), key=lambda s: int(s.name[1:]))
    columns = [x[:, int(s.name[1:])] for s in symbols]
    extent: dict[str, float] = {}
    for expr in expressions:
        for node in sympy.preorder_traversal(expr):
            if isinstance(node, sympy.Function) and node.func.__name__ in LUT_UNARY:
                values = sympy.lambdify(symbols, node.args[0], "numpy")(*columns)
                name = node.func.__name__
                extent[name] = max(extent.get(name, 0.0), float(np.max(np.abs(values))))
    specs = {}
    for name, largest in sorted(extent.items()):
        k = min(max(0, math.ceil(math.log2(largest))) if largest > 0 else 0, lut.max_range_log2)
        specs[name + LUT_SUFFIX] = {
            "math_func": name,
            "table_size": lut.table_size,
            "range_start": -(2**k),
            "range_end": 2**k,
        }
    return specs


def with_luts(expr: sympy.Expr) -> sympy.Expr:
    """``exp(u)`` -> ``exp_lut(u)`` (an undefined function hls4ml prints as the table call)."""
    return expr.replace(
        lambda node: isinstance(node, sympy.Function) and node.func.__name__ in LUT_UNARY,
        lambda node: sympy.Function(node.func.__name__ + LUT_SUFFIX)(*node.args),
    )


def as_conditionals(expr: sympy.Expr) -> sympy.Expr:
    """``Min(x, t)`` -> ``x < t ? x : t`` (and ``Max`` with ``>``) for hls4ml's C++ printer.

    hls4ml would print ``hls::min``, a vendor function; the conditional needs no header, and
    both branches have the one design type (inputs and constants are ``input_t`` /
    ``result_t``, the same ``ap_fixed``), so it compiles and is exact.
    """

    def conditional(node: sympy.Expr) -> sympy.Expr:
        (signal,) = [a for a in node.args if a.is_Symbol]
        (limit,) = [a for a in node.args if a.is_Number]
        test = signal < limit if isinstance(node, sympy.Min) else signal > limit
        return sympy.Piecewise((signal, test), (limit, True))

    return expr.replace(is_saturation, conditional)


def _emulated_lut(spec: dict[str, Any], fp: FixedPoint) -> Callable[[np.ndarray], np.ndarray]:
    """numpy twin of hls4ml's ``nnet::lookup_table`` on the design type ``fp`` (AP_TRN): the
    argument and the table entries are truncated onto the type, the index truncated."""
    start, end, size = spec["range_start"], spec["range_end"], spec["table_size"]
    step = (end - start) / size
    function = _NUMPY_FUNCTIONS[spec["math_func"]]

    def table(values: np.ndarray) -> np.ndarray:
        argument = round_to_type(values, fp, truncate=True)
        index = np.clip(np.floor((argument - start) / step), 0, size - 1)
        return round_to_type(function(start + index * step), fp, truncate=True)

    return table


def evaluate(
    expressions: list[sympy.Expr],
    x: np.ndarray,
    luts: dict[str, dict[str, Any]] | None = None,
    fp: FixedPoint | None = None,
) -> np.ndarray:
    """(n, n_expressions) float64 values on the rows of ``x``.

    With ``luts`` and ``fp`` the functions are evaluated as the firmware's tables are (see
    :func:`_emulated_lut`), else exactly.
    """
    symbols = [sympy.Symbol(f"x{i}", real=True) for i in range(x.shape[1])]
    columns = [np.asarray(x[:, i], dtype=np.float64) for i in range(x.shape[1])]
    modules: list[Any] = [{CONSTANT_CAST: lambda value: value}, "numpy"]
    if luts and fp is not None:
        modules.insert(0, {spec["math_func"]: _emulated_lut(spec, fp) for spec in luts.values()})
    out = np.empty((len(x), len(expressions)), dtype=np.float64)
    for i, expr in enumerate(expressions):
        out[:, i] = np.broadcast_to(sympy.lambdify(symbols, expr, modules)(*columns), len(x))
    return out


def build_project(
    expressions: list[sympy.Expr],
    n_inputs: int,
    fp: FixedPoint,
    luts: dict[str, dict[str, Any]],
    part: str,
    clock_period_ns: float,
    output_dir: Path,
) -> Any:
    """Convert with hls4ml's symbolic backend, write the project and compile the C simulation."""
    import hls4ml

    for expr in expressions:
        reason = unsupported_reason(expr)
        if reason:
            raise TriggerMLError(f"expression {expr} cannot become firmware: {reason}")
    hls_model = hls4ml.converters.convert_from_symbolic_expression(
        [as_conditionals(with_luts(expr)) for expr in expressions],
        n_symbols=n_inputs,
        lut_functions=luts or None,
        output_dir=str(output_dir),
        precision=fixed_type(fp),
        part=part,
        clock_period=clock_period_ns,
        # No vendor headers: hls4ml's stand-in hls_math.h, g++ only.
        hls_include_path="",
        hls_libs_path="",
    )
    from trigger_ml.hls.convert import compile_csim

    compile_csim(hls_model, name="g++ C simulation of the expressions")
    return hls_model


def csim_predict(hls_model: Any, x: np.ndarray) -> np.ndarray:
    """(n, n_outputs) float64 C-simulation outputs (double I/O: exact for the design type)."""
    out = hls_model.predict(np.ascontiguousarray(x, dtype=np.float64))
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)
