"""Per-layer quantization and weight pruning: configuration, training, firmware.

The slow tests train a tiny Deep Set with narrower Φ types and pruned kernels on the
session's tiny real sample, check the stored weights have the requested sparsity, that the
hls4ml C simulation computes the QKeras model bit for bit, and that the da4ml trace of the
RTL cost stage reproduces the C simulation.
"""

import h5py
import numpy as np
import pytest
import yaml

from trigger_ml.config import load_model_config, parse_model_config
from trigger_ml.errors import UsageError

# dips-small.yaml as it was before per-layer quantization and pruning existed, with the
# hashes it had then: configurations that do not use the new fields keep their cache keys.
DIPS_SMALL_BEFORE = """
name: dips-small
description: Deep Sets b-tagger (DIPS style), 16 tracks, Phi 32-16, F 24, 8-bit QAT
sample: {process: ttbar, n_jets: 100000, seed: 1}
split: {train: 0.6, val: 0.1, test: 0.3, seed: 0}
inputs:
  max_tracks: 16
  track_features: [sd0, sz0, log_ptfrac, log_dr, d0, z0sintheta, valid]
architecture: {kind: deepsets, phi_widths: [32, 16], f_widths: [24], classes: [b, c, light]}
quantization:
  input: {bits: 10, integer: 3}
  weight: {bits: 8, integer: 0}
  bias: {bits: 8, integer: 3}
  activation: {bits: 8, integer: 3}
training: {epochs: 40, batch_size: 256, learning_rate: 0.002, seed: 42, early_stopping_patience: 6}
physics: {f_c: 0.018}
hls:
  backend: Vitis
  part: xcvu13p-flga2577-2-e
  clock_period_ns: 5.0
  io_type: io_parallel
  strategy: Latency
  reuse_factor: 1
  track_parallelization: null
  precision_overrides: {}
"""
# Changed once on purpose by issue 14 (was 108b0f68… / 86d8b5eb…): the evaluation sample
# joined the configuration hash, the oneDNN instruction-set cap the training hash.
DIPS_SMALL_DIGEST = "9f912183e994a947b015c3161c6f4745aaec348d18386640b673b67b152d7171"
DIPS_SMALL_TRAINING_DIGEST = "ce260bc546896b37de358e1b6f58f9c12acf88a7bc0482ce85b1d1f74355c65e"

PHI_NARROW = (
    "quantization.layers.phi_1={weight: {bits: 4, integer: 0}, activation: {bits: 6, integer: 2}},"
    "quantization.layers.phi_2.weight={bits: 3, integer: 0}"
)
PRUNING = (
    "training.pruning={final_sparsity: 0.6, begin_fraction: 0.1, end_fraction: 0.5, layers: [phi_1, phi_2]}"
)


def test_configs_without_the_new_fields_keep_their_digests():
    config = parse_model_config(yaml.safe_load(DIPS_SMALL_BEFORE), "dips-small (before)")
    assert config.quantization.layers is None and config.training.pruning is None
    assert config.digest() == DIPS_SMALL_DIGEST
    assert config.training_digest() == DIPS_SMALL_TRAINING_DIGEST


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("quantization.layers.phi_3.weight={bits: 4, integer: 0}", "unknown layer 'phi_3'"),
        ("quantization.layers.f_1.weight={bits: 4, integer: 5}", "integer bits must be at most"),
        ("quantization.layers.logits.activation={bits: 4, integer: 1}", "the logits have no activation"),
        ("quantization.layers.phi_1.bias={bits: 4, integer: 1}", "the Φ layers have no bias"),
        ("quantization.layers.phi_1.gain=3", "unknown key 'quantization.layers.phi_1.gain'"),
        ("training.pruning.final_sparsity=1.2", "training.pruning.final_sparsity"),
        ("training.pruning.final_sparsity=0", "training.pruning.final_sparsity"),
        ("training.pruning={final_sparsity: 0.5, layers: [dense_1]}", "unknown layer 'dense_1'"),
        ("training.pruning={final_sparsity: 0.5, layer_sparsity: {phi_2: 1.0}}", "sparsity of layer phi_2"),
        ("training.pruning={final_sparsity: 0.5, begin_fraction: 0.5, end_fraction: 0.4}", "end_fraction"),
    ],
)
def test_bad_layer_settings_are_one_line_errors(override, expected):
    with pytest.raises(UsageError) as caught:
        load_model_config(f"dips-small@{override}")
    message = str(caught.value.message)
    assert expected in message
    assert "\n" not in message


def test_a_dense_model_names_its_own_layers():
    config = load_model_config("dense-small@quantization.layers.dense_2.weight={bits: 4, integer: 0}")
    assert config.quantization.weight_for("dense_2").bits == 4
    assert config.quantization.weight_for("dense_1").bits == config.quantization.weight.bits
    with pytest.raises(UsageError, match="unknown layer 'phi_1'"):
        load_model_config("dense-small@quantization.layers.phi_1.weight={bits: 4, integer: 0}")


def test_models_use_the_per_layer_quantizers():
    from trigger_ml.hls.convert import pooling_types
    from trigger_ml.models import build_model

    config = load_model_config(
        f"dips-small@{PHI_NARROW},quantization.layers.phi_2.activation={{bits: 5, integer: 3}}"
    )
    model = build_model(config, quantized=True)
    dense = [layer.name for layer in model.layers if hasattr(layer, "kernel_quantizer_internal")]
    assert tuple(dense) == config.architecture.dense_layer_names()
    layers = {layer.name: layer for layer in model.layers}
    assert (
        layers["phi_1"].kernel_quantizer_internal.bits,
        layers["phi_2"].kernel_quantizer_internal.bits,
    ) == (4, 3)
    assert layers["f_1"].kernel_quantizer_internal.bits == 8
    assert (layers["phi_1_relu"].quantizer.bits, layers["phi_1_relu"].quantizer.integer) == (6, 2)
    assert (layers["phi_2_relu"].quantizer.bits, layers["phi_2_relu"].quantizer.integer) == (5, 3)
    assert layers["f_1_relu"].quantizer.bits == 8
    # the pooled values are the last Φ ReLU's: 5 bits + 4 fractional bits for 16 slots
    assert pooling_types(config)["result"] == "ufixed<9,3>"
    dense_model = build_model(load_model_config("dense-small"), quantized=True)
    names = [layer.name for layer in dense_model.layers if hasattr(layer, "kernel_quantizer_internal")]
    assert tuple(names) == load_model_config("dense-small").architecture.dense_layer_names()


def test_pruning_schedule_reaches_the_final_sparsity_on_an_update_step():
    from trigger_ml.training import pruning_schedule

    config = load_model_config(f"dips-small@{PRUNING},training.pruning.layer_sparsity={{f_1: 0.25}}")
    schedule = pruning_schedule(config, n_train=60_000)
    assert schedule.steps_per_epoch == 235  # ceil(60000 / 256)
    assert schedule.sparsity == {"phi_1": 0.6, "phi_2": 0.6, "f_1": 0.25}
    assert (schedule.end_step - schedule.begin_step) % schedule.frequency == 0
    assert schedule.begin_step == round(0.1 * 235 * 40)
    assert 0.45 * 235 * 40 < schedule.end_step <= 0.5 * 235 * 40
    assert schedule.final_epoch == (schedule.end_step - 1) // 235


# --- slow: training, hls4ml and da4ml on tiny real inputs -----------------------------------


def _frugal_tiny(tiny_config, epochs: int, **training):
    """The tiny model with narrower Φ types and pruned Φ kernels, under a short name (the
    override spelling would exceed the file-name limit of its project directory)."""
    spelled = load_model_config(f"{tiny_config.name},epochs={epochs},{PHI_NARROW},{PRUNING}")
    data = spelled.model_dump(mode="json", exclude_none=True)
    data["name"] = f"frugal-tiny-{epochs}"
    data["training"].update(training)
    return parse_model_config(data, "frugal tiny model")


@pytest.fixture(scope="module")
def frugal_config(tiny_config):
    return _frugal_tiny(tiny_config, epochs=6)


@pytest.fixture(scope="module")
def frugal_report(workspace, frugal_config, tiny_sample):
    from trigger_ml.pipeline import ensure_hls

    return ensure_hls(frugal_config, workspace)


@pytest.mark.slow
def test_pruned_weights_are_stored_with_their_sparsity(workspace, frugal_config, frugal_report):
    from trigger_ml.pipeline import ensure_trained

    run = ensure_trained(frugal_config, workspace)
    model = run.load_model(frugal_config, "qkeras")  # the plain model of trigger_ml.models
    measured = run.metrics["pruning"]["measured_zero_fraction"]
    for layer in model.layers:
        if not hasattr(layer, "kernel_quantizer_internal"):
            continue
        kernel = np.asarray(layer.kernel)
        zeros = float(np.mean(kernel == 0))
        assert measured[layer.name]["kernel"] == zeros
        if layer.name in ("phi_1", "phi_2"):
            assert abs(zeros - 0.6) <= 0.5 / kernel.size + 1e-9, layer.name
            quantized = np.asarray(layer.kernel_quantizer_internal(layer.kernel))
            assert np.all(quantized[kernel == 0] == 0)
        else:
            assert zeros < 0.5, layer.name  # not pruned
    assert run.metrics["pruning"]["target_sparsity"] == {"phi_1": 0.6, "phi_2": 0.6}
    assert (
        run.metrics["epochs_run"]["qkeras"]
        > run.metrics["pruning"]["end_step"] // (run.metrics["pruning"]["steps_per_epoch"])
    )


@pytest.mark.slow
def test_pruned_narrow_model_csim_is_bit_exact(frugal_config, frugal_report):
    from trigger_ml.hls.convert import pooling_types

    fidelity = frugal_report["fidelity"]
    assert fidelity["csim_vs_qkeras_exact_fraction"] == 1.0
    assert fidelity["max_abs_logit_diff"] == 0.0
    assert fidelity["permutation_invariant_fraction"] == 1.0
    types = {layer["name"]: layer["types"] for layer in frugal_report["hls"]["layers"]}
    assert types["track_pool"]["result_t"].startswith(pooling_types(frugal_config)["result"][:-1])
    assert types["phi_1_relu"]["result_t"].startswith("ufixed<6,2")


@pytest.mark.slow
def test_da4ml_trace_reproduces_the_csim(workspace, frugal_config, frugal_report):
    # The QKeras model traced with da4ml (tests/qkeras_trace.py), cut into pipeline stages,
    # computes the C simulation's logits bit for bit: its da4ml cost is the firmware's.
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline
    from qkeras_trace import trace_network

    from trigger_ml.cost.da4ml_cost import pipeline_predict
    from trigger_ml.pipeline import ensure_data, ensure_trained
    from trigger_ml.rtl import _test_inputs

    run = ensure_trained(frugal_config, workspace)
    with h5py.File(workspace.hls_dir(frugal_config.name) / "csim_predictions.h5", "r") as handle:
        test_index = handle["test_index"][()]
        logits_csim = handle["logits_csim"][()].astype(np.float64)
    x_test = _test_inputs(frugal_config, run, ensure_data(frugal_config, workspace), test_index)
    inputs, logits = trace_network(run.load_model(frugal_config, "qkeras"))
    pipeline = to_pipeline(comb_trace(inputs, logits), 5.0, verbose=False)
    np.testing.assert_array_equal(pipeline_predict(pipeline, x_test), logits_csim)


@pytest.mark.slow
def test_pruned_training_is_deterministic(tiny_config, tiny_sample, tmp_path):
    from trigger_ml.training import train

    config = _frugal_tiny(tiny_config, epochs=3, float_twin=False)
    first = train(config, tiny_sample, tmp_path / "a")
    second = train(config, tiny_sample, tmp_path / "b")
    for wa, wb in zip(
        first.load_model(config).get_weights(), second.load_model(config).get_weights(), strict=True
    ):
        np.testing.assert_array_equal(wa, wb)
    assert first.metrics["pruning"] == second.metrics["pruning"]
