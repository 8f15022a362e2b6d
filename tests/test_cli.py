"""The command line: one-line errors with the right exit codes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if cwd is not None:
        env["TRIGGER_ML_HOME"] = str(cwd)
    return subprocess.run(
        [sys.executable, "-m", "trigger_ml.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_models_lists_the_zoo():
    result = run_cli("models")
    assert result.returncode == 0
    assert "dips-small" in result.stdout


def test_unknown_model_exits_2_and_lists_models(tmp_path):
    result = run_cli("hls", "nonexistent", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'nonexistent'" in lines[0] and "dips-small" in lines[0]
    assert not (tmp_path / "hls_projects").exists()


def test_malformed_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\ntraining: {epochs: 0}\n")
    result = run_cli("hls", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "training.epochs" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cost_of_a_missing_project_exits_2(tmp_path):
    result = run_cli("cost", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no report.json" in result.stderr


@pytest.mark.slow
def test_corrupt_data_file_is_named(tmp_path, tiny_config, tiny_sample):
    # Copy the tiny sample's directory layout into a new workspace and corrupt jets.h5.
    target = tmp_path / "data" / tiny_sample.parent.name / "jets.h5"
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny_sample.read_bytes()[:4096])
    result = run_cli("train", tiny_config.name, cwd=tmp_path)
    assert result.returncode == 1
    assert "jets.h5" in result.stderr and "->" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("metrics.json"))
