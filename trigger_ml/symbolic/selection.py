"""Choosing among candidates by the selection metric (``SymbolicConfig.selection_metric``).

Shared by the flat stage and the symbolic Deep Set. Every candidate row carries its
validation (and test) ``auc_<split>`` and ``rej_light_at_70/77_<split>``; the metric names
which one ranks them. The rule (docs/symbolic.md):

1. the least complex front member that is *good enough* and within the latency budget;
2. else the front member with the best validation score within the latency budget;
3. else the best validation score.

Good enough: for ``auc``, a validation AUC of at least the teacher's minus ``auc_tolerance``;
for a rejection, a validation rejection of at least ``(1 - rejection_tolerance)`` times the
teacher's (a rejection is a ratio, so its tolerance is relative).
"""

from __future__ import annotations

from typing import Any

from trigger_ml.symbolic.metrics import score_value
from trigger_ml.symbolic.settings import SymbolicConfig


def metric_label(metric: str) -> str:
    """``AUC`` or ``light rejection @70 %`` (for rules, tables and plots)."""
    return "AUC" if metric == "auc" else f"light rejection @{metric.rsplit('_', 1)[1]} %"


def validation_score(row: dict[str, Any], metric: str, n_light_val: int) -> float:
    """A candidate's (or the teacher's) validation score under ``metric``; an unmeasurable
    rejection counts as ``n_light_val``, a missing score as -inf."""
    value = score_value(row, metric, "val", n_light_val)
    return float("-inf") if value is None else value


def good_threshold(settings: SymbolicConfig, teacher_score: float) -> float:
    """The smallest validation score that counts as good enough (module doc)."""
    if settings.selection_metric == "auc":
        return teacher_score - settings.auc_tolerance
    return (1.0 - settings.rejection_tolerance) * teacher_score


def choose(
    front: list[dict[str, Any]],
    settings: SymbolicConfig,
    teacher_score: float,
    n_light_val: int,
    latency_budget: float | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chosen front member and the ``selection`` section (rule, metric, tolerances)."""
    metric = settings.selection_metric

    def score(m: dict[str, Any]) -> float:
        return validation_score(m, metric, n_light_val)

    def by_score(m: dict[str, Any]) -> tuple[float, int, int]:  # ties: the simpler, then the faster
        return score(m), -m["complexity"], -m["latency_cycles"]

    threshold = good_threshold(settings, teacher_score)
    fast = [m for m in front if m["within_latency_budget"]]
    good = [m for m in fast if score(m) >= threshold]
    tolerance = "AUC tolerance" if metric == "auc" else "rejection tolerance"
    best = f"best validation {metric_label(metric)}"
    if good:
        chosen = min(good, key=lambda m: (m["complexity"], m["latency_cycles"], -score(m)))
        rule = f"least complex within the {tolerance} and the latency budget"
    elif fast:
        chosen, rule = max(fast, key=by_score), f"{best} within the latency budget"
    else:
        chosen, rule = max(front, key=by_score), f"{best} (none within the latency budget)"
    section: dict[str, Any] = {
        "rule": rule,
        "metric": metric,
        "auc_tolerance": settings.auc_tolerance,
        "latency_budget_cycles": latency_budget,
    }
    if metric != "auc":
        section.update(
            rejection_tolerance=settings.rejection_tolerance,
            teacher_val=teacher_score,
            good_at_least=threshold,
        )
    return chosen, section


def ranking_key(metric: str, n_light_val: int) -> Any:
    """Sort key of candidate rows: complexity, then the best validation score first."""

    def key(m: dict[str, Any]) -> tuple[int, float]:
        return m["complexity"], -validation_score(m, metric, n_light_val)

    return key
