"""Symbolic distillation: settings, backends and fallback, expressions, cost, firmware, stage."""

import json
from pathlib import Path

import numpy as np
import pytest
import sympy

from trigger_ml.config import FixedPoint, load_model_config
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.physics import tagging_metrics
from trigger_ml.pipeline import ensure_distilled as distill
from trigger_ml.symbolic import backends, compare_row, is_symbolic_name, teacher_spec
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
from trigger_ml.symbolic.fit import _score, expression_complexity, pareto_indices
from trigger_ml.symbolic.inputs import DistillData, flat_input_config
from trigger_ml.symbolic.metrics import discriminant_metrics, light_rejection, selection_score
from trigger_ml.symbolic.selection import choose
from trigger_ml.symbolic.settings import LUTSettings, SymbolicConfig, load_symbolic_config
from trigger_ml.symbolic.sums import (
    SOURCE,
    few_bit_value,
    forward_selection,
    set_bits,
    snap_and_refit,
    snapped_candidates,
    sum_candidates,
)

TEACHER = "dense-small@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=2,architecture.f_widths=[8]"
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


def test_selection_metric_default_keeps_the_cache_keys():
    # The digests of the default flat and Deep Set settings before selection_metric existed:
    # stored fits and projects stay current.
    assert SymbolicConfig().digest() == "25e3adfc99594cf05b8e751d7d5c21091bd27a1a47c55f096dd71f8b9e93fe45"
    assert (
        load_symbolic_config("structure=deepsets").digest()
        == "a784de9699e725996e02b805fe5354fff86f794e8d50df46954b8708455c0c13"
    )
    # The rejection-only keys do not matter for the AUC either.
    assert load_symbolic_config("rejection_tolerance=0.2,sums.min_rejection_gain=0.1").digest() == (
        SymbolicConfig().digest()
    )
    rej = load_symbolic_config("selection_metric=rej_light_at_70")
    dump = rej.key_dump()
    assert dump["selection_metric"] == "rej_light_at_70" and dump["rejection_tolerance"] == 0.5
    assert dump["sums"]["min_rejection_gain"] == 0.01 and rej.digest() != SymbolicConfig().digest()
    with pytest.raises(UsageError, match="selection_metric"):
        load_symbolic_config("selection_metric=rej_c_at_70")


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
    assert unsupported_reason(2 * sympy.Min(x0, 0.5) + sympy.Max(x1, -0.25)) is None
    assert "min/max only between an input and a constant" in unsupported_reason(sympy.Min(x0, x1))
    assert "min/max" in unsupported_reason(sympy.Max(2 * x0, 0.5))


def test_discriminant_metrics_equal_the_physics_module():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(600, 3))
    classes = rng.integers(0, 3, size=600)
    logits[classes == 0, 0] += 1.0
    from trigger_ml.physics import discriminant_from_logits

    disc = discriminant_from_logits(logits, 0.018)
    assert discriminant_metrics(disc, classes) == tagging_metrics(logits, classes, 0.018)
    # The former path (the discriminant wrapped as (D, 0, 0) logits) gave the same figures, bit
    # for bit: ln(f_c e^0 + (1 - f_c) e^0) is exactly 0 at f_c = 0 and at the default 0.018.
    wrapped = np.column_stack([disc, np.zeros_like(disc), np.zeros_like(disc)])
    for f_c in (0.0, 0.018):
        assert np.array_equal(discriminant_from_logits(wrapped, f_c), disc)
        assert discriminant_metrics(disc, classes) == tagging_metrics(wrapped, classes, f_c)


def _tail_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two inputs: x0 separates b (class 0) from light (class 2) everywhere (AUC ~0.86),
    x1 only for 72 % of the b jets, far into the tail (AUC ~0.73, but the better light
    rejection at 70 % b-efficiency: ~16 vs ~6)."""
    rng = np.random.default_rng(seed)
    classes = np.where(rng.random(n) < 0.5, 0, 2)
    b = classes == 0
    x0 = rng.normal(size=n) + 1.5 * b
    good = rng.random(n) < 0.72
    x1 = np.where(
        b & good, rng.normal(2.5, 0.5, n), np.where(b, rng.normal(-2.0, 1.0, n), rng.normal(size=n))
    )
    x = np.round(np.column_stack([x0, x1]) * 64) / 64
    return x, classes


def test_selection_score_is_the_physics_rejection():
    x, classes = _tail_problem(4000, 11)
    disc = x[:, 0] + 0.5 * x[:, 1]
    # The discriminant's physics metrics: the same cuts.
    metrics = discriminant_metrics(disc, classes)
    assert selection_score(disc, classes, "rej_light_at_70") == metrics["rej_light_at_70"]
    assert selection_score(disc, classes, "rej_light_at_77") == metrics["rej_light_at_77"]
    assert selection_score(disc, classes, "auc") == metrics["auc_b_vs_light"]
    # No light jet above the cut: the rejection is unmeasurable (None) and scores as N_light.
    separated = np.where(classes == 0, 10.0, 0.0) + 0.01 * x[:, 0]
    assert light_rejection(separated, classes, 0.7) is None
    assert selection_score(separated, classes, "rej_light_at_70") == np.count_nonzero(classes == 2)


def test_stored_rejections_equal_tagging_metrics():
    x, classes = _tail_problem(3000, 12)
    splits = {"fit": (x, classes), "val": _tail_problem(3000, 13), "test": _tail_problem(3000, 14)}
    logits = {k: np.column_stack([v[0] @ [1.0, 0.5], np.zeros((len(v[0]), 2))]) for k, v in splits.items()}
    data = DistillData(
        x={k: v[0] for k, v in splits.items()},
        logits=logits,
        classes={k: v[1] for k, v in splits.items()},
        indices={k: np.arange(len(v[0])) for k, v in splits.items()},
        feature_names=["a", "b"],
        flat=None,  # type: ignore[arg-type]  # not read by _score
    )
    row = _score([0.75 * x0 + sympy.Min(x1, 2)], "discriminant", data, 0.018)
    for split in ("val", "test"):
        xs, cs = splits[split]
        expected = discriminant_metrics(0.75 * xs[:, 0] + np.minimum(xs[:, 1], 2), cs)
        assert row[f"auc_{split}"] == expected["auc_b_vs_light"]
        assert row[f"rej_light_at_70_{split}"] == expected["rej_light_at_70"]
        assert row[f"rej_light_at_77_{split}"] == expected["rej_light_at_77"]


def test_forward_selection_by_rejection_picks_the_tail_term():
    x, classes = _tail_problem(6000, 15)
    x_val, classes_val = _tail_problem(6000, 16)
    y = x[:, 0] + x[:, 1]  # both terms correlate positively with the target
    by_auc = forward_selection(x, y, x_val, classes_val, 1, 0.0)
    by_rej = forward_selection(x, y, x_val, classes_val, 1, 0.0, "rej_light_at_70")
    assert by_auc == [[0]] and by_rej == [[1]]
    # The same through the generator's setting (no saturations or products: the two inputs).
    plain = {"max_terms": 1, "upper_quantiles": [], "lower_quantiles": [], "product_features": 0}
    auc_first = sum_candidates(x, y, x_val, classes_val, [0, 1], [], SymbolicConfig(sums=plain))
    rej_first = sum_candidates(
        x, y, x_val, classes_val, [0, 1], [], SymbolicConfig(sums=plain, selection_metric="rej_light_at_70")
    )
    assert auc_first[0].expression.free_symbols == {x0} and rej_first[0].expression.free_symbols == {x1}


def test_forward_selection_stops_on_a_relative_rejection_gain():
    x, classes = _tail_problem(6000, 17)
    x_val, classes_val = _tail_problem(6000, 18)
    # Noise: generic weights, so that no rounding difference reorders tied jets at the cut.
    y = 0.5 * x[:, 0] + x[:, 1] + 0.1 * np.random.default_rng(19).normal(size=len(x))
    w = np.linalg.lstsq(np.c_[x, np.ones(len(y))], y, rcond=None)[0]
    first = selection_score(x_val[:, 1], classes_val, "rej_light_at_70")
    ratio = selection_score(x_val @ w[:2], classes_val, "rej_light_at_70") / first
    assert ratio > 1.1  # x0 adds to the tail term
    rejection_first = ("rej_light_at_70",)
    kept = forward_selection(x, y, x_val, classes_val, 2, ratio - 1 - 0.01, *rejection_first)
    assert kept == [[1], [1, 0]]
    assert forward_selection(x, y, x_val, classes_val, 2, ratio - 1 + 0.01, *rejection_first) == [[1]]


def _row(complexity: int, auc: float, rej: float, latency: int = 1) -> dict:
    return {
        "complexity": complexity,
        "auc_val": auc,
        "rej_light_at_70_val": rej,
        "latency_cycles": latency,
        "within_latency_budget": latency <= 1,
    }


def test_choice_by_rejection_uses_a_relative_tolerance():
    front = [_row(3, 0.95, 40.0), _row(5, 0.90, 60.0), _row(9, 0.96, 90.0), _row(4, 0.97, 200.0, latency=3)]
    rej = SymbolicConfig(selection_metric="rej_light_at_70", rejection_tolerance=0.5)
    chosen, section = choose(front, rej, 100.0, 5000, 1.0)  # good: validation rejection >= 50
    assert (
        chosen is front[1]
        and section["rule"] == "least complex within the rejection tolerance and the latency budget"
    )
    assert section["metric"] == "rej_light_at_70" and section["good_at_least"] == 50.0
    chosen, section = choose(front, SymbolicConfig(), 0.96, 5000, 1.0)  # AUC >= 0.94
    assert chosen is front[0] and section == {
        "rule": "least complex within the AUC tolerance and the latency budget",
        "metric": "auc",
        "auc_tolerance": 0.02,
        "latency_budget_cycles": 1.0,
    }
    strict = SymbolicConfig(selection_metric="rej_light_at_70", rejection_tolerance=0.05)
    chosen, section = choose(front, strict, 100.0, 5000, 1.0)  # none >= 95 within the budget
    assert (
        chosen is front[2]
        and section["rule"] == "best validation light rejection @70 % within the latency budget"
    )


def test_pareto_indices_are_non_dominated():
    complexity = [3, 5, 5, 9, 12, 15]
    auc = [0.80, 0.85, 0.83, 0.84, 0.90, 0.89]
    front = pareto_indices(complexity, [1] * len(auc), auc)  # equal latencies: complexity vs AUC
    assert front == [0, 1, 4]


def test_pareto_indices_keeps_a_faster_candidate():
    # (complexity, latency, auc): the third is dominated in (complexity, AUC) by the second
    # but is faster, so it stays; the fourth is beaten by the first in every objective.
    front = pareto_indices([3, 5, 7, 9], [1, 3, 1, 2], [0.80, 0.90, 0.88, 0.79])
    assert front == [0, 1, 2]


# --- hardware-aware constants and sums ----------------------------------------------------

FP16 = FixedPoint(bits=16, integer=6)


def test_few_bit_value_is_the_nearest_few_bit_grid_value():
    step = fixed_point_step(FP16)
    # Every grid value with at most two set bits, by brute force.
    allowed = np.array([m * step for m in range(2**15) if bin(m).count("1") <= 2])
    rng = np.random.default_rng(3)
    for value in np.r_[rng.normal(scale=4, size=300), [0.0, 1e-5, 1.3, -0.7, 63.9]]:
        snapped = few_bit_value(float(value), FP16, 2)
        assert snapped / step == round(snapped / step) and set_bits(snapped, FP16) <= 2
        best = np.min(np.abs(allowed - abs(value)))
        assert abs(abs(snapped) - abs(value)) == pytest.approx(best, abs=1e-12)
        assert snapped == 0 or np.sign(snapped) == np.sign(value)
    assert few_bit_value(1.3, FP16, None) == pytest.approx(round(1.3 / step) * step)


def test_snap_and_refit_recovers_a_few_bit_law_and_refits_the_rest():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 2))
    coef, offset = snap_and_refit(x, 1.25 * x[:, 0] + 0.375 * x[:, 1] - 0.5, FP16, 2)
    assert coef.tolist() == [1.25, 0.375] and offset == -0.5
    # 0.7 = 0.5 + 0.2 is not a two-bit value: the other coefficient absorbs part of it.
    y = 3.0 * x[:, 0] + 0.7 * (x[:, 0] + 0.1 * x[:, 1])
    coef, _ = snap_and_refit(np.column_stack([x[:, 0], x[:, 0] + 0.1 * x[:, 1]]), y, FP16, 2)
    assert all(set_bits(c, FP16) <= 2 for c in coef)
    assert np.mean((np.column_stack([x[:, 0], x[:, 0] + 0.1 * x[:, 1]]) @ coef - y) ** 2) < 0.05 * np.var(y)


def _saturating_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, 4)) * 64) / 64
    score = 3.0 * np.minimum(x[:, 0], 0.5) + 0.8 * x[:, 1] + 0.3 * rng.normal(size=n)
    classes = np.where(score + 0.5 * rng.normal(size=n) > 0.5, 0, 2)  # b or light
    return x, score, classes


def test_sum_candidates_find_the_saturation_with_few_bit_constants():
    x, y, classes = _saturating_problem(3000, 5)
    x_val, _, classes_val = _saturating_problem(3000, 6)
    settings = SymbolicConfig(sums={"max_terms": 3})
    found = sum_candidates(x, y, x_val, classes_val, [0, 1, 2, 3], [0, 1], settings)
    assert found and all(c.source == SOURCE for c in found)
    assert len(found) == len({c.backend_complexity for c in found}) <= 3
    first = found[0].expression
    assert first.atoms(sympy.Min) and first.has(x0)  # the saturated leading input comes first
    for candidate in found:
        expr = candidate.expression
        # The deployed expression is the found one: every constant is on the grid already.
        assert snap_constants(expr, settings.precision) == expr
        products = [t.as_coeff_Mul()[0] for t in sympy.Add.make_args(expr) if not t.is_Number]
        assert all(set_bits(float(c), settings.precision) <= 2 for c in products)
        cost = expression_cost([expr], settings.precision, "xcvu13p-flga2577-2-e", 5.0, "12.5%", 1024)
        assert cost["resources"]["DSP"] == 0 and cost["latency_cycles"]["max"] == 1
    assert sum_candidates(x, y, x_val, classes_val, [0, 1, 2, 3], [0, 1], settings) == found


def test_snapped_backend_candidates_have_few_bit_constants():
    x, y, classes = _saturating_problem(2000, 7)
    from trigger_ml.symbolic.backends import Candidate

    found = [Candidate(0.7123 * x0 * x1 + 1.377 * x1 - 0.2, 1.0, 7, "operon")]
    (snapped,) = snapped_candidates(found, x, y, x, classes, SymbolicConfig())
    assert snapped.source == "operon, constants snapped to few bits"
    assert snapped.expression.free_symbols == {x0, x1}
    # Coefficients of the terms are shifts or shift-and-adds; the offset is only on the grid.
    terms = [t for t in sympy.Add.make_args(snapped.expression) if not t.is_Number]
    assert len(terms) == 2 and all(set_bits(float(t.as_coeff_Mul()[0]), FP16) <= 2 for t in terms)
    assert snap_constants(snapped.expression, FP16) == snapped.expression


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
    saturated = expression_cost([snap_constants(0.75 * sympy.Min(x0, 0.5) - 0.3 * x1 + 0.1, fp)], *args)
    assert saturated["resources"]["DSP"] == 0 and saturated["latency_cycles"]["max"] == 1
    assert saturated["resources"]["LUT"] == linear["resources"]["LUT"] + 2 * fp.bits
    assert "1 saturations" in saturated["per_layer"][0]["notes"][0]


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


@pytest.mark.slow
def test_saturation_firmware_is_exact(tmp_path):
    """Min/Max as C++ conditionals (no vendor header): the C simulation equals the float
    expression within the fixed-point step, on inputs on both sides of the thresholds."""
    fp = FixedPoint(bits=16, integer=6)
    rng = np.random.default_rng(8)
    x = np.round(rng.uniform(-3, 3, size=(2000, 3)) * 64) / 64
    expr = snap_constants(6 * sympy.Min(x0, 0.796875) + 0.75 * sympy.Max(x1, -0.078125) - 0.5 * x2 - 1.01, fp)
    hls_model = build_project([expr], 3, fp, {}, "xcvu13p-flga2577-2-e", 5.0, tmp_path / "prj")
    deviation = np.abs(csim_predict(hls_model, x) - evaluate([expr], x))
    assert np.max(deviation) <= fixed_point_step(fp)
    code = (tmp_path / "prj" / "firmware" / "myproject.cpp").read_text()
    assert "?" in code and "hls::min" not in code and "hls::max" not in code


# --- the stage ----------------------------------------------------------------------------


@pytest.mark.slow
def test_distill_tiny_teacher(workspace, tiny_sample, monkeypatch):
    monkeypatch.setattr(backends, "pysr_status", lambda timeout: (False, "simulated: no Julia"))
    teacher = load_model_config(TEACHER)
    settings = load_symbolic_config(TINY_SEARCH)
    report = distill(teacher, settings, workspace)
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
    sources = {m["source"] for m in result["models"]}
    assert SOURCE in sources and "operon" in sources
    assert report["symbolic"]["produced_by"] == result["models"][result["chosen"]]["source"]
    stored = sympy.sympify((fit_dir / "chosen.sympy").read_text())
    assert [str(e) for e in stored] == report["symbolic"]["expressions"]
    assert (fit_dir / "chosen.txt").read_text().strip()
    assert str(snap_constants(stored[0], settings.precision)) == report["symbolic"]["deployed"][0]
    # Every candidate and the teacher carry the light rejections beside the AUC.
    for row in [*result["models"], result["teacher"]]:
        assert {"auc_val", "rej_light_at_70_val", "rej_light_at_70_test", "rej_light_at_77_val"} <= set(row)
    assert result["selection"]["metric"] == "auc"
    validation = report["symbolic"]["validation"]
    chosen_row = result["models"][result["chosen"]]
    assert validation["chosen"]["rej_light_at_70_val"] == chosen_row["rej_light_at_70_val"]
    assert validation["teacher"]["auc_val"] == result["teacher"]["auc_val"]

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
    assert distill(teacher, settings, workspace) == report
    row, disc, classes = compare_row(TEACHER + "-sr", workspace, settings)
    assert row.model == report["model"] and row.cost_source.startswith("n/a (symbolic expressions")
    row, disc, classes = compare_row(TEACHER + "-sr", workspace, settings, cost_source="estimate")
    assert row.model == report["model"] and row.cost_source == "estimate"
    assert row.auc_b_vs_light == report["metrics"]["csim"]["auc_b_vs_light"]
    assert row.exact_fraction == report["fidelity"]["within_step_fraction"]
    assert row.fidelity_reference == "expression in float, within one fixed-point step"
    assert row.physics_sample == f"test split ({len(classes)} jets)"
    assert disc.shape == classes.shape
