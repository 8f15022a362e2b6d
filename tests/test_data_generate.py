"""Tests of the physics data generator: the detector model alone, then real Pythia samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger_ml.data import generate as gen
from trigger_ml.data.detector import DetectorModel, lifetime_signs, straight_line_impact_parameters
from trigger_ml.data.events import EventStream, GenerationTimer, make_pythia
from trigger_ml.data.generate import (
    JET_DTYPE,
    JET_DTYPE_EXTENDED,
    TRACK_DTYPE,
    GeneratorSettings,
    generate_sample,
    load_sample_info,
    sample_dir,
)
from trigger_ml.data.jets import cluster_batch, make_jet_definition, particle_kinematics
from trigger_ml.data.labels import daughter_list, heavy_flavour
from trigger_ml.data.shards import ShardTask, generate_shard
from trigger_ml.data.tracks import track_origins
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
    assert base.digest() != base.replace(detector=DetectorModel(tail_fraction=0.0)).digest()
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
    assert heavy_flavour(ids).tolist() == [5, 5, 5, 5, 5, 4, 4, 0, 0, 0, 0, 0, 0, 0]


def test_default_sample_identity_is_frozen() -> None:
    # Trained models depend on data/ttbar-ad997cf82d9a: later settings must not rename it.
    base = GeneratorSettings()
    assert base.digest() == "ad997cf82d9a"
    later = set(base.to_dict()) - set(base.canonical_dict())
    assert later == {
        "dijet_fraction",
        "dijet_pthat_min_gev",
        "dijet_pthat_max_gev",
        "pileup_mu",
        "pileup_tune_pp",
        "pileup_pool_events",
        "pileup_process",
        "label_taus",
        "tracks",
        "l1",
    }
    assert GeneratorSettings.from_dict(base.canonical_dict()) == base
    assert base.jet_dtype() == JET_DTYPE


def test_later_settings_enter_the_digest_only_when_set() -> None:
    base = GeneratorSettings()
    mixed = GeneratorSettings(process="mixed", dijet_fraction=0.25)
    pileup = GeneratorSettings(pileup_mu=60.0)
    digests = {base.digest(), mixed.digest(), pileup.digest(), GeneratorSettings(process="dijet").digest()}
    assert len(digests) == 4
    assert mixed.canonical_dict()["dijet_fraction"] == 0.25 and "pileup_mu" not in mixed.canonical_dict()
    assert GeneratorSettings.from_dict(pileup.canonical_dict()) == pileup
    assert mixed.jet_dtype() == pileup.jet_dtype() == JET_DTYPE_EXTENDED
    assert mixed.shard_plan(5000) == [("ttbar", 3750), ("dijet", 1250)]
    assert GeneratorSettings(process="dijet").shard_plan(10) == [("dijet", 10)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"process": "mixed"},  # needs a fraction
        {"process": "mixed", "dijet_fraction": 1.0},
        {"dijet_fraction": 0.5},  # fraction without a mixture
        {"dijet_pthat_min_gev": 50.0},  # dijet settings on pure tt-bar
        {"process": "dijet", "dijet_pthat_min_gev": 50.0, "dijet_pthat_max_gev": 40.0},
        {"pileup_mu": -1.0},
        {"pileup_pool_events": 10},  # pile-up settings without pile-up
        {"pileup_mu": 5.0, "pileup_process": "elastic"},
    ],
)
def test_bad_sample_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        GeneratorSettings(**kwargs)


def test_track_origins_walk_decay_chains() -> None:
    # 0 system, 1 B0 (decayed, status -91 from string), 2 D- from the B (-91), 3 pi from
    # the D (91), 4 K0S from string (-83), 5 pi from the K0S (91), 6 prompt pi (83).
    status = np.array([-11, -83, -91, 91, -83, 91, 83])
    mother1 = np.array([0, 0, 1, 2, 0, 4, 0])
    flavour = heavy_flavour(np.array([90, 511, -411, 211, 310, 211, 211]))
    origins = track_origins(np.array([3, 5, 6, 2]), status, mother1, flavour)
    assert origins.tolist() == [1, 0, 0, 1]


def test_load_sample_info_without_sample(tmp_path: Path) -> None:
    with pytest.raises(TriggerMLError):
        load_sample_info(tmp_path)


# --- real Pythia -------------------------------------------------------------------------

TINY = GeneratorSettings(n_jets=60, jets_per_shard=30, seed=11)
PHYSICS = GeneratorSettings(n_jets=600, jets_per_shard=300, seed=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(TINY, tmp_path_factory.mktemp("tiny"), n_workers=2)


@pytest.fixture(scope="module")
def physics(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    path = generate_sample(PHYSICS, tmp_path_factory.mktemp("physics"), n_workers=2)
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
    again = generate_sample(TINY, tmp_path, n_workers=1)
    assert sha256_of_file(again) == sha256_of_file(tiny)
    other = generate_sample(TINY.replace(seed=12), tmp_path, n_workers=2)
    assert sha256_of_file(other) != sha256_of_file(tiny)


@pytest.mark.slow
def test_interrupted_run_reuses_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "resume"
    path = generate_sample(TINY, root, n_workers=2)
    reference = sha256_of_file(path)
    shards = sample_dir(TINY, root) / "shards"
    kept = os.stat(shards / "shard-00000.h5")
    (shards / "shard-00001.h5").unlink()
    path.unlink()

    generated: list[int] = []
    original = generate_shard

    def recording(task: ShardTask, report: object) -> None:
        generated.append(task.index)
        original(task, report)

    monkeypatch.setattr("trigger_ml.data.shards.generate_shard", recording)
    assert generate_sample(TINY, root, n_workers=1) == path
    assert generated == [1]
    assert os.stat(shards / "shard-00000.h5").st_mtime_ns == kept.st_mtime_ns
    assert sha256_of_file(path) == reference

    # With jets.h5 present nothing is generated at all.
    generated.clear()
    assert generate_sample(TINY, root, n_workers=2) == path
    assert generated == []


@pytest.mark.slow
def test_default_generator_output_is_unchanged(tiny: Path) -> None:
    # sha256 of the jets and tracks arrays of TINY as the first release generated them:
    # reading events in batches and clustering in C++ must not change a single bit.
    import hashlib

    with h5py.File(tiny, "r") as handle:
        content = handle["jets"][...].tobytes() + handle["tracks"][...].tobytes()
    assert (
        hashlib.sha256(content).hexdigest()
        == "4fec25b112ff6a2532eefbc3ab7ef3578a457b448353e5bf6af6f06e1b949506"
    )


@pytest.mark.slow
def test_event_arrays_and_jets_match_pythia_and_fastjet_objects() -> None:
    """The vectorised event record equals Pythia's per-particle accessors, and the batch
    clustering equals a per-event ClusterSequence, to the bit."""
    from fastjet import _swig as fj

    settings = GeneratorSettings()
    stream = EventStream(settings, 4242, "ttbar", GenerationTimer())
    reference = make_pythia(settings, 4242)
    batch = stream.next_batch(3)
    jet_def = make_jet_definition(settings.jet_r)
    kinematics = [particle_kinematics(batch.event(i)) for i in range(len(batch))]
    clustered = cluster_batch(batch, [k["visible"] for k in kinematics], settings, jet_def, GenerationTimer())
    for i in range(len(batch)):
        assert reference.next()
        particles = reference.event.particles()
        event = batch.event(i)
        expected = np.array(
            [(p.id(), p.status(), p.mother1(), p.px(), p.py(), p.pz(), p.e()) for p in particles],
            dtype=np.float64,
        )
        assert event.table.tobytes() == expected.tobytes()
        assert event.x.tolist() == [p.xProd() for p in particles]
        assert event.z.tolist() == [p.zProd() for p in particles]
        final = np.flatnonzero(kinematics[i]["status"] > 0)
        assert event.charge_of(kinematics[i]["ids"][final]).tolist() == [particles[j].charge() for j in final]
        decayed = np.flatnonzero(kinematics[i]["status"] < 0)[10:200]
        assert [daughter_list(event, j) for j in decayed] == [
            list(particles[j].daughterList()) for j in decayed
        ]
        inputs = [fj.PseudoJet(*row) for row in expected[kinematics[i]["visible"]][:, 3:7].tolist()]
        jets = fj.sorted_by_pt(fj.ClusterSequence(inputs, jet_def).inclusive_jets(settings.jet_pt_min))
        per_event = np.array([(j.pt(), j.eta(), j.phi_std(), j.m2()) for j in jets], dtype=np.float64)
        assert clustered[i].tobytes() == per_event.reshape(-1, 4).tobytes()


@pytest.mark.slow
def test_killed_generation_resumes_to_the_same_file(tiny: Path, tmp_path: Path) -> None:
    """A generation killed after its first shard leaves no corrupt shard; a rerun reuses the
    finished shard and writes the same jets.h5 as an uninterrupted run."""
    root = tmp_path / "killed"
    shards = sample_dir(TINY, root) / "shards"
    script = (
        "from pathlib import Path; from trigger_ml.data.generate import GeneratorSettings, generate_sample; "
        f"generate_sample(GeneratorSettings.from_dict({TINY.canonical_dict()!r}), Path({str(root)!r}), "
        "n_workers=1)"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not (shards / "shard-00000.h5").exists():
            assert process.poll() is None, "the generator exited before writing a shard"
            assert time.monotonic() < deadline, "no shard after 120 s"
            time.sleep(0.02)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (shards.parent / "jets.h5").exists(), "the run finished before it was killed"
    assert sorted(p.name for p in shards.glob("shard-*.h5")) == ["shard-00000.h5"]
    kept = os.stat(shards / "shard-00000.h5").st_mtime_ns
    path = generate_sample(TINY, root, n_workers=1)
    assert os.stat(shards / "shard-00000.h5").st_mtime_ns == kept
    assert sha256_of_file(path) == sha256_of_file(tiny)


@pytest.mark.slow
def test_mixed_sample_with_pileup(tmp_path: Path) -> None:
    settings = GeneratorSettings(
        process="mixed",
        dijet_fraction=0.5,
        n_jets=40,
        jets_per_shard=40,
        seed=3,
        pileup_mu=50.0,
        pileup_process="nondiffractive",
        pileup_pool_events=30,
    )
    path = generate_sample(settings, tmp_path, n_workers=1)
    assert path.parent.name == f"mixed-{settings.digest()}"
    info = load_sample_info(path)
    assert info["process_counts"] == {"ttbar": 20, "dijet": 20}
    with h5py.File(path, "r") as handle:
        jets, tracks = handle["jets"][...], handle["tracks"][...]
    assert jets.dtype == JET_DTYPE_EXTENDED
    assert jets["process"].tolist() == [0] * 20 + [1] * 20
    assert np.all(jets["n_pileup"] > 20) and info["mean_pileup_interactions"] > 30
    # Light-enriched dijets: fewer b jets than in tt-bar.
    assert np.mean(jets["flavour"][20:] == 5) < np.mean(jets["flavour"][:20] == 5)
    valid = tracks["valid"]
    origin = tracks["origin"][valid]
    assert np.any(origin == gen.ORIGIN_PILEUP)
    sz0 = np.abs(tracks["z0sintheta_mm"] / np.where(valid, tracks["z0sintheta_sigma_mm"], 1.0))[valid]
    # Pile-up tracks come from other vertices: large z0, the background sz0 has to reject.
    assert np.median(sz0[origin == gen.ORIGIN_PILEUP]) > 3 * np.median(sz0[origin == gen.ORIGIN_PRIMARY])
    again = generate_sample(settings, tmp_path / "again", n_workers=1)
    assert sha256_of_file(again) == sha256_of_file(path)


@pytest.mark.slow
def test_model_config_detector_section_reaches_the_sample(tmp_path: Path) -> None:
    """A model's sample.detector changes the generated tracks: here the resolution and no fakes."""
    from trigger_ml.config import load_model_config
    from trigger_ml.pipeline import ensure_data
    from trigger_ml.workspace import Workspace

    config = load_model_config(
        "dips-small@n_jets=100,sample.jets_per_shard=50,"
        "sample.detector.d0_ms_um_gev=140,sample.detector.fake_rate=0"
    )
    path = ensure_data(config, Workspace(tmp_path))
    settings = GeneratorSettings.from_dict(load_sample_info(path)["settings"])
    assert settings.detector == DetectorModel(d0_ms_um_gev=140.0, fake_rate=0.0)
    assert path.parent.name == f"ttbar-{settings.digest()}"
    with h5py.File(path, "r") as handle:
        real = handle["tracks"][...][handle["tracks"]["valid"][...]]
    assert len(real) > 0 and not np.any(real["origin"] == 3)  # fake_rate = 0: no fakes
    expected = settings.detector.sigma_d0_mm(real["pt"].astype(float), real["eta"].astype(float))
    np.testing.assert_allclose(real["d0_sigma_mm"], expected, rtol=1e-5)


@pytest.mark.slow
def test_label_taus_relabels_only_tau_jets(tmp_path: Path) -> None:
    """label_taus gives tau jets flavour 15; every other jet and every track stay the same."""
    from trigger_ml.data.plots import tail_fractions
    from trigger_ml.physics import LIGHT, classes_from_truth

    plain = GeneratorSettings(n_jets=300, jets_per_shard=150, seed=5)
    taus = plain.replace(label_taus=True)
    assert taus.digest() != plain.digest() and "label_taus" not in plain.canonical_dict()
    with h5py.File(generate_sample(plain, tmp_path, n_workers=1), "r") as handle:
        jets, tracks = handle["jets"][...], handle["tracks"][...]
    tau_path = generate_sample(taus, tmp_path, n_workers=1)
    with h5py.File(tau_path, "r") as handle:
        tau_jets, tau_tracks = handle["jets"][...], handle["tracks"][...]
    is_tau = tau_jets["flavour"] == gen.TAU_LABEL
    assert is_tau.sum() >= 2  # 5 with this seed: W -> tau nu in tt-bar
    assert np.all(jets["flavour"][is_tau] == 0)  # light without the setting; b and c win over tau
    assert np.all(tau_jets["hadron_pt"][is_tau] > gen.HADRON_PT_MIN)
    assert np.all(tau_jets["hadron_lxy_mm"][is_tau] > 0)
    np.testing.assert_array_equal(tau_tracks, tracks)
    for name in jets.dtype.names:
        np.testing.assert_array_equal(tau_jets[name][~is_tau], jets[name][~is_tau])
    assert np.all(classes_from_truth(tau_jets["flavour"][is_tau]) == LIGHT)  # trained as light
    assert load_sample_info(tau_path)["flavour_counts"]["tau"] == int(is_tau.sum())
    assert tail_fractions(tau_jets, tau_tracks)["flavours"]["tau"]["jets"] == int(is_tau.sum())
    with pytest.raises(UsageError, match="label_taus"):
        GeneratorSettings(label_taus="yes")
