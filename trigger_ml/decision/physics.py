"""Rejections of the firmware decision against the exact D_b of the same logits.

Per sample (the evaluation sample of record, the test split) and working point:

* ``exact``: float64 D_b of the firmware logits (trigger_ml.physics), cut at the working
  point's b-efficiency on that sample;
* ``max_form``: the firmware's integer score, cut at that efficiency on that sample (the
  effect of the max-form approximation and the score's quantization alone);
* ``firmware``: the tag bit, i.e. the integer threshold fixed on the test split, with the
  b-efficiency it achieves on the sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_ml.decision.score import ScoreSpec, max_form_codes, threshold_code
from trigger_ml.physics import LIGHT, B, C, discriminant_from_logits, rejection, threshold_at_efficiency


def _passing(values: np.ndarray, passed: np.ndarray) -> float | None:
    n = int(np.count_nonzero(passed))
    return float(len(values) / n) if n else None


def _passing_stat(values: np.ndarray, passed: np.ndarray) -> float | None:
    """Binomial uncertainty of :func:`_passing` (as trigger_ml.physics.rejection_stat_uncertainty)."""
    total, n = len(values), int(np.count_nonzero(passed))
    return float(total / n * np.sqrt((1.0 - n / total) / n)) if n else None


def decision_physics(
    spec: ScoreSpec,
    logits: np.ndarray,
    codes: np.ndarray,
    classes: np.ndarray,
    efficiencies: tuple[float, ...],
    thresholds: list[int],
) -> dict[str, Any]:
    """Rows per working point for one sample (float ``logits`` and their integer ``codes``)."""
    disc = discriminant_from_logits(logits, spec.f_c)
    score = max_form_codes(spec, codes)
    b, c, light = (classes == k for k in (B, C, LIGHT))
    rows = []
    for efficiency, code in zip(efficiencies, thresholds, strict=True):
        cut = threshold_at_efficiency(disc[b], efficiency)
        own = threshold_code(score[b], efficiency)
        tagged = score >= code
        rows.append(
            {
                "b_efficiency": efficiency,
                "exact": {
                    "rej_light": rejection(disc[light], cut),
                    "rej_light_stat": _passing_stat(disc[light], disc[light] > cut),
                    "rej_c": rejection(disc[c], cut) if c.any() else None,
                    "b_efficiency": float(np.mean(disc[b] > cut)),
                },
                "max_form": {
                    "rej_light": _passing(score[light], score[light] >= own),
                    "rej_c": _passing(score[c], score[c] >= own) if c.any() else None,
                    "b_efficiency": float(np.mean(score[b] >= own)),
                    "threshold_code": own,
                },
                "firmware": {
                    "threshold_code": code,
                    "b_efficiency": float(np.mean(tagged[b])),
                    "rej_light": _passing(score[light], tagged[light]),
                    "rej_light_stat": _passing_stat(score[light], tagged[light]),
                    "rej_c": _passing(score[c], tagged[c]) if c.any() else None,
                },
            }
        )
    return {
        "n_jets": int(len(classes)),
        "n_b": int(b.sum()),
        "n_c": int(c.sum()),
        "n_light": int(light.sum()),
        "max_abs_score_minus_db": float(np.max(np.abs(score * spec.score.lsb - disc))),
        "working_points": rows,
    }
