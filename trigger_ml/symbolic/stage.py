"""The distillation stage: symbolic regression of a teacher's outputs, then firmware.

``distill(teacher, settings, ws)`` builds, each cached and written atomically::

    runs/<teacher>-sr/<key>/          the fit (key: teacher, data, settings, backend)
        settings.json                 settings, backend choice and why, teacher, flat inputs
        expressions.json              every candidate (complexity, AUC, MSE, text), the
                                      Pareto front, the sweep over complexity, the choice
        chosen.sympy                  srepr of the deployed expression(s), a sympy Tuple
        chosen.txt                    the chosen expression(s) as text, with feature names
        front.png, report.md          AUC vs complexity; the fit in words
    hls_projects/<teacher>-sr/        the firmware (same layout as the networks' projects)
        hls4ml_prj/                   hls4ml symbolic project (firmware/, build_prj.tcl, ...)
        csim_predictions.h5           test-split discriminants of teacher, expression, C sim
        report.json, report.md, roc.png

Inputs are the *flat* jet-level inputs: a dense teacher's own inputs; for a Deep Set
teacher those of ``dense-small`` (leading tracks' features flattened, plus jet features) on
the teacher's sample and split. Targets are the teacher's outputs on a subsample of the
training split (its discriminant D_b and/or its logits). Candidates: the backend's front,
one-input least-squares fits and, for D_b, the hardware-aware sums and the backend's front
with few-bit constants (``trigger_ml.symbolic.sums``); each gets its estimated latency, the
front is over (complexity, latency, validation score: AUC or a light rejection,
``selection_metric``). The validation split chooses among candidates, the test split
measures them.

The pieces: ``inputs`` (teacher, sample, flat inputs, cache key), ``fit`` (candidates,
scores, front, choice), ``project`` (hls4ml project, C simulation, report.json) and
``report`` (report.md, plots).
"""

from __future__ import annotations

from typing import Any

import sympy

from trigger_ml.config import ModelConfig
from trigger_ml.fileio import read_json
from trigger_ml.hls.stage import is_current
from trigger_ml.logs import stage_logger, timed
from trigger_ml.symbolic.backends import choose_backend
from trigger_ml.symbolic.fit import FORMAT_VERSION, readable, run_fit
from trigger_ml.symbolic.inputs import (
    DistillData,
    Job,
    check_precision_holds,
    distill_inputs,
    flat_input_config,
    load_distill_data,
    symbolic_name,
)
from trigger_ml.symbolic.project import build_symbolic_project
from trigger_ml.symbolic.report import write_fit
from trigger_ml.symbolic.settings import SymbolicConfig
from trigger_ml.workspace import Workspace

logger = stage_logger("distill")


def ensure_fit(job: Job, data: DistillData) -> tuple[dict[str, Any], list[sympy.Expr]]:
    """The fit of ``job.fit_dir`` (run now unless stored): expressions.json and the chosen expressions."""
    fit_dir, teacher, settings, choice = job.fit_dir, job.teacher, job.settings, job.choice
    if (fit_dir / "expressions.json").is_file() and (fit_dir / "chosen.sympy").is_file():
        result = read_json(fit_dir / "expressions.json")
        chosen = list(sympy.sympify((fit_dir / "chosen.sympy").read_text()))
        return result, chosen
    result = run_fit(teacher, data, settings, choice, job.inputs.teacher_cost)
    chosen = result.pop("_chosen_expressions")
    write_fit(
        job,
        {"flat_inputs": data.feature_names, "n_jets": {k: int(len(v)) for k, v in data.x.items()}},
        result,
        chosen,
        "\n".join(f"{str(e)}\n# {readable(e, data.feature_names)}" for e in chosen) + "\n",
    )
    return result, chosen


def distill(
    teacher: ModelConfig, settings: SymbolicConfig, ws: Workspace, force: bool = False
) -> dict[str, Any]:
    """Distil ``teacher`` into expressions and their firmware; returns report.json's content."""
    name = symbolic_name(teacher)
    check_precision_holds(settings.precision, flat_input_config(teacher).quantization.input)
    choice = choose_backend(settings)
    logger.info(f"{name}: backend {choice.backend.name} ({choice.reason})")
    inputs = distill_inputs(teacher, settings, choice, ws, format_version=FORMAT_VERSION)
    job = Job(name, teacher, settings, choice, ws, inputs)
    if not force and is_current(job.project_dir, inputs.key, inputs.data_sha256):
        logger.info(f"{name}: {job.project_dir} is current; nothing to do")
        return read_json(job.project_dir / "report.json")

    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        data = load_distill_data(teacher, inputs.run, inputs.data_path, settings)
    with timed(timings, "fit_s"):
        result, chosen = ensure_fit(job, data)
    return build_symbolic_project(job, data, result, chosen, timings)
