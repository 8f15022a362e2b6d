"""HGQ as the second quantization route (``quantization.kind: hgq``), on tiny real inputs:
train an HGQ Deep Set, convert its proxy model with hls4ml, and check that the g++ C
simulation equals the proxy model bit for bit, on the test jets and on inputs the training
never saw, and that it is permutation invariant."""

import numpy as np
import pytest
from conftest import TINY_MODEL
from test_frugal import DIPS_SMALL_DIGEST, DIPS_SMALL_TRAINING_DIGEST

from trigger_ml.config import load_model_config, parse_model_config, zoo_names
from trigger_ml.errors import UsageError

# conftest's tiny Deep Set (same sample, shapes and epochs), trained with HGQ.
TINY_HGQ_MODEL = TINY_MODEL.replace("dips-small@", "dips-small-hgq@", 1)


# dips-small as the zoo defined it at commit 39b3b82, before quantization.kind and
# quantization.hgq existed, with the digests that schema gave it.
DIPS_SMALL_39B3B82 = {
    "name": "dips-small",
    "description": "Deep Sets b-tagger (DIPS style), 16 tracks, Phi 32-16, F 24, 8-bit QAT",
    "sample": {"process": "ttbar", "n_jets": 100000, "seed": 1},
    "split": {"train": 0.6, "val": 0.1, "test": 0.3, "seed": 0},
    "inputs": {
        "max_tracks": 16,
        "track_features": ["sd0", "sz0", "log_ptfrac", "log_dr", "d0", "z0sintheta", "valid"],
    },
    "architecture": {
        "kind": "deepsets",
        "phi_widths": [32, 16],
        "f_widths": [24],
        "classes": ["b", "c", "light"],
    },
    "quantization": {
        "input": {"bits": 10, "integer": 3},
        "weight": {"bits": 8, "integer": 0},
        "bias": {"bits": 8, "integer": 3},
        "activation": {"bits": 8, "integer": 3},
    },
    "training": {
        "epochs": 40,
        "batch_size": 256,
        "learning_rate": 0.002,
        "seed": 42,
        "early_stopping_patience": 6,
    },
    "physics": {"f_c": 0.018},
    "hls": {
        "backend": "Vitis",
        "part": "xcvu13p-flga2577-2-e",
        "clock_period_ns": 5.0,
        "io_type": "io_parallel",
        "strategy": "Latency",
        "reuse_factor": 1,
        "track_parallelization": None,
        "precision_overrides": {},
    },
}


def test_configs_without_kind_keep_their_digests():
    # Cached runs and projects of QKeras models stay valid: the new optional fields are left
    # out of the hashes when unset.
    config = parse_model_config(DIPS_SMALL_39B3B82, "test")
    assert config.quantization.kind is None and config.quantization.hgq is None
    assert config.digest() == DIPS_SMALL_DIGEST
    assert config.training_digest() == DIPS_SMALL_TRAINING_DIGEST
    dumped = config.model_dump(mode="json", exclude_none=True)["quantization"]
    assert "kind" not in dumped and "hgq" not in dumped
    for name in zoo_names():
        zoo_config = load_model_config(name)
        if not zoo_config.quantization.is_hgq:
            assert "kind" not in zoo_config.model_dump(mode="json", exclude_none=True)["quantization"]


def test_hgq_settings_are_validated():
    hgq = parse_model_config({**DIPS_SMALL_39B3B82, "quantization": {"kind": "hgq"}}, "test")
    assert hgq.quantization.is_hgq
    assert hgq.training_digest() != parse_model_config(DIPS_SMALL_39B3B82, "test").training_digest()
    settings = hgq.quantization.hgq_settings()
    assert settings.beta >= 0 and settings.init_bw_k >= 1
    tuned = load_model_config("dips-small-hgq@quantization.hgq.beta=1e-6")
    assert tuned.quantization.hgq_settings().beta == 1e-6
    for bad in (
        "dips-small-hgq@quantization.kind=qkeras",  # hgq settings without kind hgq
        "dips-small-hgq@quantization.hgq.beta=-1",
        "dips-small-hgq@quantization.hgq.bits=3",
        "dips-small-hgq@quantization.enabled=false",
        "dips-small-hgq@training.pruning.final_sparsity=0.5",
        "dips-small-hgq@quantization.layers.phi_1.weight={bits: 4, integer: 0}",
    ):
        with pytest.raises(UsageError):
            load_model_config(bad)


@pytest.fixture(scope="module")
def hgq_config():
    return load_model_config(TINY_HGQ_MODEL)


@pytest.fixture(scope="module")
def hgq_report(workspace, hgq_config, tiny_sample):
    from trigger_ml.pipeline import ensure_hls

    return ensure_hls(hgq_config, workspace)


@pytest.fixture(scope="module")
def hgq_run(workspace, hgq_config, hgq_report):
    from trigger_ml.pipeline import ensure_trained

    return ensure_trained(hgq_config, workspace)


@pytest.fixture(scope="module")
def csim_and_proxy(hgq_config, hgq_run, tmp_path_factory):
    """The C simulation of the trained model (converted afresh) and its proxy model."""
    from trigger_ml.hls.convert import compile_csim, convert

    proxy = hgq_run.load_model(hgq_config, "qkeras")
    hls_model = convert(
        hgq_run.load_model(hgq_config, "qkeras"), hgq_config, str(tmp_path_factory.mktemp("prj"))
    )
    compile_csim(hls_model)
    return hls_model, proxy


@pytest.fixture(scope="module")
def test_inputs(hgq_config, hgq_run, tiny_sample):
    from trigger_ml.data.dataset import model_inputs, prepare, read_sample

    sample = read_sample(tiny_sample)
    data = prepare(sample, hgq_config, scaling=hgq_run.scaling)
    valid = sample.tracks["valid"][data.indices["test"], : hgq_config.inputs.max_tracks].astype(bool)
    return model_inputs(data.inputs["test"], hgq_config), valid


@pytest.mark.slow
def test_csim_equals_the_proxy_and_is_permutation_invariant(hgq_report, hgq_run):
    fidelity = hgq_report["fidelity"]
    assert fidelity["n_jets"] == hgq_report["data"]["jets_per_split"]["test"] > 100
    assert fidelity["csim_vs_reference_exact_fraction"] == 1.0
    assert fidelity["max_abs_logit_diff"] == 0.0
    assert fidelity["first_divergent_layer"] is None
    assert fidelity["permutation_invariant_fraction"] == 1.0
    assert fidelity["permutation_n_jets_with_2plus_tracks"] > 50
    assert hgq_report["metrics"]["csim"] == hgq_report["metrics"]["qkeras"]
    # the firmware program, its emulator and da4ml's cost cover HGQ models
    assert fidelity["emulator"]["emulator_vs_csim_exact_fraction"] == 1.0
    da4ml = hgq_report["cost"]["sources"]["da4ml"]
    assert da4ml["resources"]["LUT"] > 0 and da4ml["resources"]["DSP"] == 0
    assert hgq_report["cost"]["da4ml"]["n_jets_checked"] == fidelity["n_jets"]
    # the firmware's input word is the configured input type, as for QKeras models
    tracks = next(layer for layer in hgq_report["hls"]["layers"] if layer["name"] == "tracks")
    assert tracks["types"]["result_t"].startswith("fixed<10,4,RND_CONV,SAT")
    names = [layer["name"] for layer in hgq_report["hls"]["layers"]]
    assert {"phi_1", "phi_1_relu", "phi_2", "track_pool", "f_1", "logits"} <= set(names)
    hgq = hgq_run.metrics["hgq"]
    assert hgq["bops"] > 0
    assert sum(layer["bops"] for layer in hgq["layers"].values()) == hgq["bops"]
    assert hgq_run.metrics["n_params"]["qkeras"] == hgq_run.metrics["n_params"]["float"]


@pytest.mark.slow
def test_padded_slots_contribute_zero(hgq_config, csim_and_proxy, test_inputs):
    from trigger_ml.hls.fidelity import keras_layer_outputs

    _, proxy = csim_and_proxy
    x, valid = test_inputs
    last_phi = f"phi_{len(hgq_config.architecture.phi_widths)}_relu_quantizer"
    phi = keras_layer_outputs(proxy, x)[last_phi]
    assert (~valid).sum() > 100
    assert np.all(phi[~valid] == 0)
    assert np.any(phi[valid] != 0)


@pytest.mark.slow
def test_csim_equals_the_proxy_outside_the_training_distribution(hgq_config, csim_and_proxy, test_inputs):
    from trigger_ml.data.dataset import fixed_point_grid
    from trigger_ml.hls.fidelity import csim_predict, exact_match

    hls_model, proxy = csim_and_proxy
    x, valid = test_inputs
    step, low, high = fixed_point_grid(hgq_config.quantization.input)
    rng = np.random.default_rng(7)
    n_tracks, n_features = x.shape[1:]
    valid_feature = hgq_config.inputs.track_features.index("valid")

    saturated = rng.choice([low, high], size=(64, n_tracks, n_features))  # every slot filled, extreme
    saturated[:, :, valid_feature] = 1.0
    uniform = rng.uniform(low, high, size=(64, n_tracks, n_features))  # anywhere in the input type
    uniform = np.round(uniform / step) * step
    empty = np.zeros((4, n_tracks, n_features))
    # all slots filled with real tracks, taken from other jets
    real_tracks = x[valid]
    full = real_tracks[rng.integers(0, len(real_tracks), size=(64, n_tracks))]
    # test jets whose tracks are pushed to the limits of the input type
    scaled = np.clip(x[:64] * 8.0, low, high)
    scaled = np.round(scaled / step) * step
    inputs = np.concatenate([saturated, uniform, empty, full, scaled]).astype(np.float32)

    expected = proxy.predict(inputs, batch_size=4096, verbose=0)
    got = csim_predict(hls_model, inputs)
    assert exact_match(got, expected).all()
    # the fast emulator runs HGQ's per-element quantizers bit for bit too
    from trigger_ml.hls.emulator import run_program
    from trigger_ml.hls.program import extract_program

    np.testing.assert_array_equal(run_program(extract_program(hls_model), inputs), got)
    # an empty jet is the F network's answer to a zero pooled vector, the same for all
    empty_out = got[len(saturated) + len(uniform) : len(saturated) + len(uniform) + len(empty)]
    assert np.all(empty_out == empty_out[0])


@pytest.mark.slow
def test_hgq_training_is_deterministic(hgq_config, tiny_sample, tmp_path):
    from trigger_ml.training import train

    config = load_model_config(TINY_HGQ_MODEL.replace("epochs=4", "epochs=1") + ",training.float_twin=false")
    first = train(config, tiny_sample, tmp_path / "a")
    second = train(config, tiny_sample, tmp_path / "b")
    weights_a = first.load_model(config, "qkeras").get_weights()
    weights_b = second.load_model(config, "qkeras").get_weights()
    for wa, wb in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert first.metrics["models"] == second.metrics["models"]
    assert first.metrics["hgq"] == second.metrics["hgq"]
