"""The ``hls`` stage of a BDT: ``hls_projects/<model>/`` from the run's trees::

    conifer_prj/            conifer's Xilinx HLS project (firmware/, build_hls.tcl, ...)
    tree_csim/              the g++ C simulation of the trees (compiled once; trigger_ml.bdt.csim)
    csim_predictions.h5     test-split logits of the float trees, the emulator and the C simulation
    evaluation_predictions.h5, ftag_*.h5, report.json, report.md, *.png   as for every project

Fidelity: the C simulation against the quantized trees' emulator (bit for bit, every test jet
and every evaluation jet), conifer's HLS code itself against both on the test jets when the
ensemble is small (``csim.HLS_CSIM_MAX_TREES``), and where the firmware departs from the float
trees (threshold and score quantization): on how many jets a path changes and by how much.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml import ftag
from trigger_ml.bdt import csim
from trigger_ml.bdt.cost import bdt_cost
from trigger_ml.bdt.ensemble import LEAF, QuantizedEnsemble, hls_type
from trigger_ml.bdt.trace import bdt_da4ml_cost
from trigger_ml.bdt.train import FLOAT_TREES, QUANTIZED_TREES, load_trees, quantized_ensemble
from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import best_cost
from trigger_ml.data.dataset import model_inputs, prepare, read_sample
from trigger_ml.errors import TriggerMLError
from trigger_ml.evaluation import (
    FIRMWARE,
    PREDICTIONS_FILE,
    firmware_record,
    load_evaluation_sample,
    physics,
    write_predictions,
)
from trigger_ml.fileio import sha256_of_file
from trigger_ml.logs import stage_logger, timed
from trigger_ml.physics import discriminant_from_logits, tagging_metrics
from trigger_ml.report import report_header, write_report

logger = stage_logger("hls")

REFERENCE = "quantized_trees"


def departures(quantized: QuantizedEnsemble, x: np.ndarray, f_c: float) -> dict[str, Any]:
    """Where the firmware departs from the float trees on the jets ``x``: jets whose path changes
    in some tree (a threshold moved by its quantization across the jet's input), the logit and
    D_b differences on them and on the rest (leaf scores rounded), the thresholds that moved."""
    ens = quantized.ensemble
    float_logits, float_leaves = ens.float_logits(x)
    fw_logits, fw_leaves = quantized.logits(x)
    path_changed = np.any(float_leaves != fw_leaves, axis=1)
    diff = np.abs(fw_logits - float_logits).max(axis=1)
    d_b = np.abs(discriminant_from_logits(fw_logits, f_c) - discriminant_from_logits(float_logits, f_c))
    split = ens.feature != LEAF
    moved = split & (quantized.threshold_values != ens.threshold)
    # a moved threshold changes a decision only for an input between old and new value
    changed_trees = np.any(float_leaves != fw_leaves, axis=0)
    by_feature: dict[str, int] = {}
    for t in np.nonzero(changed_trees)[0]:
        for node in np.nonzero(moved[t])[0]:
            key = str(int(ens.feature[t, node]))
            by_feature[key] = by_feature.get(key, 0) + 1

    def stats(mask: np.ndarray) -> dict[str, float | int | None]:
        return {
            "n_jets": int(mask.sum()),
            "max_abs_logit_diff": float(diff[mask].max()) if mask.any() else None,
            "mean_abs_logit_diff": float(diff[mask].mean()) if mask.any() else None,
            "max_abs_db_diff": float(d_b[mask].max()) if mask.any() else None,
        }

    return {
        "n_jets": int(len(x)),
        "jets_with_a_changed_path": stats(path_changed),
        "jets_with_the_same_paths": stats(~path_changed),
        "thresholds_moved_by_quantization": int(moved.sum()),
        "thresholds": int(split.sum()),
        "trees_with_a_changed_path": int(changed_trees.sum()),
        "moved_thresholds_in_changed_trees_by_feature": dict(
            sorted(by_feature.items(), key=lambda kv: int(kv[0]))
        ),
        "score_step": quantized.score_step,
    }


def write_bdt_project(
    config: ModelConfig, run: Any, data_path: Path, out: Path, evaluation_path: Path
) -> None:
    """Write the conifer project, simulate and check it, evaluate it, and write the report."""
    timings: dict[str, float] = {}
    settings = config.bdt
    assert settings is not None
    with timed(timings, "prepare_s"):
        document = load_trees(run.path)
        quantized = quantized_ensemble(config, document)
        sample = read_sample(data_path)
        data = prepare(sample, config, scaling=run.scaling, jet_scaling=run.jet_scaling)
        x_test = model_inputs(data.inputs["test"], config)
        classes = data.classes["test"]
        emulated, _ = quantized.logits(x_test)
        float_logits, _ = quantized.ensemble.float_logits(x_test)
    n_classes = quantized.ensemble.n_classes
    logger.info(f"{config.name}: writing the conifer HLS project ({quantized.ensemble.n_trees} trees)")
    with timed(timings, "convert_s"):
        csim.write_conifer_project(config, document, out / csim.CONIFER_SUBDIR)
        csim.write_tree_csim(config, document, out / "tree_csim")
    logger.info(f"{config.name}: compiling the C simulation with g++")
    with timed(timings, "compile_s"):
        csim.compile_tree_csim(out / "tree_csim")
    logger.info(f"{config.name}: C simulation of {len(x_test)} test jets")
    with timed(timings, "csim_s"):
        logits_csim = csim.tree_csim_predict(out / "tree_csim", x_test, n_classes)
    same = np.all(logits_csim == emulated, axis=1)
    hls_check: dict[str, Any] = {"n_jets": 0, "hls_vs_tree_csim_exact_fraction": None, "reason": None}
    if quantized.ensemble.n_trees <= csim.HLS_CSIM_MAX_TREES:
        logger.info(f"{config.name}: compiling conifer's HLS code with g++ and simulating the test jets")
        with timed(timings, "hls_compile_s"):
            binary = csim.compile_hls_csim(out / csim.CONIFER_SUBDIR)
        with timed(timings, "hls_csim_s"):
            logits_hls = csim.run_binary(binary, x_test, n_classes)
        hls_check = {
            "n_jets": int(len(x_test)),
            "hls_vs_tree_csim_exact_fraction": float(np.all(logits_hls == logits_csim, axis=1).mean()),
            "reason": None,
        }
        binary.unlink()
    else:
        hls_check["reason"] = (
            f"{quantized.ensemble.n_trees} trees > {csim.HLS_CSIM_MAX_TREES}: g++ on conifer's unrolled HLS "
            "code grows with the trees (docs/bdt.md); the run-time C simulation is checked against it in the tests"
        )
    if not same.all():
        logger.warning(
            f"{config.name}: the C simulation differs from the quantized trees on {int((~same).sum())} jets"
        )
    fidelity = {
        "reference": REFERENCE,
        "n_jets": int(len(same)),
        "csim_vs_reference_exact_fraction": float(same.mean()),
        "max_abs_logit_diff": float(np.abs(logits_csim - emulated).max()),
        "hls_csim": hls_check,
        "score_range_fits": quantized.score_range_fits(),
        "vs_float_trees": departures(quantized, x_test, config.physics.f_c),
    }

    f_c = config.physics.f_c
    test_logits = {FLOAT_TREES: float_logits, QUANTIZED_TREES: emulated, "csim": logits_csim}
    metrics = {kind: tagging_metrics(v, classes, f_c) for kind, v in test_logits.items()}
    with h5py.File(out / "csim_predictions.h5", "w") as handle:
        handle.create_dataset("test_index", data=data.indices["test"], track_times=False)
        handle.create_dataset("classes", data=classes, track_times=False)
        for kind, values in test_logits.items():
            handle.create_dataset(f"logits_{kind}", data=values, track_times=False)
    taggers = ftag.write_predictions(
        out / ftag.TEST_FILE,
        config,
        sample.jets[data.indices["test"]],
        {FLOAT_TREES: float_logits, QUANTIZED_TREES: emulated, FIRMWARE: logits_csim},
        {"path": str(data_path), "sha256": sha256_of_file(data_path), "jets": "the test split"},
    )

    with timed(timings, "evaluation_s"):
        evaluation = evaluate(config, run, quantized, out, evaluation_path)
    estimate = bdt_cost(quantized, config.hls.clock_period_ns, config.hls.part)
    with timed(timings, "da4ml_s"):
        traced = bdt_da4ml_cost(quantized, config.hls.clock_period_ns, config.hls.part, x_test, out)
    sources = {"estimate": estimate, **traced["sources"]}
    cost = {
        "best": best_cost(list(sources.values())),
        "sources": sources,
        "unavailable": {
            "vendor": "Vivado/Vitis HLS is not installed: conifer's project has not been synthesized",
            **traced["unavailable"],
        },
        "da4ml": traced["da4ml"],
    }
    timings.update(traced["timings_s"])
    run_metrics = run.metrics
    report: dict[str, Any] = {
        **report_header(config, run.path, data_path, data, None),
        "record": firmware_record(
            "flat inputs, BDT (conifer)",
            "bdt",
            run_metrics["n_params"][QUANTIZED_TREES],
            evaluation,
            fidelity["csim_vs_reference_exact_fraction"],
            REFERENCE,
        ),
        "n_params": run_metrics["n_params"],
        "evaluation": evaluation,
        "metrics": metrics,
        "fidelity": fidelity,
        "output_diff_csim_minus_float": None,
        "hls": {
            "backend": "conifer xilinxhls",
            "part": config.hls.part,
            "clock_period_ns": config.hls.clock_period_ns,
            "io_type": config.hls.io_type,
            "project": csim.CONIFER_SUBDIR,
            "input_type": hls_type(config.quantization.input),
            "output_type": hls_type(settings.score),
            "precision": f"threshold {hls_type(settings.threshold)}, score {hls_type(settings.score)}",
        },
        "cost": cost,
        "bdt": {
            "settings": settings.model_dump(mode="json"),
            **run_metrics["bdt"],
            "conifer_version": _conifer_version(),
        },
        "ftag": {
            "taggers": taggers,
            "files": {"test split": ftag.TEST_FILE, "evaluation": ftag.EVALUATION_FILE},
        },
        "timings_s": {"train": run_metrics["timings_s"], "hls": timings},
    }
    write_report(out, report, config)


def _conifer_version() -> str:
    import conifer

    return str(conifer.__version__)


def evaluate(
    config: ModelConfig, run: Any, quantized: QuantizedEnsemble, out: Path, path: Path
) -> dict[str, Any]:
    """The ``evaluation`` section: the C simulation on every evaluation jet, checked against the
    emulator on all of them; the float trees beside it."""
    sample = load_evaluation_sample(config, run, path)
    x = sample.inputs
    logger.info(f"{config.name}: C simulation of {len(x)} evaluation jets")
    with timed() as clock:
        firmware = csim.tree_csim_predict(out / "tree_csim", x, quantized.ensemble.n_classes)
    emulated, _ = quantized.logits(x)
    same = np.all(firmware == emulated, axis=1)
    if not same.all():
        raise TriggerMLError(
            f"{config.name}: the C simulation differs from the quantized trees on {int((~same).sum())} evaluation jets",
            "report this with the model name",
        )
    logits = {
        FLOAT_TREES: quantized.ensemble.float_logits(x)[0],
        QUANTIZED_TREES: emulated,
        FIRMWARE: firmware,
    }
    section: dict[str, Any] = sample.describe(config)
    section.update(
        {
            "evaluated_by": "C simulation",
            "evaluated_by_reason": "the run-time g++ C simulation of the trees (trigger_ml.bdt.csim)",
            "csim_check": {"n_jets": int(len(x)), "emulator_vs_csim_exact_fraction": float(same.mean())},
            "firmware_jets_per_s": float(len(x) / clock.seconds) if clock.seconds > 0 else None,
            "firmware_vs_reference_exact_fraction": float(same.mean()),
            "reference": QUANTIZED_TREES,
            "metrics": {k: physics(v, sample.classes, config.physics.f_c) for k, v in logits.items()},
        }
    )
    write_predictions(out / PREDICTIONS_FILE, sample.classes, logits)
    ftag.write_predictions(
        out / ftag.EVALUATION_FILE,
        config,
        sample.jets,
        logits,
        {"path": str(sample.path), "sha256": sample.sha256, "jets": "the whole evaluation sample of record"},
    )
    return section
