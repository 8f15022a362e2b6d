"""Validation plots of a jets.h5 sample, per flavour (b, c, light, and tau when labelled).

``write_validation_plots(jets_h5)`` writes into ``<sample dir>/plots/``:

===========================  ===============================================================
sd0.png                      signed d0 significance of the stored tracks, normalised per flavour
sz0.png                      signed z0 sin(theta) significance, same
n_tracks.png                 selected tracks per jet (before truncation), normalised
jet_pt.png                   jet pT, normalised
jet_eta.png                  jet eta, normalised
flavour_fractions.png        fraction of b, c and light jets
summary.json                 per flavour: jets, tracks, the fraction of tracks with sd0 > 3
                             and with |sz0| > 3, mean track multiplicity
===========================  ===============================================================

Histogram contents outside the plotted range are added to the first or last bin. The
expected ordering of the sd0 tails is b > c > light: b-hadron decay products are the most
displaced. ``python -m trigger_ml.data.plots path/to/jets.h5`` runs it from a shell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.data.dataset import read_sample
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import atomic_path, write_json_atomic

FLAVOURS = (("b", 5, "tab:red"), ("c", 4, "tab:green"), ("light", 0, "tab:blue"))
"""(name, label value, colour) of the flavours plotted."""
TAU_FLAVOUR = ("tau", 15, "tab:purple")
"""Plotted as well when a sample has tau-labelled jets (generator setting ``label_taus``)."""
TAIL_SIGNIFICANCE = 3.0


def significances(tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed d0 and z0 sin(theta) significances, (n_jets, n_slots); 0 on padding."""
    valid = tracks["valid"].astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd0 = np.where(valid, tracks["d0_mm"] / tracks["d0_sigma_mm"], 0.0)
        sz0 = np.where(valid, tracks["z0sintheta_mm"] / tracks["z0sintheta_sigma_mm"], 0.0)
    return sd0, sz0


def flavours_in(jets: np.ndarray) -> tuple[tuple[str, int, str], ...]:
    """FLAVOURS, plus tau when the sample has tau-labelled jets."""
    return FLAVOURS + ((TAU_FLAVOUR,) if np.any(jets["flavour"] == TAU_FLAVOUR[1]) else ())


def tail_fractions(
    jets: np.ndarray, tracks: np.ndarray, threshold: float = TAIL_SIGNIFICANCE
) -> dict[str, Any]:
    """Per flavour: jets, valid tracks, the fraction of tracks with sd0 > threshold and with
    |sz0| > threshold, and the mean number of selected tracks per jet."""
    sd0, sz0 = significances(tracks)
    valid = tracks["valid"].astype(bool)
    n_tracks = jets["n_tracks"] if "n_tracks" in (jets.dtype.names or ()) else valid.sum(axis=1)
    summary = {}
    for name, code, _ in flavours_in(jets):
        rows = jets["flavour"] == code
        mask = valid & rows[:, None]
        n = int(mask.sum())
        summary[name] = {
            "jets": int(rows.sum()),
            "tracks": n,
            "frac_sd0_above": float((sd0[mask] > threshold).mean()) if n else None,
            "frac_abs_sz0_above": float((np.abs(sz0[mask]) > threshold).mean()) if n else None,
            "mean_n_tracks": float(np.mean(n_tracks[rows])) if rows.any() else None,
        }
    return {"threshold": threshold, "flavours": summary}


def write_validation_plots(jets_h5: Path) -> list[Path]:
    """Write the validation plots of a jets.h5 into ``<its directory>/plots/``; return the
    paths written (PNG files and summary.json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample = read_sample(Path(jets_h5))
    jets, tracks = sample.jets, sample.tracks
    out_dir = Path(jets_h5).parent / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    sd0, sz0 = significances(tracks)
    valid = tracks["valid"].astype(bool)
    n_tracks = jets["n_tracks"] if "n_tracks" in (jets.dtype.names or ()) else valid.sum(axis=1)
    flavours = flavours_in(jets)
    pt_high = max(float(np.percentile(jets["pt"], 99.5)), 30.0)
    per_track = {"sd0": sd0, "sz0": sz0}
    specs = [
        ("sd0.png", "signed d0 significance $d_0/\\sigma(d_0)$", "sd0", np.linspace(-10, 40, 101), True),
        ("sz0.png", "signed $z_0\\sin\\theta$ significance", "sz0", np.linspace(-20, 20, 81), True),
        (
            "n_tracks.png",
            "selected tracks per jet",
            "n_tracks",
            np.arange(-0.5, int(n_tracks.max()) + 1.5),
            False,
        ),
        ("jet_pt.png", "jet $p_T$ [GeV]", "pt", np.linspace(float(jets["pt"].min()), pt_high, 61), True),
        ("jet_eta.png", "jet $\\eta$", "eta", np.linspace(-2.5, 2.5, 51), False),
    ]
    written = []
    for filename, xlabel, key, bins, log in specs:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for name, code, colour in flavours:
            rows = jets["flavour"] == code
            if key in per_track:
                values = per_track[key][rows][valid[rows]]
            elif key == "n_tracks":
                values = n_tracks[rows]
            else:
                values = jets[key][rows]
            if len(values) == 0:
                continue
            clipped = np.clip(values, bins[0] + 1e-9, bins[-1] - 1e-9)
            ax.hist(
                clipped,
                bins=bins,
                density=True,
                histtype="step",
                color=colour,
                label=f"{name} ({rows.sum()} jets)",
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("normalised")
        if log:
            ax.set_yscale("log")
        ax.legend(frameon=False)
        ax.set_title(f"{Path(jets_h5).parent.name}: {len(jets)} jets", fontsize=9)
        fig.tight_layout()
        written.append(_save(fig, out_dir / filename))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    fractions = [float(np.mean(jets["flavour"] == code)) for _, code, _ in flavours]
    bars = ax.bar([name for name, _, _ in flavours], fractions, color=[c for _, _, c in flavours])
    ax.bar_label(bars, labels=[f"{f:.3f}" for f in fractions])
    ax.set_ylabel("fraction of jets")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    written.append(_save(fig, out_dir / "flavour_fractions.png"))
    plt.close(fig)

    summary_path = out_dir / "summary.json"
    write_json_atomic(summary_path, {"jets_file": str(jets_h5), **tail_fractions(jets, tracks)})
    written.append(summary_path)
    return written


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m trigger_ml.data.plots JETS_H5``: write the plots, print their paths."""
    parser = argparse.ArgumentParser(
        prog="python -m trigger_ml.data.plots", description=__doc__.splitlines()[0]
    )
    parser.add_argument("jets_h5", type=Path)
    args = parser.parse_args(argv)
    try:
        paths = write_validation_plots(args.jets_h5)
    except TriggerMLError as error:
        print(error.one_line(), file=sys.stderr)
        return error.exit_code
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
