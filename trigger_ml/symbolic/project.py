"""The firmware project of chosen expression(s): hls4ml symbolic project, g++ C simulation,
comparison with the expression in float and with the teacher, report.

``hls_projects/<teacher>-sr/`` has the layout of the networks' projects: ``hls4ml_prj/``
(firmware/, build_prj.tcl, ...), ``csim_predictions.h5`` (test-split discriminants of
teacher, expression, C simulation), ``report.json``, ``report.md``, ``roc.png``.
``simulate_and_compare`` and ``project_report`` serve the symbolic Deep Set
(``<teacher>-srds``) as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import sympy

from trigger_ml.artefacts import FORMAT_VERSION, WITHIN_STEP
from trigger_ml.config import FixedPoint, ModelConfig
from trigger_ml.hls.stage import PROJECT_SUBDIR
from trigger_ml.logs import stage_logger, timed
from trigger_ml.physics import discriminant_from_logits, discriminant_light_rejection_uncertainties
from trigger_ml.symbolic.cost import SYMBOLIC_COST_UNAVAILABLE, firmware_cost
from trigger_ml.symbolic.firmware import (
    CLOCK_UNCERTAINTY,
    build_project,
    count_constants,
    csim_predict,
    evaluate,
    fixed_point_step,
    fixed_type,
    lut_specs,
    snap_constants,
)
from trigger_ml.symbolic.fit import output_discriminant, readable
from trigger_ml.symbolic.inputs import DistillData, Job, teacher_test
from trigger_ml.symbolic.metrics import discriminant_metrics
from trigger_ml.symbolic.report import validation_section, write_symbolic_report

logger = stage_logger("distill")


def simulate_project(
    name: str,
    deployed: list[sympy.Expr],
    x_test: np.ndarray,
    fp: FixedPoint,
    luts: dict[str, Any],
    teacher: ModelConfig,
    out_dir: Path,
    timings: dict[str, float],
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Convert ``deployed`` with hls4ml into ``out_dir``, compile it and C-simulate ``x_test``;
    records convert_compile_s, csim_s and hostile_s in ``timings``; returns the C simulation's
    outputs and the rule on the hostile families (:func:`hostile_rows`)."""
    logger.info(f"{name}: hls4ml symbolic project, g++ C simulation of {len(x_test)} jets")
    with timed(timings, "convert_compile_s"):
        hls_model = build_project(
            deployed,
            x_test.shape[1],
            fp,
            luts,
            teacher.hls.part,
            teacher.hls.clock_period_ns,
            out_dir / PROJECT_SUBDIR,
        )
    with timed(timings, "csim_s"):
        outputs_csim = csim_predict(hls_model, x_test)
    with timed(timings, "hostile_s"):
        hostile = hostile_rows(hls_model, deployed, x_test.shape[1], fp)
    return outputs_csim, hostile


def hostile_rows(
    hls_model: Any, deployed: list[sympy.Expr], n_inputs: int, fp: FixedPoint
) -> list[dict[str, Any]]:
    """The symbolic rule (C simulation within one fixed-point step of the expression in float)
    measured on the hostile families of :mod:`trigger_ml.firmware.hostile`: the expression is
    evaluated on what the input port holds (the design type saturates), the C simulation on the
    raw values. Reported per family, not claimed: outside the training range the design type's
    saturation inside the expression departs from the float expression."""
    from trigger_ml.firmware.hostile import InputLayout, hostile_vectors, port_values
    from trigger_ml.firmware.interface import FixedType

    fixed = FixedType(True, fp.bits, fp.integer + 1, "AP_TRN", "AP_SAT")
    vectors = hostile_vectors(InputLayout(0, (), n_inputs), fixed)
    deviation = np.abs(
        csim_predict(hls_model, vectors.values) - evaluate(deployed, port_values(vectors.values, fixed))
    )
    within = np.all(deviation <= fixed_point_step(fp), axis=1)
    rows = []
    for family in dict.fromkeys(vectors.families):
        where = vectors.of_family(family)
        worst = float(deviation[where].max())
        rows.append(
            {
                "family": family,
                "n_vectors": int(where.sum()),
                "n_within_step": int(within[where].sum()),
                "max_abs_deviation": worst if np.isfinite(worst) else None,  # None: not a number
            }
        )
    return rows


def metrics_section(
    disc: dict[str, np.ndarray], teacher_metrics: dict[str, Any], classes: np.ndarray
) -> dict[str, Any]:
    """report.json ``metrics``: the teacher's, the float expression's and the C simulation's."""
    return {
        "teacher": teacher_metrics,
        "expression_float": discriminant_metrics(disc["expression_float"], classes),
        "csim": discriminant_metrics(disc["csim"], classes),
    }


def write_csim_predictions(
    out_dir: Path,
    test_index: np.ndarray,
    classes: np.ndarray,
    disc: dict[str, np.ndarray],
    logits_csim: np.ndarray | None = None,
) -> None:
    """``csim_predictions.h5``: test rows, classes, each discriminant (and the logits if any)."""
    with h5py.File(out_dir / PREDICTIONS_FILE, "w") as handle:
        handle.create_dataset("test_index", data=test_index, track_times=False)
        handle.create_dataset("classes", data=classes, track_times=False)
        for label, values in disc.items():
            handle.create_dataset(f"discriminant_{label}", data=values, track_times=False)
        if logits_csim is not None:
            handle.create_dataset("logits_csim", data=logits_csim, track_times=False)


def fidelity_section(
    outputs_csim: np.ndarray, outputs_float: np.ndarray, fp: FixedPoint, luts: dict[str, Any]
) -> dict[str, Any]:
    """report.json ``fidelity``: the C simulation against the float expression, per jet."""
    step = fixed_point_step(fp)
    deviation = np.abs(outputs_csim - outputs_float)
    return {
        "reference": "expression_float",
        "n_jets": int(len(outputs_csim)),
        "max_abs_deviation": float(deviation.max()),
        "fixed_point_step": step,
        "within_step_fraction": float(np.mean(np.all(deviation <= step, axis=1))),
        "lut_functions": luts,
    }


def hls_section(teacher: ModelConfig, fp: FixedPoint) -> dict[str, Any]:
    """report.json ``hls`` of a symbolic project (hls4ml's SymbolicExpression backend)."""
    return {
        "backend": "SymbolicExpression",
        "part": teacher.hls.part,
        "clock_period_ns": teacher.hls.clock_period_ns,
        "clock_uncertainty": CLOCK_UNCERTAINTY,
        "io_type": "io_parallel",
        "project": PROJECT_SUBDIR,
        "precision": fixed_type(fp),
    }


@dataclass(frozen=True)
class Measured:
    """What a project's C simulation of the test split measured, for its report."""

    disc: dict[str, np.ndarray]  # "teacher", "expression_float", "csim" -> discriminants
    metrics: dict[str, Any]  # report.json ``metrics``
    fidelity: dict[str, Any]  # report.json ``fidelity``
    cost: dict[str, Any]  # the estimate's cost section
    teacher_source: str  # what computed the teacher's metrics ("C simulation", "Keras model")
    n_jets: int  # test jets
    stat: dict[str, float | None]  # binomial uncertainties of the C simulation's light rejections


PREDICTIONS_FILE = "csim_predictions.h5"
RECORD_DATASET = "discriminant_csim"
"""The physics of record of a symbolic model: its C simulation's discriminant on the test split."""


def record_section(
    teacher: ModelConfig,
    result: dict[str, Any],
    symbolic: dict[str, Any],
    n_constants: int,
    measured: Measured,
) -> dict[str, Any]:
    """report.json ``record`` of a symbolic project (trigger_ml.artefacts.Record)."""
    generator = result["models"][result["chosen"]]["source"].split(" (")[0]
    if symbolic.get("structure") == "deepsets":
        generator = "Deep Set: φ_k from sums, F from " + generator
    return {
        "kind": f"symbolic ({generator}; backend {result['backend']['used']}), from {teacher.name}",
        "model_kind": "symbolic-deepsets" if symbolic.get("structure") == "deepsets" else "symbolic-flat",
        "n_params": n_constants,
        "physics": {
            "sample": "test split",
            "n_jets": measured.n_jets,
            "metrics": {**measured.metrics["csim"], **measured.stat},
            "predictions": {"path": PREDICTIONS_FILE, "dataset": RECORD_DATASET},
        },
        "fidelity": {
            "exact_fraction": measured.fidelity["within_step_fraction"],
            "rule": WITHIN_STEP,
            "reference": "expression in float",
        },
    }


def project_report(
    job: Job,
    description: str,
    result: dict[str, Any],
    symbolic: dict[str, Any],
    jets: dict[str, Any],
    n_constants: int,
    measured: Measured,
    timings: dict[str, float],
) -> dict[str, Any]:
    """report.json of a symbolic project, flat or Deep Set: around each structure's own
    ``symbolic`` entries (its expressions) and ``jets`` (the ``data`` section's counts),
    what every project reports: the fit ``result`` (expressions.json) and its choice, the
    teacher, the sample, what was ``measured``, the HLS settings and the ``timings``."""
    teacher, settings, teacher_cost = job.teacher, job.settings, job.inputs.teacher_cost
    chosen = result["models"][result["chosen"]]
    cost = measured.cost
    return {
        "format_version": FORMAT_VERSION,
        "model": job.name,
        "description": description,
        "config_sha256": job.key,
        "record": record_section(teacher, result, symbolic, n_constants, measured),
        "teacher": {
            "model": teacher.name,
            "config_sha256": teacher.digest(),
            "metrics_source": measured.teacher_source,
            "latency_cycles": result["teacher"]["latency_cycles"],
            "cost_source": teacher_cost["source"] if teacher_cost else None,
        },
        "run_dir": str(job.fit_dir),
        "data": {"path": str(job.inputs.data_path), "sha256": job.inputs.data_sha256, **jets},
        "n_params": {"expression": n_constants},
        "symbolic": {
            "backend": result["backend"],
            "output": result["output"],
            **symbolic,
            "produced_by": chosen["source"],
            "complexity": chosen["complexity"],
            "selection": result["selection"],
            "validation": validation_section(chosen, result["teacher"]),
            "front_size": len(result["front"]),
            "settings": settings.model_dump(mode="json"),
        },
        "metrics": measured.metrics,
        "fidelity": measured.fidelity,
        "hls": hls_section(teacher, settings.precision),
        "cost": {"best": cost, "sources": {"estimate": cost}, "unavailable": SYMBOLIC_COST_UNAVAILABLE},
        "timings_s": {"distill": timings},
    }


def simulate_and_compare(
    job: Job,
    out_dir: Path,
    deployed: list[sympy.Expr],
    luts: dict[str, Any],
    kind: str,
    x_test: np.ndarray,
    test_rows: np.ndarray,
    classes: np.ndarray,
    keras_logits: np.ndarray,
    timings: dict[str, float],
) -> Measured:
    """Write the hls4ml project of ``deployed`` (outputs of ``kind``: discriminant or logits)
    into ``out_dir`` and C-simulate the test split (``x_test``, rows ``test_rows`` of the
    sample); compare it with the expression in float (and with emulated ``luts``) and with
    the teacher (``teacher_test``); write csim_predictions.h5; estimate the cost."""
    teacher, fp = job.teacher, job.settings.precision
    f_c = teacher.physics.f_c
    teacher_logits, teacher_metrics, teacher_source = teacher_test(
        teacher, job.ws, job.inputs.teacher_report, test_rows, classes, keras_logits
    )
    outputs_float = evaluate(deployed, x_test)
    outputs_csim, hostile = simulate_project(job.name, deployed, x_test, fp, luts, teacher, out_dir, timings)
    fidelity = fidelity_section(outputs_csim, outputs_float, fp, luts)
    fidelity["hostile"] = hostile
    if luts:
        step = fixed_point_step(fp)
        emulated = evaluate(deployed, x_test, luts, fp)
        lut_dev = np.abs(outputs_csim - emulated)
        fidelity["max_abs_deviation_to_emulated_tables"] = float(lut_dev.max())
        fidelity["within_step_fraction_to_emulated_tables"] = float(np.mean(np.all(lut_dev <= step, axis=1)))
    disc = {
        "teacher": discriminant_from_logits(teacher_logits, f_c),
        "expression_float": output_discriminant(outputs_float, kind, f_c),
        "csim": output_discriminant(outputs_csim, kind, f_c),
    }
    metrics = metrics_section(disc, teacher_metrics, classes)
    cost = firmware_cost(deployed, job.settings, teacher.hls)
    write_csim_predictions(out_dir, test_rows, classes, disc, outputs_csim if kind == "logits" else None)
    stat = discriminant_light_rejection_uncertainties(disc["csim"], classes)
    return Measured(disc, metrics, fidelity, cost, teacher_source, int(len(classes)), stat)


def build_symbolic_project(
    job: Job,
    data: DistillData,
    result: dict[str, Any],
    chosen: list[sympy.Expr],
    timings: dict[str, float],
    out: Path,
) -> None:
    """Convert the chosen expression(s), C-simulate the test split, compare and report into ``out``."""
    kind, fp = result["output"], job.settings.precision
    deployed = [snap_constants(e, fp) for e in chosen]
    luts = lut_specs(deployed, data.x["fit"], job.settings.lut)
    classes = data.classes["test"]
    measured = simulate_and_compare(
        job,
        out,
        deployed,
        luts,
        kind,
        data.x["test"],
        data.indices["test"],
        classes,
        data.logits["test"],
        timings,
    )
    report = project_report(
        job,
        f"symbolic distillation of {job.teacher.name} ({result['output']})",
        result,
        {
            "expressions": [str(e) for e in chosen],
            "deployed": [str(e) for e in deployed],
            "readable": [readable(e, data.feature_names) for e in deployed],
        },
        {
            "jets_per_split": {k: int(len(v)) for k, v in data.x.items()},
            "n_truncated_jets": data.flat.n_truncated_jets,
        },
        sum(count_constants(e) for e in deployed),
        measured,
        timings,
    )
    write_symbolic_report(out, report, measured.disc, classes)
