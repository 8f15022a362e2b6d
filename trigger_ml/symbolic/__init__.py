"""Symbolic distillation: a teacher's outputs as closed-form expressions, and their firmware.

The ``distill`` stage (:mod:`trigger_ml.symbolic.stage`; ``trigger_ml.pipeline.ensure_distilled``) fits expressions of the flat jet-level inputs to the
teacher's discriminant (and/or logits) with PySR or Operon, sweeps their complexity into a
Pareto front of complexity vs AUC, chooses one, converts it with hls4ml's symbolic backend
into ``hls_projects/<teacher>-sr/`` and compares its g++ C simulation with the expression
in float. ``compare_row`` gives its row of ``trigger-ml compare``. See docs/symbolic.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from trigger_ml.compare import DEFAULT_COST_SOURCE
from trigger_ml.symbolic.settings import SymbolicConfig, load_symbolic_config
from trigger_ml.workspace import Workspace

if TYPE_CHECKING:
    from trigger_ml.artefacts import ComparisonRow

__all__ = [
    "SR_SUFFIX",
    "SRDS_SUFFIX",
    "DEFAULT_COMPARE_MODELS",
    "SymbolicConfig",
    "compare_row",
    "is_symbolic_name",
    "load_symbolic_config",
    "teacher_spec",
]

SR_SUFFIX = "-sr"
SRDS_SUFFIX = "-srds"
"""The symbolic Deep Set (``structure: deepsets``, trigger_ml.symbolic.deepsets)."""
DEFAULT_COMPARE_MODELS = ("dense-small-sr",)
"""Symbolic models that ``make compare`` adds to the zoo when no models are named."""


def _suffix(spec: str) -> str | None:
    for suffix in (SRDS_SUFFIX, SR_SUFFIX):
        if spec.endswith(suffix) and len(spec) > len(suffix):
            return suffix
    return None


def is_symbolic_name(spec: str) -> bool:
    """Is ``spec`` the name of a distilled model (``<teacher spec>-sr`` or ``-srds``)?"""
    return _suffix(spec) is not None


def teacher_spec(spec: str) -> str:
    """``dense-small-sr`` -> ``dense-small``, ``dips-small-srds`` -> ``dips-small`` (the
    teacher's model spec, overrides kept)."""
    suffix = _suffix(spec)
    return spec[: -len(suffix)] if suffix else spec


def structure_of(spec: str) -> str:
    """``deepsets`` for ``<teacher>-srds``, else ``flat``."""
    return "deepsets" if _suffix(spec) == SRDS_SUFFIX else "flat"


def compare_row(
    spec: str,
    ws: Workspace,
    settings: SymbolicConfig | None = None,
    cost_source: str = DEFAULT_COST_SOURCE,
) -> tuple[ComparisonRow, np.ndarray, np.ndarray]:
    """The ``trigger-ml compare`` row of ``<teacher>-sr`` / ``<teacher>-srds``, building what is
    missing (``trigger_ml.compare.table_row`` of its report).

    Returns the row, the C simulation's test discriminant D_b and the test classes.
    """
    from trigger_ml.artefacts import read_report
    from trigger_ml.compare import table_row
    from trigger_ml.config import load_model_config

    teacher = load_model_config(teacher_spec(spec))
    settings = (settings or SymbolicConfig()).model_copy(update={"structure": structure_of(spec)})
    from trigger_ml.pipeline import ensure_distilled

    report = ensure_distilled(teacher, settings, ws)
    project = ws.hls_dir(report["model"])
    return table_row(read_report(project), project, cost_source)
