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
        "dips-small-float@n_jets=800,sample.jets_per_shard=400,epochs=2,"
        "architecture.phi_widths=[8,8],architecture.f_widths=[8]"
    )
    dense = load_model_config(
        "dense-small@n_jets=800,sample.jets_per_shard=400,epochs=2,architecture.f_widths=[8]"
    )
    out = compare([tiny_config, dense, float_ref], workspace, log=False)
    table = json.loads((out / "table.json").read_text())
    rows = {row["model"]: row for row in table["rows"]}
    assert set(rows) == {tiny_config.name, dense.name, float_ref.name}
    for row in rows.values():
        for key, _ in COLUMNS:
            assert row.get(key) is not None or key.startswith("rej_c"), (row["model"], key)
    firmware = rows[tiny_config.name]
    assert firmware["exact_fraction"] == 1.0
    assert firmware["cost_source"] == "estimate" and firmware["latency_ns"] > 0 and firmware["LUT"] > 0
    assert rows[dense.name]["exact_fraction"] == 1.0
    assert rows[float_ref.name]["latency_ns"] == NO_FIRMWARE
    for name in ("table.md", "table.csv", "rej70_vs_latency.png", "rej70_vs_lut.png", "roc.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "table.csv").read_text().count("\n") == 4
