"""The BDT peer (trigger_ml.bdt): the emulator of the quantized trees against scikit-learn and
against both g++ C simulations (the run-time tree program and conifer's HLS code itself), the
fixed-point conversions, the cost model and the configuration rules. Synthetic inputs on the
input grid (no Pythia): a handful of trees of depth 3, so the whole file takes well under 2 min."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trigger_ml.bdt import csim
from trigger_ml.bdt.cost import bdt_cost
from trigger_ml.bdt.ensemble import to_codes, wrap
from trigger_ml.bdt.train import conifer_document, fit_classifier, quantized_ensemble
from trigger_ml.config import FixedPoint, load_model_config
from trigger_ml.errors import UsageError

SPEC = "bdt-small@bdt.n_trees=2,bdt.max_depth=3,bdt.subsample=1.0"


def _grid_inputs(n: int, seed: int) -> np.ndarray:
    """Inputs on dense-small's input grid (ap_fixed<10,4>: step 1/64, [-8, 8 - 1/64]), with
    saturated values, as the firmware receives them."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(scale=1.5, size=(n, 43)) * 64) / 64
    x[: n // 20] = 8 - 1 / 64  # the largest code everywhere
    x[n // 20 : n // 10] = -8  # the smallest
    return np.clip(x, -8, 8 - 1 / 64)


@pytest.fixture(scope="module")
def trained():
    config = load_model_config(SPEC)
    x = _grid_inputs(3000, 0)
    y = (x[:, 0] + 0.5 * x[:, 40] > 0.3).astype(int) + (x[:, 1] > 1).astype(int)
    classifier = fit_classifier(config, x, y)
    document = conifer_document(classifier)
    return config, classifier, document, quantized_ensemble(config, document)


def test_float_trees_equal_scikit_learn(trained):
    config, classifier, document, quantized = trained
    x = _grid_inputs(2000, 1)
    logits, _ = quantized.ensemble.float_logits(x)
    assert np.allclose(logits, classifier.decision_function(x), rtol=0, atol=1e-12)


def test_quantized_trees_are_on_the_score_grid_and_close_to_float(trained):
    config, _, _, quantized = trained
    x = _grid_inputs(2000, 2)
    q, _ = quantized.logits(x)
    f, _ = quantized.ensemble.float_logits(x)
    step = quantized.score_step
    assert np.all(q / step == np.round(q / step))
    # thresholds as wide as the inputs: paths unchanged, only leaf rounding (<= 1 step per tree + init)
    assert np.abs(q - f).max() <= step * (quantized.ensemble.n_trees + 1)
    assert quantized.score_range_fits()


def test_both_csims_equal_the_emulator_bit_for_bit(trained, tmp_path: Path):
    config, _, document, quantized = trained
    x = _grid_inputs(3000, 3)
    emulated, _ = quantized.logits(x)
    csim.write_tree_csim(config, document, tmp_path / "tree_csim")
    csim.compile_tree_csim(tmp_path / "tree_csim")
    tree = csim.tree_csim_predict(tmp_path / "tree_csim", x, 3)
    assert np.array_equal(tree, emulated)
    csim.write_conifer_project(config, document, tmp_path / "conifer_prj")
    hls = csim.run_binary(csim.compile_hls_csim(tmp_path / "conifer_prj"), x, 3)
    assert np.array_equal(hls, emulated)


def test_coarse_thresholds_change_paths_and_the_csim_follows(trained, tmp_path: Path):
    """With 4 fractional bits of threshold for inputs of 6, quantization moves thresholds across
    inputs: paths change, and the C simulation still equals the emulator bit for bit."""
    config, _, document, _ = trained
    coarse = config.model_copy(
        update={"bdt": config.bdt.model_copy(update={"threshold": FixedPoint(bits=8, integer=3)})}
    )
    quantized = quantized_ensemble(coarse, document)
    x = _grid_inputs(3000, 4)
    emulated, q_leaves = quantized.logits(x)
    _, f_leaves = quantized.ensemble.float_logits(x)
    assert np.any(q_leaves != f_leaves)
    csim.write_tree_csim(coarse, document, tmp_path)
    csim.compile_tree_csim(tmp_path)
    assert np.array_equal(csim.tree_csim_predict(tmp_path, x, 3), emulated)


def test_fixed_point_conversion_truncates_and_wraps():
    fp = FixedPoint(bits=6, integer=2)  # ap_fixed<6,3>: step 1/8, [-4, 3.875]
    codes = to_codes(np.array([0.3, -0.3, 3.75, 4.0, -4.0, -4.25]), fp)
    assert codes.tolist() == [2, -3, 30, -32, -32, 30]
    assert wrap(np.array([31, 32, -33]), 6).tolist() == [31, -32, 31]


def test_cost_grows_with_the_trees(trained):
    config, _, document, quantized = trained
    small = bdt_cost(quantized, 5.0, "xcvu13p-flga2577-2-e")
    doubled = {**document, "trees": document["trees"] * 2, "n_trees": 2 * document["n_trees"]}
    big = bdt_cost(quantized_ensemble(config, doubled), 5.0, "xcvu13p-flga2577-2-e")
    assert small["source"] == "estimate" and small["resources"]["DSP"] == 0
    assert big["resources"]["LUT"] > small["resources"]["LUT"] > 0
    assert big["latency_cycles"]["max"] >= small["latency_cycles"]["max"] >= 3


def test_bdt_needs_flat_quantized_inputs():
    with pytest.raises(UsageError, match="a bdt model takes the flat inputs"):
        load_model_config("dips-small@bdt={n_trees: 3}")
    assert load_model_config("bdt-medium").bdt.n_trees > load_model_config("bdt-small").bdt.n_trees
    with pytest.raises(UsageError, match="a bdt model has no decision block"):
        load_model_config("bdt-small@decision.enabled=true")


def test_departures_name_the_jets_whose_path_changes(trained):
    from trigger_ml.bdt.project import departures

    config, _, document, quantized = trained
    x = _grid_inputs(2000, 5)
    exact = departures(quantized, x, 0.018)
    assert exact["jets_with_a_changed_path"]["n_jets"] == 0  # threshold type as wide as the inputs
    assert exact["jets_with_the_same_paths"]["n_jets"] == len(x)
    coarse = config.model_copy(
        update={"bdt": config.bdt.model_copy(update={"threshold": FixedPoint(bits=8, integer=3)})}
    )
    moved = departures(quantized_ensemble(coarse, document), x, 0.018)
    changed = moved["jets_with_a_changed_path"]
    assert changed["n_jets"] > 0 and changed["max_abs_logit_diff"] > 0
    assert moved["trees_with_a_changed_path"] > 0 and moved["moved_thresholds_in_changed_trees_by_feature"]


BUNDLE_SPEC = (
    "bdt-small@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,"
    "bdt.n_trees=2,bdt.max_depth=3"
)


def test_bdt_bundle_builds_verifies_and_catches_a_flipped_code(workspace, tmp_path: Path):
    """`trigger-ml firmware` of a BDT: conifer's project and the run-time reference testbench,
    test and hostile vectors (expected: the quantized trees), verified bit for bit (conifer's HLS
    code too: 6 trees); an expected output code changed by one lsb (files re-signed) is caught."""
    import json
    import shutil

    from trigger_ml.firmware import build_bundle, verifier, verify_bundle
    from trigger_ml.pipeline import ensure_hls

    config = load_model_config(BUNDLE_SPEC)
    ensure_hls(config, workspace)
    bundle = build_bundle(config, workspace, n_vectors=150, verify=False)
    assert (bundle / "hls" / "firmware" / "parameters.h").is_file()
    assert "conifer's HLS code" in (bundle / "hls" / "tree_csim_test.cpp").read_text()
    result = verify_bundle(bundle)
    assert result.n_vectors == 150 and result.n_hostile > 0
    from trigger_ml.firmware.hostile import FAMILIES, TRACK_FAMILIES

    # the flat layout's families: saturated, beyond-range, tie and random codes (no track slots)
    assert [row["family"] for row in result.hostile] == [f for f in FAMILIES if f not in TRACK_FAMILIES]
    assert all(row["n_exact"] == row["n_vectors"] for row in result.hostile)
    provenance = json.loads((bundle / "provenance.json").read_text())
    assert "quantized trees" in provenance["hostile_vectors"]["expected_outputs"]

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    codes = (copy / verifier.OUTPUT_CODES).read_text().splitlines()
    first = codes[3].split()
    first[0] = str(int(first[0]) + 1)
    codes[3] = " ".join(first)
    (copy / verifier.OUTPUT_CODES).write_text("\n".join(codes) + "\n")
    floats = (copy / verifier.TB_OUTPUTS).read_text().splitlines()
    step = 2 ** -(config.bdt.score.bits - 1 - config.bdt.score.integer)
    values = floats[3].split()
    from fractions import Fraction

    values[0] = verifier.exact_decimal(Fraction(values[0]) + Fraction(step))
    floats[3] = " ".join(values)
    (copy / verifier.TB_OUTPUTS).write_text("\n".join(floats) + "\n")
    names = [n for n in verifier.bundle_files(copy) if n not in verifier.UNLISTED]
    manifest = verifier.manifest_text({n: verifier.sha256_file(copy / n) for n in names})
    (copy / verifier.MANIFEST).write_text(manifest)
    info = json.loads((copy / verifier.BUILD_INFO).read_text())
    info["firmware_id"] = verifier.sha256_bytes(manifest.encode())
    info["checksum"] = verifier.build_info_checksum(info)
    (copy / verifier.BUILD_INFO).write_text(verifier.build_info_text(info))
    with pytest.raises(verifier.BundleError, match="vector 3: C simulation gives"):
        verifier.verify(copy)
