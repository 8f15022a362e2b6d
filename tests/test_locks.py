"""Several processes on one output: one builds, the others wait and reuse; a killed holder's
lock is recovered. Real processes (tests/runner_worker.py) on the real Runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import leftovers
from trigger_ml.locks import lock_path, output_lock, read_holder
from trigger_ml.logs import stage_logger
from trigger_ml.runner import read_stamp

WORKER = Path(__file__).with_name("runner_worker.py")
REPO = Path(__file__).resolve().parents[1]


def start_worker(
    root: Path, key: str, seconds: float, *extra: str, env: dict | None = None
) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(root), key, str(seconds), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def finish(process: subprocess.Popen) -> tuple[dict, str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    result = [line for line in out.splitlines() if line.startswith("RESULT ")]
    return json.loads(result[-1].removeprefix("RESULT ")), out


def wait_for_holder(root: Path, key: str, timeout: float = 60) -> None:
    lock = lock_path(root / "slow" / key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.is_file() and read_holder(lock) is not None and (root / "builds.log").is_file():
            return
        time.sleep(0.05)
    raise AssertionError(f"nobody took {lock}")


def test_n_processes_on_one_key_build_once(tmp_path):
    build_s, n = 3.0, 4
    first = start_worker(tmp_path, "k", build_s)
    wait_for_holder(tmp_path, "k")
    others = [start_worker(tmp_path, "k", build_s) for _ in range(n - 1)]
    results = [finish(p) for p in [first, *others]]
    # One build, N identical answers (the builder's pid), every other process waited for it.
    assert (tmp_path / "builds.log").read_text().split() == [str(first.pid)]
    assert {r["value"] for r, _ in results} == {str(first.pid)}
    for _, lines in results[1:]:
        assert f"waiting for slow of k: built by pid {first.pid} on host {os.uname().nodename} since" in lines
        assert "reusing" in lines
    # The waiters finish with the builder, not one build later each.
    assert max(r["seconds"] for r, _ in results[1:]) < 2 * build_s + 5


def test_a_killed_holder_is_recovered_and_its_leftovers_removed(tmp_path):
    killed = start_worker(tmp_path, "k", 120)
    wait_for_holder(tmp_path, "k")
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    out = tmp_path / "slow" / "k"
    # Killed mid-build: no output under the final name, only a temporary beside it.
    assert not out.exists() and leftovers(out)
    result, _ = finish(start_worker(tmp_path, "k", 0.2))
    assert result["seconds"] < 30
    assert (out / "value.txt").read_text().strip() == result["value"] == str(result["pid"])
    assert read_stamp(out) is not None and leftovers(out) == []


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path):
    # The generator's worker pool forks; a child outliving its killed parent must not keep the lock.
    killed = start_worker(tmp_path, "k", 120, "--fork-child")
    wait_for_holder(tmp_path, "k")
    deadline = time.monotonic() + 30
    while not (tmp_path / "child.pid").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int((tmp_path / "child.pid").read_text())
    try:
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
        os.kill(child, 0)  # the child is still alive
        result, _ = finish(start_worker(tmp_path, "k", 0.2))
        assert result["seconds"] < 30
    finally:
        os.kill(child, signal.SIGKILL)


def test_waiting_has_a_limit(tmp_path):
    holder = start_worker(tmp_path, "k", 60)
    try:
        wait_for_holder(tmp_path, "k")
        waiter = start_worker(tmp_path, "k", 0, env={"TRIGGER_ML_LOCK_WAIT_S": "1"})
        _, err = waiter.communicate(timeout=60)
        assert waiter.returncode != 0
        assert "gave up waiting" in err and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.communicate()


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    out = tmp_path / "thing"
    logger = stage_logger("test")
    with output_lock(out, "thing", logger) as acquired:
        holder = read_holder(lock_path(out))
        assert holder is not None and holder.pid == os.getpid() and not acquired.waited
    assert read_holder(lock_path(out)) is None  # emptied on release
    with output_lock(out, "thing", logger) as acquired:  # and free again
        assert not acquired.waited


def test_an_unsupported_file_system_is_one_clear_error(tmp_path, monkeypatch):
    import errno
    import fcntl

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(TriggerMLError, match="does not support locks") as error:
        with output_lock(tmp_path / "x", "x", stage_logger("test")):
            pass
    assert "TRIGGER_ML_LOCKS=off" in error.value.one_line()


@pytest.mark.slow
def test_processes_asking_for_one_sample_generate_it_once(tmp_path, tiny_sample):
    from conftest import TINY_MODEL

    from trigger_ml.fileio import sha256_of_file

    env = {**os.environ, "TRIGGER_ML_HOME": str(tmp_path), "PYTHONPATH": str(REPO), "TRIGGER_ML_WORKERS": "1"}
    command = [sys.executable, "-m", "trigger_ml.cli", "data", TINY_MODEL]
    start = time.monotonic()
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    wall = time.monotonic() - start
    assert all(p.returncode == 0 for p in processes), outputs
    waited = [out for out in outputs if "waiting for data of" in out]
    assert len(waited) == 2, outputs  # one generated, two waited for it ...
    builder = next(p.pid for p, out in zip(processes, outputs, strict=True) if out not in waited)
    assert all(f"built by pid {builder} on host" in out and "reusing" in out for out in waited)
    (sample,) = tmp_path.glob("data/*/jets.h5")
    info = json.loads((sample.parent / "sample.json").read_text())
    assert info["timing"]["generated_jets"] == 800 and info["timing"]["reused_shards"] == 0
    assert sha256_of_file(sample) == sha256_of_file(tiny_sample)  # ... and all got the same jets
    print(f"3 processes, one generation: {wall:.1f} s wall")
