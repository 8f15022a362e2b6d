"""The registry of stages, and the calls the CLI, ``compare``, ``scan`` and ``firmware`` use.

Every stage is a :class:`trigger_ml.runner.Stage` defined beside the code it runs; this module
only names them. :func:`ensure` builds (or loads) any stage's artefact through the one
runner, which resolves what the stage needs, checks its key against the stamp on disk and
writes its outputs atomically::

    data             data/<process>-<hash>/jets.h5             trigger_ml.data.stage
    evaluation-data  the evaluation sample of record, same      trigger_ml.data.stage
    train            runs/<model>/<training hash>/             trigger_ml.training
    hls              hls_projects/<model>/ (report.json)       trigger_ml.hls.stage
    rtl              hls_projects/<model>/rtl/                 trigger_ml.rtl
    decision         hls_projects/<model>/decision/            trigger_ml.decision.stage
    distill          hls_projects/<teacher>-sr[ds]/            trigger_ml.symbolic.stage
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_ml.config import ModelConfig
from trigger_ml.data.stage import (
    EvaluationSampleStage,
    SampleStage,
    evaluation_settings,
    generator_settings,
)
from trigger_ml.decision.stage import DecisionStage, wants_decision
from trigger_ml.hls.stage import HLSStage
from trigger_ml.rtl import RTLRequest, RTLStage
from trigger_ml.runner import Runner, Stage
from trigger_ml.symbolic.settings import SymbolicConfig
from trigger_ml.symbolic.stage import DistillRequest, DistillStage
from trigger_ml.training import TrainedRun, TrainStage
from trigger_ml.workspace import Workspace

__all__ = [
    "STAGES",
    "ensure",
    "ensure_data",
    "ensure_decision",
    "ensure_distilled",
    "ensure_evaluation_data",
    "ensure_hls",
    "ensure_rtl",
    "ensure_trained",
    "evaluation_settings",
    "generator_settings",
    "runner",
]

STAGES: dict[str, Stage[Any]] = {
    stage.name: stage
    for stage in (
        SampleStage(),
        EvaluationSampleStage(),
        TrainStage(),
        HLSStage(),
        RTLStage(),
        DecisionStage(),
        DistillStage(),
    )
}
"""Every stage by name: the one place a new stage is registered."""


def runner(ws: Workspace) -> Runner:
    """A runner over every registered stage in ``ws``."""
    return Runner(STAGES, ws)


def ensure(stage: str, subject: Any, ws: Workspace, force: bool = False) -> Any:
    """The artefact of ``stage`` for ``subject``, built first when it is missing or stale."""
    return runner(ws).ensure(stage, subject, force=force)


def ensure_data(config: ModelConfig, ws: Workspace) -> Path:
    """The jets.h5 of the model's sample, generated with all cores if it is not there yet."""
    return ensure("data", config, ws).path


def ensure_evaluation_data(config: ModelConfig, ws: Workspace) -> Path:
    """The jets.h5 of the model's evaluation sample, generated with all cores if it is not there yet."""
    return ensure("evaluation-data", config, ws).path


def ensure_trained(config: ModelConfig, ws: Workspace) -> TrainedRun:
    """The model's training run, trained first if needed."""
    return ensure("train", config, ws)


def ensure_hls(config: ModelConfig, ws: Workspace, force: bool = False) -> dict[str, Any]:
    """Train if needed, then build ``hls_projects/<model>/`` unless it is current, and its
    decision block and ``trigger_top`` when the model has them (``decision.enabled``, a network
    kind); report.json's content."""
    report = ensure("hls", config, ws, force=force)
    if wants_decision(config):
        ensure_decision(config, ws)
        from trigger_ml.artefacts import read_report

        report = read_report(ws.hls_dir(config.name)).as_json()
    return report


def ensure_decision(config: ModelConfig, ws: Workspace) -> dict[str, Any]:
    """The decision stage's summary (``hls_projects/<model>/decision/decision.json``), built
    with everything before it when missing or stale."""
    return ensure("decision", config, ws)


def ensure_rtl(config: ModelConfig, ws: Workspace, verilate: bool = False) -> dict[str, Any]:
    """The ``rtl`` cost section of the model's HLS project (everything before built if needed)."""
    return ensure("rtl", RTLRequest(config, verilate), ws)


def ensure_distilled(
    teacher: ModelConfig, settings: SymbolicConfig, ws: Workspace, force: bool = False
) -> dict[str, Any]:
    """The report.json of ``teacher`` distilled into expressions (``settings.structure``:
    ``<teacher>-sr`` or ``<teacher>-srds``) and their firmware, built first if needed."""
    return ensure("distill", DistillRequest(teacher, settings), ws, force=force)
