"""Physics metrics of a single discriminant, through trigger_ml.physics (defined once there).

An expression's output is a b-tagging discriminant D_b itself: its metrics are
``trigger_ml.physics.discriminant_metrics`` (the function a network's logits reach through
their D_b), so both use the same code and conventions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from trigger_ml.physics import LIGHT, B, discriminant_metrics, rejection, threshold_at_efficiency

__all__ = [
    "REJECTION_EFFICIENCIES",
    "STORED_REJECTIONS",
    "discriminant_metrics",
    "light_rejection",
    "score_value",
    "selection_score",
]

# --- the selection metric -----------------------------------------------------------------

REJECTION_EFFICIENCIES = {"rej_light_at_70": 0.70, "rej_light_at_77": 0.77}
"""b-efficiency of each rejection ``selection_metric`` (``SymbolicConfig.selection_metric``)."""

STORED_REJECTIONS = ("rej_light_at_70", "rej_light_at_77")
"""Light rejections stored for every candidate beside its AUC (validation and test)."""


def light_rejection(discriminant: np.ndarray, classes: np.ndarray, efficiency: float) -> float | None:
    """Light-jet rejection at ``efficiency`` b-efficiency of ``discriminant``, with the cut and
    rejection of ``trigger_ml.physics`` (the ``rej_light_at_<eff>`` of ``tagging_metrics``)."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    return rejection(disc[classes == LIGHT], threshold_at_efficiency(disc[classes == B], efficiency))


def selection_score(discriminant: np.ndarray, classes: np.ndarray, metric: str) -> float:
    """The validation score a candidate is ranked by: AUC b vs light (``auc``) or the light
    rejection at the metric's b-efficiency. A rejection that cannot be measured (no light jet
    above the cut) counts as the number of light jets, its lower bound."""
    if metric == "auc":
        disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
        classes = np.asarray(classes)
        keep = (classes == B) | (classes == LIGHT)
        return float(roc_auc_score(classes[keep] == B, disc[keep]))
    value = light_rejection(discriminant, classes, REJECTION_EFFICIENCIES[metric])
    return float(np.count_nonzero(np.asarray(classes) == LIGHT)) if value is None else value


def score_value(row: dict[str, Any], metric: str, split: str, n_light: int) -> float | None:
    """A stored candidate's score (``<metric>_<split>``; ``auc`` is ``auc_<split>``), an
    unmeasurable rejection counted as ``n_light`` as in :func:`selection_score`."""
    key = f"{metric}_{split}"
    if metric != "auc" and key in row and row[key] is None and row.get(f"auc_{split}") is not None:
        return float(n_light)
    return row.get(key)
