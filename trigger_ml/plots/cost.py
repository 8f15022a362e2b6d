"""The per-layer cost of a firmware build as a bar chart, from the cost section that has
per-layer figures (``per_layer`` of report.json's ``cost``; docs/cost-model.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.plots.style import COLOURS, save, style

RESOURCES = ("LUT", "FF", "DSP", "BRAM_18K")
SOURCE_WORDS = {
    "estimate": "analytic estimate of hls4ml's templates",
    "da4ml": "da4ml's cost model of the adder graph",
    "rtl": "Yosys cell counts of the RTL",
    "vendor": "vendor HLS report",
}


def per_layer_section(cost: dict[str, Any]) -> dict[str, Any] | None:
    """The cost section with per-layer figures: the best one if it has them, else the first
    source (in the order of trust) that has; None if none has."""
    best = cost.get("best") or {}
    if best.get("per_layer"):
        return best
    from trigger_ml.cost.sections import SOURCE_PRIORITY

    sources = cost.get("sources") or {}
    for name in SOURCE_PRIORITY:
        section = sources.get(name)
        if section and section.get("per_layer"):
            return section
    return None


def plot_layer_costs(path: Path, section: dict[str, Any], title: str) -> None:
    """Bars of LUT and FF (and DSP, BRAM where any layer uses them) per layer of ``section``,
    with its source in the title."""
    layers = section["per_layer"]
    names = [f"{layer['name']}\n({layer['class']})" for layer in layers]
    used = [key for key in RESOURCES if key == "LUT" or any(layer.get(key) for layer in layers)]
    x = np.arange(len(layers))
    width = 0.8 / len(used)
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(layers) + 2), 5.6))
        for i, key in enumerate(used):
            values = np.array([float(layer.get(key) or 0) for layer in layers])
            bars = ax.bar(x + (i - (len(used) - 1) / 2) * width, values, width, label=key, color=COLOURS[i])
            for bar, value in zip(bars, values, strict=True):
                if value > 0:
                    ax.annotate(
                        f"{value:.0f}",
                        (bar.get_x() + bar.get_width() / 2, value),
                        ha="center",
                        va="bottom",
                        fontsize="xx-small",
                        rotation=90,
                        xytext=(0, 2),
                        textcoords="offset points",
                    )
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize="x-small")
        ax.set_ylabel("resources per layer")
        ax.set_yscale("symlog", linthresh=10)
        bottom, top = ax.get_ylim()
        ax.set_ylim(0, top * 20)
        ax.legend(loc="upper right", fontsize="small", ncols=len(used))
        source = section["source"]
        ax.set_title(
            f"{title}\ncost per layer, source: {source} ({SOURCE_WORDS.get(source, source)})",
            fontsize="small",
            loc="left",
        )
        fig.tight_layout()
        save(fig, path)
