"""Cost stage: vendor report reader, vendor tool runner, analytic estimate, cost sections."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from trigger_ml.cost.estimate import csd_digits, estimate_cost, quantize
from trigger_ml.cost.sections import best_cost, cost_for_project, format_cost_table, make_section
from trigger_ml.cost.synth import find_vendor_tool, run_vendor_synthesis
from trigger_ml.cost.vendor import read_vendor_cost
from trigger_ml.errors import TriggerMLError
from trigger_ml.fileio import canonical_json, write_json_atomic

VENDOR_REPORTS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "vendor-reports"
FIXTURE = VENDOR_REPORTS / "vivado-hls-dense"

# The figures of shared/fixtures/vendor-reports/README.md.
FIXTURE_RESOURCES = {"LUT": 2532, "FF": 7969, "DSP": 73, "BRAM_18K": 0, "URAM": 0}
FIXTURE_AVAILABLE = {"LUT": 53200, "FF": 106400, "DSP": 220, "BRAM_18K": 280, "URAM": 0}
FIXTURE_LOGIC = {"LUT": 1526, "FF": 2428, "DSP": 66, "BRAM_18K": 0, "URAM": 0}

PROJECT_TCL = """variable project_name
set project_name "myproject"
variable backend
set backend "{backend}"
variable part
set part "xc7z020clg400-1"
variable clock_period
set clock_period 5
variable clock_uncertainty
set clock_uncertainty 12.5%
"""


def _fixture_dir() -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"vendor report fixtures not found at {FIXTURE} (shared/ is not beside the repository)")
    return FIXTURE


def _standard_project(root: Path, *, with_app: bool = True, with_tcl: bool = True) -> Path:
    """Copy the fixture into hls4ml's standard layout under root/hls4ml_prj; return root."""
    fixture = _fixture_dir()
    hls = root / "hls4ml_prj"
    report_dir = hls / "myproject_prj" / "solution1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    for name in ("myproject_csynth.xml", "myproject_csynth.rpt"):
        shutil.copy(fixture / name, report_dir / name)
    shutil.copy(fixture / "vivado_synth.rpt", hls / "vivado_synth.rpt")
    if with_app:
        shutil.copy(fixture / "vivado_hls.app", hls / "myproject_prj" / "vivado_hls.app")
    if with_tcl:
        (hls / "project.tcl").write_text(PROJECT_TCL.format(backend="vivado"))
    return root


def _assert_fixture_figures(section: dict) -> None:
    assert section["source"] == "vendor"
    assert section["tool"] == "vivado_hls"
    assert section["tool_version"] == "2020.1"
    assert section["latency_cycles"] == {"min": 10, "max": 10}
    assert section["latency_ns"] == {"min": 50.0, "max": 50.0}
    assert section["initiation_interval"] == 8
    assert section["estimated_clock_period_ns"] == pytest.approx(4.049)
    assert section["clock_period_ns"] == 5.0
    assert section["resources"] == FIXTURE_RESOURCES
    assert section["available"] == FIXTURE_AVAILABLE
    assert section["logic_synthesis"] == FIXTURE_LOGIC
    canonical_json(section)  # JSON-serialisable


# --- vendor reports ---------------------------------------------------------------------


def test_vendor_reads_fixture_as_laid_out() -> None:
    section = read_vendor_cost(_fixture_dir(), 5.0)
    _assert_fixture_figures(section)
    assert any("fallback" in note for note in section["notes"])


def test_vendor_reads_standard_layout_with_hls4ml_reader(tmp_path: Path) -> None:
    section = read_vendor_cost(_standard_project(tmp_path), 5.0)
    _assert_fixture_figures(section)
    assert "read with hls4ml.report.parse_vivado_report" in section["notes"]


@pytest.mark.parametrize(("with_app", "with_tcl"), [(False, True), (True, False)])
def test_vendor_reads_project_copied_back_incomplete(tmp_path: Path, with_app: bool, with_tcl: bool) -> None:
    # hls4ml's reader needs both project.tcl and the .app file; the fallback does not.
    project = _standard_project(tmp_path, with_app=with_app, with_tcl=with_tcl)
    section = read_vendor_cost(project, 5.0)
    _assert_fixture_figures(section)
    assert any("fallback" in note for note in section["notes"])


def test_vendor_notes_clock_mismatch(tmp_path: Path) -> None:
    section = read_vendor_cost(_standard_project(tmp_path), 4.0)
    assert section["clock_period_ns"] == 5.0
    assert any("differs" in note for note in section["notes"])


def test_vendor_none_without_reports(tmp_path: Path) -> None:
    (tmp_path / "hls4ml_prj").mkdir()
    (tmp_path / "hls4ml_prj" / "project.tcl").write_text(PROJECT_TCL.format(backend="vivado"))
    assert read_vendor_cost(tmp_path, 5.0) is None


REPORT_DIR = Path("hls4ml_prj/myproject_prj/solution1/syn/report")


def test_vendor_corrupt_report_is_a_clear_error(tmp_path: Path) -> None:
    project = _standard_project(tmp_path, with_tcl=False)
    xml = project / REPORT_DIR / "myproject_csynth.xml"
    xml.write_text("<profile><truncated")
    # the text report beside it is read instead, and the section says so
    section = read_vendor_cost(project, 5.0)
    _assert_fixture_figures(section)
    assert any(note.startswith("myproject_csynth.xml unreadable") for note in section["notes"])
    (project / REPORT_DIR / "myproject_csynth.rpt").unlink()
    with pytest.raises(TriggerMLError, match="not valid XML"):
        read_vendor_cost(project, 5.0)


def _text_only(root: Path, layout: str) -> Path:
    """A project copied back with the text reports only: no XML, no .app, no project.tcl."""
    fixture = _fixture_dir()
    report_dir = root / (REPORT_DIR if layout == "standard" else Path("copied-back"))
    report_dir.mkdir(parents=True)
    shutil.copy(fixture / "myproject_csynth.rpt", report_dir / "myproject_csynth.rpt")
    shutil.copy(
        fixture / "vivado_synth.rpt",
        root / ("hls4ml_prj" if layout == "standard" else "") / "vivado_synth.rpt",
    )
    return root


@pytest.mark.parametrize("layout", ["standard", "loose"])
def test_vendor_reads_text_reports_without_the_xml(tmp_path: Path, layout: str) -> None:
    section = read_vendor_cost(_text_only(tmp_path, layout), 5.0)
    _assert_fixture_figures(section)
    assert section["part"] == "xc7z020-clg400-1"
    assert (
        "read from the text report myproject_csynth.rpt (no readable myproject_csynth.xml)"
        in section["notes"]
    )


# The layout of a Vitis HLS 2024.2 ``<top>_csynth.rpt`` (its banner, the latency table with the
# "Pipeline Type" column, the summary's "Utilization (%)" row with "~0" cells and detail tables
# with Total rows of their own after the summary); the figures are this test's own.
VITIS_CSYNTH_RPT = """\
================================================================
== Vitis HLS Report for 'myproject'
================================================================
* Date:           Thu Oct  8 00:43:43 2026

* Version:        2024.2 (Build 5238294 on Nov  8 2024)
* Project:        myproject_prj
* Solution:       solution1 (Vivado IP Flow Target)
* Product family: virtexuplus
* Target device:  xcvu13p-flga2577-2-e


================================================================
== Performance Estimates
================================================================
+ Timing:
    * Summary:
    +--------+---------+----------+------------+
    |  Clock |  Target | Estimated| Uncertainty|
    +--------+---------+----------+------------+
    |ap_clk  |  5.00 ns|  3.912 ns|     1.35 ns|
    +--------+---------+----------+------------+

+ Latency:
    * Summary:
    +---------+---------+-----------+-----------+-----+-----+---------+
    |  Latency (cycles) |   Latency (absolute)  |  Interval | Pipeline|
    |   min   |   max   |    min    |    max    | min | max |   Type  |
    +---------+---------+-----------+-----------+-----+-----+---------+
    |        9|        9|  45.000 ns|  45.000 ns|    1|    1|      yes|
    +---------+---------+-----------+-----------+-----+-----+---------+

    + Detail:
        * Instance:
        N/A



================================================================
== Utilization Estimates
================================================================
* Summary:
+---------------------+---------+------+---------+---------+-----+
|         Name        | BRAM_18K|  DSP |    FF   |   LUT   | URAM|
+---------------------+---------+------+---------+---------+-----+
|DSP                  |        -|     -|        -|        -|    -|
|Expression           |        -|     -|        0|    41230|    -|
|Register             |        -|     -|     6021|        -|    -|
+---------------------+---------+------+---------+---------+-----+
|Total                |        0|     3|     6021|    41230|    0|
+---------------------+---------+------+---------+---------+-----+
|Available SLR        |     1344|  3072|   864000|   432000|  320|
+---------------------+---------+------+---------+---------+-----+
|Utilization SLR (%)  |        0|    ~0|       ~0|        9|    0|
+---------------------+---------+------+---------+---------+-----+
|Available            |     5376| 12288|  3456000|  1728000| 1280|
+---------------------+---------+------+---------+---------+-----+
|Utilization (%)      |        0|    ~0|       ~0|        2|    0|
+---------------------+---------+------+---------+---------+-----+

+ Detail:
    * Register:
    +----------+----+----+-----+-----------+
    |   Name   | FF | LUT| Bits| Const Bits|
    +----------+----+----+-----+-----------+
    |ap_CS_fsm |   1|   0|    1|          0|
    +----------+----+----+-----+-----------+
    |Total     |   1|   0|    1|          0|
    +----------+----+----+-----+-----------+
"""


def test_vitis_text_report_layout_is_read(tmp_path: Path) -> None:
    from trigger_ml.cost.vendor_text import parse_csynth_rpt

    rpt = tmp_path / "myproject_csynth.rpt"
    rpt.write_text(VITIS_CSYNTH_RPT)
    fields, meta = parse_csynth_rpt(rpt)
    assert meta == {"version": "2024.2", "part": "xcvu13p-flga2577-2-e", "banner": "Vitis HLS Report"}
    assert (fields["TargetClockPeriod"], fields["EstimatedClockPeriod"]) == ("5.00", "3.912")
    assert (fields["BestLatency"], fields["WorstLatency"], fields["IntervalMin"], fields["IntervalMax"]) == (
        "9",
        "9",
        "1",
        "1",
    )
    assert {key: fields[key] for key in ("LUT", "FF", "DSP", "BRAM_18K", "URAM")} == {
        "LUT": "41230",
        "FF": "6021",
        "DSP": "3",
        "BRAM_18K": "0",
        "URAM": "0",
    }
    assert fields["AvailableLUT"] == "1728000"  # the device's, not the SLR's
    # a copied-back Vitis project holding only this text report: the vendor section reads it
    report_dir = tmp_path / "project" / REPORT_DIR
    report_dir.mkdir(parents=True)
    shutil.copy(rpt, report_dir / "myproject_csynth.rpt")
    section = read_vendor_cost(tmp_path / "project", 5.0)
    assert section["resources"]["LUT"] == 41230 and section["latency_cycles"] == {"min": 9, "max": 9}
    assert section["part"] == "xcvu13p-flga2577-2-e" and section["initiation_interval"] == 1


def _truncate(path: Path) -> None:
    """Cut the report off a fifth of the way in (a copy interrupted before the summaries)."""
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 5])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 7):
        data[i] = ord("#")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_an_unreadable_report_is_named_in_the_cost_section_and_on_the_terminal(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    project = _text_only(tmp_path, "standard")
    rpt = project / REPORT_DIR / "myproject_csynth.rpt"
    damage(rpt)
    with pytest.raises(TriggerMLError, match=f"{rpt}: (unreadable|not a) C-synthesis report"):
        read_vendor_cost(project, 5.0)
    write_json_atomic(project / "report.json", {"cost": {"sources": {"estimate": _estimate_section()}}})
    with caplog.at_level("WARNING", logger="trigger_ml.cost"):
        result = cost_for_project(project)
    assert result["sources"]["vendor"] is None and result["best"]["source"] == "estimate"
    assert str(rpt) in result["unavailable"]["vendor"]
    assert any(str(rpt) in note and "from estimate instead" in note for note in result["best"]["notes"])
    assert any(str(rpt) in record.getMessage() for record in caplog.records)
    assert str(rpt) in format_cost_table(result["best"])


def test_trigger_ml_cost_names_an_unreadable_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from trigger_ml.cli import main

    project = _text_only(tmp_path, "standard")
    rpt = project / REPORT_DIR / "myproject_csynth.rpt"
    _truncate(rpt)
    write_json_atomic(project / "report.json", {"cost": {"sources": {"estimate": _estimate_section()}}})
    assert main(["cost", str(project)]) == 0
    out = capsys.readouterr().out
    warning = next(line for line in out.splitlines() if line.startswith("[cost] "))
    assert str(rpt) in warning and "from estimate instead" in warning
    assert "**Cost** (source: estimate" in out and f"- vendor report present but unreadable: {rpt}" in out


@pytest.mark.parametrize("damage", [_truncate, _garble])
def test_an_unreadable_vivado_synth_report_is_named_not_zeroed(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    project = _standard_project(tmp_path)
    damage(project / "hls4ml_prj" / "vivado_synth.rpt")
    with caplog.at_level("WARNING", logger="trigger_ml.cost"):
        section = read_vendor_cost(project, 5.0)
    assert section["logic_synthesis"] is None and section["resources"] == FIXTURE_RESOURCES
    assert any("vivado_synth.rpt: unreadable Vivado synthesis report" in note for note in section["notes"])
    assert any("vivado_synth.rpt" in record.getMessage() for record in caplog.records)


def test_a_vivado_synth_report_alone_is_named(tmp_path: Path) -> None:
    fixture = _fixture_dir()
    shutil.copy(fixture / "vivado_synth.rpt", tmp_path / "vivado_synth.rpt")
    with pytest.raises(TriggerMLError, match="without its C-synthesis report"):
        read_vendor_cost(tmp_path, 5.0)
    write_json_atomic(tmp_path / "report.json", {"cost": {"sources": {"estimate": _estimate_section()}}})
    assert "vivado_synth.rpt" in cost_for_project(tmp_path)["unavailable"]["vendor"]


# --- cost sections ----------------------------------------------------------------------


def _estimate_section(lut: int = 100) -> dict:
    return make_section(
        source="estimate",
        clock_period_ns=5.0,
        latency_cycles=(7, 7),
        initiation_interval=1,
        resources={"LUT": lut, "FF": 10, "DSP": 3},
    )


def test_best_cost_prefers_vendor_then_rtl_then_da4ml_then_estimate() -> None:
    estimate = _estimate_section()
    rtl = dict(_estimate_section(), source="rtl")
    vendor = dict(_estimate_section(), source="vendor")
    da4ml = dict(_estimate_section(), source="da4ml")
    assert best_cost([estimate, rtl, vendor, da4ml])["source"] == "vendor"
    assert best_cost([estimate, None, da4ml, rtl])["source"] == "rtl"
    assert best_cost([estimate, da4ml])["source"] == "da4ml"
    assert best_cost([None, estimate])["source"] == "estimate"
    with pytest.raises(TriggerMLError):
        best_cost([None])


def test_make_section_derives_latency_ns_and_fills_resources() -> None:
    section = _estimate_section()
    assert section["latency_ns"] == {"min": 35.0, "max": 35.0}
    assert section["resources"] == {"LUT": 100, "FF": 10, "DSP": 3, "BRAM_18K": 0, "URAM": 0}


def test_format_cost_table_shows_figures_and_utilisation() -> None:
    table = format_cost_table(read_vendor_cost(_fixture_dir(), 5.0))
    assert "| latency (cycles) | 10 |" in table
    assert "| DSP | 73 / 220 (33.2 %) |" in table
    assert "LUT 1526, FF 2428, DSP 66" in table
    assert "vivado_hls 2020.1" in table


def test_cost_for_project_uses_vendor_over_stored_estimate(tmp_path: Path) -> None:
    project = _standard_project(tmp_path)
    write_json_atomic(
        project / "report.json", {"cost": {"sources": {"estimate": _estimate_section(lut=999)}}}
    )
    result = cost_for_project(project)
    assert result["best"]["source"] == "vendor"
    assert result["best"]["resources"]["LUT"] == 2532
    assert result["sources"]["estimate"]["resources"]["LUT"] == 999
    json.loads(json.dumps(result))


def test_cost_for_project_falls_back_to_estimate(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "report.json", {"cost": {"sources": {"estimate": _estimate_section()}}})
    result = cost_for_project(tmp_path)
    assert result["best"]["source"] == "estimate"
    assert result["sources"]["vendor"] is None


def test_cost_for_project_without_anything_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TriggerMLError) as info:
        cost_for_project(tmp_path)
    assert "->" in info.value.one_line()


# --- running the vendor tool ------------------------------------------------------------


def _written_project(root: Path, backend: str) -> Path:
    """A project as the convert stage writes it, reduced to the files the runner reads."""
    hls = root / "hls4ml_prj"
    hls.mkdir(parents=True)
    (hls / "project.tcl").write_text(PROJECT_TCL.format(backend=backend))
    source = (
        "source [file join $tcldir build_opt.tcl]\n" if backend == "vitis" else "foreach arg $::argv {}\n"
    )
    (hls / "build_prj.tcl").write_text("set tcldir [file dirname [info script]]\n" + source)
    return root


def _fake_tool(bin_dir: Path, name: str, record: Path) -> None:
    """A stand-in that records its command line and working dir; it never writes reports."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in -version|--version) echo "Vitis HLS - High-Level Synthesis v2023.1 (64-bit)"; exit 0;; esac\n'
        f'pwd > "{record}"\n'
        f'for arg in "$@"; do echo "$arg" >> "{record}"; done\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_no_vendor_tool_gives_one_line_with_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    project = _written_project(tmp_path / "model", "vivado")
    assert find_vendor_tool() is None
    with pytest.raises(TriggerMLError) as info:
        run_vendor_synthesis(project)
    line = info.value.one_line()
    assert "\n" not in line
    assert "vitis_hls/vivado_hls not found on PATH: C synthesis skipped" in line
    assert "build_prj.tcl" in line and f"trigger-ml cost {project}" in line


def test_fake_vitis_hls_gets_the_build_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "invoked.txt"
    _fake_tool(tmp_path / "bin", "vitis_hls", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    project = _written_project(tmp_path / "model", "vivado")
    assert find_vendor_tool("vivado") == ("vitis_hls", "2023.1")
    with pytest.raises(TriggerMLError, match="wrote no C-synthesis report"):
        run_vendor_synthesis(project, logic_synthesis=True)
    cwd, *argv = record.read_text().splitlines()
    assert Path(cwd).resolve() == (project / "hls4ml_prj").resolve()
    assert argv == [
        "-f",
        "build_prj.tcl",
        "reset=1 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=1 fifo_opt=0",
    ]


def test_fake_vitis_run_gets_build_opt_for_vitis_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "invoked.txt"
    _fake_tool(tmp_path / "bin", "vitis-run", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    project = _written_project(tmp_path / "model", "vitis")
    with pytest.raises(TriggerMLError, match="wrote no C-synthesis report"):
        run_vendor_synthesis(project)
    _cwd, *argv = record.read_text().splitlines()
    assert argv == ["--mode", "hls", "--tcl", "build_prj.tcl"]
    options = (project / "hls4ml_prj" / "build_opt.tcl").read_text()
    assert "synth      1" in options and "csim       0" in options and "vsynth     0" in options


# --- analytic estimate ------------------------------------------------------------------


def test_quantize_and_csd() -> None:
    from hls4ml.model.types import FixedPrecisionType

    precision = FixedPrecisionType(width=8, integer=2, signed=True)
    assert quantize(np.array([0.5, -0.25, 1.99, 2.5]), precision).tolist() == [32, -16, 127, -96]
    assert csd_digits(0) == 0 and csd_digits(8) == 1 and csd_digits(7) == 2 and csd_digits(0b1011) == 3


@pytest.fixture(scope="module")
def keras_api():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    hls4ml = pytest.importorskip("hls4ml")
    tf = pytest.importorskip("tensorflow")
    return hls4ml, tf


def _convert(
    keras_api, model, tmp_path: Path, io_type: str = "io_parallel", part: str = "xc7z020clg400-1", **model_cfg
):
    hls4ml, _tf = keras_api
    config = hls4ml.utils.config_from_keras_model(model, granularity="model")
    config["Model"].update(model_cfg)
    return hls4ml.converters.convert_from_keras_model(
        model, hls_config=config, output_dir=str(tmp_path / "prj"), backend="Vivado",
        io_type=io_type, part=part, clock_period=5,
    )  # fmt: skip


def _fixture_design(keras_api, seed: int):
    _hls4ml, tf = keras_api
    tf.keras.utils.set_random_seed(seed)
    return tf.keras.Sequential([tf.keras.layers.Dense(5, input_shape=(16,), name="fc1", activation="relu")])


@pytest.mark.parametrize("seed", [0, 1])
def test_estimate_within_30_percent_of_the_vendor_report(keras_api, tmp_path: Path, seed: int) -> None:
    # The fixture's design as hls4ml's test_report.py built it: Dense 16->5 + ReLU,
    # ap_fixed<16,6>, reuse factor 1, io_stream, xc7z020clg400-1, 5 ns, random weights.
    vendor = read_vendor_cost(_fixture_dir(), 5.0)
    hls_model = _convert(keras_api, _fixture_design(keras_api, seed), tmp_path, io_type="io_stream")
    estimate = estimate_cost(hls_model, 5.0)
    for key in ("LUT", "DSP"):
        assert estimate["resources"][key] == pytest.approx(vendor["resources"][key], rel=0.30), key
    assert estimate["latency_cycles"]["max"] == pytest.approx(vendor["latency_cycles"]["max"], rel=0.30)
    assert estimate["initiation_interval"] == pytest.approx(vendor["initiation_interval"], rel=0.30)
    assert [layer["class"] for layer in estimate["per_layer"]] == ["Dense", "Activation"]
    canonical_json(estimate)


def test_estimate_io_parallel_same_multipliers_shorter_latency(keras_api, tmp_path: Path) -> None:
    stream = estimate_cost(
        _convert(keras_api, _fixture_design(keras_api, 0), tmp_path / "s", io_type="io_stream"), 5.0
    )
    parallel = estimate_cost(_convert(keras_api, _fixture_design(keras_api, 0), tmp_path / "p"), 5.0)
    assert parallel["resources"]["DSP"] == stream["resources"]["DSP"]
    assert parallel["latency_cycles"]["max"] < stream["latency_cycles"]["max"]
    assert parallel["initiation_interval"] == 1


def _dense_with_weights(keras_api, kernel: np.ndarray):
    _hls4ml, tf = keras_api
    model = tf.keras.Sequential(
        [tf.keras.layers.Dense(kernel.shape[1], input_shape=(kernel.shape[0],), name="fc")]
    )
    model.layers[0].set_weights([kernel.astype("float32"), np.zeros(kernel.shape[1], dtype="float32")])
    return model


def test_zero_and_power_of_two_weights_need_no_dsp(keras_api, tmp_path: Path) -> None:
    zeros = estimate_cost(
        _convert(keras_api, _dense_with_weights(keras_api, np.zeros((8, 4))), tmp_path / "z"), 5.0
    )
    assert zeros["resources"]["DSP"] == 0 and zeros["resources"]["LUT"] == 0
    po2 = np.array([[0.5, -0.25, 2.0, 0.125]] * 8)
    shifts = estimate_cost(_convert(keras_api, _dense_with_weights(keras_api, po2), tmp_path / "p"), 5.0)
    assert shifts["resources"]["DSP"] == 0
    assert shifts["resources"]["LUT"] > 0  # the adder trees remain
    dense = np.full((8, 4), 0.3)  # 0.3 has many set bits at 10 fractional bits
    mults = estimate_cost(_convert(keras_api, _dense_with_weights(keras_api, dense), tmp_path / "d"), 5.0)
    assert mults["resources"]["DSP"] == 32


def test_reuse_factor_shares_multipliers(keras_api, tmp_path: Path) -> None:
    rf1 = estimate_cost(_convert(keras_api, _fixture_design(keras_api, 0), tmp_path / "a"), 5.0)
    rf4 = estimate_cost(
        _convert(keras_api, _fixture_design(keras_api, 0), tmp_path / "b", ReuseFactor=4), 5.0
    )
    assert rf4["initiation_interval"] == 4
    assert rf4["resources"]["DSP"] <= rf1["resources"]["DSP"] / 3
    assert rf4["latency_cycles"]["max"] > rf1["latency_cycles"]["max"]


def test_qkeras_track_tagger_layers(keras_api, tmp_path: Path) -> None:
    _hls4ml, tf = keras_api
    qkeras = pytest.importorskip("qkeras")
    tf.keras.utils.set_random_seed(0)
    bits = qkeras.quantized_bits(4, 0, alpha=1)
    inp = tf.keras.Input((8, 3), name="tracks")
    x = qkeras.QConv1D(6, 1, kernel_quantizer=bits, bias_quantizer=bits, name="pw")(inp)
    x = qkeras.QActivation(qkeras.quantized_relu(6, 2), name="act")(x)
    x = tf.keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = qkeras.QDense(3, kernel_quantizer=bits, bias_quantizer=bits, name="out")(x)
    x = tf.keras.layers.Activation("sigmoid", name="sig")(x)
    hls_model = _convert(keras_api, tf.keras.Model(inp, x), tmp_path, part="xcvu13p-flga2577-2-e")
    estimate = estimate_cost(hls_model, 5.0)
    by_class = {layer["class"]: layer for layer in estimate["per_layer"]}
    assert set(by_class) == {"PointwiseConv1D", "Activation", "GlobalPooling1D", "Dense"}
    assert by_class["PointwiseConv1D"]["DSP"] == 0  # 4-bit weights: LUT products
    assert by_class["PointwiseConv1D"]["initiation_interval"] == 8  # one track per cycle
    assert by_class["GlobalPooling1D"]["LUT"] > 0
    assert estimate["initiation_interval"] == 8
    assert estimate["latency_cycles"]["max"] == sum(
        layer["latency_cycles"] for layer in estimate["per_layer"]
    )
    assert all("counted as 0" not in note for note in estimate["notes"])


def test_distributed_arithmetic_uses_da4ml_cost_or_says_it_is_missing(keras_api, tmp_path: Path) -> None:
    hls_model = _convert(keras_api, _fixture_design(keras_api, 0), tmp_path)
    dense = next(layer for layer in hls_model.get_layers() if layer.class_name == "Dense")
    dense.set_attr("strategy", "distributed_arithmetic")
    without = estimate_cost(hls_model, 5.0)
    layer = without["per_layer"][0]
    assert layer["DSP"] == 0 and layer["LUT"] > 0
    assert any("without da4ml" in note for note in layer["notes"])
    dense.set_attr("da_kernel_cost", 321.0)
    with_cost = estimate_cost(hls_model, 5.0)["per_layer"][0]
    assert with_cost["LUT"] == 321 and any("from da4ml" in note for note in with_cost["notes"])
