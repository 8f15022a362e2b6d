"""The distillation stage: symbolic regression of a teacher's outputs, then firmware.

``distill`` (a :class:`trigger_ml.runner.Stage`, subject :class:`DistillRequest`) builds::

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

The symbolic Deep Set (``structure: deepsets``, ``<teacher>-srds``) has the same layout
(trigger_ml.symbolic.deepsets_stage). Both are stamped by the runner with the same key; the
fit is reused while only the firmware changes.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy

from trigger_ml.artefacts import FORMAT_VERSION as REPORT_FORMAT
from trigger_ml.artefacts import read_report
from trigger_ml.config import ModelConfig
from trigger_ml.cost import cost_for_project
from trigger_ml.fileio import read_json, sha256_of_obj
from trigger_ml.logs import stage_logger, timed
from trigger_ml.runner import Inputs, Need, Stage, cached_dir
from trigger_ml.symbolic import deepsets as symbolic_deepsets
from trigger_ml.symbolic.backends import BackendChoice, choose_backend
from trigger_ml.symbolic.fit import FORMAT_VERSION, readable, run_fit
from trigger_ml.symbolic.inputs import (
    DistillData,
    DistillInputs,
    Job,
    check_precision_holds,
    distill_key_material,
    flat_input_config,
    load_distill_data,
    symbolic_name,
)
from trigger_ml.symbolic.project import build_symbolic_project
from trigger_ml.symbolic.report import write_fit
from trigger_ml.symbolic.settings import SymbolicConfig

logger = stage_logger("distill")


@dataclass(frozen=True)
class DistillRequest:
    """The subject of the ``distill`` stage: a teacher and the symbolic settings
    (``settings.structure``: ``flat`` for ``<teacher>-sr``, ``deepsets`` for ``<teacher>-srds``)."""

    teacher: ModelConfig
    settings: SymbolicConfig

    @property
    def deepsets(self) -> bool:
        return self.settings.structure == "deepsets"

    @property
    def name(self) -> str:
        return symbolic_deepsets.deepsets_name(self.teacher) if self.deepsets else symbolic_name(self.teacher)


class DistillStage(Stage[dict[str, Any]]):
    """``distill``: the fit (runs/<name>/<key>/) and the firmware (hls_projects/<name>/) of a
    symbolic model; the artefact is report.json's content."""

    name = "distill"
    version = REPORT_FORMAT
    # `trigger-ml rtl` and `trigger-ml cost` add cost sections to a finished project.
    mutable_outputs = ("report.json", "report.md")

    def needs(self, subject: DistillRequest) -> dict[str, Need]:
        teacher, settings = subject.teacher, subject.settings
        if subject.deepsets:
            symbolic_deepsets.check_teacher(teacher, settings)
        else:
            check_precision_holds(settings.precision, flat_input_config(teacher).quantization.input)
        needs = {"train": Need("train", teacher), "data": Need("data", teacher)}
        if teacher.hls.enabled:  # the teacher's firmware: its latency and its C simulation
            needs["hls"] = Need("hls", teacher)
        return needs

    def output_dir(self, subject: DistillRequest, ws: Any) -> Path:
        return ws.hls_dir(subject.name)

    def key(self, subject: DistillRequest, inputs: Inputs) -> dict[str, Any]:
        extra = (
            {"format_version": symbolic_deepsets.FORMAT_VERSION, "structure": "deepsets"}
            if subject.deepsets
            else {"format_version": FORMAT_VERSION}
        )
        return distill_key_material(
            subject.teacher,
            subject.settings,
            choose_backend(subject.settings),
            inputs["data"].sha256,
            _teacher_cost(subject, inputs),
            **extra,
        )

    def run(self, subject: DistillRequest, inputs: Inputs, out: Path) -> None:
        choice = choose_backend(subject.settings)
        what = "symbolic Deep Set, backend" if subject.deepsets else "backend"
        logger.info(f"{subject.name}: {what} {choice.backend.name} ({choice.reason})")
        job = _job(subject, inputs, choice, self.key(subject, inputs))
        if subject.deepsets:
            from trigger_ml.symbolic.deepsets_stage import build_deepsets

            build_deepsets(job, out)
        else:
            _build_flat(job, out)

    def load(self, subject: DistillRequest, inputs: Inputs, out: Path) -> dict[str, Any]:
        return read_report(out).as_json()


def _teacher_cost(subject: DistillRequest, inputs: Inputs) -> dict[str, Any] | None:
    """The teacher firmware's best cost section (None for a float reference without firmware)."""
    return cost_for_project(inputs.ws.hls_dir(subject.teacher.name))["best"] if "hls" in inputs else None


def _job(subject: DistillRequest, inputs: Inputs, choice: BackendChoice, material: dict[str, Any]) -> Job:
    data = inputs["data"]
    distill_inputs = DistillInputs(
        inputs.get("hls"),
        inputs["train"],
        _teacher_cost(subject, inputs),
        data.path,
        data.sha256,
        sha256_of_obj(material),
    )
    return Job(subject.name, subject.teacher, subject.settings, choice, inputs.ws, distill_inputs)


def fit_material(job: Job) -> dict[str, Any]:
    """The stamp of a fit directory: the distillation's key (its hash is also the directory's name)."""
    return {"stage": "symbolic-fit", "key": job.key}


def _build_flat(job: Job, out: Path) -> None:
    teacher, settings = job.teacher, job.settings
    timings: dict[str, float] = {}
    with timed(timings, "prepare_s"):
        data = load_distill_data(teacher, job.inputs.run, job.inputs.data_path, settings)
    with timed(timings, "fit_s"):
        result, chosen = _ensure_fit(job, data)
    build_symbolic_project(job, data, result, chosen, timings, out)


def _ensure_fit(job: Job, data: DistillData) -> tuple[dict[str, Any], list[sympy.Expr]]:
    """The fit of ``job.fit_dir``, run now unless its stamp matches: its result and the chosen expressions."""
    fitted: dict[str, Any] = {}

    def fit(out: Path) -> None:
        result = run_fit(job.teacher, data, job.settings, job.choice, job.inputs.teacher_cost)
        chosen = result.pop("_chosen_expressions")
        write_fit(
            out,
            job,
            {"flat_inputs": data.feature_names, "n_jets": {k: int(len(v)) for k, v in data.x.items()}},
            result,
            chosen,
            "\n".join(f"{str(e)}\n# {readable(e, data.feature_names)}" for e in chosen) + "\n",
        )
        fitted.update(result=result, chosen=chosen)

    if cached_dir(job.fit_dir, fit_material(job), fit, stage="distill"):
        return fitted["result"], fitted["chosen"]
    result = read_json(job.fit_dir / "expressions.json")
    return result, list(sympy.sympify((job.fit_dir / "chosen.sympy").read_text()))
