"""The ``da4ml`` cost of a BDT: the quantized ensemble traced with da4ml's fixed-point variables,
exactly as conifer's firmware computes it, then pipelined and costed by da4ml like every network.

* inputs: one variable per feature of the input type (``FixedVariableArray.from_kif``, as
  :func:`trigger_ml.cost.da4ml_cost.trace_program` makes them);
* a split ``x[f] <= t`` (``t`` the threshold as ``threshold_t`` holds it): ``x[f]`` and ``t`` lie on
  grids of step 2^-F_in and 2^-F_thr, so ``x[f] - t`` is a multiple of ``lsb = 2^-max(F_in, F_thr)``
  and ``x[f] <= t`` ⇔ ``x[f] - t < lsb`` ⇔ the sign of ``d = x[f] - (t + lsb)``. da4ml's
  ``d.msb_mux(left, right)`` (the sign bit of a signed variable selects) is the node; a split whose
  ``d`` cannot change sign over the input type's range is decided at trace time (no hardware);
* a leaf: the constant score code of ``score_t`` (conifer's ``ap_fixed(double)``: AP_TRN, AP_WRAP);
* per class: ``init_predict`` plus the tree outputs in a balanced adder tree, every partial sum
  cast to ``score_t`` (AP_WRAP; the fractional bits are the score type's, so no rounding) as
  conifer's ``score_t`` additions do.

The pipelined graph is checked against the emulator (:class:`QuantizedEnsemble.logits`) on
every jet it is given by da4ml's DAIS interpreter, bit for bit; otherwise no section.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trigger_ml.bdt.ensemble import LEAF, QuantizedEnsemble, fractional_bits
from trigger_ml.config import FixedPoint
from trigger_ml.cost.da4ml_cost import (
    ADDER_LEVELS_PER_NS,
    HARD_DC,
    PIPELINE_FILE,
    cast,
    da4ml_version,
    pipeline_predict,
    pipeline_section,
    save_pipeline,
)
from trigger_ml.errors import TriggerMLError
from trigger_ml.logs import stage_logger, timed

if TYPE_CHECKING:
    from da4ml.cmvm.types import CombLogic, Pipeline
    from da4ml.trace import FixedVariable, FixedVariableArray

logger = stage_logger("hls")


def program_type(fp: FixedPoint, overflow: str = "WRAP") -> dict[str, Any]:
    """``fp`` as a firmware-program type (trigger_ml.cost.da4ml_cost.cast): ap_fixed's defaults."""
    return {"k": 1, "i": fp.integer, "f": fractional_bits(fp), "rounding": "TRN", "overflow": overflow}


def _tree(
    quantized: QuantizedEnsemble, t: int, node: int, x: FixedVariableArray, lsb: float
) -> FixedVariable | float:
    """The output of tree ``t`` below ``node``: a constant (a leaf, or a subtree whose splits the
    input range decides) or nested ``msb_mux`` of the splits."""
    ens = quantized.ensemble
    if ens.feature[t, node] == LEAF:
        return float(quantized.value_codes[t, node]) * quantized.score_step
    var = x._vars[int(ens.feature[t, node])]
    d = var - (float(quantized.threshold_values[t, node]) + lsb)
    if d.high < 0:  # x <= t for every input: always left
        return _tree(quantized, t, int(ens.left[t, node]), x, lsb)
    if d.low >= 0:
        return _tree(quantized, t, int(ens.right[t, node]), x, lsb)
    left = _tree(quantized, t, int(ens.left[t, node]), x, lsb)
    right = _tree(quantized, t, int(ens.right[t, node]), x, lsb)
    if not hasattr(left, "low") and not hasattr(right, "low") and left == right:
        return left
    return d.msb_mux(left, right)


def _balanced_sum(terms: list[Any], score: dict[str, Any]) -> Any:
    """Pairwise sums, each cast to ``score_t`` (wrapping), as a balanced adder tree."""
    from da4ml.trace import FixedVariable

    while len(terms) > 1:
        paired = []
        for n in range(0, len(terms) - 1, 2):
            a, b = terms[n], terms[n + 1]
            if not isinstance(a, FixedVariable):
                a, b = b, a
            total = a + b
            paired.append(cast(total, score) if isinstance(total, FixedVariable) else total)
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


def trace_ensemble(quantized: QuantizedEnsemble) -> tuple[FixedVariableArray, FixedVariableArray]:
    """(inputs, class scores) of the firmware's computation as da4ml symbolic arrays."""
    from da4ml.trace import FixedVariable, FixedVariableArray, HWConfig

    ens = quantized.ensemble
    t_in = quantized.input_type
    n = ens.n_features
    inputs = FixedVariableArray.from_kif(
        np.full(n, 1),
        np.full(n, t_in.integer),
        np.full(n, fractional_bits(t_in)),
        hwconf=HWConfig(1, -1, -1),
        solver_options={"hard_dc": HARD_DC, "search_all_decompose_dc": True},
    )
    hwconf = inputs._vars[0].hwconf
    lsb = 2.0 ** -max(fractional_bits(t_in), fractional_bits(quantized.threshold_type))
    score = program_type(quantized.score_type)
    outputs = []
    for c in range(ens.n_classes):
        terms: list[Any] = [float(quantized.init_codes[c]) * quantized.score_step]
        terms += [_tree(quantized, t, 0, inputs, lsb) for t in np.nonzero(ens.tree_class == c)[0]]
        total = _balanced_sum(terms, score)
        if not isinstance(total, FixedVariable):
            total = FixedVariable.from_const(float(total), hwconf=hwconf)
        outputs.append(cast(total, score))
    return inputs, FixedVariableArray(np.array(outputs, dtype=object), inputs.solver_options)


def trace_and_pipeline(quantized: QuantizedEnsemble, clock_period_ns: float) -> tuple[CombLogic, Pipeline]:
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    inputs, outputs = trace_ensemble(quantized)
    comb = comb_trace(inputs, outputs)
    return comb, to_pipeline(comb, clock_period_ns * ADDER_LEVELS_PER_NS, verbose=False)


def bdt_da4ml_section(
    quantized: QuantizedEnsemble, clock_period_ns: float, part: str, x: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any], Pipeline]:
    """(cost section, summary, pipeline): da4ml's cost of the traced ensemble, checked bit for bit
    against the emulator on every jet of ``x`` (TriggerMLError otherwise: nothing stored)."""
    da4ml_version()  # one clear line if da4ml is absent, before any tracing
    timings: dict[str, float] = {}
    with timed(timings, "trace_s"):
        comb, pipeline = trace_and_pipeline(quantized, clock_period_ns)
    expected, _ = quantized.logits(x)
    with timed(timings, "emulate_s"):
        traced = pipeline_predict(pipeline, quantized.input_values(x))
    same = np.all(traced == expected, axis=1)
    if not same.all():
        raise TriggerMLError(
            f"da4ml's trace of the trees differs from the quantized trees on {int((~same).sum())} of {len(same)} jets",
            "the da4ml cost would not be of the firmware's computation; report this with the model name",
        )
    notes = [
        "da4ml's cost model of the trees traced as its fixed-point graph: each split a subtraction "
        "whose sign bit drives a multiplexer (msb_mux), leaves constants, per-class adder trees in the score type",
        "da4ml's validation (0.97-1.13x of post-route LUTs, arXiv:2508.15468) covers adder graphs of networks, "
        "not comparator/multiplexer trees: `trigger-ml rtl` (Yosys) checks those",
    ]
    checked = (
        f"the traced graph == the quantized trees (== the C simulation), bit for bit, on {len(same)} jets"
    )
    section, summary = pipeline_section(comb, pipeline, part, clock_period_ns, notes, checked)
    summary.update(n_jets_checked=int(len(same)), timings_s=timings)
    return section, summary, pipeline


def bdt_da4ml_cost(
    quantized: QuantizedEnsemble, clock_period_ns: float, part: str, x: np.ndarray, project_dir: Path
) -> dict[str, Any]:
    """The da4ml part of a BDT project's cost (the shape of da4ml_cost.da4ml_cost_of); the checked
    pipeline is written to ``project_dir / PIPELINE_FILE`` for ``trigger-ml rtl``."""
    logger.info(f"{project_dir.name}: da4ml cost of the traced trees, checked on {len(x)} jets")
    section, summary, pipeline = bdt_da4ml_section(quantized, clock_period_ns, part, x)
    save_pipeline(pipeline, project_dir / PIPELINE_FILE)
    return {
        "sources": {"da4ml": section},
        "unavailable": {},
        "da4ml": summary,
        "timings_s": {f"da4ml_{key}": value for key, value in summary["timings_s"].items()},
    }
