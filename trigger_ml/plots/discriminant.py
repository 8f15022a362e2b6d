"""The b-tagging discriminant D_b per flavour, with the working-point cuts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trigger_ml.physics import CLASS_NAMES
from trigger_ml.plots.curves import WORKING_POINTS, working_point_cuts
from trigger_ml.plots.style import (
    DATA_FRACTION,
    FLAVOUR_COLOURS,
    LEGEND,
    SampleLabel,
    draw_label,
    headroom,
    save,
    style,
)

N_BINS = 60
WP_LINESTYLES = ("--", "-.", ":", (0, (5, 1)), (0, (1, 3)))


def plot_discriminant(
    path: Path,
    discriminant: np.ndarray,
    classes: np.ndarray,
    tagger: str,
    label: SampleLabel | None = None,
    efficiencies: tuple[float, ...] = WORKING_POINTS,
) -> dict[float, float]:
    """Normalised D_b of b, c and light jets of ``tagger`` with a vertical line at the cut of
    each inclusive b-efficiency working point; returns the cuts."""
    disc = np.asarray(discriminant, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes)
    cuts = working_point_cuts(disc, classes, efficiencies)
    low, high = np.percentile(disc, [0.05, 99.95])
    edges = np.linspace(low, high, N_BINS + 1)
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(7.5, 5.6))
        for index, name in enumerate(CLASS_NAMES):
            values = np.clip(disc[classes == index], low, high)  # outside: the first or last bin
            if len(values):
                ax.hist(
                    values,
                    bins=edges,
                    density=True,
                    histtype="step",
                    linewidth=1.6,
                    color=FLAVOUR_COLOURS[name],
                    label=f"{name}-jets",
                )
        ax.set_yscale("log")
        ax.set_ylim(*headroom(*ax.get_ylim(), log=True))
        for (eff, cut), dash in zip(cuts.items(), WP_LINESTYLES, strict=False):
            ax.axvline(
                cut,
                ymax=DATA_FRACTION,
                color="dimgrey",
                linestyle=dash,
                linewidth=1.2,
                label=f"{eff:.0%} WP cut",
            )
        ax.set_xlim(low, high)
        ax.set_xlabel(f"$D_b$ of {tagger}")
        ax.set_ylabel("normalised number of jets")
        ax.legend(**LEGEND)
        draw_label(ax, label)
        save(fig, path)
    return cuts
