"""ROC curves: light- or c-jet rejection against b-efficiency, with the binomial band and a
ratio panel to a reference tagger (puma's layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trigger_ml.physics import LIGHT, C
from trigger_ml.plots.curves import EFFICIENCY_GRID, RejectionCurve, ratio_to, rejection_curve
from trigger_ml.plots.style import (
    COLOURS,
    LEGEND,
    SampleLabel,
    draw_label,
    headroom,
    ratio_figure,
    save,
    style,
)

BACKGROUNDS = {"light": (LIGHT, "light-jet rejection"), "c": (C, "c-jet rejection")}
LINESTYLES = ("-", "--", ":", "-.")


def rejection_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], background: str
) -> dict[str, RejectionCurve]:
    """The rejection curve of each tagger's (discriminant, classes) against ``background``
    (``light`` or ``c``); taggers without such background jets are left out."""
    flavour = BACKGROUNDS[background][0]
    return {
        name: rejection_curve(disc, classes, flavour, EFFICIENCY_GRID)
        for name, (disc, classes) in curves.items()
        if np.any(np.asarray(classes) == flavour)
    }


def plot_rejection(
    path: Path,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    background: str = "light",
    reference: str | None = None,
    label: SampleLabel | None = None,
    linestyles: dict[str, str] | None = None,
) -> None:
    """Rejection of ``background`` vs b-efficiency of every tagger (name -> (D_b, classes)),
    each with its binomial band, and below it the ratio to the tagger ``reference`` (default:
    the first)."""
    rejections = rejection_curves(curves, background)
    if not rejections:
        raise ValueError(f"no tagger has {background} jets")
    reference = reference if reference in rejections else next(iter(rejections))
    ref = rejections[reference]
    linestyles = linestyles or {}
    with style():
        fig, ax, rax = ratio_figure()
        highest = 1.0
        for i, (name, curve) in enumerate(rejections.items()):
            colour = COLOURS[i % len(COLOURS)]
            dash = linestyles.get(name, LINESTYLES[i % len(LINESTYLES)])
            ok = np.isfinite(curve.rejection)
            x, y, err = curve.efficiency[ok], curve.rejection[ok], curve.uncertainty[ok]
            ax.plot(x, y, dash, color=colour, label=name + (" (reference)" if name == reference else ""))
            ax.fill_between(x, y - err, y + err, color=colour, alpha=0.25, linewidth=0)
            if len(y):
                highest = max(highest, float(np.nanmax(y)))
            ratio, ratio_err = ratio_to(curve, ref)
            keep = np.isfinite(ratio)
            rax.plot(curve.efficiency[keep], ratio[keep], dash, color=colour)
            rax.fill_between(
                curve.efficiency[keep],
                (ratio - ratio_err)[keep],
                (ratio + ratio_err)[keep],
                color=colour,
                alpha=0.25,
                linewidth=0,
            )
        ax.set_yscale("log")
        ax.set_ylim(*headroom(1.0, max(highest, 2.0), log=True))
        ax.set_ylabel(BACKGROUNDS[background][1])
        ax.legend(**LEGEND)
        draw_label(ax, label, "band: binomial stat. uncertainty")
        rax.axhline(1.0, color="grey", linewidth=0.8)
        rax.set_xlim(float(EFFICIENCY_GRID[0]), float(EFFICIENCY_GRID[-1]))
        rax.set_ylabel("ratio to ref.")
        rax.set_xlabel("$b$-jet efficiency")
        save(fig, path)
