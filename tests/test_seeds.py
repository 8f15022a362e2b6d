"""Training spread: compare --seeds N trains each model N times on Dask and reports the mean
and the spread across seeds beside the statistical uncertainty."""

import json

import numpy as np
import pytest

from trigger_ml.compare import compare
from trigger_ml.errors import UsageError
from trigger_ml.seeds import SCAN_NAME, rejection_uncertainty, seed_specs, significance_lines, spread


def test_seed_specs_start_with_the_model_itself(tiny_config):
    specs = seed_specs(tiny_config, 3)
    assert specs[0] == tiny_config.name
    assert [s.rsplit("training.seed=", 1)[1] for s in specs[1:]] == ["43", "44"]


def test_spread_is_mean_and_sample_std_over_seeds():
    rows = [
        {"auc_b_vs_light": 0.90, "rej_light_at_70": 100.0, "rej_light_at_70_stat": 5.0},
        {"auc_b_vs_light": 0.92, "rej_light_at_70": 120.0, "rej_light_at_70_stat": 6.0},
        {"auc_b_vs_light": 0.91, "rej_light_at_70": 110.0, "rej_light_at_70_stat": 5.5},
    ]
    out = spread(rows)
    assert out["n_seeds"] == 3
    assert out["rej_light_at_70"] == pytest.approx(110.0)
    assert out["rej_light_at_70_seed_std"] == pytest.approx(10.0)
    assert out["auc_b_vs_light_seed_std"] == pytest.approx(0.01)
    assert out["rej_light_at_70_stat"] == pytest.approx(5.5)
    assert out["seed_values"]["rej_light_at_70"] == [100.0, 120.0, 110.0]
    assert out["rej_light_at_77"] is None  # missing in the rows: not invented
    one = spread(rows[:1])
    assert one["rej_light_at_70"] == 100.0 and one["rej_light_at_70_seed_std"] is None


def test_significance_uses_stat_and_the_error_of_the_seed_mean():
    a = {
        "model": "a",
        "rej_light_at_70": 300.0,
        "rej_light_at_70_stat": 10.0,
        "rej_light_at_70_seed_std": 30.0,
    }
    b = {
        "model": "b",
        "rej_light_at_70": 200.0,
        "rej_light_at_70_stat": 8.0,
        "rej_light_at_70_seed_std": 20.0,
    }
    c = {
        "model": "c",
        "rej_light_at_70": 190.0,
        "rej_light_at_70_stat": 8.0,
        "rej_light_at_70_seed_std": 20.0,
    }
    for row in (a, b, c):
        row["n_seeds"] = 4
    assert rejection_uncertainty(a) == pytest.approx(np.hypot(10.0, 15.0))
    lines = significance_lines([c, a, b])
    assert lines[-3].startswith("- a 300.0") and lines[-3].endswith(
        "significantly above every model below it"
    )
    assert (
        lines[-2].startswith("- b 200.0") and "not separable from any model below it: c (0.6 σ)" in lines[-2]
    )
    assert lines[-1].startswith("- c 190.0")


def test_seed_count_is_checked(workspace, tiny_config):
    with pytest.raises(UsageError, match="--seeds"):
        compare([tiny_config], workspace, seeds=0)


@pytest.mark.slow
def test_compare_with_seeds_trains_each_seed_on_dask(workspace, tiny_config, tiny_sample):
    out = compare([tiny_config], workspace, out_dir=workspace.root / "cmp-seeds", seeds=2, n_workers=2)
    row = json.loads((out / "table.json").read_text())["rows"][0]
    values = row["seed_values"]["rej_light_at_70"]
    assert row["n_seeds"] == 2 and len(values) == 2
    assert row["rej_light_at_70"] == pytest.approx(np.mean(values))
    assert row["rej_light_at_70_seed_std"] == pytest.approx(np.std(values, ddof=1))
    auc = row["seed_values"]["auc_b_vs_light"]
    assert auc[0] != auc[1]  # another seed is another training
    points = workspace.root / "scans" / SCAN_NAME / "points"
    assert len(list(points.glob("*.json"))) == 2
    assert "± seeds" in (out / "table.md").read_text()
    # a rerun trains nothing: every seed is a cached scan point
    again = compare([tiny_config], workspace, out_dir=workspace.root / "cmp-seeds", seeds=2, n_workers=2)
    assert json.loads((again / "table.json").read_text())["rows"][0] == row
