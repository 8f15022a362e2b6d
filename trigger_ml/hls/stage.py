"""The HLS stage: from a trained run to ``hls_projects/<model>/`` with its report.

The project directory is built under a temporary name and renamed into place only when
the conversion, the C simulation, the fidelity checks and the report all succeeded::

    hls_projects/<model>/
        hls4ml_prj/            the hls4ml project (firmware/, build_prj.tcl, ...)
        csim_predictions.h5    test-split logits of float, QKeras and C simulation
        evaluation_predictions.h5   logits on the whole evaluation sample (trigger_ml.evaluation)
        ftag_predictions.h5    test-split probabilities in the FTAG ``jets`` layout (trigger_ml.ftag)
        ftag_evaluation.h5     the same on the evaluation sample
        report.json            machine-readable report (see trigger_ml.report)
        report.md              the same for people
        *.png                  plots on the evaluation sample (trigger_ml.plots.project)
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml import ftag
from trigger_ml.artefacts import FORMAT_VERSION, read_report
from trigger_ml.config import ModelConfig
from trigger_ml.cost import estimate_cost
from trigger_ml.cost.da4ml_cost import da4ml_cost_of
from trigger_ml.cost.sections import best_cost
from trigger_ml.data.dataset import model_inputs, prepare, read_sample
from trigger_ml.errors import UsageError
from trigger_ml.evaluation import FIRMWARE, evaluate_firmware, firmware_record
from trigger_ml.fileio import sha256_of_file, write_json_atomic
from trigger_ml.hls.convert import compile_csim, convert, fixed_type, layer_types, make_relocatable
from trigger_ml.hls.emulator import check_program
from trigger_ml.hls.fidelity import (
    blame_first_divergence,
    csim_predict,
    exact_match,
    permutation_invariance,
)
from trigger_ml.hls.program import PROGRAM_FILE, program_document
from trigger_ml.kinds import kind_of
from trigger_ml.logs import stage_logger, timed
from trigger_ml.physics import tagging_metrics
from trigger_ml.report import report_header, write_report
from trigger_ml.runner import Need, Stage
from trigger_ml.training import TrainedRun
from trigger_ml.workspace import Workspace

PROJECT_SUBDIR = "hls4ml_prj"

logger = stage_logger("hls")


REPORT_FORMAT = FORMAT_VERSION
"""Version of what a project's report holds (``format_version``, trigger_ml.artefacts); a
project written by an older version is rebuilt once."""


def _output_diff_summary(diff: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    summary = {}
    for i, name in enumerate(classes):
        column = diff[:, i]
        summary[name] = {
            "mean": float(column.mean()),
            "std": float(column.std()),
            "p01": float(np.percentile(column, 1)),
            "p50": float(np.percentile(column, 50)),
            "p99": float(np.percentile(column, 99)),
            "max_abs": float(np.abs(column).max()),
        }
    return summary


class HLSStage(Stage[dict[str, Any]]):
    """``hls``: ``hls_projects/<model>/`` from the trained run, its sample and the evaluation
    sample; the artefact is report.json's content."""

    name = "hls"
    version = REPORT_FORMAT
    requires = ("train", "data", "evaluation-data")
    # `trigger-ml rtl` and `trigger-ml cost` add cost sections to a finished project; a vendor
    # C synthesis of a Vitis-backend project rewrites its options file.
    mutable_outputs = ("report.json", "report.md", "hls4ml_prj/build_opt.tcl")

    def needs(self, subject: ModelConfig) -> dict[str, Need]:
        if not subject.hls.enabled:
            raise UsageError(
                f"{subject.name} is a physics-only reference (hls.enabled: false): it has no firmware",
                f"use `trigger-ml train {subject.name}`",
            )
        return super().needs(subject)

    def output_dir(self, subject: ModelConfig, ws: Workspace) -> Path:
        return ws.hls_dir(subject.name)

    def key(self, subject: ModelConfig, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "config_sha256": subject.digest(),
            "training_sha256": subject.training_digest(),
            "data_sha256": inputs["data"].sha256,
            "evaluation_sha256": inputs["evaluation-data"].sha256,
        }

    def run(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> None:
        kind = kind_of(subject)
        kind.write_project(subject, inputs["train"], inputs["data"].path, out, inputs["evaluation-data"].path)

    def load(self, subject: ModelConfig, inputs: Mapping[str, Any], out: Path) -> dict[str, Any]:
        return read_report(out).as_json()


def build_hls_project(
    config: ModelConfig,
    run: TrainedRun,
    data_path: Path,
    out: Path,
    evaluation_path: Path,
) -> None:
    """Convert, compile, simulate and check the model of ``run``, evaluate its firmware on the
    evaluation sample at ``evaluation_path``, and write the project into the directory ``out``."""
    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        sample = read_sample(data_path)
        data = prepare(sample, config, scaling=run.scaling, jet_scaling=run.jet_scaling)
        # The firmware must reproduce the model kind's reference: the quantization-aware model,
        # or the float model for post-training quantization (trigger_ml.kinds).
        model_kind = kind_of(config)
        reference = model_kind.reference(config)
        x_test = model_inputs(data.inputs["test"], config)
        classes = data.classes["test"]
        valid = sample.tracks["valid"][data.indices["test"], : config.inputs.max_tracks].astype(bool)
        model = run.load_model(config, reference)
        logits_reference = model.predict(x_test, batch_size=4096, verbose=0).astype(np.float64)
        stored = run.test_predictions()

    logger.info(f"{config.name}: converting with hls4ml ({config.hls.backend}, {config.hls.io_type})")
    with timed(timings, "convert_s"):
        hls_model = convert(model, config, str(out / PROJECT_SUBDIR))
    logger.info(f"{config.name}: compiling the C simulation with g++")
    with timed(timings, "compile_s"):
        compile_csim(hls_model)

    logger.info(f"{config.name}: C simulation of {len(x_test)} test jets")
    with timed(timings, "csim_s"):
        logits_csim = csim_predict(hls_model, x_test)
    same = exact_match(logits_csim, logits_reference)
    fidelity: dict[str, Any] = {
        "reference": reference,
        "n_jets": int(len(same)),
        "csim_vs_qkeras_exact_fraction": float(same.mean()) if reference == "qkeras" else None,
        "csim_vs_reference_exact_fraction": float(same.mean()),
        "max_abs_logit_diff": float(np.abs(logits_csim - logits_reference).max()),
        "first_divergent_layer": None,
        "permutation_invariant_fraction": None,
    }
    if config.architecture.kind == "deepsets":
        with timed(timings, "permutation_s"):
            fidelity.update(
                permutation_invariance(hls_model, x_test, valid, logits_csim, seed=config.split.seed)
            )
    if not same.all():
        logger.info(f"{config.name}: {int((~same).sum())} jets differ; tracing layers")
        with timed(timings, "blame_s"):
            traced = convert(run.load_model(config, reference), config, str(out / "trace_prj"), trace=True)
            compile_csim(traced)
            fidelity["first_divergent_layer"] = blame_first_divergence(traced, model, x_test[~same])
            shutil.rmtree(out / "trace_prj", ignore_errors=True)
    make_relocatable(out / PROJECT_SUBDIR)

    f_c = config.physics.f_c
    all_logits = {
        kind: stored[f"logits_{kind}"].astype(np.float64)
        for kind in ("float", "qkeras")
        if f"logits_{kind}" in stored
    }
    all_logits[reference] = logits_reference
    all_logits["csim"] = logits_csim
    metrics = {kind: tagging_metrics(values, classes, f_c) for kind, values in all_logits.items()}
    with h5py.File(out / "csim_predictions.h5", "w") as handle:
        handle.create_dataset("test_index", data=data.indices["test"], track_times=False)
        handle.create_dataset("classes", data=classes, track_times=False)
        for kind, values in all_logits.items():
            handle.create_dataset(f"logits_{kind}", data=values, track_times=False)
    ftag_logits = {kind: all_logits[kind] for kind in ("float", "qkeras") if kind in all_logits}
    taggers = ftag.write_predictions(
        out / ftag.TEST_FILE,
        config,
        sample.jets[data.indices["test"]],
        {**ftag_logits, FIRMWARE: logits_csim},
        {"path": str(data_path), "sha256": sha256_of_file(data_path), "jets": "the test split"},
    )

    steps, fidelity["emulator"] = check_program(hls_model, np.asarray(x_test), logits_csim)
    if steps is not None:
        write_json_atomic(out / PROGRAM_FILE, program_document(steps))
    with timed(timings, "evaluation_s"):
        evaluation = evaluate_firmware(config, run, hls_model, steps, evaluation_path, out)
    cost = da4ml_cost_of(steps, config, np.asarray(x_test), logits_csim, out)
    if config.hls.strategy == "distributed_arithmetic":
        cost["unavailable"]["estimate"] = (
            "the analytic estimate models hls4ml's Latency/Resource templates; "
            "distributed-arithmetic code is costed by da4ml"
        )
    else:
        with timed(timings, "cost_estimate_s"):
            cost["sources"]["estimate"] = estimate_cost(hls_model, config.hls.clock_period_ns)
    cost["best"] = best_cost(list(cost["sources"].values()))
    timings.update(cost.pop("timings_s"))

    run_metrics = run.metrics
    output_type = str(hls_model.get_output_variables()[0].type.precision)
    report: dict[str, Any] = {
        **report_header(
            config,
            run.path,
            data_path,
            data,
            "hgq" if config.quantization.is_hgq else ("qkeras" if config.quantization.enabled else None),
        ),
        "record": firmware_record(
            model_kind.label(config),
            model_kind.name,
            run_metrics["n_params"][reference],
            evaluation,
            fidelity["csim_vs_reference_exact_fraction"],
            reference,
        ),
        "n_params": run_metrics["n_params"],
        "evaluation": evaluation,
        "metrics": metrics,
        "fidelity": fidelity,
        "output_diff_csim_minus_float": (
            _output_diff_summary(logits_csim - all_logits["float"], config.architecture.classes)
            if "float" in all_logits
            else None
        ),
        "hls": {
            "backend": config.hls.backend,
            "part": config.hls.part,
            "clock_period_ns": config.hls.clock_period_ns,
            "io_type": config.hls.io_type,
            "strategy": config.hls.strategy,
            "reuse_factor": config.hls.reuse_factor,
            "project": PROJECT_SUBDIR,
            "input_type": fixed_type(config.quantization.input),
            "output_type": output_type,
            "layers": layer_types(hls_model),
        },
        # Latency and resources; `trigger-ml cost` adds vendor figures read from the project.
        "cost": cost,
        "ftag": {
            "taggers": taggers,
            "files": {"test split": ftag.TEST_FILE, "evaluation": ftag.EVALUATION_FILE},
        },
        "timings_s": {"train": run_metrics["timings_s"], "hls": timings},
    }
    write_report(out, report, config)
