"""The typed artefacts: report.json and the comparison table (trigger_ml.artefacts)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from trigger_ml.artefacts import (
    FORMAT_VERSION,
    ComparisonRow,
    read_report,
    schema_texts,
    write_report_json,
)
from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import read_json, write_json_atomic

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schema"
METRICS = {
    "auc_b_vs_light": 0.91,
    "rej_light_at_70": 25.0,
    "rej_c_at_70": 3.1,
    "rej_light_at_77": 12.5,
    "rej_c_at_77": 2.4,
}


def network_report() -> dict[str, Any]:
    """A report.json as the HLS stage writes it (figures made up)."""
    estimate = make_section(
        source="estimate",
        clock_period_ns=5.0,
        latency_cycles=(7, 7),
        initiation_interval=1,
        resources={"LUT": 10},
    )
    evaluation_metrics = {**METRICS, "rej_light_at_70_stat": 1.5, "rej_light_at_77_stat": 0.5}
    return {
        "format_version": FORMAT_VERSION,
        "model": "dense-small",
        "description": "a model",
        "quantization_kind": "qkeras",
        "config_sha256": "c" * 64,
        "training_sha256": "t" * 64,
        "run_dir": "/w/runs/dense-small/abc",
        "record": {
            "kind": "dense, QAT",
            "n_params": 1234,
            "physics": {
                "sample": "evaluation",
                "n_jets": 100,
                "metrics": evaluation_metrics,
                "predictions": {"path": "evaluation_predictions.h5", "dataset": "logits_firmware"},
            },
            "fidelity": {"exact_fraction": 1.0, "rule": "bit-exact", "reference": "qkeras"},
        },
        "data": {
            "path": "/w/data/x/jets.h5",
            "sha256": "d" * 64,
            "jets_per_split": {"train": 60, "val": 20, "test": 20},
            "n_truncated_jets": 0,
        },
        "n_params": {"float": 1234, "qkeras": 1234},
        "evaluation": {
            "path": "/w/data/y/jets.h5",
            "sha256": "e" * 64,
            "seed": 7,
            "n_jets": 100,
            "jets_per_class": {"b": 30, "c": 20, "light": 50},
            "evaluated_by": "emulator",
            "evaluated_by_reason": None,
            "csim_check": {"n_jets": 100, "emulator_vs_csim_exact_fraction": 1.0},
            "firmware_jets_per_s": 1e6,
            "firmware_vs_reference_exact_fraction": 1.0,
            "reference": "qkeras",
            "metrics": {"qkeras": evaluation_metrics, "firmware": evaluation_metrics},
        },
        "metrics": {"qkeras": METRICS, "csim": METRICS},
        "fidelity": {
            "reference": "qkeras",
            "n_jets": 20,
            "csim_vs_qkeras_exact_fraction": 1.0,
            "csim_vs_reference_exact_fraction": 1.0,
            "max_abs_logit_diff": 0.0,
            "first_divergent_layer": None,
            "permutation_invariant_fraction": None,
            "emulator": {
                "n_jets": 20,
                "emulator_vs_csim_exact_fraction": 1.0,
                "jets_per_s": 5e5,
                "reason": None,
            },
        },
        "output_diff_csim_minus_float": None,
        "hls": {
            "backend": "Vitis",
            "part": "xcvu13p",
            "clock_period_ns": 5.0,
            "io_type": "io_parallel",
            "strategy": "latency",
            "reuse_factor": 1,
            "project": "hls4ml_prj",
            "input_type": "fixed<10,4,RND_CONV,SAT>",
            "output_type": "fixed<16,6>",
            "layers": [{"name": "dense", "class": "Dense", "types": {"result_t": "fixed<16,6>"}}],
        },
        "cost": {
            "best": estimate,
            "sources": {"estimate": estimate},
            "unavailable": {"da4ml": "why"},
            "da4ml": None,
        },
        "timings_s": {"train": {"fit_s": 1.5, "epochs": 3}, "hls": {"convert_s": 0.5}},
    }


def _written(tmp_path: Path, report: dict[str, Any]) -> Path:
    project = tmp_path / "hls_projects" / "dense-small"
    write_json_atomic(project / "report.json", report)
    return project


def _error(project: Path) -> str:
    with pytest.raises(TriggerMLError) as info:
        read_report(project)
    line = info.value.one_line()
    assert "\n" not in line
    return line


def test_committed_schemas_are_what_the_models_generate() -> None:
    for name, text in schema_texts().items():
        path = SCHEMA_DIR / name
        assert path.is_file(), f"{path} is missing -> run `make schema`"
        assert path.read_text() == text, f"{path} is stale -> run `make schema`"


def test_a_report_round_trips_unchanged(tmp_path: Path) -> None:
    report = network_report()
    project = _written(tmp_path, report)
    typed = read_report(project)
    assert typed.record.fidelity.label() == "qkeras"
    assert typed.hls.layers[0].class_ == "Dense"
    assert typed.as_json() == read_json(project / "report.json")
    # ints stay ints, floats floats: writing through the model changes no byte
    before = (project / "report.json").read_bytes()
    write_report_json(project, typed)
    assert (project / "report.json").read_bytes() == before


def test_a_missing_field_is_named_with_the_fix(tmp_path: Path) -> None:
    report = network_report()
    del report["fidelity"]["n_jets"]
    line = _error(_written(tmp_path, report))
    assert "report.json" in line and "fidelity.qkeras.n_jets" in line
    assert "trigger-ml hls --force dense-small" in line


def test_an_unknown_or_mistyped_field_is_refused(tmp_path: Path) -> None:
    report = network_report()
    report["record"]["physics"]["sample"] = "training"
    assert "record.physics.sample" in _error(_written(tmp_path / "a", report))
    report = network_report()
    report["hls"]["colour"] = "blue"
    assert "hls.colour" in _error(_written(tmp_path / "b", report))


def test_an_older_report_is_refused_with_the_rebuild_command(tmp_path: Path) -> None:
    report = network_report()
    del report["format_version"]
    report["report_format"] = 3
    line = _error(_written(tmp_path / "a", report))
    assert "has no format_version" in line and f"reads format_version {FORMAT_VERSION}" in line
    assert "-> rebuild with `trigger-ml hls --force dense-small`" in line
    report = {
        **network_report(),
        "format_version": FORMAT_VERSION - 1,
        "symbolic": {},
        "teacher": {"model": "t"},
    }
    line = _error(_written(tmp_path / "b", report))
    assert f"format_version {FORMAT_VERSION - 1}" in line and "trigger-ml distill --force t" in line


def test_a_missing_report_says_what_to_build(tmp_path: Path) -> None:
    assert "is missing" in _error(tmp_path / "nothing")


def test_comparison_rows_are_strict() -> None:
    row = {
        "model": "m",
        "kind": "dense, QAT",
        "n_params": 10,
        "auc_b_vs_light": 0.9,
        "rej_light_at_70": 10.0,
        "rej_light_at_77": 5.0,
        "rej_c_at_70": None,
        "rej_c_at_77": None,
        "exact_fraction": "no firmware",
        **dict.fromkeys(
            ("latency_cycles", "latency_ns", "initiation_interval", "LUT", "FF", "DSP", "BRAM_18K")
        ),
        "cost_source": "n/a (no figures)",
        "ant_factor": float("inf"),
    }
    assert ComparisonRow.model_validate(row).as_json() == row
    with pytest.raises(ValueError, match="colour"):
        ComparisonRow.model_validate({**copy.deepcopy(row), "colour": 1})
