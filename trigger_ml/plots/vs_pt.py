"""b-efficiency and light rejection against jet pT at a fixed inclusive working point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter

from trigger_ml.plots.curves import BinnedPerformance, performance_vs_pt, pt_bin_edges, working_point_cuts
from trigger_ml.plots.style import COLOURS, LEGEND, SampleLabel, draw_label, headroom, save, style

WORKING_POINT = 0.70
PT_TICKS = (20, 30, 50, 100, 200, 300, 500, 1000, 2000)
MARKERS = ("o", "s", "^", "v", "D", "P")
QUANTITIES = {
    "b_efficiency": ("b_efficiency", "b_efficiency_uncertainty", "$b$-jet efficiency", False),
    "light_rejection": ("light_rejection", "light_rejection_uncertainty", "light-jet rejection", True),
}


def binned_performances(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], pt_gev: np.ndarray, efficiency: float = WORKING_POINT
) -> dict[str, BinnedPerformance]:
    """Each tagger's (D_b, classes) on the same jets of pT ``pt_gev``, binned in pT with the
    cut of its own inclusive ``efficiency`` working point."""
    first_classes = next(iter(curves.values()))[1]
    edges = pt_bin_edges(pt_gev, first_classes)
    return {
        name: performance_vs_pt(
            disc, classes, pt_gev, edges, working_point_cuts(disc, classes, (efficiency,))[efficiency]
        )
        for name, (disc, classes) in curves.items()
    }


def plot_vs_pt(
    path: Path,
    performances: dict[str, BinnedPerformance],
    quantity: str,
    label: SampleLabel | None = None,
    efficiency: float = WORKING_POINT,
) -> None:
    """``quantity`` (``b_efficiency`` or ``light_rejection``) per pT bin of every tagger, the
    bin's width as x error and the binomial uncertainty as y error."""
    value_key, error_key, y_label, log = QUANTITIES[quantity]
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(7.5, 5.6))
        n = len(performances)
        for i, (name, perf) in enumerate(performances.items()):
            edges = perf.edges
            centres = 0.5 * (edges[1:] + edges[:-1])
            half = 0.5 * np.diff(edges)
            # Taggers side by side within a bin, so overlapping points stay visible.
            x = centres + (i - (n - 1) / 2) * 0.12 * half
            values, errors = getattr(perf, value_key), getattr(perf, error_key)
            ok = np.isfinite(values)
            ax.errorbar(
                x[ok],
                values[ok],
                xerr=np.stack([x - edges[:-1], edges[1:] - x])[:, ok],  # the whole bin
                yerr=errors[ok],
                fmt=MARKERS[i % len(MARKERS)],
                color=COLOURS[i % len(COLOURS)],
                markersize=5,
                capsize=0,
                label=name,
            )
        edges = next(iter(performances.values())).edges
        ax.set_xscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ticks = [t for t in PT_TICKS if edges[0] <= t <= edges[-1]]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("jet $p_T$ [GeV]")
        ax.set_ylabel(y_label)
        low, high = _extent(performances, value_key, error_key)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(*headroom(max(low / 1.5, 1.0), high * 1.2, log=True))
        else:
            ax.axhline(efficiency, color="grey", linestyle="--", linewidth=0.8)
            ax.set_ylim(*headroom(max(0.0, min(low, efficiency) - 0.05), min(1.0, high) + 0.02, log=False))
        ax.legend(**LEGEND)
        draw_label(ax, label, f"inclusive {efficiency:.0%} $b$-efficiency working point")
        save(fig, path)


def _extent(
    performances: dict[str, BinnedPerformance], value_key: str, error_key: str
) -> tuple[float, float]:
    """(lowest, highest) of value ∓ uncertainty over every tagger's finite points."""
    lows, highs = [], []
    for perf in performances.values():
        values, errors = getattr(perf, value_key), getattr(perf, error_key)
        ok = np.isfinite(values)
        lows.append((values - np.nan_to_num(errors))[ok])
        highs.append((values + np.nan_to_num(errors))[ok])
    low, high = np.concatenate(lows), np.concatenate(highs)
    if not len(low):
        return 1.0, 10.0
    return float(max(low.min(), 1e-3)), float(high.max())
