"""Hardware-aware candidates: short sums of simple terms with few-bit constants.

The backends search expression trees by their error on the target; what a one-clock-cycle
firmware affords is narrower: a sum of a few terms, each an input, an input saturated at a
constant (``Min(x, t)`` / ``Max(x, t)``: a comparator and a multiplexer) or a product of two
inputs, each times a constant that is a shift or one shift-and-add. This generator builds
such expressions directly:

1. **terms**: every offered input ``x_j``; ``Min(x_j, t)`` and ``Max(x_j, t)`` with ``t`` at
   quantiles of ``x_j`` on the training subsample (rounded onto the design type); squares
   and pairwise products of the inputs most correlated with the target (when ``*`` is an
   offered operator);
2. **forward selection**: starting from the constant, add the term whose least-squares fit
   (on the training subsample, target the teacher's output) gives the best validation score
   (``selection_metric``: AUC, or light rejection at 70 % / 77 % b-efficiency), until
   ``max_terms`` or the gain is below ``min_auc_gain`` (a rejection: below
   ``min_rejection_gain`` times the current value); each prefix is a candidate;
3. **constants**: each candidate's coefficients are snapped one at a time (largest
   contribution first) to the nearest value whose mantissa on the design type has at most
   ``constant_set_bits`` set bits, the remaining free coefficients refitted by least squares
   after each snap; the offset is rounded onto the grid (an addition costs the same for any
   constant). The score does not change with a positive scale of the expression, but the
   snapped constants do, so the fit is repeated for a few scales of the target (``SCALES``)
   and the best validation score kept.

The constants are already on the design grid, so the deployed expression (``snap_constants``)
is the same expression: firmware, C simulation and cost model all see these constants.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import sympy

from trigger_ml.config import FixedPoint
from trigger_ml.data.dataset import fixed_point_grid
from trigger_ml.symbolic.backends import Candidate, feature_symbols
from trigger_ml.symbolic.firmware import evaluate, round_to_type
from trigger_ml.symbolic.metrics import selection_score
from trigger_ml.symbolic.settings import SymbolicConfig

SOURCE = "sums (forward selection, few-bit constants)"
SCALES = tuple(2.0 ** (i / 8) for i in (0, -1, 1, -2, 2, -3, 3, -4))
"""Scales of the target tried when snapping constants (1 first: ties keep it)."""


def fast_auc(score: np.ndarray, classes: np.ndarray) -> float:
    """AUC of b vs light jets, as ``discriminant_metrics`` measures it (scikit-learn)."""
    return selection_score(score, classes, "auc")


# --- constants ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _few_bit_mantissas(bits: int, set_bits: int) -> np.ndarray:
    """Sorted non-negative mantissas below 2^(bits-1) with at most ``set_bits`` bits set."""
    positions = range(bits - 1)
    values = {0}
    for k in range(1, set_bits + 1):
        values.update(sum(1 << p for p in combo) for combo in itertools.combinations(positions, k))
    return np.array(sorted(values), dtype=np.int64)


def set_bits(value: float, fp: FixedPoint) -> int:
    """Set bits of the magnitude of ``value``'s mantissa on the grid of ``fp``."""
    step = fixed_point_grid(fp)[0]
    return bin(abs(int(round(value / step)))).count("1")


def few_bit_value(value: float, fp: FixedPoint, max_set_bits: int | None) -> float:
    """The value nearest ``value`` on the grid of ``fp`` whose mantissa magnitude has at most
    ``max_set_bits`` set bits (None: any grid value); saturated onto the type; ties go to
    the smaller magnitude."""
    if max_set_bits is None:
        return float(round_to_type(np.array([value]), fp)[0])
    step = fixed_point_grid(fp)[0]
    table = _few_bit_mantissas(fp.bits, max_set_bits)
    target = abs(value) / step
    i = int(np.searchsorted(table, target))
    below, above = table[max(i - 1, 0)], table[min(i, len(table) - 1)]
    mantissa = above if abs(above - target) < abs(target - below) else below
    return float(np.sign(value) * mantissa * step)


def _lstsq(columns: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    design = np.column_stack([columns, np.ones(len(y))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    return solution[:-1], float(solution[-1])


def snap_and_refit(
    columns: np.ndarray, y: np.ndarray, fp: FixedPoint, max_set_bits: int | None
) -> tuple[np.ndarray, float]:
    """Coefficients (few set bits) and offset (on the grid) of ``y ~ columns @ c + b``.

    One coefficient at a time, the largest contribution (|c_j| times the spread of column j)
    first, is snapped; the others and the offset are refitted with it fixed.
    """
    k = columns.shape[1]
    coef, fixed = np.zeros(k), np.zeros(k, dtype=bool)
    spread = columns.std(axis=0)
    for _ in range(k):
        free = np.flatnonzero(~fixed)
        w, _ = _lstsq(columns[:, free], y - columns[:, fixed] @ coef[fixed])
        j = free[int(np.argmax(np.abs(w) * spread[free]))]
        coef[j] = few_bit_value(float(w[list(free).index(j)]), fp, max_set_bits)
        fixed[j] = True
    offset = float(round_to_type(np.array([np.mean(y - columns @ coef)]), fp)[0])
    return coef, offset


def constant(value: float) -> sympy.Number:
    """The sympy constant ``snap_constants`` writes for a grid value (so snapping is the identity)."""
    return sympy.Integer(int(value)) if value == int(value) else sympy.Float(value, 17)


# --- terms --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One term: ``kind`` in linear, min, max, product; inputs ``i`` (and ``j``); threshold ``t``."""

    kind: str
    i: int
    j: int = -1
    t: float = 0.0

    def values(self, x: np.ndarray) -> np.ndarray:
        column = x[:, self.i]
        if self.kind == "min":
            return np.minimum(column, self.t)
        if self.kind == "max":
            return np.maximum(column, self.t)
        if self.kind == "product":
            return column * x[:, self.j]
        return column

    def expression(self, symbols: list[sympy.Symbol]) -> sympy.Expr:
        s = symbols[self.i]
        if self.kind == "min":
            return sympy.Min(s, constant(self.t))
        if self.kind == "max":
            return sympy.Max(s, constant(self.t))
        if self.kind == "product":
            return s * symbols[self.j]
        return s


def term_library(
    x: np.ndarray, columns: list[int], product_columns: list[int], settings: SymbolicConfig
) -> list[Term]:
    """The terms offered (distinct, non-constant on ``x``), in a fixed order."""
    sums, fp = settings.sums, settings.precision
    terms: list[Term] = []
    for i in columns:
        column = x[:, i]
        if np.ptp(column) == 0:
            continue
        terms.append(Term("linear", i))
        for kind, quantiles in (("min", sums.upper_quantiles), ("max", sums.lower_quantiles)):
            limits = round_to_type(np.quantile(column, quantiles), fp) if quantiles else []
            for t in sorted(set(float(v) for v in limits)):
                terms.append(Term(kind, i, t=t))
    if "*" in settings.binary_operators:
        terms += [
            Term("product", i, j) for i, j in itertools.combinations_with_replacement(product_columns, 2)
        ]
    return distinct_terms(terms, x)


def distinct_terms(terms: list[Term], x: np.ndarray) -> list[Term]:
    """The terms that vary on ``x``, the first of any with identical values on it."""
    unique: dict[bytes, Term] = {}
    for term in terms:
        values = term.values(x)
        if np.ptp(values) > 0:
            unique.setdefault(values.tobytes(), term)
    return list(unique.values())


def best_scaled_fit(
    f_fit: np.ndarray, y: np.ndarray, f_val: np.ndarray, classes_val: np.ndarray, settings: SymbolicConfig
) -> tuple[np.ndarray, float] | None:
    """Few-bit coefficients and offset of ``y ~ f_fit`` (:func:`snap_and_refit`) at the scale of
    the target in ``SCALES`` with the best validation ``selection_metric``; None when every
    scale gives zero coefficients or leaves half the result type's range on the fit jets."""
    fp = settings.precision
    limit = fixed_point_grid(fp)[2] / 2  # stay well inside the result type on the fit jets
    best: tuple[float, np.ndarray, float] | None = None
    for scale in SCALES:
        coef, offset = snap_and_refit(f_fit, scale * y, fp, settings.sums.constant_set_bits)
        if not np.any(coef) or np.max(np.abs(f_fit @ coef + offset)) > limit:
            continue
        score = selection_score(f_val @ coef, classes_val, settings.selection_metric)
        if best is None or score > best[0]:
            best = (score, coef, offset)
    return None if best is None else (best[1], best[2])


# --- the generator ------------------------------------------------------------------------


def forward_selection(
    f_fit: np.ndarray,
    y: np.ndarray,
    f_val: np.ndarray,
    classes_val: np.ndarray,
    max_terms: int,
    min_gain: float,
    metric: str = "auc",
) -> list[list[int]]:
    """Prefixes of the greedy term sequence (least squares on fit, ``metric`` on validation:
    ``selection_score``). Stops when the best score gains less than ``min_gain``: an
    absolute gain for the AUC, a fraction of the current value for a rejection."""
    design = np.column_stack([f_fit, np.ones(len(y))])
    gram, moment = design.T @ design, design.T @ y
    bias = f_fit.shape[1]
    selected: list[int] = []
    prefixes: list[list[int]] = []
    previous = -np.inf
    for _ in range(max_terms):
        best: tuple[float, int] | None = None
        for t in range(f_fit.shape[1]):
            if t in selected:
                continue
            index = [*selected, t, bias]
            try:
                w = np.linalg.solve(gram[np.ix_(index, index)], moment[index])
            except np.linalg.LinAlgError:
                continue
            score = selection_score(f_val[:, index[:-1]] @ w[:-1], classes_val, metric)
            if best is None or score > best[0]:
                best = (score, t)
        needed = previous + min_gain if metric == "auc" else previous * (1 + min_gain)
        if best is None or best[0] < needed:
            break
        selected.append(best[1])
        previous = best[0]
        prefixes.append(list(selected))
    return prefixes


def sum_candidates(
    x_fit: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    classes_val: np.ndarray,
    columns: list[int],
    product_columns: list[int],
    settings: SymbolicConfig,
) -> list[Candidate]:
    """One candidate per prefix of the forward selection, constants snapped (module doc)."""
    sums = settings.sums
    terms = term_library(x_fit, columns, product_columns, settings)
    if not terms:
        return []
    f_fit = np.column_stack([t.values(x_fit) for t in terms])
    f_val = np.column_stack([t.values(x_val) for t in terms])
    symbols = feature_symbols(x_fit.shape[1])
    metric = settings.selection_metric
    min_gain = sums.min_auc_gain if metric == "auc" else sums.min_rejection_gain
    out = []
    for prefix in forward_selection(f_fit, y, f_val, classes_val, sums.max_terms, min_gain, metric):
        best = best_scaled_fit(f_fit[:, prefix], y, f_val[:, prefix], classes_val, settings)
        if best is None:
            continue
        coef, offset = best
        expr = sympy.Add(
            *[
                constant(float(c)) * terms[t].expression(symbols)
                for t, c in zip(prefix, coef, strict=True)
                if c
            ],
            constant(offset),
        )
        loss = float(np.mean((f_fit[:, prefix] @ coef + offset - y) ** 2))
        out.append(Candidate(expr, loss, len(prefix), SOURCE))
    return out


# --- post-processing of the backend's expressions -----------------------------------------

SNAPPED_SUFFIX = ", constants snapped to few bits"


def _snap_inner(expr: sympy.Expr, fp: FixedPoint, max_set_bits: int | None) -> sympy.Expr:
    """Every constant (not integer exponents) to its nearest few-bit value, without refit."""
    if expr.is_Number:
        return constant(few_bit_value(float(expr), fp, max_set_bits))
    if expr.is_Pow:
        return sympy.Pow(_snap_inner(expr.base, fp, max_set_bits), expr.exp)
    if not expr.args:
        return expr
    return expr.func(*[_snap_inner(arg, fp, max_set_bits) for arg in expr.args])


def snapped_candidates(
    found: list[Candidate],
    x_fit: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    classes_val: np.ndarray,
    settings: SymbolicConfig,
) -> list[Candidate]:
    """The backend's expressions with hardware-friendly constants: each a sum of terms
    ``c_k * m_k(x)`` (sympy's top-level terms); constants inside ``m_k`` go to their nearest
    few-bit value, then the ``c_k`` and the offset are refitted and snapped as in
    :func:`snap_and_refit` (best validation ``selection_metric`` over ``SCALES``)."""
    fp, bits = settings.precision, settings.sums.constant_set_bits
    out = []
    for candidate in found:
        parts = [term.as_coeff_Mul()[1] for term in sympy.Add.make_args(candidate.expression)]
        monomials = [_snap_inner(m, fp, bits) for m in parts if not m.is_Number]
        if not monomials:
            continue
        f_fit, f_val = evaluate(monomials, x_fit), evaluate(monomials, x_val)
        if not (np.all(np.isfinite(f_fit)) and np.all(np.isfinite(f_val))) or np.any(
            np.ptp(f_fit, axis=0) == 0
        ):
            continue
        best = best_scaled_fit(f_fit, y, f_val, classes_val, settings)
        if best is None:
            continue
        coef, offset = best
        expr = sympy.Add(
            *[constant(float(c)) * m for m, c in zip(monomials, coef, strict=True) if c], constant(offset)
        )
        loss = float(np.mean((f_fit @ coef + offset - y) ** 2))
        out.append(Candidate(expr, loss, candidate.backend_complexity, candidate.source + SNAPPED_SUFFIX))
    return out
