"""Physics metrics of a single discriminant, through trigger_ml.physics (defined once there).

``trigger_ml.physics`` computes its metrics from the three logits (b, c, light) through
``D_b = l_b - ln(f_c e^{l_c} + (1 - f_c) e^{l_light})``. For the logits ``(D, 0, 0)`` the
logarithm is ``ln(f_c + 1 - f_c) = 0`` for every f_c in [0, 1], so ``D_b = D`` exactly:
:func:`as_logits` lets an expression's discriminant use the same code and conventions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from trigger_ml.physics import LIGHT, B, rejection, tagging_metrics, threshold_at_efficiency


def as_logits(discriminant: np.ndarray) -> np.ndarray:
    """(n, 3) logits (D, 0, 0) whose D_b is ``discriminant`` whatever f_c."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    return np.column_stack([disc, np.zeros_like(disc), np.zeros_like(disc)])


def discriminant_metrics(discriminant: np.ndarray, classes: np.ndarray) -> dict[str, float | None]:
    """AUC b vs light and light/c rejections at the standard b-efficiencies of ``discriminant``."""
    return tagging_metrics(as_logits(discriminant), classes, f_c=0.0)


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
