"""Physics metrics of a single discriminant, through trigger_ml.physics (defined once there).

``trigger_ml.physics`` computes its metrics from the three logits (b, c, light) through
``D_b = l_b - ln(f_c e^{l_c} + (1 - f_c) e^{l_light})``. For the logits ``(D, 0, 0)`` the
logarithm is ``ln(f_c + 1 - f_c) = 0`` for every f_c in [0, 1], so ``D_b = D`` exactly:
:func:`as_logits` lets an expression's discriminant use the same code and conventions.
"""

from __future__ import annotations

import numpy as np

from trigger_ml.physics import tagging_metrics


def as_logits(discriminant: np.ndarray) -> np.ndarray:
    """(n, 3) logits (D, 0, 0) whose D_b is ``discriminant`` whatever f_c."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    return np.column_stack([disc, np.zeros_like(disc), np.zeros_like(disc)])


def discriminant_metrics(discriminant: np.ndarray, classes: np.ndarray) -> dict[str, float | None]:
    """AUC b vs light and light/c rejections at the standard b-efficiencies of ``discriminant``."""
    return tagging_metrics(as_logits(discriminant), classes, f_c=0.0)
