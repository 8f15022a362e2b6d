"""Fault injection: processes killed (SIGKILL, the whole process group) at random and at chosen
points of generation, training, conversion, bundle writing and scans; a file size limit
(``ulimit -f``) during each stage; corrupt or truncated cache files of each kind.

After every fault the workspace must be consistent (no stamp without its complete output, no
temporary taken for an output, see :func:`assert_consistent`) and the rerun must complete
with the same bytes as an uninterrupted run (the session's in-process fixtures)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MODEL

from trigger_ml.errors import storage_error
from trigger_ml.fileio import leftovers, sha256_of_file
from trigger_ml.runner import STAMP, Runner, Stage, damaged_outputs, read_stamp
from trigger_ml.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
SEED = 18
"""The random kill times are drawn from this seed (printed in a failure)."""


# --------------------------------------------------------------------------- helpers


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRIGGER_ML_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "TRIGGER_ML_WORKERS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def _command(args: tuple[str, ...], fsize_kb: int | None) -> list[str]:
    command = [sys.executable, "-m", "trigger_ml.cli", *args]
    if fsize_kb is None:
        return command
    # bash's ulimit -f counts KiB; the limit is inherited by every child (g++ included).
    return ["bash", "-c", f'ulimit -f {fsize_kb} && exec "$@"', "bash", *command]


def cli(home: Path, *args: str, fsize_kb: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(args, fsize_kb), capture_output=True, text=True, env=_env(home), cwd=home, timeout=600
    )


def kill_during(home: Path, args: tuple[str, ...], *, after: str | None = None, delay: float = 0.0) -> str:
    """Start the command in its own process group and SIGKILL the whole group ``delay`` seconds
    after a line containing ``after`` appeared (or after ``delay`` seconds); its output."""
    process = subprocess.Popen(
        _command(args, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(home),
        cwd=home,
        start_new_session=True,
    )
    seen = []
    try:
        if after is not None:
            assert process.stdout is not None
            for line in process.stdout:
                seen.append(line)
                if after in line:
                    break
            else:
                raise AssertionError(f"the command ended before {after!r}:\n{''.join(seen)}")
        time.sleep(delay)
        assert process.poll() is None, f"finished before it could be killed:\n{''.join(seen)}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return "".join(seen)


def assert_consistent(home: Path) -> None:
    """Every stamped output is complete and intact; every output under a final name is stamped
    (the resumable sample directories excepted); bundles have their tarball."""
    for stamp in home.rglob(STAMP):
        if any(part.startswith(".") for part in stamp.relative_to(home).parts):
            continue
        out = stamp.parent
        assert read_stamp(out) is not None, f"{stamp} is unreadable"
        assert damaged_outputs(out) == [], f"{out}: {damaged_outputs(out)}"
    finals = [*home.glob("runs/*/*"), *home.glob("hls_projects/*"), *home.glob("hls_projects/*/rtl")]
    for out in finals:
        if out.is_dir() and not out.name.startswith("."):
            assert (out / STAMP).is_file(), f"{out} has no stamp: a partial output under its final name"
    for bundle in home.glob("firmware/*"):
        if bundle.is_dir() and not bundle.name.startswith("."):
            assert bundle.with_name(bundle.name + ".tar.gz").is_file(), f"{bundle} has no tarball"


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The command failed with status 1 and one error line, no traceback (library warnings
    and progress bars may share stderr)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def copy_samples(workspace: Workspace, home: Path, *samples: Path) -> None:
    """Copy finished sample directories (with their times: their stamps stay valid)."""
    for sample in samples:
        shutil.copytree(sample.parent, home / "data" / sample.parent.name, copy_function=shutil.copy2)


# --------------------------------------------------------------------------- corrupt caches (no tools)


class Files(Stage[str]):
    """A stage writing two files, counting its builds."""

    name = "files"

    def __init__(self, in_place: bool = False) -> None:
        self.builds = 0
        self.writes_in_place = in_place  # type: ignore[misc]

    def output_dir(self, subject: Any, ws: Workspace) -> Path:
        return ws.root / "files" / str(subject)

    def key(self, subject: Any, inputs: Any) -> dict[str, Any]:
        return {"subject": str(subject)}

    def run(self, subject: Any, inputs: Any, out: Path) -> None:
        self.builds += 1
        if not (out / "big.bin").is_file():
            (out / "big.bin").write_bytes(bytes(range(256)) * 64)
        (out / "small.txt").write_text(f"{subject}\n")

    def load(self, subject: Any, inputs: Any, out: Path) -> str:
        return (out / "small.txt").read_text() + sha256_of_file(out / "big.bin")


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize(
    "damage",
    ["truncate stamp", "empty stamp", "truncate file", "flip a byte", "delete file"],
)
def test_a_damaged_cache_is_found_named_and_rebuilt(tmp_path, caplog, damage, in_place):
    stage = Files(in_place)
    runner = Runner({"files": stage}, Workspace(tmp_path))
    good = runner.ensure("files", "a")
    out = tmp_path / "files" / "a"
    big = out / "big.bin"
    if damage == "truncate stamp":
        (out / STAMP).write_bytes((out / STAMP).read_bytes()[:40])
    elif damage == "empty stamp":
        (out / STAMP).write_bytes(b"")
    elif damage == "truncate file":
        big.write_bytes(big.read_bytes()[:1000])
    elif damage == "flip a byte":
        data = bytearray(big.read_bytes())
        data[5000] ^= 0xFF
        big.write_bytes(bytes(data))
    else:
        big.unlink()
    assert not Runner({"files": stage}, Workspace(tmp_path)).is_current("files", "a")
    caplog.clear()
    assert Runner({"files": stage}, Workspace(tmp_path)).ensure("files", "a") == good
    assert stage.builds == 2
    if "stamp" not in damage:  # a damaged file is named; a damaged stamp just means "not built"
        assert any("big.bin" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert damaged_outputs(out) == [] and leftovers(out) == []
    # and an intact cache is not rebuilt
    Runner({"files": stage}, Workspace(tmp_path)).ensure("files", "a")
    assert stage.builds == 2


def test_files_updated_after_the_stage_are_not_held_against_it(tmp_path):
    class Report(Files):
        mutable_outputs = ("small.txt",)

    stage = Report()
    Runner({"files": stage}, Workspace(tmp_path)).ensure("files", "a")
    (tmp_path / "files" / "a" / "small.txt").write_text("a\nwith a cost section added\n")
    (tmp_path / "files" / "a" / "plots").mkdir()  # new files are not in the stamp either
    Runner({"files": stage}, Workspace(tmp_path)).ensure("files", "a")
    assert stage.builds == 1


def test_storage_errors_are_recognised_through_wrappers():
    import errno

    assert "no space left" in storage_error(OSError(errno.ENOSPC, "No space left on device", "x.h5")).message
    assert "x.h5" in storage_error(OSError(errno.ENOSPC, "No space left on device", "x.h5")).message
    hdf5 = OSError("Can't write data (file write failed: ..., errno = 27, error message = 'File too large')")
    try:
        try:
            raise hdf5
        except OSError as error:
            raise RuntimeError("saving the weights failed") from error
    except RuntimeError as wrapped:
        assert "file size limit" in storage_error(wrapped).message
    assert storage_error(ValueError("bad")) is None
    assert storage_error(OSError(errno.ENOENT, "No such file")) is None


# --------------------------------------------------------------------------- generation


@pytest.mark.slow
def test_generation_killed_at_random_points_then_completes_identically(tmp_path, tiny_sample):
    rng = random.Random(SEED)
    delays = [rng.uniform(1.0, 6.0) for _ in range(2)]
    for delay in delays:
        kill_during(tmp_path, ("data", TINY_MODEL), delay=delay)
        assert_consistent(tmp_path)
    result = cli(tmp_path, "data", TINY_MODEL)
    assert result.returncode == 0, f"killed after {delays} s: {result.stderr}"
    (jets,) = tmp_path.glob("data/*/jets.h5")
    assert sha256_of_file(jets) == sha256_of_file(tiny_sample)
    assert_consistent(tmp_path)
    assert leftovers(jets) == []


@pytest.mark.slow
def test_generation_under_a_file_size_limit(tmp_path, tiny_sample):
    # The shards fit under 160 KiB, the merged jets.h5 does not.
    line = one_error_line(cli(tmp_path, "data", TINY_MODEL, fsize_kb=160))
    (sample,) = [p for p in tmp_path.glob("data/*") if not p.name.startswith(".")]
    assert f"file size limit (ulimit -f) while writing {sample / 'jets.h5'}" in line and "rerun" in line
    assert not (sample / "jets.h5").exists() and not (sample / STAMP).exists()
    assert_consistent(tmp_path)
    assert cli(tmp_path, "data", TINY_MODEL).returncode == 0
    assert sha256_of_file(sample / "jets.h5") == sha256_of_file(tiny_sample)


@pytest.mark.slow
def test_a_damaged_sample_is_regenerated_identically(tmp_path, workspace, tiny_sample):
    copy_samples(workspace, tmp_path, tiny_sample)
    jets = tmp_path / "data" / tiny_sample.parent.name / "jets.h5"
    data = bytearray(jets.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, still a readable HDF5 file
    jets.write_bytes(bytes(data))
    result = cli(tmp_path, "data", TINY_MODEL)
    assert result.returncode == 0, result.stderr
    assert "jets.h5 was changed after it was written" in result.stdout and "rebuilding" in result.stdout
    assert sha256_of_file(jets) == sha256_of_file(tiny_sample)


# --------------------------------------------------------------------------- training, conversion, bundles


def _run_dir(home: Path, config) -> Path:
    return Workspace(home).run_dir(config.name, config.training_digest())


RUN_FILES = ("qkeras.weights.h5", "float.weights.h5", "predictions.h5", "scaling.json", "history.json")
HLS_FILES = (
    "csim_predictions.h5",
    "evaluation_predictions.h5",
    "firmware_program.json",
    "da4ml_pipeline.json.gz",
)


@pytest.fixture(scope="module")
def reference(workspace, tiny_config, tiny_sample):
    """The uninterrupted chain, in process: samples, run, HLS project, bundle."""
    from trigger_ml.firmware import build_bundle
    from trigger_ml.pipeline import ensure_evaluation_data, ensure_hls

    evaluation = ensure_evaluation_data(tiny_config, workspace)
    ensure_hls(tiny_config, workspace)
    bundle = build_bundle(tiny_config, workspace, verify=False)
    return {
        "samples": (tiny_sample, evaluation),
        "run": _run_dir(workspace.root, tiny_config),
        "hls": workspace.hls_dir(tiny_config.name),
        "bundle": bundle,
    }


def _same_files(got: Path, want: Path, names: tuple[str, ...]) -> None:
    for name in names:
        assert sha256_of_file(got / name) == sha256_of_file(want / name), f"{got / name} differs"


@pytest.mark.slow
def test_killed_in_training_conversion_and_bundle_writing_then_completes_identically(
    tmp_path, workspace, tiny_config, reference
):
    copy_samples(workspace, tmp_path, *reference["samples"])
    rng = random.Random(SEED)
    command = ("firmware", TINY_MODEL)
    kills = [
        ("fitting the qkeras model", rng.uniform(0.5, 3.0)),  # training
        ("compiling the C simulation", rng.uniform(0.5, 4.0)),  # g++ running under hls4ml
        ("verifying it", rng.uniform(0.2, 2.0)),  # the bundle being checked and written
    ]
    for line, delay in kills:
        kill_during(tmp_path, command, after=line, delay=delay)
        assert_consistent(tmp_path)
    result = cli(tmp_path, *command)
    assert result.returncode == 0, f"killed at {kills}: {result.stderr}"
    assert_consistent(tmp_path)
    _same_files(_run_dir(tmp_path, tiny_config), reference["run"], RUN_FILES)
    _same_files(Workspace(tmp_path).hls_dir(tiny_config.name), reference["hls"], HLS_FILES)
    bundle = tmp_path / "firmware" / reference["bundle"].name  # the same firmware identity
    _same_files(bundle, reference["bundle"], ("MANIFEST",))
    hidden = [p for p in tmp_path.rglob(".*") if p.is_dir()]
    assert hidden == [], f"left behind: {hidden}"


@pytest.mark.slow
def test_a_file_size_limit_in_training_conversion_and_bundle_writing(
    tmp_path, workspace, tiny_config, reference
):
    copy_samples(workspace, tmp_path, *reference["samples"])
    run_dir = _run_dir(tmp_path, tiny_config)
    # Training: the weights (about 33 KiB) do not fit under 20 KiB.
    line = one_error_line(cli(tmp_path, "train", TINY_MODEL, fsize_kb=20))
    assert "file size limit (ulimit -f) while writing" in line and str(run_dir.parent) in line
    assert not run_dir.exists()
    assert_consistent(tmp_path)
    # Conversion: hls4ml's headers and the C simulation library do not fit under 200 KiB.
    shutil.copytree(reference["run"], run_dir)
    line = one_error_line(cli(tmp_path, "hls", TINY_MODEL, fsize_kb=200))
    assert "file size limit" in line or "SIGXFSZ" in line
    assert not Workspace(tmp_path).hls_dir(tiny_config.name).exists()
    assert_consistent(tmp_path)
    # The bundle: its tarball does not fit under 100 KiB.
    shutil.copytree(reference["hls"], Workspace(tmp_path).hls_dir(tiny_config.name))
    line = one_error_line(cli(tmp_path, "firmware", TINY_MODEL, fsize_kb=100))
    assert "file size limit" in line or "SIGXFSZ" in line
    assert [p for p in (tmp_path / "firmware").iterdir() if not p.name.startswith(".")] == []
    assert_consistent(tmp_path)


@pytest.mark.slow
def test_damaged_weights_are_found_and_retrained_identically(tmp_path, workspace, tiny_config, reference):
    copy_samples(workspace, tmp_path, *reference["samples"])
    run_dir = _run_dir(tmp_path, tiny_config)
    shutil.copytree(reference["run"], run_dir)
    weights = run_dir / "qkeras.weights.h5"
    weights.write_bytes(weights.read_bytes()[:4096])
    result = cli(tmp_path, "train", TINY_MODEL)
    assert result.returncode == 0, result.stderr
    assert "qkeras.weights.h5 has 4096 bytes, its stamp says" in result.stdout
    _same_files(run_dir, reference["run"], RUN_FILES)
    # A damaged report (not vouched for by the stamp: later commands add to it) is named.
    hls_dir = Workspace(tmp_path).hls_dir(tiny_config.name)
    shutil.copytree(reference["hls"], hls_dir)
    (hls_dir / "report.json").write_text('{"model": ')
    line = one_error_line(cli(tmp_path, "hls", TINY_MODEL))
    assert f"{hls_dir / 'report.json'} is not valid JSON" in line


# --------------------------------------------------------------------------- scans


@pytest.mark.slow
def test_a_killed_scan_resumes_and_completes(tmp_path, workspace, reference):
    import json

    copy_samples(workspace, tmp_path, *reference["samples"])
    spec = tmp_path / "killed.yaml"
    # Two points on two workers; the second trains longer, and is killed while it does.
    spec.write_text(
        f"name: killed\nbase: '{TINY_MODEL.replace('epochs=4', 'epochs=2')}'\n"
        "points: [{seed: 11}, {seed: 12, epochs: 100}]\nstages: train\n"
    )
    command = ("scan", str(spec), "--workers", "2")
    points = tmp_path / "scans" / "killed" / "points"
    kill_during(tmp_path, command, after="[scan] ok", delay=random.Random(SEED).uniform(0.1, 1.0))
    assert_consistent(tmp_path)
    (done,) = points.glob("*.json")
    kept = done.read_bytes()
    result = cli(tmp_path, *command)
    assert result.returncode == 0, result.stderr
    assert "2 point(s): 1 to run, 1 done before (skipped)" in result.stdout
    assert_consistent(tmp_path)
    records = {p.name: json.loads(p.read_text()) for p in points.glob("*.json")}
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())
    assert done.read_bytes() == kept  # what finished before the kill is kept as it was


@pytest.mark.slow
def test_the_bundle_verifier_bounds_its_g_plus_plus_build(reference, monkeypatch):
    from trigger_ml.firmware import verifier

    monkeypatch.setenv("TRIGGER_ML_GXX_TIMEOUT_S", "0.01")
    with pytest.raises(verifier.BundleError, match="did not compile the C simulation in 0.01 s"):
        verifier.verify(reference["bundle"])
