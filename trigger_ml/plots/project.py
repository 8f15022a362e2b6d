"""The plots of an HLS project, on its evaluation sample (:func:`write_project_plots`).

From ``evaluation_predictions.h5`` (logits of each model kind) and ``ftag_evaluation.h5``
(tagger names, jet pT), into the project directory:

=====================  ======================================================================
roc.png                light-jet rejection vs b-efficiency of every kind, ratio to the float twin
roc_c.png              c-jet rejection vs b-efficiency, the same
discriminant.png       D_b of the firmware per flavour, with the 70/77/85 % working-point cuts
beff_vs_pt.png         b-efficiency vs jet pT at the inclusive 70 % working point
light_rej_vs_pt.png    light rejection vs jet pT at the inclusive 70 % working point
logit_diff.png         firmware − float twin logits, per class
cost_per_layer.png     resources per layer, when a cost source has per-layer figures
=====================  ======================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.errors import TriggerMLError
from trigger_ml.ftag import EVALUATION_FILE, MEV_PER_GEV, read_table
from trigger_ml.logs import stage_logger
from trigger_ml.physics import LIGHT, C, discriminant_from_logits
from trigger_ml.plots.cost import per_layer_section, plot_layer_costs
from trigger_ml.plots.discriminant import plot_discriminant
from trigger_ml.plots.roc import plot_rejection
from trigger_ml.plots.style import sample_label, save, style
from trigger_ml.plots.vs_pt import binned_performances, plot_vs_pt

logger = stage_logger("hls")

KIND_ORDER = ("float", "qkeras", "firmware")
"""Legend order; the float twin (the reference of the ratio panels) first."""
LINESTYLES = {"float": "-", "qkeras": "--", "firmware": ":"}
PLOT_FILES = {
    "roc.png": "light-jet rejection vs b-efficiency, ratio to the float twin, binomial band",
    "roc_c.png": "c-jet rejection vs b-efficiency, ratio to the float twin, binomial band",
    "discriminant.png": "D_b of the firmware per flavour with the 70/77/85 % working-point cuts",
    "beff_vs_pt.png": "b-efficiency vs jet pT at the inclusive 70 % working point",
    "light_rej_vs_pt.png": "light-jet rejection vs jet pT at the inclusive 70 % working point",
    "logit_diff.png": "firmware - float twin logits per class",
    "cost_per_layer.png": "resources per layer (the cost source with per-layer figures)",
}


def _read_logits(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    with h5py.File(path, "r") as handle:
        classes = handle["classes"][()]
        logits = {
            key.removeprefix("logits_"): handle[key][()].astype(np.float64)
            for key in handle
            if key.startswith("logits_")
        }
    return {kind: logits[kind] for kind in sorted(logits, key=_order)}, classes


def _order(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def plot_logit_diff(path: Path, diff: np.ndarray, class_names: tuple[str, ...], title: str) -> None:
    """Histogram of the firmware − float logit differences of each class."""
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(7.5, 5.6))
        for i, name in enumerate(class_names):
            ax.hist(diff[:, i], bins=80, histtype="step", linewidth=1.4, label=f"logit {name}")
        ax.set_yscale("log")
        ax.set_xlabel("firmware − float logit")
        ax.set_ylabel("jets")
        ax.set_title(title, fontsize="small", loc="left")
        ax.legend(loc="upper right", fontsize="small")
        save(fig, path)


def write_project_plots(
    directory: Path, report: dict[str, Any], config: ModelConfig, predictions_file: str
) -> dict[str, str]:
    """Write the plots of the project in ``directory`` (whose report content is ``report``);
    returns {file: what it shows} of those written."""
    logits, classes = _read_logits(directory / predictions_file)
    table, description = read_table(directory / EVALUATION_FILE)
    taggers: dict[str, str] = description["taggers"]
    if len(table) != len(classes):
        raise TriggerMLError(
            f"{directory}: {EVALUATION_FILE} has {len(table)} jets, {predictions_file} {len(classes)}",
            "rebuild the project with --force",
        )
    f_c = config.physics.f_c
    evaluation = report["evaluation"]
    label = sample_label(Path(evaluation["path"]), int(len(classes)), "evaluation sample", f_c)
    curves = {
        taggers[kind]: (discriminant_from_logits(values, f_c), classes) for kind, values in logits.items()
    }
    styles = {taggers[kind]: LINESTYLES.get(kind, "-") for kind in logits}
    reference = taggers.get("float", next(iter(curves)))
    written = {}
    for background, name in (("light", "roc.png"), ("c", "roc_c.png")):
        if np.any(classes == (LIGHT if background == "light" else C)):
            plot_rejection(directory / name, curves, background, reference, label, styles)
            written[name] = PLOT_FILES[name]
    record = taggers.get("firmware", reference)
    plot_discriminant(directory / "discriminant.png", curves[record][0], classes, record, label)
    written["discriminant.png"] = PLOT_FILES["discriminant.png"]
    performances = binned_performances(curves, table["pt"].astype(np.float64) / MEV_PER_GEV)
    for quantity, name in (("b_efficiency", "beff_vs_pt.png"), ("light_rejection", "light_rej_vs_pt.png")):
        plot_vs_pt(directory / name, performances, quantity, label)
        written[name] = PLOT_FILES[name]
    if "float" in logits and "firmware" in logits:
        title = f"{config.name} (evaluation sample)"
        plot_logit_diff(
            directory / "logit_diff.png",
            logits["firmware"] - logits["float"],
            config.architecture.classes,
            title,
        )
        written["logit_diff.png"] = PLOT_FILES["logit_diff.png"]
    section = per_layer_section(report["cost"])
    if section is not None:
        plot_layer_costs(directory / "cost_per_layer.png", section, config.name)
        written["cost_per_layer.png"] = f"resources per layer, source: {section['source']}"
    else:
        logger.debug(f"{config.name}: no cost source has per-layer figures; no cost_per_layer.png")
    return written
