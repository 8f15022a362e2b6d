"""The numbers behind the performance plots: rejection curves with their binomial band,
ratios to a reference, working-point cuts and efficiencies in bins of jet pT.

Every cut is :func:`trigger_ml.physics.threshold_at_efficiency` of the b-jets, so a curve's
value at 70 % b-efficiency is the report's rejection, bit for bit, and its band the report's
``± stat`` (:func:`trigger_ml.physics.rejection_stat_uncertainty`). Conventions follow puma:
the binomial uncertainty of a rejection R measured on N background jets is
R² √((1/R)(1 − 1/R)/N); in a ratio panel a curve's ratio R/R_ref carries the curve's own
relative uncertainty (the reference's shows as its band around 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_ml.physics import LIGHT, B, threshold_at_efficiency

EFFICIENCY_GRID = np.round(np.arange(0.5, 1.0 + 1e-9, 0.005), 3)
"""b-efficiencies at which ROC curves are evaluated (puma's range: 0.5 to 1)."""
WORKING_POINTS = (0.70, 0.77, 0.85)
"""b-efficiencies of the working-point cuts drawn on the discriminant."""
PT_EDGES_GEV = (20, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2500)
"""Candidate jet-pT bin edges (GeV); :func:`pt_bin_edges` merges bins that hold too few jets."""
MIN_JETS_PER_BIN = 100
"""Fewest b-jets and fewest light jets in a pT bin."""


@dataclass(frozen=True)
class RejectionCurve:
    """Background rejection at each signal efficiency of ``efficiency`` (NaN where no
    background jet passes), with its binomial uncertainty, from ``n_background`` jets."""

    efficiency: np.ndarray
    rejection: np.ndarray
    uncertainty: np.ndarray
    n_background: int


def binomial_rejection_uncertainty(rejection: np.ndarray, n_background: int) -> np.ndarray:
    """R² √((1/R)(1 − 1/R)/N): the binomial uncertainty of a rejection R on N background jets
    (NaN where R is NaN)."""
    rej = np.asarray(rejection, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return rej**2 * np.sqrt((1.0 / rej) * (1.0 - 1.0 / rej) / n_background)


def binomial_efficiency_uncertainty(efficiency: np.ndarray, n: np.ndarray) -> np.ndarray:
    """√(ε(1 − ε)/n): the binomial uncertainty of an efficiency ε measured on n jets."""
    eff = np.asarray(efficiency, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(eff * (1.0 - eff) / np.asarray(n, dtype=np.float64))


def passing(scores: np.ndarray, signal_sorted: np.ndarray, efficiencies: np.ndarray) -> np.ndarray:
    """Jets of ``scores`` above the cut of each signal efficiency (the cut of
    :func:`~trigger_ml.physics.threshold_at_efficiency` on the sorted signal scores)."""
    n = len(signal_sorted)
    index = np.clip(np.floor((1.0 - np.asarray(efficiencies)) * n + 1e-9).astype(np.int64), 0, n - 1)
    # The cut is just below signal_sorted[index]: a score passes when it is >= that value.
    return len(scores) - np.searchsorted(np.sort(scores), signal_sorted[index], side="left")


def rejection_curve(
    discriminant: np.ndarray,
    classes: np.ndarray,
    background: int = LIGHT,
    efficiencies: np.ndarray = EFFICIENCY_GRID,
) -> RejectionCurve:
    """Rejection of the class ``background`` against b-jets at each b-efficiency."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    signal = np.sort(disc[classes == B])
    bkg = disc[classes == background]
    if len(signal) == 0 or len(bkg) == 0:
        raise ValueError("a rejection curve needs b-jets and background jets")
    passed = passing(bkg, signal, efficiencies).astype(np.float64)
    with np.errstate(divide="ignore"):
        rejection = np.where(passed > 0, len(bkg) / passed, np.nan)
    efficiencies = np.asarray(efficiencies, dtype=np.float64)
    return RejectionCurve(
        efficiencies, rejection, binomial_rejection_uncertainty(rejection, len(bkg)), len(bkg)
    )


def ratio_to(curve: RejectionCurve, reference: RejectionCurve) -> tuple[np.ndarray, np.ndarray]:
    """(R / R_ref, its uncertainty): the curve's own relative uncertainty times the ratio
    (puma's convention; the reference's uncertainty is drawn as its band around 1)."""
    if not np.array_equal(curve.efficiency, reference.efficiency):
        raise ValueError("curves at different efficiencies cannot be divided")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = curve.rejection / reference.rejection
        return ratio, ratio * curve.uncertainty / curve.rejection


def working_point_cuts(
    discriminant: np.ndarray, classes: np.ndarray, efficiencies: tuple[float, ...] = WORKING_POINTS
) -> dict[float, float]:
    """The discriminant cut of each inclusive b-efficiency working point."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    b_scores = disc[np.asarray(classes) == B]
    return {eff: threshold_at_efficiency(b_scores, eff) for eff in efficiencies}


def pt_bin_edges(
    pt_gev: np.ndarray,
    classes: np.ndarray,
    candidates: tuple[float, ...] = PT_EDGES_GEV,
    min_jets: int = MIN_JETS_PER_BIN,
) -> np.ndarray:
    """Bin edges (GeV) from ``candidates`` covering every jet, adjacent bins merged until each
    holds at least ``min_jets`` b-jets and ``min_jets`` light jets (fewer only if the whole
    sample does)."""
    pt = np.asarray(pt_gev, dtype=np.float64)
    classes = np.asarray(classes)
    edges = [e for e in candidates if pt.min() < e < pt.max()]
    edges = [min(candidates[0], float(np.floor(pt.min())))] + edges
    edges.append(max(float(np.ceil(pt.max())), edges[-1] + 1.0))
    kept = [edges[0]]
    for upper in edges[1:]:
        inside = (pt >= kept[-1]) & (pt < upper)
        if (
            min(np.count_nonzero(inside & (classes == B)), np.count_nonzero(inside & (classes == LIGHT)))
            >= min_jets
        ):
            kept.append(upper)
    if len(kept) == 1:
        kept.append(edges[-1])
    else:
        kept[-1] = edges[-1]  # an under-filled last bin joins the one before it
    return np.asarray(kept, dtype=np.float64)


@dataclass(frozen=True)
class BinnedPerformance:
    """b-efficiency and light rejection in bins of jet pT at one inclusive cut."""

    edges: np.ndarray
    b_efficiency: np.ndarray
    b_efficiency_uncertainty: np.ndarray
    light_rejection: np.ndarray  # NaN where no light jet passes
    light_rejection_uncertainty: np.ndarray


def performance_vs_pt(
    discriminant: np.ndarray, classes: np.ndarray, pt_gev: np.ndarray, edges: np.ndarray, cut: float
) -> BinnedPerformance:
    """Per pT bin: the b-efficiency and light rejection of the cut ``discriminant > cut``."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    pt = np.asarray(pt_gev, dtype=np.float64)
    bins = np.clip(np.searchsorted(edges, pt, side="right") - 1, 0, len(edges) - 2)
    tagged = disc > cut
    n_bins = len(edges) - 1

    def counts(flavour: int) -> tuple[np.ndarray, np.ndarray]:
        mine = classes == flavour
        return (
            np.bincount(bins[mine], minlength=n_bins).astype(np.float64),
            np.bincount(bins[mine & tagged], minlength=n_bins).astype(np.float64),
        )

    n_b, pass_b = counts(B)
    n_l, pass_l = counts(LIGHT)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(n_b > 0, pass_b / n_b, np.nan)
        rej = np.where(pass_l > 0, n_l / pass_l, np.nan)
        rej_err = np.where(pass_l > 0, rej * np.sqrt((1.0 - pass_l / n_l) / pass_l), np.nan)
    return BinnedPerformance(edges, eff, binomial_efficiency_uncertainty(eff, n_b), rej, rej_err)
