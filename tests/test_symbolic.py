"""Symbolic distillation: settings, backends and fallback, expressions, cost, firmware, stage."""

import json
from pathlib import Path

import numpy as np
import pytest
import sympy

from trigger_ml.config import FixedPoint, load_model_config
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.physics import tagging_metrics
from trigger_ml.symbolic import backends, compare_row, distill, is_symbolic_name, teacher_spec
from trigger_ml.symbolic.backends import OperonBackend, choose_backend, parse_expression
from trigger_ml.symbolic.cost import expression_cost
from trigger_ml.symbolic.firmware import (
    build_project,
    csim_predict,
    evaluate,
    fixed_point_step,
    lut_specs,
    snap_constants,
    unsupported_reason,
)
from trigger_ml.symbolic.metrics import as_logits, discriminant_metrics
from trigger_ml.symbolic.settings import LUTSettings, SymbolicConfig, load_symbolic_config
from trigger_ml.symbolic.stage import expression_complexity, flat_input_config, pareto_indices

TEACHER = "dense-small@n_jets=800,sample.jets_per_shard=400,epochs=2,architecture.f_widths=[8]"
TINY_SEARCH = "generations=8,population_size=60,subsample=400,max_complexity=[5,9,13],select_features=8"
x0, x1, x2 = sympy.symbols("x0:3", real=True)


# --- settings -----------------------------------------------------------------------------


def test_settings_overrides_and_validation(tmp_path):
    settings = load_symbolic_config("backend=operon,max_complexity=[17,9],precision.bits=20")
    assert settings.backend == "operon" and settings.max_complexity == (9, 17)
    assert settings.precision == FixedPoint(bits=20, integer=SymbolicConfig().precision.integer)
    path = tmp_path / "sr.yaml"
    path.write_text("unary_operators: [exp]\nlut: {table_size: 256}\n")
    from_file = load_symbolic_config("seed=3", path)
    assert from_file.unary_operators == ("exp",) and from_file.lut.table_size == 256 and from_file.seed == 3
    with pytest.raises(UsageError, match="unknown symbolic setting 'colour'"):
        load_symbolic_config("colour=red")
    with pytest.raises(UsageError, match="no firmware without vendor headers"):
        load_symbolic_config("binary_operators=[/]")
    with pytest.raises(UsageError, match="max_complexity"):
        load_symbolic_config("max_complexity=[1]")


def test_symbolic_names():
    assert is_symbolic_name("dense-small-sr") and not is_symbolic_name("dense-small")
    assert teacher_spec("dense-small@epochs=3-sr") == "dense-small@epochs=3"


def test_deep_set_teacher_gets_the_dense_small_flat_inputs():
    teacher = load_model_config("dips-small")
    flat = flat_input_config(teacher)
    dense = load_model_config("dense-small")
    assert flat.architecture.kind == "dense" and flat.inputs == dense.inputs
    assert flat.sample == teacher.sample and flat.split == teacher.split
    assert flat.quantization.input == teacher.quantization.input
    assert flat_input_config(dense) is dense


# --- backends -----------------------------------------------------------------------------


def test_auto_falls_back_to_operon_with_the_reason(monkeypatch):
    monkeypatch.setattr(backends, "pysr_status", lambda timeout: (False, "simulated: Julia cannot download"))
    choice = choose_backend(SymbolicConfig())
    assert choice.backend.name == "operon"
    assert choice.as_dict()["reason"] == "fell back to operon: simulated: Julia cannot download"
    assert choice.as_dict()["requested"] == "auto"
    with pytest.raises(TriggerMLError, match="backend pysr requested but unusable: simulated"):
        choose_backend(SymbolicConfig(backend="pysr"))


def test_pysr_chosen_when_usable(monkeypatch):
    monkeypatch.setattr(backends, "pysr_status", lambda timeout: (True, "pysr imports and Julia starts"))
    assert choose_backend(SymbolicConfig()).backend.name == "pysr"
    assert choose_backend(SymbolicConfig(backend="operon")).backend.name == "operon"


def test_pysr_status_names_a_missing_package(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    backends.pysr_status.cache_clear()
    try:
        assert backends.pysr_status(5.0) == (False, "pysr is not installed")
    finally:
        backends.pysr_status.cache_clear()


def test_operon_finds_the_law_deterministically():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4))
    y = 1.5 * x[:, 0] * x[:, 1] + 0.5 * x[:, 2] ** 2
    settings = SymbolicConfig(generations=15, population_size=150, max_complexity=(5, 15), seed=7)
    first, second = OperonBackend().fit(x, y, settings), OperonBackend().fit(x, y, settings)
    assert [str(c.expression) for c in first] == [str(c.expression) for c in second]
    assert min(c.loss for c in first) < 1e-6 * np.var(y)
    assert all(c.expression.free_symbols <= set(sympy.symbols("x0:4", real=True)) for c in first)


def test_parse_expression_accepts_carets():
    assert parse_expression("(x1 ^ 2) * 3.5", 2) == 3.5 * sympy.Symbol("x1", real=True) ** 2


# --- expressions, metrics, front ----------------------------------------------------------


def test_complexity_counts_binary_nodes():
    assert expression_complexity(x0) == 1
    assert expression_complexity(2.5 * x0 + x1) == 5  # +, *, 2.5, x0, x1
    assert expression_complexity(x0**2) == 3


def test_snap_constants_puts_them_on_the_grid_and_keeps_exponents():
    fp = FixedPoint(bits=12, integer=3)
    step = fixed_point_step(fp)
    snapped = snap_constants(0.30000001 * x0**2 - 1.2345 * x1 + 0.0001, fp)
    constants = [float(a) for a in snapped.atoms(sympy.Number) if a not in (2, -1)]
    assert constants and all(abs(c / step - round(c / step)) < 1e-12 for c in constants)
    assert snapped.has(x0**2) and len(snapped.args) == 2  # 0.0001 rounds to zero


def test_unsupported_reason():
    assert unsupported_reason(x0 * x1 + sympy.exp(x2)) is None
    assert "power" in unsupported_reason(1 / x0)
    assert "tanh" in unsupported_reason(sympy.tanh(x0))


def test_discriminant_metrics_equal_the_physics_module():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(600, 3))
    classes = rng.integers(0, 3, size=600)
    logits[classes == 0, 0] += 1.0
    from trigger_ml.physics import discriminant_from_logits

    disc = discriminant_from_logits(logits, 0.018)
    assert discriminant_metrics(disc, classes) == tagging_metrics(logits, classes, 0.018)
    assert np.array_equal(discriminant_from_logits(as_logits(disc), 0.0), disc)


def test_pareto_indices_are_non_dominated():
    complexity = [3, 5, 5, 9, 12, 15]
    auc = [0.80, 0.85, 0.83, 0.84, 0.90, 0.89]
    front = pareto_indices(complexity, auc)
    assert front == [0, 1, 4]


# --- cost ---------------------------------------------------------------------------------


def test_expression_cost_shapes_and_monotonicity():
    fp = FixedPoint(bits=18, integer=7)
    args = (fp, "xcvu13p-flga2577-2-e", 5.0, "12.5%", 1024)
    linear = expression_cost([snap_constants(0.75 * x0 - 0.3 * x1 + 0.1, fp)], *args)
    cubic = expression_cost([snap_constants(0.3 * x0 * x1 * x2 + 0.7 * (x0 + x1) ** 2, fp)], *args)
    table = expression_cost([snap_constants(0.5 * sympy.exp(x0 * x1), fp)], *args)
    for section in (linear, cubic, table):
        assert section["source"] == "estimate" and section["initiation_interval"] == 1
        assert (
            section["latency_cycles"]["max"] >= 1 and section["per_layer"][0]["class"] == "SymbolicExpression"
        )
    assert linear["resources"]["DSP"] == 0 and cubic["resources"]["DSP"] > 0
    assert cubic["resources"]["LUT"] > linear["resources"]["LUT"]
    assert table["resources"]["BRAM_18K"] > 0
    assert table["latency_cycles"]["max"] > linear["latency_cycles"]["max"]


# --- firmware -----------------------------------------------------------------------------


@pytest.mark.slow
def test_lut_firmware_matches_emulated_tables(tmp_path):
    """exp as an hls4ml look-up table, g++ only: the C simulation equals the table emulation."""
    fp = FixedPoint(bits=18, integer=7)
    rng = np.random.default_rng(2)
    x = np.round(rng.uniform(-2, 2, size=(500, 2)) * 64) / 64  # on an input grid, like real inputs
    expr = snap_constants(0.5 * sympy.exp(0.7 * x0) - 0.25 * x1 * x0, fp)
    luts = lut_specs([expr], x, LUTSettings(table_size=256))
    assert luts == {"exp_lut": {"math_func": "exp", "table_size": 256, "range_start": -2, "range_end": 2}}
    hls_model = build_project([expr], 2, fp, luts, "xcvu13p-flga2577-2-e", 5.0, tmp_path / "prj")
    csim = csim_predict(hls_model, x)
    emulated = evaluate([expr], x, luts, fp)
    assert np.max(np.abs(csim - emulated)) <= fixed_point_step(fp)
    assert np.max(np.abs(csim - evaluate([expr], x))) < 0.1  # the table's own approximation
    assert "exp_lut(" in (tmp_path / "prj" / "firmware" / "myproject.cpp").read_text()


# --- the stage ----------------------------------------------------------------------------


@pytest.mark.slow
def test_distill_tiny_teacher(workspace, tiny_sample, monkeypatch):
    monkeypatch.setattr(backends, "pysr_status", lambda timeout: (False, "simulated: no Julia"))
    teacher = load_model_config(TEACHER)
    settings = load_symbolic_config(TINY_SEARCH)
    report = distill(teacher, settings, workspace, log=False)
    project = workspace.hls_dir(teacher.name + "-sr")
    assert report["model"] == teacher.name + "-sr"
    backend = report["symbolic"]["backend"]
    assert backend["used"] == "operon" and "simulated: no Julia" in backend["reason"]
    assert (
        "operon" in (project / "report.md").read_text()
        and "simulated: no Julia" in (project / "report.md").read_text()
    )

    # The fit: non-dominated front, a sweep entry per limit, the choice stored as text and sympy.
    fit_dir = Path(report["run_dir"])
    result = json.loads((fit_dir / "expressions.json").read_text())
    front = [result["models"][i] for i in result["front"]]
    for a in front:
        for b in result["models"]:
            dominated = b["complexity"] <= a["complexity"] and b["auc_val"] >= a["auc_val"]
            assert not dominated or (b["complexity"], b["auc_val"]) == (a["complexity"], a["auc_val"])
    assert [s["max_complexity"] for s in result["sweep"]] == [5, 9, 13]
    assert result["chosen"] in result["front"]
    stored = sympy.sympify((fit_dir / "chosen.sympy").read_text())
    assert [str(e) for e in stored] == report["symbolic"]["expressions"]
    assert (fit_dir / "chosen.txt").read_text().strip()
    assert str(snap_constants(stored[0], settings.precision)) == report["symbolic"]["deployed"][0]

    # Firmware: C simulation and float agree within the fixed-point step; metrics and cost.
    fid = report["fidelity"]
    assert fid["within_step_fraction"] == 1.0 and fid["max_abs_deviation"] <= fid["fixed_point_step"]
    assert set(report["metrics"]) == {"teacher", "expression_float", "csim"}
    assert (
        report["cost"]["best"]["source"] == "estimate"
        and report["cost"]["best"]["latency_cycles"]["max"] >= 1
    )
    for name in (
        "report.json",
        "report.md",
        "roc.png",
        "csim_predictions.h5",
        "hls4ml_prj/firmware/myproject.cpp",
    ):
        assert (project / name).stat().st_size > 0

    # Cached: the same settings reuse the project; the compare row has every column.
    assert distill(teacher, settings, workspace, log=False) == report
    row, logits, classes = compare_row(TEACHER + "-sr", workspace, settings, log=False)
    assert row["model"] == report["model"] and row["cost_source"] == "estimate"
    assert row["auc_b_vs_light"] == report["metrics"]["csim"]["auc_b_vs_light"]
    assert logits.shape == (len(classes), 3)
