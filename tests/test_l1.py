"""Trigger-level tracks: the L1 track word against CMSSW's digitization rules (hand-computed),
the preprocessing's Python and generated C++ bit for bit (real-looking and hostile words),
permutation invariance, and a tiny model on L1 tracks through train and hls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bundle_edit import resign

from trigger_ml.l1 import hls
from trigger_ml.l1.hostile import FAMILIES, hostile_jets, realistic_jets
from trigger_ml.l1.preprocess import L1Preprocessing, log_fixed, preprocess
from trigger_ml.l1.word import (
    PT_FROM_RINV,
    decode_tracks,
    encode_tracks,
    jet_word,
    pack,
    unpack,
    vertex_word,
)

SPEC = L1Preprocessing(n_in=8, max_tracks=4)


def _one(**kw):
    base = dict(
        rinv=0.001, phi=0.1, tanl=1.5, z0_cm=-3.0, d0_cm=0.05, chi2_rphi=2.2, chi2_rz=0.7, bend_chi2=4.0
    )
    base.update(kw)
    return encode_tracks(*(np.array([base[k]]) for k in base))


def test_word_hand_computed() -> None:
    """floor(value / lsb), two's complement, chi2 bins = upper_bound - 1, fields at CMSSW's offsets."""
    words, sector = _one()
    # rinv: floor(0.001 / (0.012 / 2^15)) = 2730; phi: floor(0.1 / (2 * 0.7853981696 / 2^12)) = 260;
    # tanL: floor(1.5 * 2^12) = 6144; z0: floor(-3 / (2 * 20.46912512 / 2^12)) = -301 -> 0xED3;
    # d0: floor(0.05 * 2^8) = 12; chi2rphi 2.2 -> bin 3; chi2rz 0.7 -> bin 1; bendchi2 4 -> bin 5.
    assert sector.tolist() == [0]
    assert int(words[0, 2]) == (1 << 31) | (2730 << 16) | (260 << 4) | 3
    assert int(words[0, 1]) == (6144 << 16) | (0xED3 << 4) | 1
    assert int(words[0, 0]) == (12 << 19) | (5 << 16)
    f = unpack(words)
    assert (f["rinv"][0], f["phi"][0], f["tanl"][0], f["z0"][0], f["d0"][0]) == (2730, 260, 6144, -301, 12)


def test_word_saturates_and_round_trips() -> None:
    words, _ = _one(rinv=0.01, d0_cm=-20.0, tanl=-9.0, z0_cm=25.0)
    f = unpack(words)
    assert (f["rinv"][0], f["d0"][0], f["tanl"][0], f["z0"][0]) == (2**14 - 1, -(2**12), -(2**15), 2**11 - 1)
    rng = np.random.default_rng(3)
    n = 500
    pt = rng.uniform(2, 100, n)
    charge = rng.choice([-1.0, 1.0], n)
    phi = rng.uniform(-math.pi, math.pi, n)
    eta = rng.uniform(-2.4, 2.4, n)
    z0 = rng.normal(0, 5, n)
    d0 = rng.normal(0, 0.1, n)
    words, sector = encode_tracks(charge * PT_FROM_RINV / pt, phi, np.sinh(eta), z0, d0, *np.zeros((3, n)))
    back = decode_tracks(words, sector)
    assert back["valid"].all()
    assert np.abs(np.angle(np.exp(1j * (back["phi"] - phi)))).max() <= 0.7853981696 / 2**12 + 1e-12
    assert np.abs(back["z0_cm"] - z0).max() <= 2 * 20.46912512 / 2**12 / 2 + 1e-12
    assert np.abs(back["d0_cm"] - d0).max() <= 1 / 2**8 / 2 + 1e-12
    assert np.abs(back["eta"] - eta).max() < 1e-3
    assert np.abs(back["pt"] / pt - 1).max() < 0.02  # the Rinv LSB at 100 GeV


def test_jet_and_vertex_words() -> None:
    j = jet_word(np.array([100.3, 1e6]), np.array([0.5, -3.0]), np.array([math.pi, -0.001]))
    assert j["pt"].tolist() == [401, 2**16 - 1]
    assert j["eta"].tolist() == [round(0.5 * 720 / math.pi), round(-3.0 * 720 / math.pi)]
    assert j["phi"].tolist() == [720, 0]
    assert vertex_word(np.array([0.0, -0.005])).tolist() == [0, -1]


def test_log_fixed_is_close_to_ln() -> None:
    x = np.array([1, 2, 3, 7, 100, 4095, 65535, 2**24 - 1])
    assert np.abs(log_fixed(x) / 1024 - np.log(x)).max() < 0.02
    assert log_fixed(np.array([0]))[0] == log_fixed(np.array([1]))[0]


def _jets(rng: np.random.Generator, n: int, n_tracks: int):
    return realistic_jets(rng, n, n_tracks, SPEC)


def _hostile(rng: np.random.Generator):
    inputs, families = hostile_jets(rng, SPEC)
    assert set(families) == set(FAMILIES) and len(families) == len(inputs.words)
    return inputs


@pytest.fixture(scope="module")
def testbench(tmp_path_factory: pytest.TempPathFactory):
    return hls.build_testbench(SPEC, tmp_path_factory.mktemp("l1tb"))


def test_python_and_cpp_bit_exact(testbench) -> None:
    rng = np.random.default_rng(11)
    real = _jets(rng, 1500, 8)
    few = _jets(rng, 300, 3)
    hostile = _hostile(rng)
    inputs = tuple(np.concatenate(parts) for parts in zip(real, few, hostile, strict=True))
    python = preprocess(SPEC, *inputs).reshape(len(inputs[0]), -1)
    cpp = hls.run_testbench(testbench, hls.flat_words(*inputs))
    mismatched = np.flatnonzero((python != cpp).any(axis=1))
    assert len(mismatched) == 0, f"{len(mismatched)} jets differ, first {mismatched[0]}"
    n_sel = (python[:, 6::7] > 0).sum(axis=1)
    # The test covers full outputs (more selected tracks than slots), partial and empty ones.
    assert (n_sel[:1500] == SPEC.max_tracks).mean() > 0.3 and (n_sel == 0).sum() >= 15
    assert 0 < (n_sel[1500:1800] < SPEC.max_tracks).mean()
    codes = python.reshape(len(python), SPEC.max_tracks, 7)
    assert codes.min() == SPEC.q_min or codes.max() == SPEC.q_max  # saturation reached
    sd0 = np.abs(codes[..., 0])
    assert (np.diff(sd0, axis=1)[codes[:, 1:, 6] > 0] <= 0).all()  # ordered by |sd0|


def test_permutation_invariance(testbench) -> None:
    rng = np.random.default_rng(12)
    inputs = tuple(np.concatenate(parts) for parts in zip(_jets(rng, 400, 8), _hostile(rng), strict=True))
    words, sector = inputs[0], inputs[1]
    perm = np.argsort(rng.random(sector.shape), axis=1)
    shuffled = (
        np.take_along_axis(words, perm[..., None], 1),
        np.take_along_axis(sector, perm, 1),
        *inputs[2:],
    )
    reference = preprocess(SPEC, *inputs)
    assert not (np.take_along_axis(words, perm[..., None], 1) == words).all()
    assert (preprocess(SPEC, *shuffled) == reference).all()
    cpp = hls.run_testbench(testbench, hls.flat_words(*shuffled))
    assert (cpp == reference.reshape(len(reference), -1)).all()


def test_flat_layout_round_trip() -> None:
    inputs = _jets(np.random.default_rng(1), 5, 8)
    back = hls.split_words(hls.flat_words(*inputs), SPEC)
    for a, b in zip(inputs, back, strict=True):
        assert (np.asarray(a) == np.asarray(b)).all()


def test_offline_sample_keeps_its_digest_and_l1_is_its_own() -> None:
    from trigger_ml.data.settings import GeneratorSettings
    from trigger_ml.errors import TriggerMLError

    offline = GeneratorSettings()
    assert offline.digest() == "ad997cf82d9a"  # the digest of the default sample before L1 tracks existed
    l1 = GeneratorSettings(tracks="l1")
    assert l1.digest() != offline.digest() and l1.canonical_dict()["tracks"] == "l1"
    assert "l1" not in l1.canonical_dict()  # default L1 parameters stay out of the digest
    with pytest.raises((ValueError, TriggerMLError)):
        GeneratorSettings(l1={"pt_min_gev": 3.0})


TINY_L1 = (
    "dips-l1@n_jets=800,sample.jets_per_shard=400,eval_jets=600,evaluation.jets_per_shard=600,epochs=4,"
    "architecture.phi_widths=[8,8],architecture.f_widths=[8],sample.pileup_mu=0"
)


@pytest.mark.slow
def test_tiny_l1_model_through_train_and_hls(workspace, tmp_path) -> None:
    """A dips-l1-like model on L1 words: its network inputs are the C++ preprocessing's outputs
    on the sample's words, and its firmware is bit-exact."""
    from trigger_ml.config import load_model_config
    from trigger_ml.data.dataset import read_sample
    from trigger_ml.l1.inputs import network_inputs, sample_inputs, spec_for
    from trigger_ml.pipeline import ensure_data, ensure_hls

    config = load_model_config(TINY_L1)
    sample = read_sample(ensure_data(config, workspace))
    assert "word2" in sample.tracks.dtype.names and "l1_vertex_z0" in sample.jets.dtype.names
    inputs = sample_inputs(sample.jets[:300], sample.tracks[:300])
    spec = spec_for(config, inputs[0].shape[1])
    binary = hls.build_testbench(spec, tmp_path)
    cpp = hls.run_testbench(binary, hls.flat_words(*inputs))
    python = network_inputs(config, sample.jets[:300], sample.tracks[:300])
    assert (cpp / 64.0 == python.reshape(300, -1)).all()
    assert (python[..., 6] > 0).sum(axis=1).mean() > 2  # real tracks pass the selection
    report = ensure_hls(config, workspace)
    fidelity = report["fidelity"]
    assert fidelity["csim_vs_qkeras_exact_fraction"] == 1.0
    assert fidelity["permutation_invariant_fraction"] == 1.0
    # (a 4-epoch tiny model learns little; the inputs themselves separate b from light)
    from sklearn.metrics import roc_auc_score

    flavour = sample.jets["flavour"][:300]
    b_or_light = (flavour == 5) | (flavour == 0)
    leading_sd0 = python[b_or_light, :, 0].max(axis=1)
    assert roc_auc_score(flavour[b_or_light] == 5, leading_sd0) > 0.75


def test_track_word_front_end_snippets_compile_and_match(tmp_path) -> None:
    """The front end's C++ (top parameters, fill, testbench load) around l1_preprocess.h gives the
    Python's codes in the network's input type, also for shuffled words."""
    import subprocess

    from trigger_ml.config import load_model_config
    from trigger_ml.l1.frontend import TrackWordFrontEnd

    fe = TrackWordFrontEnd(load_model_config("dips-l1@inputs.max_tracks=4"), n_in=8)
    for name, text in fe.files.items():
        (tmp_path / name).write_text(text)
    params = ", ".join(fe.parameters)
    args = "track_words, sectors, jet_pt, jet_eta, jet_phi, vertex_z0"
    (tmp_path / "tb.cpp").write_text(
        f"""#include <cstdio>
#include "ap_fixed.h"
#include "{fe.includes[0]}"
typedef ap_fixed<10, 4> input_t;
void top({params}, input_t x[{fe.n_input}]) {{
{fe.fill_network_input}}}
int main() {{
    long long words[{fe.n_words}];
{fe.testbench_declarations}    for (;;) {{
        for (int i = 0; i < {fe.n_words}; i++) if (scanf("%lld", &words[i]) != 1) return 0;
{fe.testbench_load}        input_t x[{fe.n_input}];
        top({args}, x);
        for (int i = 0; i < {fe.n_input}; i++) printf("%d ", (int)(x[i] * 64));
        printf("\\n");
    }}
}}
"""
    )
    binary = tmp_path / "tb"
    subprocess.run(
        [
            "g++",
            "-std=c++11",
            "-O1",
            f"-I{hls.ap_types_dir()}",
            f"-I{tmp_path}",
            "-o",
            str(binary),
            str(tmp_path / "tb.cpp"),
        ],
        check=True,
    )
    rng = np.random.default_rng(5)
    flat = hls.flat_words(
        *tuple(
            np.concatenate(p)
            for p in zip(realistic_jets(rng, 200, 8, fe.preprocessing), _hostile(rng), strict=True)
        )
    )
    for words in (flat, fe.shuffled(flat, seed=3)):
        text = "\n".join(" ".join(map(str, row)) for row in words) + "\n"
        out = subprocess.run([str(binary)], input=text, capture_output=True, text=True, check=True).stdout
        cpp = np.array([list(map(int, line.split())) for line in out.splitlines()])
        assert (cpp == fe.network_codes(words)).all()
    assert not (fe.shuffled(flat, seed=3) == flat).all()


def test_block_cost_parts_synthesize_and_make_a_labelled_section(tmp_path) -> None:
    """Yosys maps the small parts onto Xilinx cells; the front end's cost section carries the
    counted LUT and says what is assumed."""
    from trigger_ml.config import load_model_config
    from trigger_ml.l1.frontend import TrackWordFrontEnd
    from trigger_ml.l1.rtl import compare_verilog, rank_verilog, synthesize

    compare = synthesize(compare_verilog(SPEC), "l1_compare", tmp_path / "compare")
    rank = synthesize(rank_verilog(SPEC), "l1_rank", tmp_path / "rank")
    assert compare["counts"]["LUT"] > 10 and compare["ltp_length"] > 1
    assert rank["counts"]["LUT"] > 0
    fe = TrackWordFrontEnd(load_model_config("dips-l1"))
    section = fe.cost(5.0, block={"lut": 1234, "dsp": 0, "lut_levels_on_path": 17, "source": "test"})
    # 17 LUT levels at an assumed 8 per 5 ns cycle: 3 cycles
    assert section["resources"]["LUT"] == 1234 and section["latency_cycles"] == {"min": 3, "max": 3}
    assert any("ASSUMED" in note for note in section["notes"])


# --- the end-to-end trigger_top of a tiny model on L1 words ----------------------------------


@pytest.fixture(scope="module")
def tiny_l1(workspace):
    from trigger_ml.config import load_model_config
    from trigger_ml.pipeline import ensure_hls

    config = load_model_config(TINY_L1)
    return config, ensure_hls(config, workspace)


@pytest.mark.slow
def test_tiny_l1_trigger_top_is_bit_exact_on_words(tiny_l1, workspace) -> None:
    """Track words -> l1_preprocess -> network -> decision in one C simulation equals the Python
    chain on every test jet and every hostile word family, and on shuffled words; the
    preprocessing block is costed (Yosys, cached by its Verilog) and counted in the compare row."""
    from trigger_ml.compare import cost_columns

    config, report = tiny_l1
    decision = report["decision"]
    fidelity = decision["fidelity"]
    assert decision["front_end"] == "l1_track_words"
    assert fidelity["reference"].startswith("front end l1_track_words -> the qkeras model")
    assert fidelity["test_exact_fraction"] == 1.0 and fidelity["n_test_jets"] >= 200
    assert fidelity["permutation_invariant_fraction"] == 1.0
    assert [row["family"] for row in fidelity["hostile"]] == list(FAMILIES)
    assert all(row["n_exact"] == row["n_vectors"] > 0 for row in fidelity["hostile"])
    assert decision["top"]["inputs"][0] == "const l1_track_word_t track_words[L1_N_IN]"
    front = report["cost"]["blocks"]["front_end"]
    assert (
        front["tool"] == "yosys" and front["resources"]["LUT"] > 10_000 and front["latency_cycles"]["max"] > 1
    )
    assert any("ASSUMED" in note for note in front["notes"])
    cached = list(workspace.cache_dir("block-costs").glob("*.json"))
    assert len(cached) == 1
    project = workspace.hls_dir(config.name)
    row = cost_columns(project, "da4ml")
    network = report["cost"]["sources"]["da4ml"]["resources"]["LUT"]
    blocks = report["cost"]["blocks"]
    assert row["LUT"] == network + front["resources"]["LUT"] + blocks["decision"]["resources"]["LUT"]
    assert row["blocks"] == "decision (rtl), front_end (estimate)"
    # the top's hostile vectors are on disk for the bundle, with the rows the C simulation gave
    assert len((project / "decision" / "vectors" / "hostile_families.txt").read_text().split()) == sum(
        row["n_vectors"] for row in fidelity["hostile"]
    )


@pytest.mark.slow
def test_tiny_l1_bundle_takes_track_words_and_verify_checks_them(tiny_l1, workspace, tmp_path) -> None:
    """The bundle's input spec is the track word; verify runs trigger_top on test and hostile
    words per family; a hostile row whose logits, score and bits were changed consistently
    (so only the C simulation can tell) is caught."""
    import json
    import shutil

    from trigger_ml.errors import TriggerMLError
    from trigger_ml.firmware import build_bundle, verifier, verify_bundle

    config, _ = tiny_l1
    bundle = build_bundle(config, workspace, verify=False)
    in_spec = json.loads((bundle / verifier.INPUT_SPEC).read_text())
    top = in_spec["trigger_top"]
    assert top["front_end"] == "l1_track_words" and top["track_word"]["bits"] == 96
    fields = {f["name"]: f for f in top["track_word"]["fields"]}
    assert (fields["d0"]["bit_offset"], fields["d0"]["bits"], fields["valid"]["bit_offset"]) == (19, 13, 95)
    assert in_spec["entry"].startswith("the bundle's input is trigger_top's: L1 track words")
    assert (
        in_spec["layout"]["features"][5]["name"] == "z0" and "cm" in in_spec["layout"]["features"][5]["unit"]
    )
    vectors = json.loads((bundle / verifier.OUTPUT_SPEC).read_text())["decision"]["vectors"]
    assert vectors["hostile_logits"] == "front_end" and vectors["n_hostile"] > 0
    words = (bundle / verifier.TOP_INPUTS).read_text().splitlines()
    assert all(len(line.split()) == 4 * 32 + 4 for line in words)
    card = (bundle / "README.md").read_text()
    assert "### Input of `trigger_top`: L1 track words" in card and "| `rinv` | 15 | 80 | yes |" in card
    result = verify_bundle(bundle)
    assert result.n_top_vectors == vectors["n_test"] + vectors["n_hostile"]

    copy = tmp_path / "changed"
    shutil.copytree(bundle, copy)
    families = (copy / verifier.TOP_FAMILIES).read_text().split()
    i = families.index("l1_random_bits")
    path = copy / verifier.TOP_OUTPUTS
    lines = path.read_text().splitlines()
    row = [int(v) for v in lines[i].split()]
    row[0] += 1  # the b logit, with the score and tag word the decision gives it
    emulation = json.loads((copy / verifier.OUTPUT_SPEC).read_text())["decision"]["emulation"]
    row[3], row[4] = verifier.decision_outputs(row[:3], emulation)
    lines[i] = " ".join(map(str, row))
    path.write_text("\n".join(lines) + "\n")
    resign(copy)
    with pytest.raises(
        TriggerMLError, match=rf"trigger_top vector {i} \(l1_random_bits\): C simulation gives"
    ):
        verify_bundle(copy)


@pytest.mark.slow
def test_the_costed_track_verilog_computes_the_definition(tmp_path) -> None:
    """The Verilog that Yosys costs (l1_track, with its narrowed arithmetic) simulated by
    Verilator gives the Python's codes and selection on every slot of real and hostile jets."""
    from trigger_ml.l1 import rtl_sim
    from trigger_ml.l1.preprocess import L1Inputs, track_features

    binary = rtl_sim.build(SPEC, tmp_path / "sim")
    rng = np.random.default_rng(21)
    displaced = realistic_jets(rng, 100, 8, SPEC)
    fields = unpack(displaced.words)
    fields["d0"] = rng.integers(-(2**12), 2**12, fields["d0"].shape)  # up to the word's limits
    displaced = displaced._replace(words=pack(fields))
    inputs = L1Inputs.concatenate([realistic_jets(rng, 400, 8, SPEC), displaced, _hostile(rng)])
    codes, selected = rtl_sim.simulate(binary, inputs)
    want_codes, want_selected = track_features(SPEC, *inputs)
    assert 0.2 < want_selected.mean() < 0.9  # selected and rejected tracks both occur
    assert (selected == want_selected).all()
    bad = np.argwhere((codes != want_codes).any(axis=-1))
    assert len(bad) == 0, f"{len(bad)} track slots differ, first {bad[0].tolist()}"
    saturated = (np.abs(want_codes[..., 0]) >= SPEC.q_max) & want_selected
    assert saturated.any() and (~saturated & want_selected).any()  # both sides of the d0 clip
