"""Flavour-tagging conventions, defined once: labels, the b-tagging discriminant, metrics.

Classes are ordered (b, c, light) everywhere: network outputs, labels, reports.
Truth labels follow ATLAS's HadronConeExclTruthLabelID: 5 = b, 4 = c, 0 = light.
The discriminant is the DIPS/DL1 one,
``D_b = ln(p_b / (f_c * p_c + (1 - f_c) * p_light))``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

CLASS_NAMES = ("b", "c", "light")
B, C, LIGHT = 0, 1, 2
TRUTH_LABEL_TO_CLASS = {5: B, 4: C, 0: LIGHT}
METRIC_EFFICIENCIES = (0.70, 0.77)


def classes_from_truth(truth_label: np.ndarray) -> np.ndarray:
    """Map HadronConeExclTruthLabelID values (5/4/0; 15 = tau counts as light) to class indices."""
    truth_label = np.asarray(truth_label)
    classes = np.full(truth_label.shape, LIGHT, dtype=np.int8)
    classes[truth_label == 5] = B
    classes[truth_label == 4] = C
    return classes


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def discriminant_from_logits(logits: np.ndarray, f_c: float) -> np.ndarray:
    """D_b from the three logits, computed stably in log space (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    log_c = np.log(f_c) + logits[:, C] if f_c > 0 else np.full(len(logits), -np.inf)
    log_l = np.log1p(-f_c) + logits[:, LIGHT] if f_c < 1 else np.full(len(logits), -np.inf)
    return logits[:, B] - np.logaddexp(log_c, log_l)


def threshold_at_efficiency(signal_scores: np.ndarray, efficiency: float) -> float:
    """Cut value such that a fraction ``efficiency`` of signal has a score strictly above it."""
    scores = np.sort(np.asarray(signal_scores, dtype=np.float64))
    index = int(np.floor((1.0 - efficiency) * len(scores) + 1e-9))  # 1e-9: (1 - 0.77) * 1000 < 230
    index = min(max(index, 0), len(scores) - 1)
    # Cut just below the score at that rank, so that rank and all above pass.
    return float(np.nextafter(scores[index], -np.inf))


def rejection(background_scores: np.ndarray, threshold: float) -> float | None:
    """1 / background efficiency above the cut; None when no background passes (unmeasurable)."""
    passed = np.count_nonzero(np.asarray(background_scores) > threshold)
    return float(len(background_scores) / passed) if passed else None


def rejection_stat_uncertainty(background_scores: np.ndarray, threshold: float) -> float | None:
    """Binomial statistical uncertainty of ``rejection``: R * sqrt((1 - p) / n) for n of N
    background jets passing (p = n / N); None when none passes. The uncertainty of the cut
    itself (from the finite signal sample) is not included."""
    total = len(background_scores)
    passed = np.count_nonzero(np.asarray(background_scores) > threshold)
    if not passed:
        return None
    return float(total / passed * np.sqrt((1.0 - passed / total) / passed))


def discriminant_light_rejection_uncertainties(
    discriminant: np.ndarray, classes: np.ndarray, efficiencies: tuple[float, ...] = METRIC_EFFICIENCIES
) -> dict[str, float | None]:
    """``rej_light_at_<eff>_stat``: the binomial uncertainty of each light rejection of
    ``discriminant_metrics`` (same discriminant and cuts)."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    b_scores, l_scores = disc[classes == B], disc[classes == LIGHT]
    return {
        f"rej_light_at_{round(eff * 100)}_stat": rejection_stat_uncertainty(
            l_scores, threshold_at_efficiency(b_scores, eff)
        )
        for eff in efficiencies
    }


def light_rejection_uncertainties(
    logits: np.ndarray, classes: np.ndarray, f_c: float, efficiencies: tuple[float, ...] = METRIC_EFFICIENCIES
) -> dict[str, float | None]:
    """``discriminant_light_rejection_uncertainties`` of the logits' D_b at ``f_c``."""
    return discriminant_light_rejection_uncertainties(
        discriminant_from_logits(logits, f_c), classes, efficiencies
    )


def discriminant_metrics(
    discriminant: np.ndarray, classes: np.ndarray, efficiencies: tuple[float, ...] = METRIC_EFFICIENCIES
) -> dict[str, float | None]:
    """AUC of b vs light and light/c rejections at the given b-efficiencies of the b-tagging
    discriminant ``discriminant`` (D_b of a network, or an expression's output)."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    b_scores, c_scores, l_scores = (disc[classes == k] for k in (B, C, LIGHT))
    if len(b_scores) == 0 or len(l_scores) == 0:
        raise ValueError("tagging metrics need both b and light jets in the sample")
    mask = (classes == B) | (classes == LIGHT)
    metrics: dict[str, float | None] = {
        "auc_b_vs_light": float(roc_auc_score(classes[mask] == B, disc[mask])),
    }
    for eff in efficiencies:
        cut = threshold_at_efficiency(b_scores, eff)
        tag = round(eff * 100)
        metrics[f"rej_light_at_{tag}"] = rejection(l_scores, cut)
        metrics[f"rej_c_at_{tag}"] = rejection(c_scores, cut) if len(c_scores) else None
    return metrics


def tagging_metrics(
    logits: np.ndarray, classes: np.ndarray, f_c: float, efficiencies: tuple[float, ...] = METRIC_EFFICIENCIES
) -> dict[str, float | None]:
    """``discriminant_metrics`` of the logits' D_b at ``f_c``."""
    return discriminant_metrics(discriminant_from_logits(logits, f_c), classes, efficiencies)


def roc_of_discriminant(discriminant: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(b-efficiency, light rejection) points of the ROC curve of ``discriminant``, for plotting."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    mask = (classes == B) | (classes == LIGHT)
    fpr, tpr, _ = roc_curve(classes[mask] == B, disc[mask])
    keep = fpr > 0
    return tpr[keep], 1.0 / fpr[keep]


def roc_light_rejection(logits: np.ndarray, classes: np.ndarray, f_c: float) -> tuple[np.ndarray, np.ndarray]:
    """``roc_of_discriminant`` of the logits' D_b at ``f_c``."""
    return roc_of_discriminant(discriminant_from_logits(logits, f_c), classes)
