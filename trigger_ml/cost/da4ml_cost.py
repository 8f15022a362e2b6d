"""The ``da4ml`` cost source: da4ml's own cost model of the firmware's adder graph.

The project's firmware program (:mod:`trigger_ml.hls.program`: the converted hls4ml graph
with the types and weights the HLS tool sees) is run symbolically with da4ml's fixed-point
arithmetic:

- a Dense or pointwise Conv1D is a constant-matrix-vector product of its kernel (da4ml's
  CMVM optimiser turns it into shared shift-and-add trees, no multiplier), its bias, then
  the cast to the result type; a pointwise layer on tracks repeats the product for every
  track (fully unrolled, II 1). Where hls4ml's accumulator would round or wrap a single
  product (post-training quantized models), each product is cast on its own first;
- every cast follows its type's rounding (``TRN``, ``RND``, ``RND_CONV`` = round half to
  even, built from da4ml's truncation as ``trunc(x + 2^-(f+1) - 2^-F + b·2^-F)`` with ``b``
  the lowest kept bit) and overflow (``WRAP``, ``SAT``, ``SAT_SYM``);
- ReLU is a comparison and a cast; the average is the sum over the slots divided by a
  power of two (a shift); HGQ's quantizer casts each element to its own learned type.

The graph is cut into pipeline stages at the target clock (da4ml's convention: one adder
level per ns), the same pipeline :mod:`trigger_ml.rtl` writes as Verilog. Its cost is
da4ml's: LUTs of the adders (one LUT per adder bit), register bits between the stages as
FF, no DSP unless a variable-by-variable product remains. That figure predicted the
post-route LUTs of all 20 published JEDI-linear designs within 0.97–1.13× (arXiv:2508.15468).

The pipelined graph is also a bit-exact software model (da4ml's DAIS interpreter): no cost
is stored unless it reproduces the C simulation bit for bit on every jet it is given.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path
from trigger_ml.hls.program import cast_values, element_types, mean_shift
from trigger_ml.logs import stage_logger, timed

if TYPE_CHECKING:
    from da4ml.cmvm.types import CombLogic, Pipeline
    from da4ml.trace import FixedVariable, FixedVariableArray

logger = stage_logger("hls")  # part of the HLS stage: its lines read [hls]

# da4ml's delay model and CMVM options as hls4ml 1.3's distributed_arithmetic pass sets
# them: every adder is one delay unit whatever its width, adder trees at most 2 adders
# deeper than the minimum.
HARD_DC = 2
# Pipeline stages are cut every `clock_period_ns * ADDER_LEVELS_PER_NS` delay units: da4ml's
# own convention (its evaluation converts with --latency-cutoff equal to the period in ns).
ADDER_LEVELS_PER_NS = 1.0
# da4ml's opcode of a variable-by-variable product: the only operation a DSP could hold.
VARIABLE_PRODUCT_OPCODE = 7


def da4ml_version() -> str:
    try:
        return importlib.metadata.version("da4ml")
    except importlib.metadata.PackageNotFoundError:
        raise TriggerMLError(
            "da4ml is not installed (the da4ml cost source needs it)",
            "run `make setup`, or `pip install 'da4ml>=0.5.2,<0.6'`",
        ) from None


def cast(v: FixedVariable, t: dict[str, Any]) -> FixedVariable:
    """``v`` converted to the program type ``t`` as ``ap_fixed`` converts (round, then overflow)."""
    from da4ml.trace import FixedVariable

    k, i, f = int(t["k"]), int(t["i"]), int(t["f"])
    rounding, overflow = t["rounding"], t["overflow"]
    if v.low == v.high:  # a constant: exactly what the numeric conversion gives
        value = cast_values(np.array([float(v.low)]), t)[0]  # an array: cast_values works in place
        return FixedVariable.from_const(float(value), hwconf=v.hwconf)
    in_frac = int(v.kif[2])
    if rounding == "RND_CONV":
        if in_frac > f:
            lsb = v.quantize(0, 1 - f, f)  # the lowest kept bit, weight 2^-f
            v = v + lsb * 2.0 ** (f - in_frac) + (2.0 ** (-f - 1) - 2.0**-in_frac)
        rounding = "TRN"
    return v.quantize(k, i, f, overflow_mode=overflow, round_mode=rounding)


def cast_array(x: FixedVariableArray, t: dict[str, Any]) -> FixedVariableArray:
    from da4ml.trace import FixedVariableArray

    flat = x.ravel()
    values = [cast(flat._vars[n], t) for n in range(flat.size)]
    return FixedVariableArray(np.array(values, dtype=object).reshape(x.shape), x.solver_options)


def _constant_matmul(x: FixedVariableArray, kernel: np.ndarray) -> FixedVariableArray:
    """``x @ kernel`` as da4ml's CMVM solutions, row by row (one row per track slot). da4ml's
    own ``@`` solves the CMVM problem again for every row; rows whose inputs have the same
    intervals and latencies get the same solution, so it is solved once per kind of row and
    applied to each (the same adder graph, 16-32× faster to trace for a Deep Set)."""
    from da4ml.cmvm.api import solve
    from da4ml.trace import FixedVariableArray
    from da4ml.trace.fixed_variable import QInterval

    rows = x.reshape(-1, kernel.shape[0])
    options = {k: v for k, v in x.solver_options.items() if k != "offload_fn"}
    hwconf = rows._vars.ravel()[0].hwconf
    options.setdefault("adder_size", hwconf.adder_size)
    options.setdefault("carry_size", hwconf.carry_size)
    matrix = np.ascontiguousarray(kernel.astype(np.float32))
    solutions: dict[tuple, Any] = {}
    out = []
    for r in range(rows.shape[0]):
        row = rows._vars[r]
        key = tuple((float(v.low), float(v.high), float(v.step), float(v.latency)) for v in row)
        if key not in solutions:
            from numba.typed import List as NumbaList

            qintervals = NumbaList([QInterval(lo, hi, st) for lo, hi, st, _ in key])
            latencies = NumbaList([lat for *_, lat in key])
            solutions[key] = solve(matrix, qintervals=qintervals, latencies=latencies, **options)
        out.append(solutions[key](row))
    return FixedVariableArray(np.array(out).reshape(x.shape[:-1] + (kernel.shape[1],)), x.solver_options)


def _products_exact(x: FixedVariableArray, kernel: np.ndarray, t: dict[str, Any]) -> bool:
    """Does converting every product x_j · w_jk to type ``t`` change none of them (each
    input's own interval and grid, as da4ml knows them)?"""
    step_t, low_t, high_t = 2.0 ** -t["f"], -t["k"] * 2.0 ** t["i"], 2.0 ** t["i"] - 2.0 ** -t["f"]
    rows = x.reshape(-1, kernel.shape[0])._vars
    for j in range(kernel.shape[0]):
        weights = np.unique(kernel[j][kernel[j] != 0])
        if not weights.size:
            continue
        lows = np.array([float(v.low) for v in rows[:, j]])
        highs = np.array([float(v.high) for v in rows[:, j]])
        steps = np.array([float(v.step) for v in rows[:, j]])
        ends = np.concatenate([np.outer(lows, weights), np.outer(highs, weights)])
        if (
            ends.min() < low_t
            or ends.max() > high_t
            or np.any(np.mod(np.outer(steps, np.abs(weights)), step_t))
        ):
            return False
    return True


def _dense(step: dict[str, Any], x: FixedVariableArray) -> FixedVariableArray:
    from da4ml.trace import FixedVariableArray

    kernel = np.asarray(step["kernel"], dtype=np.float64)
    if step["product_type"] is None or _products_exact(x, kernel, step["product_type"]):
        y = _constant_matmul(x, kernel)  # da4ml's CMVM: shared shift-and-add trees
    else:  # each product converted on its own (hls4ml's accumulator rounds it), then summed
        rows = x.reshape(-1, kernel.shape[0])
        out = np.empty((rows.shape[0], kernel.shape[1]), dtype=object)
        for r in range(rows.shape[0]):
            for c in range(kernel.shape[1]):
                terms = [
                    cast(rows._vars[r, j] * float(kernel[j, c]), step["product_type"])
                    for j in range(kernel.shape[0])
                    if kernel[j, c] != 0
                ]
                out[r, c] = sum(terms[1:], terms[0]) if terms else 0.0
        y = FixedVariableArray(out.reshape(x.shape[:-1] + (kernel.shape[1],)), x.solver_options)
    if step["bias"] is not None:
        y = y + np.asarray(step["bias"], dtype=np.float64)
    if step["sum_type"] is not None:
        y = cast_array(y, step["sum_type"])
    return cast_array(y, step["result_type"])


def _quantize_each(step: dict[str, Any], x: FixedVariableArray) -> FixedVariableArray:
    """HGQ's heterogeneous quantizer: every element to its own ``ap_fixed<b, i>``."""
    from da4ml.trace import FixedVariable, FixedVariableArray

    t, alive = element_types(step)
    k, i, f, alive = t["k"].ravel(), t["i"].ravel(), t["f"].ravel(), alive.ravel()
    flat = x.ravel()
    values = []
    for n in range(flat.size):
        v = flat._vars[n]
        if not alive[n]:
            values.append(FixedVariable.from_const(0.0, hwconf=v.hwconf))
        else:
            values.append(cast(v, {**t, "k": int(k[n]), "i": int(i[n]), "f": int(f[n])}))
    y = FixedVariableArray(np.array(values, dtype=object).reshape(x.shape), x.solver_options)
    return cast_array(y, step["result_type"])


def trace_program(steps: list[dict[str, Any]]) -> tuple[FixedVariableArray, FixedVariableArray]:
    """(inputs, outputs) of a firmware program (:mod:`trigger_ml.hls.program`) as da4ml
    symbolic arrays (one jet, no batch axis)."""
    inputs, boundaries = trace_program_steps(steps)
    return inputs, boundaries[-1][2]


def trace_program_steps(
    steps: list[dict[str, Any]],
) -> tuple[FixedVariableArray, list[tuple[str, str, FixedVariableArray]]]:
    """(inputs, [(step name, op, values after the step)]) of a firmware program, traced once:
    the boundaries the per-layer cost is read at."""
    from da4ml.trace import FixedVariableArray, HWConfig

    first = steps[0]
    shape, t = tuple(first["shape"]), first["type"]
    inputs = FixedVariableArray.from_kif(
        np.full(shape, t["k"]),
        np.full(shape, t["i"]),
        np.full(shape, t["f"]),
        hwconf=HWConfig(1, -1, -1),
        solver_options={"hard_dc": HARD_DC, "search_all_decompose_dc": True},
    )
    x = inputs
    boundaries: list[tuple[str, str, FixedVariableArray]] = []
    for step in steps[1:]:
        op = step["op"]
        if op == "dense":
            x = _dense(step, x)
        elif op == "relu":
            x = cast_array(x.relu(), step["result_type"])
        elif op == "linear":
            x = cast_array(x, step["result_type"])
        elif op == "mean":
            total = cast_array(np.sum(x, axis=0), step["sum_type"])
            mean = cast_array(total * 2.0 ** -mean_shift(step["slots"]), step["sum_type"])
            x = cast_array(mean, step["result_type"])
        elif op == "quantize_each":
            x = _quantize_each(step, x)
        elif op == "reshape":
            x = cast_array(x.reshape(tuple(step["shape"])), step["result_type"])
        else:
            raise TriggerMLError(f"unknown firmware program step '{op}'", "rerun `trigger-ml hls --force`")
        boundaries.append((str(step.get("name", op)), op, x))
    return inputs, boundaries


STEP_CLASSES = {
    "dense": "Dense",
    "relu": "ReLU",
    "linear": "Linear",
    "mean": "Mean",
    "quantize_each": "Quantizer",
}


def per_layer_costs(
    inputs: FixedVariableArray,
    boundaries: list[tuple[str, str, FixedVariableArray]],
    clock_period_ns: float,
) -> list[dict[str, Any]]:
    """Each step's share of the da4ml cost: the graph up to a step's output is traced and
    pipelined, and a step gets what it adds to the graph before it (LUT, pipeline stages), so
    the shares add up to the whole design's figures. Register bits are not shared out (0 per
    step): where the pipeline is cut moves with the graph behind it, so a prefix's register
    count can fall when a step is added. Reshapes, which cost nothing, are left out."""
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    rows: list[dict[str, Any]] = []
    before = {"LUT": 0, "stages": 0}
    for name, op, x in boundaries:
        if op == "reshape":
            continue
        comb = comb_trace(inputs, x)
        pipeline = to_pipeline(comb, clock_period_ns * ADDER_LEVELS_PER_NS, verbose=False)
        now = {"LUT": int(round(comb.cost)), "stages": len(pipeline.solutions)}
        rows.append(
            {
                "name": name,
                "class": STEP_CLASSES.get(op, op),
                "latency_cycles": now["stages"] - before["stages"],
                "initiation_interval": 1,
                "LUT": now["LUT"] - before["LUT"],
                "FF": 0,
                "DSP": 0,
                "BRAM_18K": 0,
                "notes": [
                    "LUT and stages: the graph up to this step minus the graph before it; "
                    "register bits not shared out per step (see the section's total)"
                ],
            }
        )
        before = now
    return rows


def pipeline_predict(pipeline: Pipeline, inputs: np.ndarray) -> np.ndarray:
    """Bit-exact software model of the pipelined graph: da4ml's DAIS interpreter (integer
    arithmetic), stage by stage."""
    values = np.ascontiguousarray(inputs.reshape(len(inputs), -1), dtype=np.float64)
    for stage in pipeline.solutions:
        values = stage.predict(values, n_threads=1).reshape(len(inputs), -1)
    return values


def trace_and_pipeline(
    steps: list[dict[str, Any]], clock_period_ns: float, per_layer: list[dict[str, Any]] | None = None
) -> tuple[CombLogic, Pipeline]:
    """The combinational graph of a firmware program and its pipeline at ``clock_period_ns``;
    with a ``per_layer`` list, each step's share of the cost is appended to it."""
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    inputs, boundaries = trace_program_steps(steps)
    comb = comb_trace(inputs, boundaries[-1][2])
    if comb.lookup_tables:
        raise TriggerMLError("the traced graph uses lookup tables", "no da4ml cost for this model")
    if per_layer is not None:
        per_layer += per_layer_costs(inputs, boundaries, clock_period_ns)
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


def pipeline_section(
    comb: CombLogic, pipeline: Pipeline, part: str, clock_period_ns: float, notes: list[str], checked: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cost section, summary) of a traced and pipelined graph: da4ml's LUTs, the register bits
    between stages as FF, variable-by-variable products as DSP, one cycle per stage plus the
    registered inputs; ``notes`` say what was traced, ``checked`` against what it was checked."""
    version = da4ml_version()
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
            *notes,
            f"{stages} pipeline stages cut every {clock_period_ns * ADDER_LEVELS_PER_NS:g} adder levels "
            f"(da4ml's convention: the clock period in ns), inputs and outputs registered: {latency} cycles",
            checked,
        ],
    )
    summary = {
        "da4ml_version": version,
        "pipeline_stages": stages,
        "luts": luts,
        "register_bits": int(pipeline.reg_bits),
        "multipliers": int(multipliers),
    }
    return section, summary


def da4ml_section(
    steps: list[dict[str, Any]], clock_period_ns: float, part: str, x: np.ndarray, expected: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any], Pipeline]:
    """(cost section, summary, pipeline) of a firmware program by da4ml's cost model.

    ``x`` are quantized inputs and ``expected`` the C simulation's outputs on them: the
    pipelined graph must reproduce them bit for bit, else TriggerMLError (nothing stored).
    """
    da4ml_version()  # one clear line if da4ml is absent, before any tracing
    timings: dict[str, float] = {}
    per_layer: list[dict[str, Any]] = []
    with timed(timings, "trace_s"):
        comb, pipeline = trace_and_pipeline(steps, clock_period_ns, per_layer)
    with timed(timings, "emulate_s"):
        emulated = pipeline_predict(pipeline, x)
    same = np.all(emulated == np.asarray(expected, dtype=np.float64).reshape(len(x), -1), axis=1)
    if not same.all():
        raise TriggerMLError(
            f"da4ml's trace of the firmware differs from the C simulation on {int((~same).sum())} of "
            f"{len(same)} jets",
            "the da4ml cost would not be of the firmware's computation; report this with the model name",
        )
    notes = [
        "da4ml's cost model of the firmware's adder graph (one LUT per adder bit, register bits as FF); "
        "validated against post-route Vivado on 20 published designs within 0.97-1.13x (arXiv:2508.15468)"
    ]
    section, summary = pipeline_section(
        comb,
        pipeline,
        part,
        clock_period_ns,
        notes,
        f"the traced graph == C simulation, bit for bit, on {len(same)} jets",
    )
    section["per_layer"] = per_layer
    summary.update(n_jets_checked=int(len(same)), timings_s=timings)
    return section, summary, pipeline


MAX_TRACED_PRODUCTS = 40_000
"""Non-zero constant products (kernel entries × the rows they are applied to) above which the
da4ml trace is not run: tracing time grows faster than linearly with them (the former 8-bit
Φ 32-32 dips-small, 20 000 products: 319 s; dips-medium, 150 000: unfinished after 10 min).
Such a model's report says so under ``cost.unavailable.da4ml``."""


def traced_products(steps: list[dict[str, Any]]) -> int:
    """Non-zero constant products of a firmware program (each Dense kernel entry times the
    rows, e.g. track slots, it is applied to)."""
    total, shape = 0, tuple(steps[0]["shape"])
    for step in steps[1:]:
        if step["op"] == "dense":
            kernel = np.asarray(step["kernel"])
            total += int(np.count_nonzero(kernel)) * int(np.prod(shape[:-1], dtype=np.int64))
            shape = shape[:-1] + (kernel.shape[1],)
        elif step["op"] == "mean":
            shape = shape[1:]
        elif step["op"] == "reshape":
            shape = tuple(step["shape"])
    return total


def da4ml_cost_of(
    steps: list[dict[str, Any]] | None,
    config: ModelConfig,
    x: np.ndarray,
    logits_csim: np.ndarray,
    project_dir: Path,
) -> dict[str, Any]:
    """The cost dict of a freshly converted project with its da4ml section, or the reason why
    there is none under ``unavailable`` (the C simulation's outputs on ``x`` are the check).
    ``steps`` is the project's firmware program (None if it has none: ``unavailable`` then
    says why). The checked pipeline is written to ``project_dir / PIPELINE_FILE``::

        {"sources": {"da4ml": section} | {}, "unavailable": {"da4ml": reason} | {},
         "da4ml": summary | None, "timings_s": {...}}
    """
    h = config.hls
    reason = config.why_not_fully_unrolled()
    if reason is None and steps is None:
        reason = "the converted graph has no exact firmware program (see fidelity.emulator)"
    if reason is None and (products := traced_products(steps)) > MAX_TRACED_PRODUCTS:
        reason = (
            f"{products} constant products: beyond the da4ml trace budget of {MAX_TRACED_PRODUCTS} "
            "(its time grows faster than linearly; lower the bits, prune, or narrow the network)"
        )
    result: dict[str, Any] = {"sources": {}, "unavailable": {}, "da4ml": None, "timings_s": {}}
    if reason is None:
        logger.info(f"{config.name}: da4ml cost of the adder graph, checked on {len(x)} jets")
        section, summary, pipeline = da4ml_section(steps, h.clock_period_ns, h.part, x, logits_csim)
        save_pipeline(pipeline, project_dir / PIPELINE_FILE)
        result["sources"]["da4ml"] = section
        result["da4ml"] = summary
        result["timings_s"] = {f"da4ml_{key}": value for key, value in summary["timings_s"].items()}
    if reason is not None:
        result["unavailable"]["da4ml"] = reason
        logger.info(f"{config.name}: no da4ml cost: {reason}")
    return result
