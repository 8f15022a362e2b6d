"""Tests of the physics data generator: the detector model alone, then real Pythia samples."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.data import generate as gen
from trigger_ml.data.detector import DetectorModel, lifetime_signs, straight_line_impact_parameters
from trigger_ml.data.generate import (
    JET_DTYPE,
    TRACK_DTYPE,
    GeneratorSettings,
    generate_sample,
    load_sample_info,
    sample_dir,
)
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import sha256_of_file

# --- detector model and settings (no Pythia) ---------------------------------------------


def test_resolution_falls_with_pt_towards_constant_term() -> None:
    detector = DetectorModel()
    pt = np.array([1.0, 10.0, 1000.0])
    eta = np.zeros(3)
    sigma = detector.sigma_d0_mm(pt, eta)
    assert np.all(np.diff(sigma) < 0)
    assert sigma[0] == pytest.approx(np.hypot(10.0, 70.0) * 1e-3)
    assert sigma[-1] == pytest.approx(0.010, rel=1e-3)
    # Forward tracks cross more material: worse resolution at the same pT.
    assert (
        detector.sigma_z0sintheta_mm(np.array([2.0]), np.array([2.0]))[0]
        > detector.sigma_z0sintheta_mm(np.array([2.0]), np.array([0.0]))[0]
    )


def test_straight_line_impact_parameters_and_lifetime_signs() -> None:
    # Produced at (x, y, z) = (1, 0, 5) mm, moving along +y with pz = pT: the PCA to the
    # beam line is the production point itself.
    one = np.array([1.0])
    d0, z0st = straight_line_impact_parameters(one, np.zeros(1), 5 * one, np.zeros(1), one, one, z_pv=4.0)
    assert d0[0] == pytest.approx(-1.0)  # ATLAS perigee: d0 = (y px - x py) / pT
    assert z0st[0] == pytest.approx(1.0 / np.sqrt(2))
    # A jet along +x: the PCA (1, 0) lies in front of the vertex -> positive lifetime sign.
    signed_d0, signed_z0 = lifetime_signs(d0, z0st, np.array([np.pi / 2]), one * 0.88, one * 0.0, one * 1.0)
    assert signed_d0[0] == pytest.approx(1.0)
    assert signed_z0[0] == pytest.approx(1.0 / np.sqrt(2))  # (eta_jet - eta_trk) z0 > 0
    # A jet along -x: behind the vertex -> negative.
    signed_d0, _ = lifetime_signs(d0, z0st, np.array([np.pi / 2]), one, np.array([np.pi]), one)
    assert signed_d0[0] == pytest.approx(-1.0)


def test_smearing_core_and_tails() -> None:
    detector = DetectorModel(tail_fraction=0.1, tail_scale=4.0)
    rng = np.random.default_rng(0)
    n = 200_000
    pt, eta = np.full(n, 5.0), np.zeros(n)
    d0, z0, sigma_d0, sigma_z0 = detector.smear(rng, np.zeros(n), np.zeros(n), pt, eta)
    pull = d0 / sigma_d0
    expected_rms = np.sqrt(0.9 + 0.1 * 16.0)
    assert np.std(pull) == pytest.approx(expected_rms, rel=0.02)
    assert np.mean(np.abs(pull) > 5) > 0.01  # non-Gaussian tail
    assert np.all(sigma_z0 > sigma_d0)


def test_settings_digest_and_validation() -> None:
    base = GeneratorSettings()
    assert len(base.digest()) == 12 and int(base.digest(), 16) >= 0
    assert base.digest() == GeneratorSettings().digest()
    assert base.digest() != GeneratorSettings(seed=2).digest()
    assert base.digest() != dataclasses.replace(base, detector=DetectorModel(tail_fraction=0.0)).digest()
    assert GeneratorSettings.from_dict(base.to_dict()) == base
    assert base.shard_sizes() == [5000] * 20
    assert GeneratorSettings(n_jets=60, jets_per_shard=25).shard_sizes() == [25, 25, 10]
    with pytest.raises(UsageError):
        GeneratorSettings(process="zjets")
    with pytest.raises(UsageError):
        GeneratorSettings(n_jets=0)
    with pytest.raises(UsageError):
        GeneratorSettings.from_dict({"detector": {"d0_typo": 1.0}})
    with pytest.raises(UsageError):
        DetectorModel(tail_fraction=1.5)


def test_heavy_flavour_codes() -> None:
    ids = np.array([511, -521, 5122, 10513, 541, 421, -4122, 443, 553, 5101, 211, 5, 15, 130])
    assert gen._heavy_flavour(ids).tolist() == [5, 5, 5, 5, 5, 4, 4, 0, 0, 0, 0, 0, 0, 0]


def test_load_sample_info_without_sample(tmp_path: Path) -> None:
    with pytest.raises(TriggerMLError):
        load_sample_info(tmp_path)


# --- real Pythia -------------------------------------------------------------------------

TINY = GeneratorSettings(n_jets=60, jets_per_shard=30, seed=11)
PHYSICS = GeneratorSettings(n_jets=600, jets_per_shard=300, seed=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(TINY, tmp_path_factory.mktemp("tiny"), n_workers=2, progress=False)


@pytest.fixture(scope="module")
def physics(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    path = generate_sample(PHYSICS, tmp_path_factory.mktemp("physics"), n_workers=2, progress=False)
    with h5py.File(path, "r") as handle:
        return handle["jets"][...], handle["tracks"][...]


@pytest.mark.slow
def test_layout(tiny: Path) -> None:
    assert tiny.name == "jets.h5"
    assert tiny.parent.name == f"ttbar-{TINY.digest()}"
    assert sorted(p.name for p in (tiny.parent / "shards").iterdir()) == ["shard-00000.h5", "shard-00001.h5"]
    with h5py.File(tiny, "r") as handle:
        assert handle["jets"].dtype == JET_DTYPE and handle["jets"].shape == (60,)
        assert handle["tracks"].dtype == TRACK_DTYPE and handle["tracks"].shape == (60, TINY.max_tracks)
        assert handle.attrs["format_version"] == gen.FORMAT_VERSION
        assert GeneratorSettings.from_dict(json.loads(handle.attrs["settings"])) == TINY
        jets, tracks = handle["jets"][...], handle["tracks"][...]
    assert set(np.unique(jets["flavour"])) <= {0, 4, 5}
    assert np.all(jets["pt"] > TINY.jet_pt_min) and np.all(np.abs(jets["eta"]) < TINY.jet_eta_max)
    assert np.all(np.diff(jets["event_number"]) >= 0)
    assert np.all(tracks["valid"].sum(axis=1) == np.minimum(jets["n_tracks"], TINY.max_tracks))
    info = load_sample_info(tiny)
    assert info["n_jets"] == 60 and sum(info["flavour_counts"].values()) == 60
    assert info["jets_sha256"] == sha256_of_file(tiny)
    assert info["pythia_version"].startswith("8.3")


@pytest.mark.slow
def test_tracks_selection_ordering_and_padding(physics: tuple[np.ndarray, np.ndarray]) -> None:
    jets, tracks = physics
    valid = tracks["valid"]
    real = tracks[valid]
    assert np.all(real["pt"] > PHYSICS.track_pt_min)
    assert np.all(np.abs(real["eta"]) < PHYSICS.track_eta_max)
    assert np.all(real["dr"] < PHYSICS.jet_r)
    assert np.all(real["d0_sigma_mm"] > 0) and np.all(real["z0sintheta_sigma_mm"] > 0)
    assert np.all(np.abs(real["charge"]) == 1)
    assert set(np.unique(real["origin"])) <= {0, 1, 2, 3}
    np.testing.assert_allclose(
        real["ptfrac"], real["pt"] / np.repeat(jets["pt"], valid.sum(axis=1)), rtol=1e-5
    )
    # Valid tracks first, ordered by signed d0 significance, descending.
    assert np.all(np.diff(valid.astype(int), axis=1) <= 0)
    significance = tracks["d0_mm"] / np.where(valid, tracks["d0_sigma_mm"], 1.0)
    assert np.all(np.diff(significance, axis=1)[valid[:, 1:]] <= 0)
    # Padding is all zero.
    padding = tracks[~valid]
    assert padding.tobytes() == np.zeros(len(padding), TRACK_DTYPE).tobytes()


@pytest.mark.slow
def test_flavour_physics(physics: tuple[np.ndarray, np.ndarray]) -> None:
    jets, tracks = physics
    b_jets, light_jets = jets["flavour"] == 5, jets["flavour"] == 0
    assert b_jets.sum() > 50 and light_jets.sum() > 50
    assert np.all(jets["hadron_pt"][b_jets] > gen.HADRON_PT_MIN)
    assert np.all(jets["hadron_pt"][light_jets] == 0) and np.all(jets["hadron_lxy_mm"][light_jets] == 0)
    assert np.median(jets["hadron_lxy_mm"][b_jets]) > 0.5  # b hadrons fly mm
    valid = tracks["valid"]
    significance = tracks["d0_mm"] / np.where(valid, tracks["d0_sigma_mm"], 1.0)
    b_mean = significance[b_jets][valid[b_jets]].mean()
    light_mean = significance[light_jets][valid[light_jets]].mean()
    assert b_mean > light_mean + 1.0
    # Tracks from the b-hadron decay chain are common in b jets, rare in light jets.
    b_origin = tracks["origin"][b_jets][valid[b_jets]]
    light_origin = tracks["origin"][light_jets][valid[light_jets]]
    assert np.mean(b_origin == gen.ORIGIN_HEAVY_FLAVOUR) > 0.2
    assert np.mean(light_origin == gen.ORIGIN_HEAVY_FLAVOUR) < 0.1


@pytest.mark.slow
def test_same_settings_give_identical_file(tiny: Path, tmp_path: Path) -> None:
    again = generate_sample(TINY, tmp_path, n_workers=1, progress=False)
    assert sha256_of_file(again) == sha256_of_file(tiny)
    other = generate_sample(dataclasses.replace(TINY, seed=12), tmp_path, n_workers=2, progress=False)
    assert sha256_of_file(other) != sha256_of_file(tiny)


@pytest.mark.slow
def test_interrupted_run_reuses_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "resume"
    path = generate_sample(TINY, root, n_workers=2, progress=False)
    reference = sha256_of_file(path)
    shards = sample_dir(TINY, root) / "shards"
    kept = os.stat(shards / "shard-00000.h5")
    (shards / "shard-00001.h5").unlink()
    path.unlink()

    generated: list[int] = []
    original = gen._generate_shard

    def recording(task: gen._ShardTask, report: object) -> None:
        generated.append(task.index)
        original(task, report)

    monkeypatch.setattr(gen, "_generate_shard", recording)
    assert generate_sample(TINY, root, n_workers=1, progress=False) == path
    assert generated == [1]
    assert os.stat(shards / "shard-00000.h5").st_mtime_ns == kept.st_mtime_ns
    assert sha256_of_file(path) == reference

    # With jets.h5 present nothing is generated at all.
    generated.clear()
    assert generate_sample(TINY, root, n_workers=2, progress=False) == path
    assert generated == []
