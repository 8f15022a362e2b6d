"""The fast emulator: the stored firmware program, run with numpy, equals the C simulation bit
for bit — on the test split (checked at every build) and on inputs no training jet had."""

import numpy as np
import pytest

from trigger_ml.data.dataset import quantize_to_fixed
from trigger_ml.errors import TriggerMLError
from trigger_ml.hls.emulator import emulate, run_program
from trigger_ml.pipeline import ensure_hls


def hostile_inputs(config, n: int = 3000, seed: int = 5) -> np.ndarray:
    """Inputs outside the training distribution, on the input type's grid: wide random
    values (most saturate), the type's extremes, empty jets, every slot filled, single tracks."""
    rng = np.random.default_rng(seed)
    shape = (config.inputs.max_tracks, len(config.inputs.track_features))
    t = config.quantization.input
    top = 2.0**t.integer
    x = rng.normal(0.0, 3 * top, (n, *shape))  # far beyond the scaled features' spread
    x[: n // 10] = 0.0  # empty jets
    x[n // 10 : n // 5] = rng.choice(
        [-top, top - 2.0 ** -(t.bits - 1 - t.integer)], (n // 5 - n // 10, *shape)
    )
    single = slice(n // 5, n // 4)
    x[single, 1:] = 0.0  # one track with extreme values
    return quantize_to_fixed(x, t)


@pytest.mark.slow
def test_emulator_equals_csim_on_test_jets_and_hostile_inputs(workspace, tiny_config, tiny_sample):
    from trigger_ml.hls.convert import compile_csim, convert
    from trigger_ml.hls.fidelity import csim_predict
    from trigger_ml.pipeline import ensure_trained

    report = ensure_hls(tiny_config, workspace)
    record = report["fidelity"]["emulator"]
    assert (
        record["emulator_vs_csim_exact_fraction"] == 1.0 and record["n_jets"] == report["fidelity"]["n_jets"]
    )
    project = workspace.hls_dir(tiny_config.name)
    x = hostile_inputs(tiny_config)
    model = ensure_trained(tiny_config, workspace).load_model(tiny_config, "qkeras")
    hls_model = convert(model, tiny_config, str(workspace.root / "emulator_prj"))
    compile_csim(hls_model)
    expected = csim_predict(hls_model, x)
    np.testing.assert_array_equal(emulate(project, x), expected)
    # and the QKeras model computes the same on them (the exactness rules hold off-distribution too)
    np.testing.assert_array_equal(model.predict(x, batch_size=4096, verbose=0).astype(np.float64), expected)


def test_emulator_refuses_inputs_of_the_wrong_shape():
    steps = [
        {
            "op": "input",
            "shape": [4, 3],
            "type": {"k": 1, "i": 3, "f": 6, "rounding": "TRN", "overflow": "WRAP"},
        }
    ]
    with pytest.raises(TriggerMLError, match="do not fit the firmware's input"):
        run_program(steps, np.zeros((2, 3, 4)))
