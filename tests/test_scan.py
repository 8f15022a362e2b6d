"""Design-space scans on Dask: spec validation, point expansion, and real scans on a real
LocalCluster (2 single-threaded worker processes) over a tiny Deep Set."""

import json
import logging
from pathlib import Path

import pytest

from trigger_ml.errors import UsageError
from trigger_ml.scan import ScanSpec, expand_points, load_scan_spec, resolve_point, run_scan, scan_dir
from trigger_ml.scan import run as scan_module
from trigger_ml.workspace import Workspace

# The Latency strategy: the grid folds the network (reuse 2), which distributed arithmetic cannot.
BASE = (
    "dips-small@n_jets=800,sample.jets_per_shard=400,eval_jets=1200,evaluation.jets_per_shard=600,epochs=2,strategy=Latency,"
    "architecture.phi_widths=[8,8],architecture.f_widths=[8]"
)
GRID = {"reuse": [1, 2], "bits": [6, 8]}
EXAMPLE = Path(__file__).resolve().parents[1] / "scans" / "example-bits-reuse.yaml"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: s\nbase: dips-small\ngrid: {bits: [6]}\ncolour: red\n", "unknown key 'colour'"),
        ("name: s\nbase: dips-small\ngrid: {bits: 6}\n", "key 'grid.bits'"),
        ("name: s\nbase: dips-small\ngrid: {bits: []}\n", "grid key 'bits' lists no values"),
        ("name: s\nbase: dips-small\n", "nothing to scan"),
        ("name: S p\nbase: dips-small\ngrid: {bits: [6]}\n", "key 'name'"),
        ("name: s\ngrid: {bits: [6]}\n", "key 'base'"),
        ("name: s\nbase: dips-small\nstages: synth\npoints: [{}]\n", "key 'stages'"),
        ("name: s\nbase: nonexistent\npoints: [{}]\n", "unknown model 'nonexistent'"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_specs_are_one_line_usage_errors(tmp_path, text, message):
    with pytest.raises(UsageError) as caught:
        load_scan_spec(_write(tmp_path / "spec.yaml", text))
    assert message in caught.value.message
    assert "\n" not in caught.value.one_line()


def test_grid_and_points_expand_over_the_base_overrides():
    spec = ScanSpec(
        name="s",
        base=BASE,
        grid=GRID,
        points=[
            {"reuse": 1, "bits": 6},  # the same configuration as a grid point: kept once
            {"reuse": 0},
            {"colour": "red"},
            {"hls.precision_overrides": {"track_pool": {"result": "ufixed<12,3>"}}, "strategy": "Resource"},
        ],
    )
    points = expand_points(spec, with_models=["dips-tiny"])
    assert [p.label for p in points] == [
        "reuse=1, bits=6",
        "reuse=1, bits=8",
        "reuse=2, bits=6",
        "reuse=2, bits=8",
        "reuse=0",
        "colour=red",
        'hls.precision_overrides={track_pool: {result: "ufixed<12,3>"}}, strategy=Resource',
        "dips-tiny",
    ]
    assert [p.source for p in points] == ["grid"] * 4 + ["points"] * 3 + ["with"]
    valid = [p for p in points if p.config is not None]
    assert len(valid) == 6 and len({p.key for p in points}) == len(points)
    first = valid[0].config
    assert (first.hls.reuse_factor, first.quantization.weight.bits, first.quantization.activation.bits) == (
        1,
        6,
        6,
    )
    assert first.sample.n_jets == 800 and first.architecture.phi_widths == (8, 8)  # the base's overrides
    assert valid[0].key == first.digest()[:16]
    # reuse variants train the same weights
    assert valid[0].config.training_digest() == valid[2].config.training_digest()
    assert valid[4].config.hls.precision_overrides == {"track_pool": {"result": "ufixed<12,3>"}}
    assert valid[4].config.hls.strategy == "Resource"
    reuse0, colour = points[4], points[5]
    assert reuse0.config is None and reuse0.error.startswith(
        "key 'hls.reuse_factor': Input should be greater"
    )
    assert reuse0.key.startswith("invalid-")
    assert colour.config is None and colour.error == "unknown key 'colour' -> fix the key or value"


def test_point_values_that_a_model_spec_cannot_carry_are_errors():
    assert resolve_point("dips-small", {"hls.part": "xcku115 -2"}).config.hls.part == "xcku115 -2"
    assert (
        resolve_point("dips-small", {"hls.track_parallelization": None}).config.hls.track_parallelization
        is None
    )
    assert resolve_point("dips-small", {"training.learning_rate": 1e-5}).config.training.learning_rate == 1e-5
    point = resolve_point("dips-small", {"hls.part": "a,b"})  # a top-level comma splits a model spec
    assert point.config is None and point.error.startswith(
        "key 'hls.part': the value 'a,b' cannot be written"
    )


def test_example_spec_is_valid():
    spec = load_scan_spec(EXAMPLE)
    points = expand_points(spec)
    assert spec.name == EXAMPLE.stem
    assert all(p.config is not None for p in points) and len(points) == 10


def test_a_scan_of_invalid_points_only_records_them_and_needs_no_cluster(tmp_path):
    spec = ScanSpec(name="bad", base="dips-small", points=[{"reuse": 0}, {"colour": "red"}])
    result = run_scan(spec, Workspace(tmp_path), scheduler="tcp://127.0.0.1:1")
    assert result.failed == 2 and result.comparison_dir is None
    assert json.loads((result.scan_dir / "summary.json").read_text())["counts"] == {
        "ok": 0,
        "skipped": 0,
        "failed": 2,
    }
    assert "No point finished: no comparison." in result.summary_path.read_text()
    assert len(list((result.scan_dir / "points").glob("invalid-*.json"))) == 2


# ----------------------------------------------------------------------------- real scans


@pytest.fixture(scope="module")
def cluster():
    """An existing Dask cluster, reached by its address like ``--scheduler tcp://...``."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as local:
        yield local


def _files(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_grid_scan_completes_then_a_rerun_skips_every_point(workspace, tiny_sample, cluster):
    # the grid folds the network (reuse 2), which only the analytic estimate costs
    spec = ScanSpec(name="tiny-grid", base=BASE, grid=GRID, cost_source="estimate")
    result = run_scan(spec, workspace, scheduler=cluster.scheduler_address)
    assert [r["status"] for r in result.records] == ["ok"] * 4, [r.get("error") for r in result.records]
    out = scan_dir(workspace, "tiny-grid")
    assert sorted(p.stem for p in (out / "points").glob("*.json")) == sorted(r["key"] for r in result.records)
    for record in result.records:
        saved = json.loads((out / "points" / f"{record['key']}.json").read_text())
        assert saved["status"] == "ok" and saved["config_sha256"].startswith(record["key"])
        assert saved["row"]["exact_fraction"] == 1.0 and saved["row"]["latency_ns"] > 0
        assert saved["cost_source"] == saved["row"]["cost_source"] == "estimate"
        assert (workspace.root / saved["curve"]["path"]).is_file()

    # The comparison holds the scan's points and its Pareto fronts.
    table = json.loads((result.comparison_dir / "table.json").read_text())
    models = {r["model"] for r in result.records}
    assert {row["model"] for row in table["rows"]} == models
    fronts = json.loads((result.comparison_dir / "front.json").read_text())
    for front in fronts.values():
        assert front and set(front) <= models
    for name in ("table.md", "table.csv", "rej70_vs_latency.png", "rej70_vs_lut.png", "roc.png"):
        assert (result.comparison_dir / name).stat().st_size > 0
    summary = result.summary_path.read_text()
    assert "4 ok, 0 skipped" in summary and "reuse=2, bits=8" in summary

    # A rerun skips all four without reaching any cluster and creates or rewrites no result.
    before = _files(workspace.root)
    again = run_scan(spec, workspace, scheduler="tcp://127.0.0.1:1")
    assert [r["status"] for r in again.records] == ["skipped"] * 4
    assert "0 ok, 4 skipped (done in an earlier run), 0 failed" in again.summary_path.read_text()
    after = _files(workspace.root)
    assert set(after) == set(before)
    rewritten = {again.summary_path, out / "summary.json", *again.comparison_dir.iterdir()}
    assert {path for path in after if after[path] != before[path]} <= rewritten


@pytest.mark.slow
def test_invalid_and_failing_points_are_recorded_while_the_others_finish(workspace, tiny_sample, caplog):
    spec = ScanSpec(
        name="tiny-errors",
        base=BASE,
        points=[
            {"reuse": 0},  # rejected by the schema in the client
            {"reuse": 1, "bits": 6},
            {"quantization.enabled": False, "training.float_twin": False},  # fails in its task
        ],
    )
    # The default engine: a LocalCluster started for the scan.
    with caplog.at_level(logging.INFO, logger="trigger_ml.scan"):
        result = run_scan(spec, workspace, n_workers=1)
    invalid, ok, failing = result.records
    assert ok["status"] == "ok" and ok["row"]["exact_fraction"] == 1.0
    assert invalid["status"] == "failed" and "key 'hls.reuse_factor'" in invalid["error"]
    assert failing["status"] == "failed" and "nothing to train" in failing["error"]
    assert "Traceback" in failing["traceback"]
    assert result.failed == 2
    points = scan_dir(workspace, "tiny-errors") / "points"
    assert {json.loads(p.read_text())["status"] for p in points.glob("*.json")} == {"ok", "failed"}
    assert len(list(points.glob("*.json"))) == 3
    summary = result.summary_path.read_text()
    assert "1 ok, 0 skipped (done in an earlier run), 2 failed" in summary
    assert "greater than or equal to 1" in summary and "nothing to train" in summary
    table = json.loads((result.comparison_dir / "table.json").read_text())
    assert [row["model"] for row in table["rows"]] == [ok["model"]]
    assert any(message.startswith("dashboard: http://127.0.0.1:") for message in caplog.messages)


@pytest.mark.slow
def test_an_interrupted_scan_keeps_its_finished_points(workspace, tiny_sample, cluster, monkeypatch):
    spec = ScanSpec(name="tiny-interrupted", base=BASE, grid=GRID, stages="train")
    real_write = scan_module.write_json_atomic

    def write_then_interrupt(path, obj):
        real_write(path, obj)
        if Path(path).parent.name == "points":
            raise KeyboardInterrupt

    monkeypatch.setattr(scan_module, "write_json_atomic", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_scan(spec, workspace, scheduler=cluster.scheduler_address)
    monkeypatch.undo()
    kept = list((scan_dir(workspace, "tiny-interrupted") / "points").glob("*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["status"] == "ok"

    result = run_scan(spec, workspace, scheduler=cluster.scheduler_address)
    statuses = {r["key"]: r["status"] for r in result.records}
    assert statuses.pop(kept[0].stem) == "skipped"
    assert set(statuses.values()) == {"ok"}
    rows = json.loads((result.comparison_dir / "table.json").read_text())["rows"]
    assert len(rows) == 4 and all(row["latency_ns"] == scan_module.NOT_BUILT for row in rows)
    assert all(isinstance(row["rej_light_at_70"], float) for row in rows)
