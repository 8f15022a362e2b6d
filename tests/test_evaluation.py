"""The evaluation sample of record: generated independently of the training sample, evaluated
whole by the emulator, which equals the C simulation on every one of its jets."""

import numpy as np
import pytest

from trigger_ml.config import load_model_config
from trigger_ml.data.dataset import read_sample
from trigger_ml.errors import UsageError
from trigger_ml.evaluation import FIRMWARE, PREDICTIONS_FILE, read_predictions
from trigger_ml.fileio import sha256_of_file
from trigger_ml.hls.stage import REPORT_FORMAT
from trigger_ml.pipeline import ensure_data, ensure_evaluation_data, ensure_hls, ensure_trained, runner
from trigger_ml.runner import read_stamp, stamp_matches

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_report(workspace, tiny_config, tiny_sample):
    return ensure_hls(tiny_config, workspace)


def test_evaluation_sample_is_independent_of_the_training_sample(workspace, tiny_config, tiny_sample):
    path = ensure_evaluation_data(tiny_config, workspace)
    assert path != tiny_sample and path.parent.parent == tiny_sample.parent.parent
    evaluation, training = read_sample(path), read_sample(tiny_sample)
    assert len(evaluation.jets) == tiny_config.evaluation.n_jets == 1200
    # same generator settings, other seed: no jet of one sample is a jet of the other
    shared = set(evaluation.jets["pt"].tolist()) & set(training.jets["pt"].tolist())
    assert not shared
    assert ensure_evaluation_data(tiny_config, workspace) == path  # cached


def test_evaluation_seed_must_differ_from_the_sample_seed():
    with pytest.raises(UsageError, match="evaluation.seed"):
        load_model_config("dips-small@sample.seed=7,evaluation.seed=7")


def test_training_does_not_depend_on_the_evaluation_sample():
    base = load_model_config("dips-small")
    other = load_model_config("dips-small@eval_jets=5000,evaluation.seed=99")
    assert base.training_digest() == other.training_digest() and base.digest() != other.digest()


def test_report_has_physics_of_record_on_the_whole_evaluation_sample(workspace, tiny_config, tiny_report):
    evaluation = tiny_report["evaluation"]
    path = ensure_evaluation_data(tiny_config, workspace)
    assert evaluation["sha256"] == sha256_of_file(path) != tiny_report["data"]["sha256"]
    assert evaluation["n_jets"] == 1200 == sum(evaluation["jets_per_class"].values())
    assert evaluation["evaluated_by"] == "emulator"
    assert evaluation["csim_check"] == {"n_jets": 1200, "emulator_vs_csim_exact_fraction": 1.0}
    assert evaluation["firmware_vs_reference_exact_fraction"] == 1.0
    metrics = evaluation["metrics"]
    assert set(metrics) == {"float", "qkeras", FIRMWARE}
    assert metrics[FIRMWARE] == metrics["qkeras"]  # bit-exact firmware: identical physics
    assert metrics[FIRMWARE]["rej_light_at_70_stat"] > 0
    logits, classes = read_predictions(workspace.hls_dir(tiny_config.name) / PREDICTIONS_FILE, FIRMWARE)
    assert logits.shape == (1200, 3) and len(classes) == 1200
    report_md = (workspace.hls_dir(tiny_config.name) / "report.md").read_text()
    assert "## Physics on the evaluation sample" in report_md and "1200 jets" in report_md


def test_emulator_equals_csim_on_every_evaluation_jet(workspace, tiny_config, tiny_report):
    """The check of record: the C simulation run over the whole evaluation sample gives the
    logits the emulator gave, bit for bit."""
    from trigger_ml.evaluation import load_evaluation_sample
    from trigger_ml.hls.convert import compile_csim, convert
    from trigger_ml.hls.fidelity import csim_predict

    run = ensure_trained(tiny_config, workspace)
    sample = load_evaluation_sample(tiny_config, run, ensure_evaluation_data(tiny_config, workspace))
    hls_model = convert(run.load_model(tiny_config, "qkeras"), tiny_config, str(workspace.root / "eval_prj"))
    compile_csim(hls_model)
    emulated, _ = read_predictions(workspace.hls_dir(tiny_config.name) / PREDICTIONS_FILE, FIRMWARE)
    csim = csim_predict(hls_model, sample.inputs)
    assert np.array_equal(emulated, csim)


def test_project_is_rebuilt_when_the_evaluation_sample_or_the_training_changes(
    workspace, tiny_config, tiny_report
):
    project = workspace.hls_dir(tiny_config.name)
    assert runner(workspace).is_current("hls", tiny_config)
    material = read_stamp(project)["material"]
    assert material == {
        "stage": "hls",
        "version": REPORT_FORMAT,
        "config_sha256": tiny_config.digest(),
        "training_sha256": tiny_config.training_digest(),
        "data_sha256": sha256_of_file(ensure_data(tiny_config, workspace)),
        "evaluation_sha256": tiny_report["evaluation"]["sha256"],
    }
    assert not stamp_matches(project, {**material, "evaluation_sha256": "0" * 64})
    # weights trained under another instruction-set cap (trigger_ml.numerics) are other firmware
    assert not stamp_matches(project, {**material, "training_sha256": "0" * 64})
