"""The spine on tiny real inputs: train a QKeras Deep Set, convert it with hls4ml, and check
that the g++ C simulation is bit-exact and permutation invariant."""

import numpy as np
import pytest

from trigger_ml.config import load_model_config
from trigger_ml.fileio import read_json
from trigger_ml.pipeline import ensure_hls
from trigger_ml.training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_report(workspace, tiny_config, tiny_sample):
    return ensure_hls(tiny_config, workspace)


def test_csim_is_bit_exact_and_permutation_invariant(tiny_report):
    fidelity = tiny_report["fidelity"]
    assert fidelity["n_jets"] == tiny_report["data"]["jets_per_split"]["test"] > 100
    assert fidelity["csim_vs_qkeras_exact_fraction"] == 1.0
    assert fidelity["max_abs_logit_diff"] == 0.0
    assert fidelity["first_divergent_layer"] is None
    assert fidelity["permutation_invariant_fraction"] == 1.0
    assert fidelity["permutation_n_jets_with_2plus_tracks"] > 50
    # bit-exact C simulation gives the QKeras physics exactly
    assert tiny_report["metrics"]["csim"] == tiny_report["metrics"]["qkeras"]


def test_report_and_project_are_complete(workspace, tiny_config, tiny_report):
    project = workspace.hls_dir(tiny_config.name)
    for name in ("report.json", "report.md", "roc.png", "logit_diff.png", "csim_predictions.h5"):
        assert (project / name).is_file(), name
    prj = project / "hls4ml_prj"
    for name in ("build_prj.tcl", "firmware/myproject.cpp", "firmware/parameters.h", "myproject_test.cpp"):
        assert (prj / name).is_file(), name
    assert "OutputDir: ." in (prj / "hls4ml_config.yml").read_text()
    report = read_json(project / "report.json")
    assert report["model"] == tiny_config.name
    assert report["config_sha256"] == tiny_config.digest()
    for kind in ("float", "qkeras", "csim"):
        assert set(report["metrics"][kind]) >= {
            "auc_b_vs_light",
            "rej_light_at_70",
            "rej_light_at_77",
            "rej_c_at_70",
        }
    assert report["hls"]["input_type"] == "fixed<10,4,RND_CONV,SAT>"
    pool = next(layer for layer in report["hls"]["layers"] if layer["name"] == "track_pool")
    assert pool["types"]["result_t"].startswith("ufixed<10,3")  # Φ's 6-bit ReLU output + 4 fractional bits
    assert set(report["timings_s"]) == {"train", "hls"}
    # Hidden names beside it are temporaries of a build, but for the lock files (trigger_ml.locks).
    leftovers = [p.name for p in project.parent.iterdir() if p.name.startswith(".") and p.suffix != ".lock"]
    assert leftovers == []


def test_current_project_is_reused(workspace, tiny_config, tiny_report):
    report_file = workspace.hls_dir(tiny_config.name) / "report.json"
    before = report_file.stat().st_mtime_ns
    again = ensure_hls(tiny_config, workspace)
    assert report_file.stat().st_mtime_ns == before
    assert again == tiny_report


def test_a_lossy_pooling_type_is_caught_and_blamed(workspace, tiny_config, tiny_sample, tiny_report):
    # Same trained model (only an HLS setting differs), pooling result truncated to 8 bits.
    lossy = load_model_config(
        tiny_config.name + ",hls.precision_overrides={track_pool: {result: 'ufixed<8,3>'}}"
    )
    assert lossy.training_digest() == tiny_config.training_digest()
    report = ensure_hls(lossy, workspace)
    fidelity = report["fidelity"]
    assert fidelity["csim_vs_qkeras_exact_fraction"] < 1.0
    assert fidelity["first_divergent_layer"]["layer"] == "track_pool"
    assert fidelity["first_divergent_layer"]["max_abs_diff"] > 0


def test_training_is_deterministic(workspace, tiny_config, tiny_sample, tmp_path):
    config = load_model_config(tiny_config.name.replace("epochs=4", "epochs=1"))
    first = train(config, tiny_sample, tmp_path / "a")
    second = train(config, tiny_sample, tmp_path / "b")
    for kind in ("qkeras", "float"):
        weights_a = first.load_model(config, kind).get_weights()
        weights_b = second.load_model(config, kind).get_weights()
        for wa, wb in zip(weights_a, weights_b, strict=True):
            np.testing.assert_array_equal(wa, wb)
    assert first.metrics["models"] == second.metrics["models"]


def test_the_report_is_typed_and_carries_the_record(workspace, tiny_config, tiny_report):
    from trigger_ml.artefacts import FORMAT_VERSION, read_report, report_text
    from trigger_ml.compare import table_row
    from trigger_ml.physics import discriminant_metrics

    project = workspace.hls_dir(tiny_config.name)
    typed = read_report(project)
    assert typed.format_version == FORMAT_VERSION and "report_format" not in tiny_report
    assert typed.as_json() == tiny_report
    assert (project / "report.json").read_text() == report_text(typed)  # written through the model
    record = typed.record
    assert record.kind == "deepsets, QAT" and record.n_params == tiny_report["n_params"]["qkeras"]
    assert (
        record.physics.sample == "evaluation"
        and record.physics.metrics == typed.evaluation.metrics["firmware"]
    )
    assert record.fidelity.exact_fraction == typed.fidelity.csim_vs_reference_exact_fraction
    assert record.fidelity.label() == "qkeras"
    row, disc, classes = table_row(typed, project, "best", tiny_config.physics.f_c)
    assert row.physics_sample == f"evaluation ({typed.evaluation.n_jets} jets)"
    assert row.auc_b_vs_light == typed.evaluation.metrics["firmware"].auc_b_vs_light
    assert row.rej_light_at_70_stat == typed.evaluation.metrics["firmware"].rej_light_at_70_stat
    # a comparison row adds trigger_top's blocks (front end, decision) to the network's figures
    blocks = sum(block.resources.LUT for block in (typed.cost.blocks or {}).values())
    assert typed.cost.blocks and blocks > 0
    assert row.cost_source == typed.cost.best.source and row.LUT == typed.cost.best.resources.LUT + blocks
    # the discriminant of record gives the report's figures, bit for bit
    measured = discriminant_metrics(disc, classes)
    assert all(getattr(record.physics.metrics, key) == value for key, value in measured.items())
