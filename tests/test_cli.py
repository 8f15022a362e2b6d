"""The command line: one-line errors with the right exit codes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trigger_ml.errors import TriggerMLError


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
def test_corrupt_cached_sample_is_regenerated_identically(tmp_path, tiny_config, tiny_sample):
    # A truncated jets.h5 in the cache is detected and regenerated, bit for bit.
    from trigger_ml.fileio import sha256_of_file

    target = tmp_path / "data" / tiny_sample.parent.name / "jets.h5"
    target.parent.mkdir(parents=True)
    target.write_bytes(tiny_sample.read_bytes()[:4096])
    result = run_cli("data", tiny_config.name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sha256_of_file(target) == sha256_of_file(tiny_sample)


def test_a_stage_whose_input_is_missing_names_it(tmp_path):
    from trigger_ml.config import load_model_config
    from trigger_ml.training import TrainedRun

    run = TrainedRun(tmp_path / "run")
    with pytest.raises(TriggerMLError, match="missing") as info:
        run.load_model(load_model_config("dips-small"))
    assert "trigger-ml train" in info.value.one_line()


def test_hls_of_a_physics_only_reference_exits_2(tmp_path):
    result = run_cli("hls", "dips-small-float", cwd=tmp_path)
    assert result.returncode == 2
    assert "physics-only" in result.stderr and "trigger-ml train dips-small-float" in result.stderr


def test_scan_spec_with_an_unknown_key_exits_2(tmp_path):
    spec = tmp_path / "bad-scan.yaml"
    spec.write_text("name: bad\nbase: dips-small\ncolour: red\ngrid: {reuse: [1, 2]}\n")
    result = run_cli("scan", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown key 'colour'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_makefile_stage_is_a_cli_command():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    used = set(re.findall(r"\$\(CLI\) ([a-z-]+)", makefile))
    assert {"hls", "compare", "distill"} <= used
    for command in sorted(used):
        result = run_cli(command, "--help")
        assert result.returncode == 0, (command, result.stderr)


def test_distill_with_an_unknown_setting_exits_2(tmp_path):
    result = run_cli("distill", "dense-small", "--sr", "colour=red", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "unknown symbolic setting 'colour'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "data").exists()
