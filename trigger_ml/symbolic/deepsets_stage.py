"""The symbolic Deep Set stage: the fit of ``trigger_ml.symbolic.deepsets``, cached, and its firmware.

``build_deepsets(job, out)`` builds, for the ``distill`` stage, as the flat structure does
(``trigger_ml.symbolic.stage``)::

    runs/<teacher>-srds/<key>/        the fit: settings.json, expressions.json (the φ_k,
                                      every F candidate, the front, the choice),
                                      chosen.sympy (the deployed expression), chosen.txt,
                                      front.png, report.md
    hls_projects/<teacher>-srds/      hls4ml symbolic project, C simulation, report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sympy

from trigger_ml.fileio import read_json, write_text_atomic
from trigger_ml.logs import stage_logger, timed
from trigger_ml.runner import cached_dir
from trigger_ml.symbolic.deepsets import (
    DeepSetData,
    cast_constants,
    compose,
    latent_locals,
    load_deepset_data,
    phis_from_result,
    run_fit,
)
from trigger_ml.symbolic.firmware import count_constants
from trigger_ml.symbolic.inputs import Job
from trigger_ml.symbolic.project import project_report, simulate_and_compare
from trigger_ml.symbolic.report import write_fit, write_symbolic_report

logger = stage_logger("distill")


def build_deepsets(job: Job, out: Path) -> None:
    """Fit ``<teacher>-srds`` (unless its fit directory is current) and write its firmware into ``out``."""
    from trigger_ml.symbolic.stage import fit_material

    teacher, settings = job.teacher, job.settings
    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        data = load_deepset_data(teacher, job.inputs.run, job.inputs.data_path, settings)
    fitted: dict[str, Any] = {}

    def fit(fit_dir: Path) -> None:
        result = run_fit(teacher, data, settings, job.choice, job.inputs.teacher_cost)
        f_expr = sympy.sympify(
            result["models"][result["chosen"]]["f_expression"], locals=latent_locals(len(result["phi"]))
        )
        deployed = compose(f_expr, phis_from_result(result), result["n_slots"], len(data.features))
        _write_fit(fit_dir, job, result, deployed, data)
        fitted.update(result=result, deployed=deployed)

    with timed(timings, "fit_s"):
        if cached_dir(job.fit_dir, fit_material(job), fit, stage="distill"):
            result, deployed = fitted["result"], fitted["deployed"]
        else:
            result = read_json(job.fit_dir / "expressions.json")
            deployed = sympy.sympify((job.fit_dir / "chosen.sympy").read_text())[0]
    _build_project(job, data, result, deployed, timings, out)


def _used_phis(result: dict[str, Any]) -> list[int]:
    """The latent components the chosen F reads, in order."""
    chosen = result["models"][result["chosen"]]
    f_expr = sympy.sympify(chosen["f_expression"], locals=latent_locals(len(result["phi"])))
    return sorted({int(s.name[1:]) for s in f_expr.free_symbols})


def deployed_readable(result: dict[str, Any]) -> list[str]:
    """The chosen model in words: F of the pooled latents, then each φ_k used."""
    chosen = result["models"][result["chosen"]]
    lines = [f"D = {chosen['readable'][0]}", f"p_k = mean over the {result['n_slots']} slots of phi_k(track)"]
    lines += [
        f"phi_{k} = {result['phi'][k]['readable']}" for k in _used_phis(result) if result["phi"][k]["terms"]
    ]
    return lines


def _write_fit(
    fit_dir: Path, job: Job, result: dict[str, Any], deployed: sympy.Expr, data: DeepSetData
) -> None:
    """The fit directory (:func:`write_fit`) with the φ_k: their expressions and R²."""
    phi_lines = ["", "## Latent components φ_k (validation R² to the teacher's latent)", ""]
    phi_lines += [
        f"- φ_{r['component']}: R² {_fmt(r['r2_val'])}, {r['terms']} terms: `{r['readable']}`"
        for r in result["phi"]
    ]
    inputs = {
        "track_features": data.features,
        "n_slots": result["n_slots"],
        "n_jets": {k: int(len(v)) for k, v in data.tracks.items()},
    }
    chosen_text = "\n".join(deployed_readable(result)) + "\n"
    write_fit(fit_dir, job, inputs, result, [deployed], chosen_text, "\n".join(phi_lines) + "\n")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _build_project(
    job: Job,
    data: DeepSetData,
    result: dict[str, Any],
    deployed: sympy.Expr,
    timings: dict[str, float],
    out: Path,
) -> None:
    """Convert the deployed expression, C-simulate the test split, compare and report into ``out``."""
    classes = data.classes["test"]
    chosen = result["models"][result["chosen"]]
    phi_used = _used_phis(result)
    measured = simulate_and_compare(
        job,
        out,
        [deployed],
        {},
        "discriminant",
        data.flat("test"),
        data.indices["test"],
        classes,
        data.logits["test"],
        timings,
    )
    write_text_atomic(out / "deployed.txt", str(deployed) + "\n")
    report = project_report(
        job,
        f"symbolic Deep Set distilled from {job.teacher.name} (φ_k and F expressions, sum over "
        f"{result['n_slots']} track slots kept)",
        result,
        {
            "structure": "deepsets",
            "expressions": [chosen["f_expression"]],
            "deployed": ["see deployed.txt (F of the pooled φ_k, the sum over slots unrolled)"],
            "readable": ["; ".join(deployed_readable(result))],
            "phi_produced_by": sorted({result["phi"][k]["source"] for k in phi_used}),
            "phi": [result["phi"][k] for k in phi_used],
        },
        {"jets_per_split": {k: int(len(v)) for k, v in data.tracks.items()}},
        count_constants(deployed) + len(cast_constants(deployed)),
        measured,
        timings,
    )
    write_symbolic_report(out, report, measured.disc, classes)
    phi_lines = ["", "## Latent components used (φ_k; validation R² to the teacher's latent)", ""]
    phi_lines += [
        f"- φ_{r['component']} ({r['source']}): R² {_fmt(r['r2_val'])}: `{r['readable']}`"
        for r in report["symbolic"]["phi"]
    ]
    with open(out / "report.md", "a") as handle:
        handle.write("\n".join(phi_lines) + "\n")
