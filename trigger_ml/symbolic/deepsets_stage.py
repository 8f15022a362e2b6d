"""The symbolic Deep Set stage: the fit of ``trigger_ml.symbolic.deepsets``, cached, and its firmware.

``distill_deepsets(teacher, settings, ws)`` builds, as the flat stage does
(``trigger_ml.symbolic.stage``)::

    runs/<teacher>-srds/<key>/        the fit: settings.json, expressions.json (the φ_k,
                                      every F candidate, the front, the choice),
                                      chosen.sympy (the deployed expression), chosen.txt,
                                      front.png, report.md
    hls_projects/<teacher>-srds/      hls4ml symbolic project, C simulation, report
"""

from __future__ import annotations

from typing import Any

import sympy

from trigger_ml.config import ModelConfig
from trigger_ml.fileio import atomic_path, read_json, write_text_atomic
from trigger_ml.hls.stage import is_current
from trigger_ml.logs import stage_logger, timed
from trigger_ml.symbolic.backends import choose_backend
from trigger_ml.symbolic.deepsets import (
    FORMAT_VERSION,
    DeepSetData,
    cast_constants,
    check_teacher,
    compose,
    deepsets_name,
    latent_locals,
    load_deepset_data,
    phis_from_result,
    run_fit,
)
from trigger_ml.symbolic.firmware import count_constants
from trigger_ml.symbolic.inputs import Job, distill_inputs
from trigger_ml.symbolic.project import project_report, simulate_and_compare
from trigger_ml.symbolic.report import write_fit, write_symbolic_report
from trigger_ml.symbolic.settings import SymbolicConfig
from trigger_ml.workspace import Workspace

logger = stage_logger("distill")


def distill_deepsets(
    teacher: ModelConfig, settings: SymbolicConfig, ws: Workspace, force: bool = False
) -> dict[str, Any]:
    """Build (or reuse) ``<teacher>-srds``: the fit and its firmware; returns report.json."""
    check_teacher(teacher, settings)
    name = deepsets_name(teacher)
    choice = choose_backend(settings)
    logger.info(f"{name}: symbolic Deep Set, backend {choice.backend.name} ({choice.reason})")
    inputs = distill_inputs(
        teacher, settings, choice, ws, format_version=FORMAT_VERSION, structure="deepsets"
    )
    job = Job(name, teacher, settings, choice, ws, inputs)
    project_dir, fit_dir = job.project_dir, job.fit_dir
    if not force and is_current(project_dir, inputs.key, inputs.data_sha256):
        logger.info(f"{name}: {project_dir} is current; nothing to do")
        return read_json(project_dir / "report.json")
    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        data = load_deepset_data(teacher, inputs.run, inputs.data_path, settings)
    with timed(timings, "fit_s"):
        if (fit_dir / "expressions.json").is_file() and (fit_dir / "chosen.sympy").is_file():
            result = read_json(fit_dir / "expressions.json")
            deployed = sympy.sympify((fit_dir / "chosen.sympy").read_text())[0]
        else:
            result = run_fit(teacher, data, settings, choice, inputs.teacher_cost)
            f_expr = sympy.sympify(
                result["models"][result["chosen"]]["f_expression"], locals=latent_locals(len(result["phi"]))
            )
            deployed = compose(f_expr, phis_from_result(result), result["n_slots"], len(data.features))
            _write_fit(job, result, deployed, data)
    return _build_project(job, data, result, deployed, timings)


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


def _write_fit(job: Job, result: dict[str, Any], deployed: sympy.Expr, data: DeepSetData) -> None:
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
    write_fit(job, inputs, result, [deployed], chosen_text, "\n".join(phi_lines) + "\n")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _build_project(
    job: Job,
    data: DeepSetData,
    result: dict[str, Any],
    deployed: sympy.Expr,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Convert the deployed expression, C-simulate the test split, compare, report."""
    classes = data.classes["test"]
    chosen = result["models"][result["chosen"]]
    phi_used = _used_phis(result)
    with atomic_path(job.project_dir) as tmp:
        tmp.mkdir()
        measured = simulate_and_compare(
            job,
            tmp,
            [deployed],
            {},
            "discriminant",
            data.flat("test"),
            data.indices["test"],
            classes,
            data.logits["test"],
            timings,
        )
        write_text_atomic(tmp / "deployed.txt", str(deployed) + "\n")
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
        write_symbolic_report(tmp, report, measured.disc, classes)
        phi_lines = ["", "## Latent components used (φ_k; validation R² to the teacher's latent)", ""]
        phi_lines += [
            f"- φ_{r['component']} ({r['source']}): R² {_fmt(r['r2_val'])}: `{r['readable']}`"
            for r in report["symbolic"]["phi"]
        ]
        with open(tmp / "report.md", "a") as handle:
            handle.write("\n".join(phi_lines) + "\n")
    return read_json(job.project_dir / "report.json")
