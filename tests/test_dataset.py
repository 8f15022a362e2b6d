"""Features, scaling, splits and input quantization on small hand-made files."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.config import FixedPoint, load_model_config
from trigger_ml.data.dataset import (
    FeatureScaling,
    prepare,
    quantize_to_fixed,
    read_sample,
    track_feature_matrix,
)
from trigger_ml.errors import TriggerMLError

JET_DTYPE = np.dtype([("pt", "f4"), ("eta", "f4"), ("flavour", "i1")])
TRACK_DTYPE = np.dtype(
    [
        ("valid", "?"),
        ("d0_mm", "f4"),
        ("z0sintheta_mm", "f4"),
        ("d0_sigma_mm", "f4"),
        ("z0sintheta_sigma_mm", "f4"),
        ("dr", "f4"),
        ("ptfrac", "f4"),
    ]
)


def make_file(path: Path, n_jets: int = 200, n_slots: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    jets = np.zeros(n_jets, JET_DTYPE)
    jets["pt"] = rng.uniform(20, 200, n_jets)
    jets["flavour"] = rng.choice([5, 4, 0], n_jets)
    tracks = np.zeros((n_jets, n_slots), TRACK_DTYPE)
    for row in range(n_jets):
        n = rng.integers(1, n_slots + 1)
        tracks["valid"][row, :n] = True
        tracks["d0_mm"][row, :n] = rng.normal(0, 0.05, n)
        tracks["z0sintheta_mm"][row, :n] = rng.normal(0, 0.1, n)
        tracks["d0_sigma_mm"][row, :n] = 0.02
        tracks["z0sintheta_sigma_mm"][row, :n] = 0.05
        tracks["dr"][row, :n] = rng.uniform(0, 0.4, n)
        tracks["ptfrac"][row, :n] = rng.uniform(0.01, 0.5, n)
    with h5py.File(path, "w") as handle:
        handle["jets"] = jets
        handle["tracks"] = tracks
    return path


def test_padding_is_exactly_zero_and_features_are_defined(tmp_path):
    sample = read_sample(make_file(tmp_path / "jets.h5"))
    names = ("sd0", "log_dr", "valid")
    features = track_feature_matrix(sample.tracks, names, 16)
    valid = sample.tracks["valid"][:, :16]
    assert features.shape == (200, 16, 3)
    assert np.all(features[~valid] == 0)
    np.testing.assert_allclose(
        features[valid][:, 0],
        sample.tracks["d0_mm"][:, :16][valid] / sample.tracks["d0_sigma_mm"][:, :16][valid],
    )
    assert np.all(features[valid][:, 2] == 1)


def test_scaling_is_fitted_on_training_tracks_only(tmp_path):
    sample = read_sample(make_file(tmp_path / "jets.h5"))
    config = load_model_config("dips-small@n_jets=200")
    data = prepare(sample, config)
    train_rows = data.indices["train"]
    features = track_feature_matrix(sample.tracks, config.inputs.track_features, 16)
    valid = sample.tracks["valid"][:, :16]
    expected = FeatureScaling.fit(features[train_rows], valid[train_rows], config.inputs.track_features)
    assert data.scaling == expected
    assert data.scaling.offset[-1] == 0.0 and data.scaling.scale[-1] == 1.0  # 'valid' is never scaled
    test_valid = valid[data.indices["test"]]
    assert np.all(data.inputs["test"][~test_valid] == 0)
    assert sum(len(v) for v in data.indices.values()) == 200
    assert data.n_truncated_jets == int(np.count_nonzero(sample.tracks["valid"].sum(axis=1) > 16))
    reloaded = FeatureScaling.from_dict(data.scaling.to_dict())
    assert reloaded == data.scaling


def test_input_quantization_matches_qkeras_quantized_bits():
    from qkeras import quantized_bits

    fp = FixedPoint(bits=10, integer=3)
    step = 2.0**-6
    values = np.concatenate(
        [
            np.random.default_rng(2).normal(0, 4, 5000),
            (np.arange(-600, 600) + 0.5) * step,  # exact ties: round half to even
            [-100.0, 100.0, 7.99, -8.0],  # saturation
        ]
    ).astype(np.float32)
    ours = quantize_to_fixed(values, fp)
    theirs = quantized_bits(fp.bits, fp.integer, alpha=1)(values).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_missing_corrupt_and_incomplete_files_give_one_line_errors(tmp_path):
    with pytest.raises(TriggerMLError, match="does not exist"):
        read_sample(tmp_path / "absent.h5")
    good = make_file(tmp_path / "jets.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(TriggerMLError, match="unreadable or truncated"):
        read_sample(truncated)
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as handle:
        handle["jets"] = np.zeros(3, JET_DTYPE)
        handle["tracks"] = np.zeros((3, 4), np.dtype([("valid", "?"), ("dr", "f4")]))
    with pytest.raises(TriggerMLError, match="lacks field"):
        read_sample(partial)


def test_nan_features_are_reported(tmp_path):
    path = make_file(tmp_path / "jets.h5", n_jets=10)
    with h5py.File(path, "r+") as handle:
        tracks = handle["tracks"][()]
        tracks["d0_sigma_mm"][3, 0] = 0.0  # d0 / 0 on a valid track
        del handle["tracks"]
        handle["tracks"] = tracks
    sample = read_sample(path)
    with pytest.raises(TriggerMLError, match="NaN/inf"):
        track_feature_matrix(sample.tracks, ("sd0",), 16)
