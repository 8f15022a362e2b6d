"""Readers for external layouts: ATLAS FTAG (training-dataset-dumper) HDF5 and the hls4ml
LHC jet dataset, on small files written here (no network)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.data.dataset import read_sample
from trigger_ml.data.external import (
    DEFAULT_FTAG_MAPPING,
    LHC_JET_CLASSES,
    LHC_JET_FEATURES,
    FtagField,
    FtagMapping,
    convert_ftag_h5,
    read_ftag_h5,
    read_lhc_jets_hlf,
)
from trigger_ml.errors import TriggerMLError

# The training-dataset-dumper's names and ATLAS units (MeV, mm).
FTAG_JET_DTYPE = np.dtype(
    [
        ("pt", "f4"),
        ("eta", "f4"),
        ("phi", "f4"),
        ("mass", "f4"),
        ("HadronConeExclTruthLabelID", "i4"),
        ("HadronConeExclTruthLabelPt", "f4"),
        ("HadronConeExclTruthLabelLxy", "f4"),
        ("eventNumber", "i8"),
    ]
)
FTAG_TRACK_DTYPE = np.dtype(
    [
        ("valid", "?"),
        ("pt", "f4"),
        ("eta", "f4"),
        ("phi", "f4"),
        ("lifetimeSignedD0", "f4"),
        ("lifetimeSignedZ0SinTheta", "f4"),
        ("d0Uncertainty", "f4"),
        ("z0SinThetaUncertainty", "f4"),
        ("dr", "f4"),
        ("ptfrac", "f4"),
        ("ftagTruthOriginLabel", "i4"),
    ]
)


def ftag_arrays(n_jets: int = 300, n_tracks: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Jets and tracks in the dumper layout; b jets carry displaced, positively signed tracks."""
    rng = np.random.default_rng(seed)
    jets = np.zeros(n_jets, FTAG_JET_DTYPE)
    jets["pt"] = rng.uniform(20e3, 200e3, n_jets)  # MeV
    jets["eta"] = rng.uniform(-2.5, 2.5, n_jets)
    jets["phi"] = rng.uniform(-np.pi, np.pi, n_jets)
    jets["mass"] = rng.uniform(2e3, 20e3, n_jets)
    label = rng.choice([5, 4, 0], n_jets, p=[0.3, 0.2, 0.5])
    jets["HadronConeExclTruthLabelID"] = label
    jets["HadronConeExclTruthLabelPt"] = np.where(label > 0, 30e3, np.nan)
    jets["HadronConeExclTruthLabelLxy"] = np.where(label > 0, 3.0, np.nan)
    jets["eventNumber"] = np.arange(n_jets)
    tracks = np.zeros((n_jets, n_tracks), FTAG_TRACK_DTYPE)
    for row in range(n_jets):
        n = int(rng.integers(1, n_tracks + 1))
        sigma = rng.uniform(0.01, 0.1, n)
        displacement = {5: 4.0, 4: 1.5, 0: 0.0}[int(label[row])]
        tracks["valid"][row, :n] = True
        tracks["d0Uncertainty"][row, :n] = sigma
        tracks["z0SinThetaUncertainty"][row, :n] = 2 * sigma
        tracks["lifetimeSignedD0"][row, :n] = sigma * (
            rng.normal(0, 1, n) + displacement * rng.exponential(1, n)
        )
        tracks["lifetimeSignedZ0SinTheta"][row, :n] = 2 * sigma * rng.normal(0, 1, n)
        tracks["pt"][row, :n] = rng.uniform(1e3, 20e3, n)
        tracks["eta"][row, :n] = jets["eta"][row] + rng.normal(0, 0.1, n)
        tracks["dr"][row, :n] = rng.uniform(0.0, 0.4, n)
        tracks["ptfrac"][row, :n] = rng.uniform(0.01, 0.5, n)
        tracks["ftagTruthOriginLabel"][row, :n] = rng.integers(0, 8, n)
    return jets, tracks


def write_ftag(path: Path, jets: np.ndarray, tracks: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        handle["jets"] = jets
        handle["tracks"] = tracks
    return path


def test_ftag_conversion_units_order_and_counted_cleanup(tmp_path: Path) -> None:
    jets, tracks = ftag_arrays(n_jets=20, n_tracks=12)
    jets["HadronConeExclTruthLabelID"][:4] = [15, 99, 5, 0]
    tracks[2, :] = np.zeros(12, FTAG_TRACK_DTYPE)  # a jet without valid tracks
    tracks["valid"][3, :3] = True
    tracks["d0Uncertainty"][3, :3] = [np.nan, 0.0, 0.05]  # two bad tracks, one good
    tracks["lifetimeSignedD0"][3, :3] = 0.1
    tracks["z0SinThetaUncertainty"][3, :3] = 0.1
    tracks["ptfrac"][3, :3] = 0.1
    path = write_ftag(tmp_path / "ftag.h5", jets, tracks)

    result = read_ftag_h5(path, max_tracks=8)
    sample = result.sample
    assert result.n_jets_read == 20 and len(sample.jets) == 19  # label 99 dropped
    assert result.dropped_jets["unknown flavour label"] == 1
    assert result.n_tau_as_light == 1 and sample.jets["flavour"][0] == 0
    assert result.dropped_tracks["non-finite value"] == 1
    assert result.dropped_tracks["uncertainty <= 0"] == 1
    assert result.n_jets_without_tracks == 1
    kept = np.ones(20, bool)
    kept[1] = False
    n_valid = tracks["valid"][kept].sum(axis=1)
    n_valid[2] -= 2  # the file's jet 3 (row 2 after the drop) lost two tracks
    assert result.n_truncated_tracks == int(np.clip(n_valid - 8, 0, None).sum())
    assert np.array_equal(sample.jets["n_tracks"], n_valid)
    np.testing.assert_allclose(sample.jets["pt"], jets["pt"][kept] * 1e-3, rtol=1e-6)  # MeV -> GeV
    assert np.all(sample.jets["hadron_lxy_mm"][sample.jets["flavour"] == 0] == 0)  # NaN -> 0, counted
    assert result.n_hadron_nan_set_to_zero > 0
    # Our order: valid first, signed d0 significance descending, zero padding.
    valid = sample.tracks["valid"]
    assert sample.tracks.shape == (19, 8) and np.all(np.diff(valid.astype(int), axis=1) <= 0)
    sd0 = sample.tracks["d0_mm"] / np.where(valid, sample.tracks["d0_sigma_mm"], 1.0)
    assert np.all(np.diff(sd0, axis=1)[valid[:, 1:]] <= 0)
    assert sample.tracks[~valid].tobytes() == np.zeros(int((~valid).sum()), sample.tracks.dtype).tobytes()
    assert set(np.unique(sample.tracks["origin"][valid])) <= {0, 1, 2, 3, 4}
    assert "19 of 20 jets kept" in result.summary()

    with pytest.raises(TriggerMLError, match="no usable jets"):
        read_ftag_h5(write_ftag(tmp_path / "taus.h5", jets[:1], tracks[:1]), tau_as_light=False)


def test_ftag_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    jets, tracks = ftag_arrays(n_jets=30, n_tracks=5)
    good = write_ftag(tmp_path / "good.h5", jets, tracks)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    no_tracks = tmp_path / "no_tracks.h5"
    with h5py.File(no_tracks, "w") as handle:
        handle["jets"] = jets
    cases = {
        tmp_path / "absent.h5": "does not exist",
        truncated: "unreadable or truncated",
        no_tracks: "no 'tracks' dataset",
        write_ftag(tmp_path / "no_d0.h5", jets, tracks[["valid", "dr", "ptfrac"]]): "lacks field",
        write_ftag(tmp_path / "shape.h5", jets, tracks[:10]): "tracks' has shape",
        write_ftag(tmp_path / "empty.h5", jets[:0], tracks[:0]): "holds no jets",
    }
    for path, message in cases.items():
        with pytest.raises(TriggerMLError, match=message) as info:
            read_ftag_h5(path)
        assert "\n" not in info.value.one_line()
    with pytest.raises(TriggerMLError, match="unknown target field"):
        FtagMapping.from_dict({"tracks": {"d0_typo": "d0"}})


def test_ftag_mapping_is_configurable(tmp_path: Path) -> None:
    jets, tracks = ftag_arrays(n_jets=10, n_tracks=4)
    names = ["myD0" if n == "lifetimeSignedD0" else n for n in tracks.dtype.names]
    renamed = tracks.view(
        np.dtype({"names": names, "formats": [tracks.dtype[n] for n in tracks.dtype.names]})
    )
    path = write_ftag(tmp_path / "renamed.h5", jets, renamed)
    with pytest.raises(TriggerMLError, match="d0_mm <- lifetimeSignedD0"):
        read_ftag_h5(path)
    mapping = DEFAULT_FTAG_MAPPING.replace(tracks={"d0_mm": FtagField("myD0")})
    assert FtagMapping.from_dict({"tracks": {"d0_mm": "myD0"}}) == mapping
    sample = read_ftag_h5(path, mapping).sample
    direct = read_ftag_h5(write_ftag(tmp_path / "plain.h5", jets, tracks)).sample
    assert sample.tracks.tobytes() == direct.tracks.tobytes()


@pytest.mark.slow
def test_converted_ftag_file_trains_end_to_end(tmp_path: Path) -> None:
    from trigger_ml.config import load_model_config
    from trigger_ml.training import train

    src = write_ftag(tmp_path / "ftag.h5", *ftag_arrays(n_jets=300, n_tracks=40))
    dst = tmp_path / "converted" / "jets.h5"
    result = convert_ftag_h5(src, dst)
    assert result.sample.path == dst and result.n_truncated_tracks == 0
    sample = read_sample(dst)
    assert len(sample.jets) == 300 and sample.tracks.shape == (300, 40)
    with h5py.File(dst, "r") as handle:
        assert "conversion" in handle.attrs and handle.attrs["source"] == str(src)
    config = load_model_config(
        "dips-small@n_jets=300,epochs=1,architecture.phi_widths=[4],architecture.f_widths=[4],"
        "quantization.layers=null,training.pruning=null"
    )
    run = train(config, dst, tmp_path / "run")
    assert (run.path / "metrics.json").is_file() and run.metrics


# --- hls4ml LHC jets ---------------------------------------------------------------------


def lhc_table(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)
    features = rng.normal(0, 1, (n, 16)).astype(np.float32)
    features[:, 14] += 20 * labels  # the groomed mass separates the classes
    features[:, 15] = rng.integers(5, 60, n)
    return features, labels


def write_arff(path: Path, features: np.ndarray, labels: np.ndarray) -> Path:
    lines = ["% a copy of OpenML hls4ml_lhc_jets_hlf", "@RELATION hls4ml_lhc_jets_hlf", ""]
    lines += [f"@ATTRIBUTE {name} NUMERIC" for name in LHC_JET_FEATURES]
    lines += ["@ATTRIBUTE class {g,q,t,w,z}", "", "@DATA"]
    lines += [
        ",".join([*(f"{v:.6g}" for v in row), LHC_JET_CLASSES[c]])
        for row, c in zip(features, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_lhc_jets_arff_csv_and_h5_read_back(tmp_path: Path) -> None:
    features, labels = lhc_table()
    arff = read_lhc_jets_hlf(write_arff(tmp_path / "jets.arff", features, labels))
    assert arff.features.shape == (200, 16) and arff.labels.tolist() == labels.tolist()
    np.testing.assert_allclose(arff.features, features, rtol=1e-5)

    csv_path = tmp_path / "jets.csv"
    header = ",".join(["class", *LHC_JET_FEATURES])
    rows = [
        ",".join([LHC_JET_CLASSES[c], *(repr(float(v)) for v in row)])
        for row, c in zip(features, labels, strict=True)
    ]
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    from_csv = read_lhc_jets_hlf(csv_path)
    assert from_csv.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(from_csv.features, features)

    dtype = np.dtype(
        [(f"j_{n}", "f4") for n in LHC_JET_FEATURES] + [(f"j_{c}", "i4") for c in LHC_JET_CLASSES]
    )
    table = np.zeros(len(labels), dtype)
    for i, name in enumerate(LHC_JET_FEATURES):
        table[f"j_{name}"] = features[:, i]
    for i, name in enumerate(LHC_JET_CLASSES):
        table[f"j_{name}"] = labels == i
    with h5py.File(tmp_path / "jets.h5", "w") as handle:
        handle["t_allpar_new"] = table
    from_h5 = read_lhc_jets_hlf(tmp_path / "jets.h5")
    np.testing.assert_array_equal(from_h5.features, features)
    assert from_h5.labels.tolist() == labels.tolist()


def test_lhc_jets_bad_input(tmp_path: Path) -> None:
    features, labels = lhc_table(n=20)
    features[3, 2] = np.nan
    counted = read_lhc_jets_hlf(write_arff(tmp_path / "nan.arff", features, labels))
    assert counted.n_dropped_nonfinite == 1 and len(counted.labels) == 19
    path = write_arff(tmp_path / "bad.arff", features, labels)
    text = path.read_text()
    cases = {
        "missing.arff": (text.replace("@ATTRIBUTE zlogz NUMERIC\n", ""), "zlogz"),
        "label.arff": (text.rstrip("\n")[:-1] + "x\n", "unknown class label"),
        "short.arff": (text.rstrip("\n").rsplit(",", 3)[0] + "\n", "is truncated or malformed|has 14 values"),
        "nodata.arff": (text.split("@DATA")[0], "no @data"),
        "empty.arff": (text.split("@DATA")[0] + "@DATA\n", "holds no jets"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(TriggerMLError, match=message):
            read_lhc_jets_hlf(tmp_path / name)
    with pytest.raises(TriggerMLError, match="unknown file type"):
        read_lhc_jets_hlf(write_arff(tmp_path / "jets.txt", features, labels))


@pytest.mark.slow
def test_lhc_jets_train_a_dense_qkeras_model(tmp_path: Path) -> None:
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    data = read_lhc_jets_hlf(write_arff(tmp_path / "jets.arff", *lhc_table(n=600)))
    mean, std = data.features.mean(axis=0), data.features.std(axis=0)
    x = (data.features - mean) / np.where(std > 0, std, 1.0)
    tf.keras.utils.set_random_seed(0)
    quantizer = quantized_bits(8, 0, alpha=1)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(16,)),
            QDense(16, kernel_quantizer=quantizer, bias_quantizer=quantizer),
            QActivation(quantized_relu(8, 3)),
            QDense(len(LHC_JET_CLASSES), kernel_quantizer=quantizer, bias_quantizer=quantizer),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, data.labels, epochs=15, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["accuracy"][-1] > 0.5  # five classes: chance is 0.2


def test_ftag_reads_a_named_track_collection(tmp_path: Path) -> None:
    jets, tracks = ftag_arrays(n_jets=10, n_tracks=4)
    path = tmp_path / "collections.h5"
    with h5py.File(path, "w") as handle:
        handle["jets"] = jets
        handle["tracks_loose"] = tracks
    with pytest.raises(TriggerMLError, match="no 'tracks' dataset"):
        read_ftag_h5(path)
    assert len(read_ftag_h5(path, tracks_dataset="tracks_loose").sample.jets) == 10
