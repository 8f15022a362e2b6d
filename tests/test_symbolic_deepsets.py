"""The symbolic Deep Set: φ_k through zero, composition, settings and names, the stage."""

import json
from pathlib import Path

import numpy as np
import pytest
import sympy

from trigger_ml.config import FixedPoint, load_model_config
from trigger_ml.errors import UsageError
from trigger_ml.pipeline import ensure_distilled as distill
from trigger_ml.symbolic import backends, compare_row, is_symbolic_name, teacher_spec
from trigger_ml.symbolic.backends import feature_symbols
from trigger_ml.symbolic.cost import expression_cost
from trigger_ml.symbolic.deepsets import (
    cast_constants,
    compose,
    fit_phi,
    phi_expression,
    phi_term_library,
    phi_values,
    phis_from_result,
)
from trigger_ml.symbolic.firmware import build_project, csim_predict, evaluate, fixed_point_step
from trigger_ml.symbolic.settings import SymbolicConfig, load_symbolic_config
from trigger_ml.symbolic.sums import set_bits

TINY_SEARCH = (
    "structure=deepsets,generations=8,population_size=60,subsample=400,max_complexity=[5,9,13],"
    "select_features=8,deepsets.phi_terms=3,selection_metric=rej_light_at_70"
)
FP16 = FixedPoint(bits=16, integer=6)
PART = "xcvu13p-flga2577-2-e"


def _tracks(n: int, seed: int) -> np.ndarray:
    """(n, 3) tracks: two features on a 2^-6 grid and ``valid`` = 1."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, 2)) * 64) / 64
    return np.column_stack([x, np.ones(n)])


# --- settings and names -------------------------------------------------------------------


def test_structure_defaults_to_flat_and_keeps_the_flat_key():
    flat = SymbolicConfig()
    assert flat.structure == "flat"
    dump = flat.key_dump()
    assert "structure" not in dump and "deepsets" not in dump
    assert set(dump) == set(SymbolicConfig.model_fields) - {
        "structure",
        "deepsets",
        "selection_metric",
        "rejection_tolerance",
    }
    deep = load_symbolic_config("structure=deepsets,deepsets.phi_terms=3")
    assert deep.key_dump()["structure"] == "deepsets" and deep.deepsets.phi_terms == 3
    assert deep.digest() != flat.digest()
    with pytest.raises(UsageError, match="structure"):
        load_symbolic_config("structure=graph")


def test_srds_names():
    assert is_symbolic_name("dips-small-srds") and is_symbolic_name("dips-small-sr")
    assert teacher_spec("dips-small@epochs=3-srds") == "dips-small@epochs=3"
    assert teacher_spec("dips-small-sr") == "dips-small"


def test_dense_teacher_is_refused(workspace):
    teacher = load_model_config("dense-small")
    with pytest.raises(UsageError, match="structure 'deepsets' needs a Deep Set teacher"):
        distill(teacher, SymbolicConfig(structure="deepsets"), workspace)


# --- φ_k ----------------------------------------------------------------------------------


def test_phi_terms_vanish_on_padding_and_fit_a_latent():
    tracks = _tracks(4000, 1)
    y = np.maximum(0.75 * tracks[:, 0] - 0.25 * tracks[:, 1] + 0.5, 0)  # a ReLU latent
    settings = SymbolicConfig()
    terms = phi_term_library(tracks, 2, settings)
    zero = np.zeros((1, 3))
    assert terms and all(t.values(zero)[0] == 0 for t in terms)
    phi = fit_phi(tracks, y, terms, 2, settings)
    assert phi and phi[0][0].i == 2  # the valid feature (the bias) first
    assert all(set_bits(c, settings.precision) <= 2 for _, c in phi)
    values = phi_values(phi, tracks)
    assert np.mean((values - y) ** 2) < 0.2 * np.var(y)
    symbols = feature_symbols(3)
    expr = phi_expression(phi, symbols)
    assert not any(a.is_Number for a in sympy.Add.make_args(expr))  # no constant term
    assert expr.subs({s: 0 for s in symbols}) == 0
    assert phi_values(phi, zero)[0] == 0
    assert fit_phi(tracks, np.zeros(len(tracks)), terms, 2, settings) == []  # a dead component
    assert fit_phi(tracks, y, terms, 2, settings) == phi  # deterministic


def test_composed_expression_keeps_constants_and_is_permutation_invariant(tmp_path):
    """F(mean_s φ(x_s)) unrolled over 4 slots: the float evaluation equals the numeric
    composition, the deployed constants are the fitted ones, the firmware (g++ C simulation)
    equals the float expression within a step, and does not change when slots are permuted
    or when a padded slot is added."""
    tracks = _tracks(3200, 2)
    settings = SymbolicConfig()
    terms = phi_term_library(tracks, 2, settings)
    phis = [
        fit_phi(tracks, np.maximum(tracks[:, 0] + 0.5, 0), terms, 2, settings),
        fit_phi(tracks, np.maximum(-tracks[:, 1], 0), terms, 2, settings),
    ]
    p0, p1 = feature_symbols(2)
    f_expr = (
        sympy.Float(1.25) * p0 - sympy.Float(0.375) * p0 * p1 + sympy.Float(0.5) * p1**2 - sympy.Float(0.75)
    )
    slots = 4
    rng = np.random.default_rng(3)
    jets = tracks[: 800 * slots].reshape(800, slots, 3).copy()
    jets[rng.random((800, slots)) < 0.4] = 0.0  # padding
    deployed = compose(f_expr, phis, slots, 3)
    flat = jets.reshape(len(jets), -1)
    p = np.stack([phi_values(phi, jets).mean(axis=1) for phi in phis], axis=1)
    numeric = evaluate([f_expr], p)[:, 0]
    floated = evaluate([deployed], flat)[:, 0]
    assert np.allclose(floated, numeric, atol=1e-9)
    fitted = {1.25, 0.375, 0.5, 0.75, 1 / slots}
    assert set(map(abs, cast_constants(deployed))) == fitted
    phi_constants = {
        float(t.as_coeff_Mul()[0])
        for phi in phis
        for t in sympy.Add.make_args(phi_expression(phi, feature_symbols(3)))
    }
    deployed_numbers = {float(a) for a in deployed.atoms(sympy.Number)}
    assert phi_constants <= deployed_numbers | {1.0}
    cost = expression_cost([deployed], FP16, PART, 5.0, "12.5%", 1024)
    assert cost["latency_cycles"]["max"] >= 1 and cost["resources"]["LUT"] > 0

    hls_model = build_project([deployed], slots * 3, FP16, {}, PART, 5.0, tmp_path / "prj")
    code = (tmp_path / "prj" / "firmware" / "myproject.cpp").read_text()
    assert "hls::min" not in code and "hls::max" not in code
    csim = csim_predict(hls_model, flat)[:, 0]
    assert np.max(np.abs(csim - floated)) <= fixed_point_step(FP16)
    shuffled = np.stack([jet[rng.permutation(slots)] for jet in jets]).reshape(len(jets), -1)
    assert np.array_equal(csim_predict(hls_model, shuffled)[:, 0], csim)
    # An empty jet is F at zero pooled latents: padding contributes exactly nothing.
    empty = csim_predict(hls_model, np.zeros((1, slots * 3)))[0, 0]
    assert empty == evaluate([f_expr], np.zeros((1, 2)))[0, 0]


# --- the stage ----------------------------------------------------------------------------


@pytest.mark.slow
def test_distill_tiny_deepset_teacher(workspace, tiny_sample, tiny_config, monkeypatch):
    monkeypatch.setattr(backends, "pysr_status", lambda timeout: (False, "simulated: no Julia"))
    teacher = tiny_config
    settings = load_symbolic_config(TINY_SEARCH)
    report = distill(teacher, settings, workspace)
    name = teacher.name + "-srds"
    project = workspace.hls_dir(name)
    assert report["model"] == name and report["symbolic"]["structure"] == "deepsets"
    assert report["symbolic"]["backend"]["used"] == "operon"
    fid = report["fidelity"]
    assert fid["within_step_fraction"] == 1.0 and fid["max_abs_deviation"] <= fid["fixed_point_step"]
    assert report["cost"]["best"]["source"] == "estimate"
    for file in ("report.json", "report.md", "roc.png", "csim_predictions.h5", "deployed.txt"):
        assert (project / file).stat().st_size > 0

    fit_dir = Path(report["run_dir"])
    result = json.loads((fit_dir / "expressions.json").read_text())
    assert result["chosen"] in result["front"]
    # Chosen by validation light rejection at 70 %: the rejection-scored front and rule.
    selection = result["selection"]
    assert selection["metric"] == "rej_light_at_70" and "rejection" in selection["rule"]
    if result["teacher"]["rej_light_at_70_val"] is not None:  # tiny validation split
        assert selection["good_at_least"] == pytest.approx(0.5 * result["teacher"]["rej_light_at_70_val"])
    scored = [m for m in result["models"] if m["rej_light_at_70_val"] is not None]
    for i in result["front"]:
        a = result["models"][i]
        if a["rej_light_at_70_val"] is not None:
            assert not any(
                b["complexity"] <= a["complexity"]
                and b["latency_cycles"] <= a["latency_cycles"]
                and b["rej_light_at_70_val"] > a["rej_light_at_70_val"]
                for b in scored
            )
    assert {m["source"].split("; F on ")[1] for m in result["models"]} == {
        "expression latents",
        "teacher latents",
    }
    (deployed,) = sympy.sympify((fit_dir / "chosen.sympy").read_text())
    phis = phis_from_result(result)
    f_expr = sympy.sympify(
        result["models"][result["chosen"]]["f_expression"],
        locals={str(s): s for s in feature_symbols(len(phis))},
    )
    assert deployed == compose(f_expr, phis, teacher.inputs.max_tracks, len(teacher.inputs.track_features))
    # Padding: every φ_k is zero on an all-zero track.
    n_features = len(teacher.inputs.track_features)
    zero = np.zeros((1, n_features))
    assert all(phi_values(phi, zero)[0] == 0 for phi in phis)

    # Cached; the compare row of <teacher>-srds.
    assert distill(teacher, settings, workspace) == report
    row, disc, classes = compare_row(name, workspace, settings)
    assert row.model == name and "Deep Set" in row.kind
    assert row.auc_b_vs_light == report["metrics"]["csim"]["auc_b_vs_light"]
    assert disc.shape == classes.shape


def test_f_takes_no_power_above_two_of_a_pooled_latent():
    from trigger_ml.symbolic.deepsets import MAX_F_POWER, f_reason

    p0, p1 = sympy.symbols("x0 x1")
    assert MAX_F_POWER == 2
    assert f_reason(3 * p0 - (p1 - 2) ** 2) is None
    assert "power" in f_reason(p0 + (p1 - 2) ** 4)
