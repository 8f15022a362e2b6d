"""Comparison across models: rows filled, Pareto front, plots written."""

import json

import numpy as np
import pytest

from trigger_ml.compare import COLUMNS, NO_FIRMWARE, ant_factor, compare, pareto_front
from trigger_ml.config import load_model_config


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    gain = np.array([10.0, 8.0, 30.0, 20.0, 35.0])
    # (2, 8) is beaten by (1, 10); (3, 30) by (2.5, 35); (4, 20) by (2.5, 35).
    assert pareto_front(cost, gain).tolist() == [0, 4]


def test_ant_factor():
    assert ant_factor(0.9, 1000) == pytest.approx(1000.0)


@pytest.mark.slow
def test_compare_firmware_and_float_reference(workspace, tiny_config, tiny_sample):
    float_ref = load_model_config(
        "dips-small-float@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=2,"
        "architecture.phi_widths=[8,8],architecture.f_widths=[8]"
    )
    dense = load_model_config(
        "dense-small@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=2,architecture.f_widths=[8]"
    )
    out = compare([tiny_config, dense, float_ref], workspace)
    table = json.loads((out / "table.json").read_text())
    rows = {row["model"]: row for row in table["rows"]}
    assert set(rows) == {tiny_config.name, dense.name, float_ref.name}
    for row in rows.values():
        assert row["n_seeds"] == 1 and row["physics_sample"] == "evaluation (1200 jets)"
        for key, _ in COLUMNS:
            if key.endswith("_seed_std"):  # one training: no spread is claimed
                assert row[key] is None, (row["model"], key)
            else:
                assert row.get(key) is not None or key.startswith("rej_c"), (row["model"], key)
    firmware = rows[tiny_config.name]
    assert firmware["exact_fraction"] == 1.0
    # one cost source for every firmware row: da4ml's cost model by default
    assert firmware["cost_source"] == "da4ml" and firmware["latency_ns"] > 0 and firmware["LUT"] > 0
    assert rows[dense.name]["cost_source"] == "da4ml" and firmware["DSP"] == 0
    assert rows[dense.name]["exact_fraction"] == 1.0
    assert rows[float_ref.name]["latency_ns"] == NO_FIRMWARE
    for name in ("table.md", "table.csv", "rej70_vs_latency.png", "rej70_vs_lut.png", "roc.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "table.csv").read_text().count("\n") == 4


@pytest.mark.slow
def test_compare_uses_one_cost_source_and_says_where_it_has_none(workspace, tiny_config, tiny_sample):
    folded = load_model_config(
        tiny_config.name.replace("dips-small@", "dips-small@reuse=2,strategy=Latency,")
    )
    out = compare([tiny_config, folded], workspace, out_dir=workspace.root / "cmp-estimate")
    rows = {row["model"]: row for row in json.loads((out / "table.json").read_text())["rows"]}
    # da4ml costs fully unrolled designs only: the folded one gets no figure, and the reason
    assert rows[folded.name]["LUT"] is None
    assert rows[folded.name]["cost_source"].startswith("n/a (not fully unrolled")
    out = compare(
        [tiny_config, folded],
        workspace,
        out_dir=workspace.root / "cmp-estimate",
        cost_source="estimate",
    )
    rows = {row["model"]: row for row in json.loads((out / "table.json").read_text())["rows"]}
    assert rows[folded.name]["cost_source"] == "estimate" and rows[folded.name]["LUT"] > 0
    # and the analytic estimate does not model distributed-arithmetic code: that row says so
    assert rows[tiny_config.name]["cost_source"].startswith("n/a (the analytic estimate models")


def test_compare_refuses_an_unknown_cost_source(workspace):
    from trigger_ml.errors import UsageError

    with pytest.raises(UsageError, match="unknown cost source 'yosys'"):
        compare([], workspace, cost_source="yosys")
