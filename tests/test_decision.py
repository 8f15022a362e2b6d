"""The b-tag decision in firmware (trigger_ml.decision): the max-form score against a float
reference, no overflow at extreme logits (in Python and in the C++ block), thresholds that hit
their efficiencies, the block's Verilog against the emulation, and on the tiny real project the
C simulation of trigger_top bit-exact on test, hostile and shuffled jets, in the report and in a
bundle whose verification catches a flipped bit."""

import fractions
import itertools
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bundle_edit import resign

from trigger_ml.decision import hls
from trigger_ml.decision.cost import check_and_cost
from trigger_ml.decision.frontend import front_end_for
from trigger_ml.decision.score import max_form_codes, score_spec, tag_bits, threshold_code
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware import verifier
from trigger_ml.firmware.interface import FixedType
from trigger_ml.physics import discriminant_from_logits

slow = pytest.mark.slow

TYPES = (FixedType(True, 20, 8), FixedType(True, 12, 5), FixedType(False, 10, 4), FixedType(True, 16, 2))


def _float_reference(result: FixedType, f_c: float, codes: np.ndarray, score_frac: int) -> np.ndarray:
    """Brute force in float: constants rounded to the grid, the max, then floor to the score grid."""
    lsb = result.lsb
    z = codes.astype(np.float64) * lsb
    terms = []
    if f_c > 0:
        terms.append(z[:, 1] + round(math.log(f_c) / lsb) * lsb)
    if f_c < 1:
        terms.append(z[:, 2] + round(math.log1p(-f_c) / lsb) * lsb)
    s = z[:, 0] - np.max(np.column_stack(terms), axis=1)
    return np.floor(s * 2.0**score_frac).astype(np.int64)


@pytest.mark.parametrize("result", TYPES, ids=lambda t: t.c_type)
@pytest.mark.parametrize("f_c", [0.018, 0.2, 0.0, 1.0])
def test_max_form_equals_the_float_reference(result, f_c):
    rng = np.random.default_rng(7)
    low, high = result.code_range
    codes = rng.integers(low, high + 1, size=(20_000, 3))
    for score_frac in (None, 0, result.fractional_bits // 2):
        spec = score_spec(result, f_c, score_frac)
        frac = result.fractional_bits if score_frac is None else score_frac
        assert np.array_equal(max_form_codes(spec, codes), _float_reference(result, f_c, codes, frac))
    if 0 < f_c < 1:  # the approximation's bound against the exact D_b of the same logits
        spec = score_spec(result, f_c)
        exact = discriminant_from_logits(codes * result.lsb, f_c)
        diff = max_form_codes(spec, codes) * spec.score.lsb - exact
        slack = result.lsb  # the two constants' rounding, half an lsb each
        assert diff.min() >= -slack and diff.max() <= math.log(2) + slack


@pytest.mark.parametrize("result", TYPES, ids=lambda t: t.c_type)
def test_no_overflow_at_extreme_logits(result):
    """Every corner of the logits' range stays inside the accumulator and the score type."""
    low, high = result.code_range
    corners = np.array(list(itertools.product((low, low + 1, 0, high - 1, high), repeat=3)))
    for f_c in (1e-6, 0.018, 0.5, 1 - 1e-6):
        spec = score_spec(result, f_c)
        lsb = result.lsb
        c = corners[:, 1] + round(math.log(f_c) / lsb)  # every intermediate, in codes
        l_term = corners[:, 2] + round(math.log1p(-f_c) / lsb)
        s = _float_reference(result, f_c, corners, result.fractional_bits)
        values = np.concatenate([c, l_term, np.maximum(c, l_term), s])
        assert np.array_equal(s, corners[:, 0] - np.maximum(c, l_term))
        acc_low, acc_high = spec.accum.code_range
        assert acc_low <= values.min() and values.max() <= acc_high
        assert (values.min(), values.max()) == spec.accum_bounds  # the derived bounds are reached
        # one bit less would overflow: the type is as narrow as it can be
        assert values.min() < -(2 ** (spec.accum.width - 2)) or values.max() >= 2 ** (spec.accum.width - 2)


def test_the_cpp_block_does_not_overflow_at_extreme_logits(tmp_path):
    """decision.h with its configuration, compiled with g++ on the extreme logits of ap_fixed<20,8>."""
    import hls4ml

    result = FixedType(True, 20, 8)
    spec = score_spec(result, 0.018)
    low, high = result.code_range
    codes = np.array(list(itertools.product((low, low + 1, -1, 0, 1, high - 1, high), repeat=3)))
    thresholds = [int(high), 0, int(low)]
    (tmp_path / "decision.h").write_text(hls.DECISION_H)
    (tmp_path / "decision_config.h").write_text(hls.decision_config_h(spec, thresholds, (0.7, 0.77, 0.85)))
    rows = ",".join("{" + ",".join(map(str, row)) + "}" for row in codes.tolist())
    (tmp_path / "main.cpp").write_text(
        f"""#include <cmath>
#include <iostream>
#include "decision_config.h"
#include "decision.h"
typedef {result.c_type} result_t;
int main() {{
    const long long codes[][3] = {{{rows}}};
    for (unsigned j = 0; j < sizeof(codes) / sizeof(codes[0]); j++) {{
        result_t z[3];
        for (int i = 0; i < 3; i++) z[i] = result_t(std::ldexp((double)codes[j][i], -{result.fractional_bits}));
        btag_score_t score; btag_tags_t tags;
        b_tag_decision<result_t, btag_decision_config>(z, score, tags);
        std::cout << std::llround(std::ldexp(score.to_double(), {spec.score.fractional_bits})) << " " << tags.to_uint() << "\\n";
    }}
}}
"""
    )
    ap_types = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    subprocess.run(["g++", "-O1", f"-I{ap_types}", "-I.", "main.cpp", "-o", "main"], cwd=tmp_path, check=True)
    out = np.loadtxt(
        subprocess.run(
            ["./main"], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout.splitlines(),
        dtype=np.int64,
    )
    score = max_form_codes(spec, codes)
    assert np.array_equal(out[:, 0], score)
    assert np.array_equal(out[:, 1], tag_bits(score, thresholds))
    assert out[:, 0].max() > 2**20 and out[:, 0].min() < -(2**19)  # beyond the logits' own range (2^19 codes)


def test_thresholds_hit_their_efficiencies():
    rng = np.random.default_rng(3)
    for n in (1, 7, 1000, 30_001):
        codes = rng.integers(-40, 40, size=n)  # many ties
        for efficiency in (0.70, 0.77, 0.85, 0.5):
            code = threshold_code(codes, efficiency)
            assert np.mean(codes >= code) >= efficiency - 1e-12  # at least the wanted fraction
            assert np.mean(codes >= code + 1) < efficiency  # the largest such code
    with pytest.raises(TriggerMLError, match="no b-jets"):
        threshold_code(np.array([], dtype=np.int64), 0.7)


def test_tag_bits_layout():
    assert tag_bits(np.array([5, 3, 1, -9]), [4, 2, 0]).tolist() == [0b111, 0b110, 0b100, 0]


def test_score_type_override_is_checked():
    with pytest.raises(TriggerMLError, match="score_fractional_bits"):
        score_spec(FixedType(True, 20, 8), 0.018, 13)


def test_verilog_gates_equal_the_emulation_and_catch_a_wrong_bit(tmp_path):
    spec = score_spec(FixedType(True, 12, 5), 0.018, 4)
    rng = np.random.default_rng(1)
    low, high = spec.result.code_range
    codes = rng.integers(low, high + 1, size=(3000, 3))
    codes[:8] = list(itertools.product((low, high), repeat=3))
    score = max_form_codes(spec, codes)
    thresholds = [int(np.quantile(score, q)) for q in (0.3, 0.23, 0.15)]
    tags = tag_bits(score, thresholds)
    cost = check_and_cost(spec, thresholds, codes, score, tags, "xcvu13p-flga2577-2-e", 5.0, tmp_path / "a")
    section = cost["section"]
    assert section["source"] == "rtl" and section["latency_cycles"]["max"] == 1
    assert 0 < section["resources"]["LUT"] < 500 and section["resources"]["FF"] == spec.score.width + 3
    wrong = tags.copy()
    wrong[17] ^= 0b010
    with pytest.raises(TriggerMLError, match="differs from the Python emulation on 1 of 3000"):
        check_and_cost(spec, thresholds, codes, score, wrong, "xcvu13p-flga2577-2-e", 5.0, tmp_path / "b")


def test_an_l1_configuration_gets_the_track_word_front_end(tiny_config):
    from trigger_ml.config import load_model_config
    from trigger_ml.decision.frontend import FeatureFrontEnd
    from trigger_ml.l1.frontend import TrackWordFrontEnd

    front = front_end_for(load_model_config("dips-l1"), None)
    assert isinstance(front, TrackWordFrontEnd) and not front.hostile_from_network
    assert front.n_words == 4 * 32 + 4 and front.n_input == "16*7"
    assert isinstance(front_end_for(tiny_config, None), FeatureFrontEnd)


# --- the tiny real project -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_report(workspace, tiny_config, tiny_sample):
    from trigger_ml.pipeline import ensure_hls

    return ensure_hls(tiny_config, workspace)


@slow
def test_trigger_top_is_bit_exact_on_test_hostile_and_shuffled_jets(tiny_report, workspace, tiny_config):
    decision = tiny_report["decision"]
    fidelity = decision["fidelity"]
    assert fidelity["test_exact_fraction"] == 1.0 and fidelity["n_test_jets"] > 100
    assert fidelity["permutation_invariant_fraction"] == 1.0
    assert fidelity["reference"].startswith("front end features -> the qkeras model")
    assert "linked against hls4ml's own build" in fidelity["network_object"]  # the network is not recompiled
    assert all(row["n_exact"] == row["n_vectors"] for row in fidelity["hostile"])
    # thresholds on the test split's firmware score reach their efficiency there
    for row in decision["thresholds"]:
        assert row["b_efficiency_test_split"] >= row["b_efficiency"]
    # rejections on both samples, the firmware bits' achieved efficiency
    for sample in ("evaluation", "test"):
        rows = decision["physics"][sample]["working_points"]
        assert [row["b_efficiency"] for row in rows] == [0.70, 0.77, 0.85]
        assert all(0 < row["firmware"]["b_efficiency"] <= 1 for row in rows)
    # the blocks are costed in the report, and the report says so
    blocks = tiny_report["cost"]["blocks"]
    assert blocks["decision"]["source"] == "rtl" and blocks["decision"]["resources"]["LUT"] > 0
    assert blocks["front_end"]["resources"]["LUT"] == 0
    project = workspace.hls_dir(tiny_config.name)
    assert "## Decision in firmware (trigger_top)" in (project / "report.md").read_text()
    for name in hls.SOURCES:
        assert (project / "decision" / "firmware" / name).is_file()


@slow
def test_comparison_rows_add_the_blocks(tiny_report, workspace, tiny_config):
    from trigger_ml.compare import cost_columns

    project = workspace.hls_dir(tiny_config.name)
    network = tiny_report["cost"]["sources"]["da4ml"]
    row = cost_columns(project, "da4ml")
    block = tiny_report["cost"]["blocks"]["decision"]
    assert row["LUT"] == network["resources"]["LUT"] + block["resources"]["LUT"]
    assert row["latency_cycles"] == network["latency_cycles"]["max"] + 1
    assert row["blocks"] == "decision (rtl), front_end (estimate)" and row["cost_source"] == "da4ml"


@slow
def test_bundle_verify_checks_the_tag_bits(tiny_report, workspace, tiny_config, tmp_path):
    from trigger_ml.firmware import build_bundle, verify_bundle

    bundle = build_bundle(tiny_config, workspace, verify=False)
    spec = json.loads((bundle / verifier.OUTPUT_SPEC).read_text())["decision"]
    assert [row["b_efficiency"] for row in spec["thresholds"]] == [0.70, 0.77, 0.85]
    assert "### Decision in firmware: `trigger_top`" in (bundle / "README.md").read_text()
    result = verify_bundle(bundle)
    n_hostile = len((bundle / verifier.HOSTILE_FAMILIES).read_text().splitlines())
    assert result.n_top_vectors == result.n_vectors + n_hostile
    # a flipped tag bit in the vectors is named
    copy = tmp_path / "flipped"
    shutil.copytree(bundle, copy)
    path = copy / verifier.TOP_OUTPUTS
    lines = path.read_text().splitlines()
    row = lines[5].split()
    row[-1] = str(int(row[-1]) ^ 0b010)
    lines[5] = " ".join(row)
    path.write_text("\n".join(lines) + "\n")
    resign(copy)
    with pytest.raises(TriggerMLError, match="trigger_top vector 5 .* tag bits"):
        verify_bundle(copy)
    # firmware whose threshold differs from the spec's is caught by the C simulation
    copy = tmp_path / "threshold"
    shutil.copytree(bundle, copy)
    config_h = copy / "hls" / "firmware" / "decision_config.h"
    first = spec["thresholds"][0]["value"]
    text = config_h.read_text()
    assert f"btag_score_t({verifier.exact_decimal(fractions.Fraction(first))})" in text
    scores = sorted(int(line.split()[-2]) for line in (copy / verifier.TOP_OUTPUTS).read_text().splitlines())
    moved = next(s for s in scores if s > spec["thresholds"][0]["code"]) + 1  # some vector changes its bit
    lsb = spec["score"]["score_type"]["lsb"]
    text = text.replace(
        f"btag_score_t({verifier.exact_decimal(fractions.Fraction(first))})",
        f"btag_score_t({moved * lsb!r})",
        1,
    )
    config_h.write_text(text)
    resign(copy)
    with pytest.raises(TriggerMLError, match="trigger_top vector .*: C simulation gives"):
        verify_bundle(copy)
