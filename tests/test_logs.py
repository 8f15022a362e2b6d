"""Progress messages through ``logging`` (trigger_ml.logs): the command line's ``[stage] message``
lines, -q and -v, silence in library use, and the ``timed`` helper."""

import logging
import time
from pathlib import Path

import pytest

from trigger_ml import cli
from trigger_ml.logs import ROOT, configure, progress_bar, stage_logger, timed

SPEC = "name: bad\nbase: dips-small\npoints: [{reuse: 0}, {colour: red}]\n"
"""A scan whose points are all invalid: it runs in the client alone, in a second."""


@pytest.fixture(autouse=True)
def _restore_logging():
    """The command line configures the project's logger; later tests get it back untouched."""
    root = logging.getLogger(ROOT)
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, *options: str) -> list[str]:
    """Run ``trigger-ml [options] scan`` of SPEC; returns its stdout lines."""
    monkeypatch.setenv("TRIGGER_ML_HOME", str(tmp_path))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    assert cli.main([*options, "scan", str(spec), "--scheduler", "tcp://127.0.0.1:1"]) == 1  # 2 failed
    return capsys.readouterr().out.splitlines()


def test_the_command_line_prints_stage_lines_by_default(tmp_path, monkeypatch, capsys):
    lines = _scan(tmp_path, monkeypatch, capsys)
    assert lines[0] == "[scan] bad: 2 point(s): 0 to run, 0 done before (skipped), 2 invalid"
    assert lines[1].startswith("[scan] invalid: reuse=0: key 'hls.reuse_factor'")
    assert lines[2].startswith("[scan] invalid: colour=red: ")
    assert lines[3] == "# Scan `bad`"  # then the command's own output: the summary
    assert lines[-1].startswith("[scan] written to ")


def test_quiet_keeps_only_the_results(tmp_path, monkeypatch, capsys):
    lines = _scan(tmp_path, monkeypatch, capsys, "-q")
    assert lines[0] == "# Scan `bad`"
    assert not any("invalid" in line and line.startswith("[scan]") for line in lines)
    assert lines[-1].startswith("[scan] written to ")


def test_verbose_adds_debug_lines(tmp_path, monkeypatch, capsys):
    lines = _scan(tmp_path, monkeypatch, capsys, "-v")
    assert lines[0].startswith("[scan] bad: 2 point(s)")
    assert stage_logger("hls").isEnabledFor(logging.DEBUG)
    stage_logger("hls").debug("a debug line")
    timings: dict[str, float] = {}
    with timed(timings, "convert_s"):
        pass
    assert capsys.readouterr().out.splitlines() == [
        "[hls] a debug line",
        f"[timing] convert_s {timings['convert_s']:.3f} s",
    ]


def test_library_use_prints_nothing_and_shows_no_bars(tmp_path, capsys):
    from trigger_ml.scan import ScanSpec, run_scan
    from trigger_ml.workspace import Workspace

    spec = ScanSpec(name="bad", base="dips-small", points=[{"reuse": 0}])
    run_scan(spec, Workspace(tmp_path), scheduler="tcp://127.0.0.1:1")
    out, err = capsys.readouterr()
    assert out == err == ""
    with progress_bar(stage_logger("data"), total=3) as bar:
        assert bar.disable
    configure(0)
    with progress_bar(stage_logger("data"), total=3) as bar:
        assert not bar.disable
    configure(-1)
    with progress_bar(stage_logger("data"), total=3) as bar:
        assert bar.disable


def test_messages_keep_their_bracket_and_one_handler(capsys):
    configure(0)
    configure(0)  # a second call replaces the handler, lines are not doubled
    stage_logger("distill").info("φ: 2/4 latent components fitted in 3 s")
    stage_logger("hls").debug("not shown at INFO")
    assert capsys.readouterr().out == "[distill] φ: 2/4 latent components fitted in 3 s\n"


def test_messages_above_a_progress_bar_keep_their_line(capsys):
    configure(0)
    with progress_bar(stage_logger("scan"), total=2) as bar:
        bar.update()
        stage_logger("scan").info("ok        1.0 s  bits=6")
    assert "[scan] ok        1.0 s  bits=6\n" in capsys.readouterr().out


def test_timed_records_the_wall_seconds_under_its_key():
    timings: dict[str, float] = {"prepare_s": 1.0}
    with timed(timings, "convert_s") as clock:
        time.sleep(0.01)
    assert list(timings) == ["prepare_s", "convert_s"]
    assert timings["convert_s"] == clock.seconds >= 0.01
    with timed() as clock:
        pass
    assert clock.seconds > 0
    with pytest.raises(RuntimeError), timed(timings, "failed_s"):
        raise RuntimeError("boom")
    assert "failed_s" not in timings  # a step that failed has no duration
