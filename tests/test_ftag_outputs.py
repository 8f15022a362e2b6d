"""FTAG conventions out and the plots people expect (issue #16 items 3-4).

The numbers behind the plots (rejection curves, binomial bands, ratios, pT bins) are tested
on their own against known binomials and against the report's figures; the files on the tiny
model's real project (read with plain h5py, as a puma or salt user would).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.config import load_model_config
from trigger_ml.physics import (
    LIGHT,
    B,
    discriminant_from_logits,
    rejection,
    rejection_stat_uncertainty,
    threshold_at_efficiency,
)
from trigger_ml.plots.curves import (
    binomial_efficiency_uncertainty,
    binomial_rejection_uncertainty,
    performance_vs_pt,
    pt_bin_edges,
    ratio_to,
    rejection_curve,
    working_point_cuts,
)

PROBABILITY_SUFFIXES = ("pb", "pc", "pu")
FTAG_FIELDS = {"HadronConeExclTruthLabelID": np.int32, "pt": np.float32, "eta": np.float32}


def _toy(n: int = 20_000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(D_b, classes, pT in GeV) of a toy tagger: b-jets shifted up, harder pT for b."""
    rng = np.random.default_rng(seed)
    classes = rng.choice([0, 1, 2], size=n, p=[0.3, 0.1, 0.6]).astype(np.int8)
    disc = rng.normal(0.0, 1.0, n) + np.select([classes == 0, classes == 1], [3.0, 1.0], 0.0)
    pt = 20.0 + rng.exponential(40.0, n) + 15.0 * (classes == 0)
    return disc, classes, pt


# ----------------------------------------------------------------------------- the numbers


def test_binomial_band_of_a_known_binomial():
    # 100 of 10 000 background jets pass: R = 100, sigma_R = R sqrt((1 - p) / n_pass) = 9.9499
    assert binomial_rejection_uncertainty(np.array([100.0]), 10_000)[0] == pytest.approx(
        100 * np.sqrt(0.99 / 100), rel=1e-12
    )
    assert binomial_efficiency_uncertainty(np.array([0.7]), np.array([1000]))[0] == pytest.approx(
        np.sqrt(0.7 * 0.3 / 1000), rel=1e-12
    )


def test_band_covers_the_spread_of_repeated_experiments():
    # 600 pseudo-experiments of 20 000 background jets, each passing with p = 1 / 50: the
    # standard deviation of the measured rejections is what the band says (to 10 %).
    rng = np.random.default_rng(7)
    n, p = 20_000, 1 / 50
    passed = rng.binomial(n, p, size=600)
    measured = n / passed
    band = binomial_rejection_uncertainty(np.array([50.0]), n)[0]
    assert measured.std() == pytest.approx(band, rel=0.10)
    assert abs(measured.mean() - 50.0) < 3 * band / np.sqrt(600) + 0.2  # 1/p is biased by ~(1-p)/(n p^2)


def test_curve_equals_the_report_figures():
    disc, classes, _ = _toy()
    curve = rejection_curve(disc, classes, LIGHT, np.array([0.70, 0.77, 0.85]))
    b_scores, l_scores = disc[classes == B], disc[classes == LIGHT]
    for i, eff in enumerate((0.70, 0.77, 0.85)):
        cut = threshold_at_efficiency(b_scores, eff)
        assert curve.rejection[i] == rejection(l_scores, cut)
        assert curve.uncertainty[i] == pytest.approx(rejection_stat_uncertainty(l_scores, cut), rel=1e-12)
    assert curve.n_background == len(l_scores)


def test_curve_is_nan_where_no_background_passes():
    disc = np.array([5.0, 6.0, 7.0, 8.0, 0.0, 6.0])
    classes = np.array([B, B, B, B, LIGHT, LIGHT])
    curve = rejection_curve(disc, classes, LIGHT, np.array([0.5, 1.0]))
    assert np.isnan(curve.rejection[0]) and np.isnan(curve.uncertainty[0])  # cut at 7: none passes
    assert curve.rejection[1] == 2.0  # cut below 5: one of two light jets passes


def test_ratio_carries_the_curves_own_relative_uncertainty():
    disc, classes, _ = _toy()
    better = rejection_curve(disc * 1.5, classes)
    reference = rejection_curve(disc, classes)
    ratio, err = ratio_to(better, reference)
    ok = np.isfinite(ratio)
    np.testing.assert_allclose(ratio[ok], (better.rejection / reference.rejection)[ok])
    np.testing.assert_allclose(err[ok], (ratio * better.uncertainty / better.rejection)[ok])
    self_ratio, self_err = ratio_to(reference, reference)
    fine = np.isfinite(self_ratio)
    assert np.all(self_ratio[fine] == 1.0)
    np.testing.assert_allclose(self_err[fine], (reference.uncertainty / reference.rejection)[fine])
    with pytest.raises(ValueError, match="different efficiencies"):
        ratio_to(rejection_curve(disc, classes, efficiencies=np.array([0.7])), reference)


def test_pt_bins_hold_enough_jets_and_add_up_to_the_inclusive_efficiency():
    disc, classes, pt = _toy()
    edges = pt_bin_edges(pt, classes, min_jets=300)
    assert edges[0] <= pt.min() and edges[-1] >= pt.max() and np.all(np.diff(edges) > 0)
    index = np.clip(np.searchsorted(edges, pt, side="right") - 1, 0, len(edges) - 2)
    for k in range(len(edges) - 1):
        assert np.count_nonzero((index == k) & (classes == B)) >= 300
        assert np.count_nonzero((index == k) & (classes == LIGHT)) >= 300
    cut = working_point_cuts(disc, classes, (0.70,))[0.70]
    perf = performance_vs_pt(disc, classes, pt, edges, cut)
    n_b = np.bincount(index[classes == B], minlength=len(edges) - 1)
    assert np.sum(perf.b_efficiency * n_b) / n_b.sum() == pytest.approx(0.70, abs=1e-4)
    assert np.all(np.isfinite(perf.light_rejection)) and np.all(perf.light_rejection_uncertainty > 0)


# ----------------------------------------------------------------------------- the table


def test_tagger_names():
    from trigger_ml.ftag import tagger_names

    plain = load_model_config("dips-small")
    assert tagger_names(plain, ["float", "qkeras", "firmware"]) == {
        "float": "trigml_dips_small_float",
        "qkeras": "trigml_dips_small_qkeras",
        "firmware": "trigml_dips_small_firmware",
    }
    variant = load_model_config("dips-small@bits=6")
    assert (
        tagger_names(variant, ["firmware"])["firmware"]
        == f"trigml_dips_small_{variant.digest()[:8]}_firmware"
    )
    assert (
        tagger_names(load_model_config("dips-small-hgq"), ["qkeras"])["qkeras"] == "trigml_dips_small_hgq_hgq"
    )


def test_jets_table_layout_on_toy_rows():
    from trigger_ml.data.layout import JET_DTYPE
    from trigger_ml.ftag import jets_table

    jets = np.zeros(4, dtype=JET_DTYPE)
    jets["pt"] = [25.0, 40.5, 100.0, 333.25]
    jets["eta"] = [0.1, -1.2, 2.4, 0.0]
    jets["flavour"] = [5, 4, 0, 15]
    jets["event_number"] = [7, 7, 8, 9]
    logits = {"firmware": np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [-5.0, 0.0, 5.0], [0.0, 0.0, 0.0]])}
    table = jets_table(jets, logits, {"firmware": "t"}, ("b", "c", "light"))
    assert table.dtype.names == (
        "t_pb",
        "t_pc",
        "t_pu",
        "HadronConeExclTruthLabelID",
        "pt",
        "eta",
        "eventNumber",
    )
    np.testing.assert_array_equal(
        table["pt"], np.array([25_000.0, 40_500.0, 100_000.0, 333_250.0], np.float32)
    )
    np.testing.assert_array_equal(table["HadronConeExclTruthLabelID"], [5, 4, 0, 15])
    assert table["t_pb"][0] > table["t_pc"][0] > table["t_pu"][0] and table["t_pc"][1] > 0.9
    np.testing.assert_allclose(table["t_pu"][3], 1 / 3, rtol=1e-6)
    total = table["t_pb"].astype(np.float64) + table["t_pc"] + table["t_pu"]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_the_file_is_a_plain_jets_dataset_and_deterministic(tmp_path):
    from trigger_ml.ftag import read_table, table_dtype, write_table

    table = np.zeros(3, dtype=table_dtype(["t"]))
    table["t_pb"] = [0.2, 0.5, 0.9]
    for name in ("a.h5", "b.h5"):
        write_table(tmp_path / name, table, {"taggers": {"firmware": "t"}})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5", "r") as handle:
        assert list(handle) == ["jets"] and handle["jets"].dtype == table.dtype
    back, description = read_table(tmp_path / "a.h5")
    np.testing.assert_array_equal(back, table)
    assert description == {"taggers": {"firmware": "t"}}


# ----------------------------------------------------------------------------- plots (toy)


def test_plots_are_drawn(tmp_path):
    from trigger_ml.plots.cost import plot_layer_costs
    from trigger_ml.plots.discriminant import plot_discriminant
    from trigger_ml.plots.roc import plot_rejection
    from trigger_ml.plots.style import SampleLabel
    from trigger_ml.plots.vs_pt import binned_performances, plot_vs_pt

    disc, classes, pt = _toy()
    label = SampleLabel("toy", None, len(disc), "test split", 0.018)
    curves = {"a": (disc, classes), "b": (disc * 1.3, classes)}
    plot_rejection(tmp_path / "roc.png", curves, "light", "b", label)
    plot_rejection(tmp_path / "roc_c.png", curves, "c", None, label)
    cuts = plot_discriminant(tmp_path / "disc.png", disc, classes, "a", label)
    assert list(cuts) == [0.70, 0.77, 0.85] and cuts[0.70] > cuts[0.77] > cuts[0.85]
    performances = binned_performances(curves, pt)
    plot_vs_pt(tmp_path / "eff.png", performances, "b_efficiency", label)
    plot_vs_pt(tmp_path / "rej.png", performances, "light_rejection", label)
    section = {
        "source": "estimate",
        "per_layer": [
            {"name": "phi_1", "class": "Dense", "LUT": 1200, "FF": 300, "DSP": 4, "BRAM_18K": 0},
            {"name": "pool", "class": "GlobalAveragePooling1D", "LUT": 80, "FF": 40, "DSP": 0, "BRAM_18K": 0},
        ],
    }
    plot_layer_costs(tmp_path / "cost.png", section, "toy")
    for name in ("roc.png", "roc_c.png", "disc.png", "eff.png", "rej.png", "cost.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_plots_are_deterministic(tmp_path):
    from trigger_ml.plots.roc import plot_rejection

    disc, classes, _ = _toy(n=3000)
    for name in ("a.png", "b.png"):
        plot_rejection(tmp_path / name, {"x": (disc, classes)}, "light")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_a_reference_outside_the_comparison_is_refused():
    from trigger_ml.compare import check_reference
    from trigger_ml.errors import UsageError

    configs = [load_model_config("dips-tiny"), load_model_config("dips-small")]
    assert check_reference(None, configs) is None
    assert check_reference("dips-small", configs) == "dips-small"
    with pytest.raises(UsageError, match="--reference dense-small is not one of the compared models"):
        check_reference("dense-small", configs)


# ----------------------------------------------------------------------------- the tiny project


@pytest.fixture(scope="module")
def tiny_project(workspace, tiny_config, tiny_sample):
    from trigger_ml.pipeline import ensure_hls

    report = ensure_hls(tiny_config, workspace)
    return workspace.hls_dir(tiny_config.name), report


def _read_jets(path):
    with h5py.File(path, "r") as handle:
        assert list(handle) == ["jets"]
        return handle["jets"][()]


@pytest.mark.slow
def test_ftag_test_split_file_has_the_layout(tiny_project, tiny_config, tiny_sample):
    from trigger_ml.data.dataset import split_indices

    project, report = tiny_project
    jets = _read_jets(project / "ftag_predictions.h5")
    taggers = report["ftag"]["taggers"]
    prefix = "trigml_dips_small_" + tiny_config.digest()[:8]
    assert taggers == {kind: f"{prefix}_{kind}" for kind in ("float", "qkeras", "firmware")}
    for tagger in taggers.values():
        for suffix in PROBABILITY_SUFFIXES:
            assert jets.dtype[f"{tagger}_{suffix}"] == np.float32
        total = sum(jets[f"{tagger}_{s}"].astype(np.float64) for s in PROBABILITY_SUFFIXES)
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
        assert np.all((jets[f"{tagger}_pb"] >= 0) & (jets[f"{tagger}_pb"] <= 1))
    for field, dtype in FTAG_FIELDS.items():
        assert jets.dtype[field] == dtype
    assert len(jets) == report["data"]["jets_per_split"]["test"]
    with h5py.File(tiny_sample, "r") as handle:
        sample_jets = handle["jets"][()]
    test = sample_jets[split_indices(len(sample_jets), tiny_config)["test"]]
    np.testing.assert_array_equal(jets["HadronConeExclTruthLabelID"], test["flavour"])
    assert set(np.unique(jets["HadronConeExclTruthLabelID"])) <= {0, 4, 5, 15}
    assert {0, 5} <= set(np.unique(jets["HadronConeExclTruthLabelID"]))
    # pT in MeV: the generator's jets have pT > 20 GeV and are mostly below 1 TeV
    assert jets["pt"].min() >= 20_000 and 20_000 < np.median(jets["pt"]) < 300_000
    np.testing.assert_allclose(jets["pt"], test["pt"] * 1000.0, rtol=1e-6)
    assert np.all(np.abs(jets["eta"]) <= 2.5)
    # bit-exact firmware: its probabilities are the QKeras ones
    assert report["fidelity"]["csim_vs_qkeras_exact_fraction"] == 1.0
    for suffix in PROBABILITY_SUFFIXES:
        np.testing.assert_array_equal(jets[f"{prefix}_firmware_{suffix}"], jets[f"{prefix}_qkeras_{suffix}"])
    # the probabilities give the D_b of the stored logits (to float32 precision)
    p = {s: jets[f"{prefix}_firmware_{s}"].astype(np.float64) for s in PROBABILITY_SUFFIXES}
    f_c = tiny_config.physics.f_c
    disc = np.log(p["pb"] / (f_c * p["pc"] + (1 - f_c) * p["pu"]))
    with h5py.File(project / "csim_predictions.h5", "r") as handle:
        from_logits = discriminant_from_logits(handle["logits_csim"][()], f_c)
    np.testing.assert_allclose(disc, from_logits, atol=1e-4)


@pytest.mark.slow
def test_ftag_evaluation_file_matches_the_evaluation(tiny_project, tiny_config):
    project, report = tiny_project
    jets = _read_jets(project / "ftag_evaluation.h5")
    evaluation = report["evaluation"]
    assert len(jets) == evaluation["n_jets"] == tiny_config.evaluation.n_jets
    counts = evaluation["jets_per_class"]
    labels = jets["HadronConeExclTruthLabelID"]
    assert (np.count_nonzero(labels == 5), np.count_nonzero(labels == 4)) == (counts["b"], counts["c"])
    tagger = report["ftag"]["taggers"]
    assert evaluation["firmware_vs_reference_exact_fraction"] == 1.0
    for suffix in PROBABILITY_SUFFIXES:
        np.testing.assert_array_equal(
            jets[f"{tagger['firmware']}_{suffix}"], jets[f"{tagger['qkeras']}_{suffix}"]
        )
    assert jets["pt"].min() >= 20_000


@pytest.mark.slow
def test_project_plots_exist_and_are_listed(tiny_project):
    project, report = tiny_project
    plots = report["plots"]
    assert set(plots) >= {
        "roc.png",
        "roc_c.png",
        "discriminant.png",
        "beff_vs_pt.png",
        "light_rej_vs_pt.png",
        "logit_diff.png",
    }
    for name in plots:
        data = (project / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
    # dips-small builds distributed arithmetic: da4ml's per-step shares draw the per-layer chart
    assert plots["cost_per_layer.png"].endswith("source: da4ml")
    markdown = (project / "report.md").read_text()
    assert (
        "no per-layer cost plot" not in markdown and "![cost_per_layer.png](cost_per_layer.png)" in markdown
    )
    assert report["ftag"]["taggers"]["firmware"] in markdown


@pytest.mark.slow
def test_compare_writes_both_rocs_with_a_reference(tiny_project, workspace, tiny_config, tmp_path):
    from trigger_ml.compare import compare

    out = compare([tiny_config], workspace, tmp_path / "comparison", reference=tiny_config.name)
    for name in ("roc.png", "roc_c.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name


def _readme_snippet() -> str:
    """The Python block of README's "Predictions in the FTAG layout" section."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Predictions in the FTAG layout", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_readme_snippet_reads_the_evaluation_file_and_gives_the_report_rejection(
    tiny_project, tiny_config, monkeypatch
):
    """The README's snippet, run as a user runs it, on this project's file: its discriminant is the
    report's D_b (to float32 precision), and cutting it as the report does gives the report's
    light rejections at 70 and 77 %."""
    project, report = tiny_project
    f_c = tiny_config.physics.f_c
    snippet = (
        _readme_snippet()
        .replace("hls_projects/dips-small/", f"hls_projects/{project.name}/")
        .replace("trigml_dips_small_firmware", report["ftag"]["taggers"]["firmware"])
        .replace("0.018", repr(f_c))
        .replace("0.982", repr(1 - f_c))
    )
    monkeypatch.chdir(project.parent.parent)  # the snippet's path is relative to the workspace
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 - the documented snippet itself
    disc, label = scope["disc"], scope["label"]
    assert len(disc) == report["evaluation"]["n_jets"] and np.all(np.isfinite(disc))
    metrics = report["evaluation"]["metrics"]["firmware"]
    for efficiency in (70, 77):
        cut = threshold_at_efficiency(disc[label == 5], efficiency / 100)
        assert rejection(disc[label == 0], cut) == pytest.approx(
            metrics[f"rej_light_at_{efficiency}"], rel=1e-12
        )
