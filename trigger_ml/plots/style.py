"""The look of every performance plot: mplhep's HEP style, a neutral sample label, saving.

Plots follow puma's conventions (rejection on a log y axis, b-efficiency from 0.5 to 1, a
ratio panel below, tagger names in the legend) drawn with mplhep's style. The label is
"trigger-ml simulation" and the sample (process, √s, jet selection, jets, f_c): no
experiment's branding.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402

from trigger_ml.fileio import atomic_path  # noqa: E402

LABEL_NAME = "trigger-ml"
LABEL_TEXT = "simulation"
DPI = 110
PROCESS_LABELS = {"ttbar": r"$t\bar{t}$", "dijet": "dijet", "mixed": r"$t\bar{t}$ + dijet"}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
"""Line colours in order (the reference first)."""
FLAVOUR_COLOURS = {"b": "#d62728", "c": "#2ca02c", "light": "#1f77b4", "tau": "#9467bd"}


@dataclass(frozen=True)
class SampleLabel:
    """What a physics plot says about its jets."""

    process: str  # e.g. "tt̄ jets, √s = 13.6 TeV" or "jets of user.h5"
    selection: str | None  # e.g. "anti-kt R = 0.4, pT > 20 GeV, |η| < 2.5"
    n_jets: int
    which: str  # "evaluation sample", "test split"
    f_c: float | None  # None: no D_b of three probabilities (a symbolic discriminant)

    def lines(self) -> str:
        lines = [self.process]
        if self.selection:
            lines.append(self.selection)
        jets = f"{self.n_jets:,} jets ({self.which})".replace(",", " ")
        lines.append(jets if self.f_c is None else f"{jets}, $f_c$ = {self.f_c:g}")
        return "\n".join(lines)


def _generator_settings(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(generator settings, source file) recorded in a jets.h5 file's attributes."""
    try:
        with h5py.File(path, "r") as handle:
            settings = handle.attrs.get("settings")
            source = handle.attrs.get("source")
    except OSError:
        return None, None
    return (json.loads(settings) if settings is not None else None), (str(source) if source else None)


def sample_label(sample_path: Path, n_jets: int, which: str, f_c: float | None) -> SampleLabel:
    """The label of jets from ``sample_path`` (generated: its settings; converted or a test
    split of a file: the file it came from)."""
    settings, source = _generator_settings(Path(sample_path))
    if settings is None:
        origin = Path(source).name if source else Path(sample_path).name
        return SampleLabel(f"jets of {origin}", None, n_jets, which, f_c)
    process = PROCESS_LABELS.get(settings.get("process", "ttbar"), settings.get("process", "?"))
    text = f"√s = {settings.get('sqrt_s_gev', 13600.0) / 1000:g} TeV, {process} jets"
    if settings.get("pileup_mu"):
        text += rf", $\langle\mu\rangle$ = {settings['pileup_mu']:g}"
    selection = (
        rf"anti-$k_t$ R = {settings.get('jet_r', 0.4):g}, $p_T$ > {settings.get('jet_pt_min', 20.0):g} GeV, "
        rf"$|\eta|$ < {settings.get('jet_eta_max', 2.5):g}"
    )
    return SampleLabel(text, selection, n_jets, which, f_c)


@contextlib.contextmanager
def style() -> Iterator[None]:
    """mplhep's HEP style for the plots drawn inside."""
    with plt.style.context(mplhep.style.ATLAS):
        yield


def draw_label(ax: Any, label: SampleLabel | None, extra: str | None = None) -> None:
    """ "trigger-ml simulation" in the top-left corner of ``ax``, the sample below it."""
    supp = "\n".join(part for part in ((label.lines() if label else None), extra) if part)
    mplhep.label.exp_label(
        exp=LABEL_NAME, llabel=LABEL_TEXT, rlabel="", loc=4, com=None, supp=supp or None, ax=ax
    )


LEGEND = {"loc": "upper right", "bbox_to_anchor": (1.0, 0.70), "fontsize": "small"}
"""Legend placement: at the right, below the label's lines."""
DATA_FRACTION = 0.5
"""Fraction of the axes' height (from the bottom) the data is kept in, leaving room above for
the label and the legend."""


def headroom(low: float, high: float, log: bool) -> tuple[float, float]:
    """Axis limits that put [low, high] in the bottom ``DATA_FRACTION`` of the axes."""
    if log:
        return low, low * (high / low) ** (1.0 / DATA_FRACTION)
    return low, low + (high - low) / DATA_FRACTION


def save(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)


def ratio_figure(figsize: tuple[float, float] = (7.5, 7.0)) -> tuple[Any, Any, Any]:
    """(figure, main axes, ratio axes below it sharing x)."""
    fig, (ax, rax) = plt.subplots(
        2, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.06}
    )
    return fig, ax, rax
