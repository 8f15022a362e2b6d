"""Validation plots on a small real Pythia sample: files written, sd0 tails ordered b > c > light."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.data.plots import tail_fractions, write_validation_plots
from trigger_ml.errors import TriggerMLError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_validation_plots_and_sd0_tail_ordering(tiny_sample: Path) -> None:
    written = write_validation_plots(tiny_sample)
    names = sorted(path.name for path in written)
    assert names == sorted(
        [
            "sd0.png",
            "sz0.png",
            "n_tracks.png",
            "jet_pt.png",
            "jet_eta.png",
            "flavour_fractions.png",
            "summary.json",
        ]
    )
    for path in written:
        assert path.parent == tiny_sample.parent / "plots"
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
    summary = json.loads((tiny_sample.parent / "plots" / "summary.json").read_text())["flavours"]
    tails = {name: summary[name]["frac_sd0_above"] for name in ("b", "c", "light")}
    assert summary["c"]["tracks"] > 100  # enough c-jet tracks for the ordering to mean something
    assert tails["b"] > tails["c"] > tails["light"], tails
    with h5py.File(tiny_sample, "r") as handle:
        again = tail_fractions(handle["jets"][...], handle["tracks"][...])
    assert again["flavours"]["b"]["frac_sd0_above"] == tails["b"]


def test_tail_fractions_on_hand_made_tracks() -> None:
    jets = np.zeros(3, [("flavour", "i1")])
    jets["flavour"] = [5, 4, 0]
    tracks = np.zeros(
        (3, 4),
        [
            ("valid", "?"),
            ("d0_mm", "f4"),
            ("d0_sigma_mm", "f4"),
            ("z0sintheta_mm", "f4"),
            ("z0sintheta_sigma_mm", "f4"),
        ],
    )
    tracks["valid"][:, :2] = True
    tracks["d0_sigma_mm"] = tracks["z0sintheta_sigma_mm"] = 0.01
    tracks["d0_mm"][0, :2] = [0.05, 0.04]  # b: both above 3 sigma
    tracks["d0_mm"][1, :2] = [0.05, 0.0]  # c: one of two
    summary = tail_fractions(jets, tracks)["flavours"]
    assert [summary[f]["frac_sd0_above"] for f in ("b", "c", "light")] == [1.0, 0.5, 0.0]
    assert summary["light"]["mean_n_tracks"] == 2.0


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TriggerMLError, match="does not exist"):
        write_validation_plots(tmp_path / "jets.h5")
