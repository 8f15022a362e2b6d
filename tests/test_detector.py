"""Tests of the material model of the detector (conversions, hadronic interactions)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from trigger_ml.data import detector as det
from trigger_ml.data import generate as gen
from trigger_ml.data.detector import DetectorModel
from trigger_ml.data.generate import GeneratorSettings, generate_sample
from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_file

# Test material only: thick layers so that interactions are frequent. Not a detector.
THICK = ((33.0, 0.2, 0.1), (50.5, 0.2, 0.1))


def test_material_layers_are_validated_and_stay_out_of_the_default_digest() -> None:
    assert DetectorModel().material_layers == ()
    assert "material_layers" not in GeneratorSettings().canonical_dict()["detector"]
    with_material = GeneratorSettings(detector=DetectorModel(material_layers=[[33.0, 0.01, 0.005]]))
    assert with_material.detector.material_layers == ((33.0, 0.01, 0.005),)
    assert with_material.canonical_dict()["detector"]["material_layers"] == ((33.0, 0.01, 0.005),)
    assert with_material.digest() != GeneratorSettings().digest()
    assert GeneratorSettings.from_dict(with_material.canonical_dict()) == with_material
    for bad in ([(33.0, 0.01)], [(50.0, 0.01, 0.0), (33.0, 0.01, 0.0)], [(33.0, -1.0, 0.0)]):
        with pytest.raises(UsageError):
            DetectorModel(material_layers=bad)


def test_conversion_and_interaction_probabilities_and_kinematics() -> None:
    model = DetectorModel(material_layers=((30.0, 0.05, 0.02),))
    n = 200_000
    rng = np.random.default_rng(1)
    momentum = np.tile([10.0, 0.0, 0.0], (n, 1))  # eta = 0: normal incidence
    vertex = np.zeros((n, 3))
    photons = model.material_secondaries(rng, momentum, vertex, np.ones(n, bool), np.zeros(n))
    n_conv = len(photons["parent"]) // 2
    assert n_conv / n == pytest.approx(1 - np.exp(-7 / 9 * 0.05), rel=0.03)
    np.testing.assert_allclose(np.hypot(photons["x"], photons["y"]), 30.0)
    # e+ and e- share the photon's momentum and carry opposite charges.
    np.testing.assert_allclose(photons["px"][:n_conv] + photons["px"][n_conv:], 10.0)
    assert photons["charge"].sum() == 0
    hadrons = model.material_secondaries(rng, momentum, vertex, np.zeros(n, bool), np.ones(n))
    n_int = len(hadrons["parent"]) / det.HADRONIC_N_SECONDARIES
    assert n_int / n == pytest.approx(1 - np.exp(-0.02), rel=0.05)
    assert np.mean(hadrons["px"]) == pytest.approx(10.0 * det.HADRONIC_MOMENTUM_FRACTION / 3, rel=0.02)
    # A particle produced outside the layer does not meet it; forward tracks cross more.
    outside = model.material_secondaries(
        rng, momentum[:100], vertex[:100] + [40.0, 0, 0], np.ones(100, bool), np.zeros(100)
    )
    assert len(outside["parent"]) == 0
    forward = np.tile([10.0, 0.0, 10.0 * np.sinh(2.0)], (n, 1))
    fwd = model.material_secondaries(rng, forward, vertex, np.ones(n, bool), np.zeros(n))
    assert len(fwd["parent"]) / 2 / n == pytest.approx(1 - np.exp(-7 / 9 * 0.05 * np.cosh(2.0)), rel=0.03)


def test_material_draws_are_deterministic() -> None:
    model = DetectorModel(material_layers=THICK)
    rng_state = np.random.default_rng(7)
    momentum = rng_state.normal(0, 5, (500, 3))
    vertex = np.zeros((500, 3))
    photon = rng_state.random(500) < 0.5
    one = model.material_secondaries(np.random.default_rng(3), momentum, vertex, photon, np.ones(500))
    two = model.material_secondaries(np.random.default_rng(3), momentum, vertex, photon, np.ones(500))
    for key in one:
        assert one[key].tobytes() == two[key].tobytes()


@pytest.mark.slow
def test_sample_with_material_has_material_tracks(tmp_path) -> None:
    settings = GeneratorSettings(
        n_jets=60, jets_per_shard=60, seed=4, detector=DetectorModel(material_layers=THICK)
    )
    path = generate_sample(settings, tmp_path, n_workers=1)
    with h5py.File(path, "r") as handle:
        tracks = handle["tracks"][...]
    real = tracks[tracks["valid"]]
    assert np.any(real["origin"] == gen.ORIGIN_MATERIAL)
    assert np.all(real["pt"] > settings.track_pt_min)
    again = generate_sample(settings, tmp_path / "again", n_workers=1)
    assert sha256_of_file(again) == sha256_of_file(path)
    without = settings.replace(detector=DetectorModel())
    assert without.digest() != settings.digest()
