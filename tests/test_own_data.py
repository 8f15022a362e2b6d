"""Your own jets (issue #16): ``trigger-ml convert-ftag`` into the workspace, a model whose
``sample`` names the file, and the whole chain (train, hls, firmware bundle) on it. The dumper
files are written here in the training-dataset-dumper's layout (tests/test_data_external.py)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import numpy.lib.recfunctions as rfn
import pytest
from test_data_external import ftag_arrays, write_ftag

from trigger_ml.cli import main
from trigger_ml.config import load_model_config
from trigger_ml.data.dataset import read_sample, split_indices
from trigger_ml.errors import TriggerMLError
from trigger_ml.pipeline import ensure
from trigger_ml.workspace import Workspace

TINY_FILE_MODEL = (
    "dips-small@sample.path={path},epochs=2,architecture.phi_widths=[8],architecture.f_widths=[8],"
    "quantization.layers=null,training.pruning=null"
)


def convert(src: Path, ws: Workspace, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[Path, str]:
    """Run ``trigger-ml convert-ftag`` in ``ws``; the path it prints and its summary line."""
    assert main(["convert-ftag", str(src), *extra]) == 0
    lines = capsys.readouterr().out.splitlines()
    return Path(lines[0]), lines[1]


@pytest.fixture
def in_workspace(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("TRIGGER_ML_HOME", str(workspace.root))
    return workspace


def test_convert_ftag_writes_a_keyed_sample_once(
    tmp_path: Path, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_ftag(tmp_path / "user.h5", *ftag_arrays(n_jets=200, n_tracks=20, seed=3))
    path, summary = convert(src, in_workspace, capsys)
    assert path.parent.parent == in_workspace.data_dir and path.parent.name.startswith("ftag-")
    assert "converted: 200 of 200 jets (" in summary and " b, " in summary and "tracks dropped" in summary
    assert len(read_sample(path).jets) == 200
    again, summary = convert(src, in_workspace, capsys)
    assert again == path and "already converted" in summary
    cut, _ = convert(src, in_workspace, capsys, "--max-tracks", "8")
    assert cut != path and read_sample(cut).tracks.shape == (200, 8)


def test_convert_ftag_reads_btagJes_kinematics_and_a_mapping_file(
    tmp_path: Path, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    jets, tracks = ftag_arrays(n_jets=100, n_tracks=10, seed=4)
    jes = rfn.rename_fields(jets, {"pt": "pt_btagJes", "eta": "eta_btagJes"})
    path, _ = convert(write_ftag(tmp_path / "jes.h5", jes, tracks), in_workspace, capsys)
    np.testing.assert_allclose(read_sample(path).jets["pt"], jets["pt"] * 1e-3, rtol=1e-6)
    renamed = rfn.rename_fields(tracks, {"dr": "deltaR"})
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tracks: {dr: deltaR}\n")
    path, summary = convert(
        write_ftag(tmp_path / "renamed.h5", jets, renamed), in_workspace, capsys, "--mapping", str(mapping)
    )
    assert "100 of 100 jets" in summary
    mapping.write_text("trakcs: {dr: deltaR}\n")
    assert main(["convert-ftag", str(tmp_path / "renamed.h5"), "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key(s) ['trakcs']" in err
    assert main(["convert-ftag", str(tmp_path / "missing.h5")]) == 2


def test_a_file_sample_excludes_generator_settings_and_keeps_zoo_digests() -> None:
    config = load_model_config("dips-small@sample.path=data/x/jets.h5")
    assert config.model_dump(mode="json")["sample"] == {"path": "data/x/jets.h5"}
    assert (
        load_model_config("dips-small").model_dump(mode="json", exclude_none=True)["sample"].get("path")
        is None
    )
    with pytest.raises(TriggerMLError, match="cannot go with it"):
        load_model_config("dips-small@sample.path=x.h5,n_jets=800")
    with pytest.raises(TriggerMLError, match="evaluation.path is for a file sample"):
        load_model_config("dips-small@evaluation.path=x.h5")


def test_a_missing_sample_file_is_one_line(
    in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "dips-small@sample.path=data/nowhere/jets.h5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sample file" in err and "convert-ftag" in err


def test_without_evaluation_path_the_evaluation_is_the_test_split(
    tmp_path: Path, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = convert(
        write_ftag(tmp_path / "split.h5", *ftag_arrays(n_jets=300, n_tracks=16, seed=5)), in_workspace, capsys
    )
    config = load_model_config(TINY_FILE_MODEL.format(path=path))
    evaluation = ensure("evaluation-data", config, in_workspace)
    test_rows = np.sort(split_indices(300, config)["test"])
    with h5py.File(evaluation.path, "r") as handle:
        assert handle.attrs["selection"] == "test split"
        np.testing.assert_array_equal(handle["jets"]["pt"], read_sample(path).jets["pt"][test_rows])
    assert ensure("data", config, in_workspace).path == path.resolve()


@pytest.mark.slow
def test_own_jets_through_train_hls_and_firmware(
    tmp_path: Path, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    from trigger_ml.firmware import build_bundle, verify_bundle

    train_file, _ = convert(
        write_ftag(tmp_path / "train.h5", *ftag_arrays(n_jets=800, n_tracks=24, seed=6)), in_workspace, capsys
    )
    eval_file, _ = convert(
        write_ftag(tmp_path / "eval.h5", *ftag_arrays(n_jets=400, n_tracks=24, seed=7)), in_workspace, capsys
    )
    relative = train_file.relative_to(in_workspace.root)
    spec = (
        TINY_FILE_MODEL.format(path=relative) + f",evaluation.path={eval_file.relative_to(in_workspace.root)}"
    )
    assert main(["hls", spec]) == 0
    out = capsys.readouterr().out
    assert "the file evaluation.path, independent of the training file" in out
    config = load_model_config(spec)
    report = ensure("hls", config, in_workspace)
    assert report["fidelity"]["csim_vs_reference_exact_fraction"] == 1.0
    assert report["evaluation"]["n_jets"] == 400 and report["evaluation"]["seed"] is None
    assert report["data"]["path"] == str(train_file.resolve())
    bundle = build_bundle(config, in_workspace, n_vectors=100, verify=False)
    assert verify_bundle(bundle).n_vectors == 100


@pytest.mark.slow
def test_own_jets_through_compare_scan_and_distill(
    tmp_path: Path, in_workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """``compare``, ``scan`` and ``distill`` on a converted file, as ``hls`` and ``firmware`` above."""
    from trigger_ml.pipeline import ensure_distilled
    from trigger_ml.scan import ScanSpec, run_scan
    from trigger_ml.symbolic.settings import load_symbolic_config

    path, _ = convert(
        write_ftag(tmp_path / "own.h5", *ftag_arrays(n_jets=600, n_tracks=16, seed=8)), in_workspace, capsys
    )
    relative = path.relative_to(in_workspace.root)
    deep_set = TINY_FILE_MODEL.format(path=relative)
    dense = f"dense-small@sample.path={relative},epochs=2,architecture.f_widths=[8]"

    assert main(["compare", "--cost-source", "estimate", deep_set, dense]) == 0
    capsys.readouterr()
    table = json.loads((in_workspace.root / "comparison" / "table.json").read_text())
    firmware = [row for row in table["rows"] if row["kind"] != "float-reference"]
    assert len(firmware) == 2 and all(row["exact_fraction"] == 1.0 for row in firmware)
    for row in table["rows"]:  # the test split of the 600 jets: no file evaluation.path
        assert row["physics_sample"].endswith("(180 jets)"), row["physics_sample"]

    spec = ScanSpec(name="own-file", base=deep_set, points=[{"bits": 6}], cost_source="estimate")
    result = run_scan(spec, in_workspace, n_workers=1)
    assert [r["status"] for r in result.records] == ["ok"], [r.get("error") for r in result.records]

    settings = load_symbolic_config(
        "backend=operon,generations=4,population_size=40,subsample=100,max_complexity=[5,9],select_features=4"
    )
    report = ensure_distilled(load_model_config(dense), settings, in_workspace)
    assert report["data"]["path"] == str(path.resolve())
    assert report["fidelity"]["within_step_fraction"] == 1.0
