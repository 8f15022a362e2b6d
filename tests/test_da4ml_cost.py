"""The da4ml cost source: the traced firmware graph reproduces the C simulation bit for bit
and its cost equals that of an independent trace of the QKeras model."""

import itertools

import numpy as np
import pytest

from trigger_ml.config import load_model_config
from trigger_ml.cost.da4ml_cost import cast, pipeline_predict
from trigger_ml.hls.program import cast_values
from trigger_ml.pipeline import ensure_hls


def _round_half_even_sat(values: np.ndarray, signed: int, i: int, f: int, overflow: str) -> np.ndarray:
    codes = np.round(values * 2.0**f)  # numpy rounds half to even
    low, high = -signed * 2.0 ** (i + f), 2.0 ** (i + f) - 1
    if overflow == "SAT":
        codes = np.clip(codes, low, high)
    else:
        codes = (codes - low) % 2.0 ** (i + f + signed) + low
    return codes * 2.0**-f


@pytest.mark.parametrize(
    ("rounding", "overflow", "signed"),
    list(itertools.product(("RND_CONV", "RND", "TRN"), ("SAT", "WRAP"), (0, 1))),
)
def test_cast_matches_ap_fixed_conversion_on_every_input(rounding, overflow, signed):
    """Every value of a signed 8-bit <8,4> input cast to (signed, 2, 1): the pipelined graph
    gives what ap_fixed's conversion gives (round first, then overflow)."""
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace
    from da4ml.trace.pipeline import to_pipeline

    x = FixedVariableArray.from_kif(np.ones(1, int), np.full(1, 3), np.full(1, 4), hwconf=HWConfig(1, -1, -1))
    t = {"k": signed, "i": 2, "f": 1, "rounding": rounding, "overflow": overflow}
    y = cast(x._vars[0], t)
    pipeline = to_pipeline(comb_trace(x, FixedVariableArray(np.array([y], dtype=object))), 5.0, verbose=False)
    values = np.arange(-128, 128, dtype=np.float64)[:, None] / 16.0
    got = pipeline_predict(pipeline, values)[:, 0]
    if rounding == "RND_CONV":
        expected = _round_half_even_sat(values[:, 0], signed, 2, 1, overflow)
    else:
        shifted = values[:, 0] + (0.25 if rounding == "RND" else 0.0)
        expected = _round_half_even_sat(np.floor(shifted * 2.0) / 2.0, signed, 2, 1, overflow)
    np.testing.assert_array_equal(got, expected)
    # the emulator's numeric conversion is the same function
    np.testing.assert_array_equal(cast_values(values[:, 0], t), expected)


def test_only_fully_unrolled_designs_are_traced():
    assert load_model_config("dips-small@strategy=Latency").why_not_fully_unrolled() is None
    assert load_model_config("dips-small@hls.track_parallelization=16").why_not_fully_unrolled() is None
    folded = load_model_config("dips-small@strategy=Latency,reuse=2").why_not_fully_unrolled()
    assert folded.startswith("not fully unrolled")
    parallel = load_model_config("dips-small@strategy=Latency,hls.track_parallelization=4")
    assert "4 per clock" in parallel.why_not_fully_unrolled()


@pytest.mark.slow
def test_da4ml_section_of_a_deep_set_is_checked_and_matches_the_qkeras_trace(
    workspace, tiny_config, tiny_sample
):
    from da4ml.trace import comb_trace
    from qkeras_trace import trace_network

    from trigger_ml.pipeline import ensure_trained

    report = ensure_hls(tiny_config, workspace)
    section = report["cost"]["sources"]["da4ml"]
    summary = report["cost"]["da4ml"]
    assert section["source"] == "da4ml" and section["tool_version"].startswith("0.5")
    assert section["resources"]["DSP"] == 0 and section["initiation_interval"] == 1
    assert section["latency_cycles"]["max"] == summary["pipeline_stages"] + 1
    assert summary["n_jets_checked"] == report["fidelity"]["n_jets"]  # every test jet, bit for bit
    assert report["cost"]["best"]["source"] == "da4ml"  # more trustworthy than the estimate
    # an independent trace (of the QKeras layers, not of the hls4ml graph) gives the same adder graph
    model = ensure_trained(tiny_config, workspace).load_model(tiny_config, "qkeras")
    inputs, logits = trace_network(model)
    assert section["resources"]["LUT"] == round(comb_trace(inputs, logits).cost)
    # each step's share of the graph: the shares add up to the whole design
    layers = section["per_layer"]
    assert [layer["name"] for layer in layers if layer["class"] == "Dense"][:2] == ["phi_1", "phi_2"]
    assert sum(layer["LUT"] for layer in layers) == section["resources"]["LUT"]
    assert all(layer["FF"] == 0 for layer in layers)  # register bits are not shared out per step
    assert sum(layer["latency_cycles"] for layer in layers) == summary["pipeline_stages"]
    assert min(layer["LUT"] for layer in layers) >= 0
    assert report["plots"]["cost_per_layer.png"].endswith("source: da4ml")


@pytest.mark.slow
def test_post_training_quantized_model_is_traced_product_by_product(workspace, tiny_sample):
    """hls4ml's fixed<16,6> accumulator truncates each product of a PTQ model: the trace must
    do the same to match the C simulation (the section exists only if it does)."""
    config = load_model_config(
        "dips-small-ptq@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=2,"
        "architecture.phi_widths=[4],architecture.f_widths=[4]"
    )
    report = ensure_hls(config, workspace)
    assert report["cost"]["unavailable"] == {}
    section = report["cost"]["sources"]["da4ml"]
    assert section["resources"]["LUT"] > 0
    assert report["cost"]["da4ml"]["n_jets_checked"] == report["fidelity"]["n_jets"]
