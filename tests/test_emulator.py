"""The fast emulator: the stored firmware program, run with numpy, equals the C simulation bit
for bit — on the test split (checked at every build) and on inputs no training jet had."""

import numpy as np
import pytest

from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.hostile import InputLayout, hostile_vectors, port_values
from trigger_ml.firmware.interface import read_interface
from trigger_ml.hls.emulator import emulate, run_program
from trigger_ml.pipeline import ensure_hls


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
    # Inputs no training jet had (trigger_ml.firmware.hostile), many of each family: the C
    # simulation gets the raw values (its port saturates and rounds them), the emulator and the
    # QKeras model what the port holds.
    port = read_interface(project / "hls4ml_prj", "myproject").input.fixed
    vectors = hostile_vectors(InputLayout.of(tiny_config), port, per_family=400, seed=5)
    held = port_values(vectors.values, port).astype(np.float32).reshape(len(vectors), 16, -1)
    model = ensure_trained(tiny_config, workspace).load_model(tiny_config, "qkeras")
    hls_model = convert(model, tiny_config, str(workspace.root / "emulator_prj"))
    compile_csim(hls_model)
    expected = csim_predict(hls_model, vectors.values.reshape(held.shape))
    np.testing.assert_array_equal(emulate(project, held), expected)
    # and the QKeras model computes the same on them (the exactness rules hold off-distribution too)
    np.testing.assert_array_equal(
        model.predict(held, batch_size=4096, verbose=0).astype(np.float64), expected
    )


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
