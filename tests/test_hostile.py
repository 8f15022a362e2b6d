"""The hostile-vector generator (trigger_ml.firmware.hostile) and the port conversion the bundle's
verifier checks them with. The C simulation against the reference on these vectors is the kind
contract's test_hostile_inputs_bit_exact (tests/kind_contract.py) and every bundle's verify."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from trigger_ml.config import FixedPoint
from trigger_ml.data.dataset import quantize_to_fixed
from trigger_ml.firmware import verifier
from trigger_ml.firmware.hostile import (
    FAMILIES,
    TRACK_FAMILIES,
    InputLayout,
    agreement,
    hostile_vectors,
    port_values,
)
from trigger_ml.firmware.interface import FixedType

FEATURES = ("sd0", "sz0", "log_ptfrac", "log_dr", "d0", "z0sintheta", "valid")
DEEPSET = InputLayout(16, FEATURES)
DENSE = InputLayout(4, FEATURES, n_jet_features=3)
# The QKeras input convention of the zoo (quantized_bits(10, 3) -> ap_fixed<10,4,AP_RND_CONV,AP_SAT>).
PORT = FixedType(signed=True, width=10, integer=4, rounding="AP_RND_CONV", overflow="AP_SAT")


def _tracks(layout: InputLayout, values: np.ndarray) -> np.ndarray:
    return values[:, : layout.n_track_elements].reshape(len(values), layout.slots, len(layout.track_features))


def test_every_family_is_there_deterministic_and_float32():
    vectors = hostile_vectors(DEEPSET, PORT)
    assert list(dict.fromkeys(vectors.families)) == list(FAMILIES)
    assert vectors.values.shape == (len(vectors), 16 * 7)
    np.testing.assert_array_equal(vectors.values.astype(np.float32), vectors.values)
    again = hostile_vectors(DEEPSET, PORT)
    assert again.families == vectors.families and np.array_equal(again.values, vectors.values)
    other = hostile_vectors(DEEPSET, PORT, seed=1)
    assert not np.array_equal(other.values, vectors.values)


def test_families_hold_what_they_are_named_for():
    vectors = hostile_vectors(DEEPSET, PORT, per_family=32)
    low, high = (code * PORT.lsb for code in PORT.code_range)
    family = {name: vectors.values[vectors.of_family(name)] for name in FAMILIES}
    assert np.all(family["max_codes"] == high) and np.all(family["min_codes"] == low)
    beyond = family["beyond_range"]
    assert np.all((beyond > high) | (beyond < low)) and (beyond > high).any() and (beyond < low).any()
    assert np.abs(beyond).max() > 2**PORT.integer * 64  # far beyond, not just one step
    ties = family["rounding_ties"] / PORT.lsb
    assert np.all(ties != np.round(ties))  # never on the grid: the rounding mode decides
    codes = family["uniform_codes"] / PORT.lsb
    assert (
        np.all(codes == np.round(codes))
        and codes.min() >= PORT.code_range[0]
        and codes.max() <= PORT.code_range[1]
    )
    valid = FEATURES.index("valid")
    assert len(family["empty_jet"]) == 1 and not family["empty_jet"].any()
    full = _tracks(DEEPSET, family["all_slots_filled"])
    assert np.all(full[..., valid] == 1.0)
    single = _tracks(DEEPSET, family["single_extreme_track"])
    assert not single[:, 1:].any() and np.all(single[:, 0, valid] == 1.0)
    others = np.delete(single[:, 0], valid, axis=1)
    assert np.all((others >= high) | (others <= low))


def test_dense_layout_keeps_jet_features_random_behind_the_tracks():
    vectors = hostile_vectors(DENSE, PORT, per_family=8)
    assert vectors.values.shape[1] == 4 * 7 + 3
    empty = vectors.values[vectors.of_family("empty_jet")]
    assert len(empty) == 8 and not empty[:, : DENSE.n_track_elements].any()
    assert np.unique(empty[:, DENSE.n_track_elements :], axis=0).shape[0] > 1


def test_a_flat_layout_has_no_track_families():
    vectors = hostile_vectors(InputLayout(0, (), n_jet_features=5), PORT, per_family=4)
    assert list(dict.fromkeys(vectors.families)) == [f for f in FAMILIES if f not in TRACK_FAMILIES]
    assert vectors.values.shape == (1 + 1 + 3 * 4, 5)


def test_port_values_are_the_quantized_inputs_the_models_are_fed():
    # The pipeline feeds both models quantize_to_fixed (QKeras' quantized_bits); the port's C++
    # conversion is the same function on every hostile value, beyond the range and at ties too.
    values = hostile_vectors(DEEPSET, PORT).values
    np.testing.assert_array_equal(
        port_values(values, PORT), quantize_to_fixed(values, FixedPoint(bits=10, integer=3))
    )


@pytest.mark.parametrize(
    "port",
    [
        PORT,
        FixedType(signed=True, width=8, integer=3, rounding="AP_TRN", overflow="AP_WRAP"),
        FixedType(signed=True, width=12, integer=5, rounding="AP_RND", overflow="AP_SAT"),
        FixedType(signed=True, width=6, integer=2, rounding="AP_TRN_ZERO", overflow="AP_WRAP"),
        FixedType(signed=False, width=8, integer=4, rounding="AP_RND_CONV", overflow="AP_SAT"),
    ],
)
def test_verifier_port_code_is_the_builders_encoding(port: FixedType):
    """verify.py checks the hostile input codes with exact fractions; the builder writes them with
    numpy (FixedType.encode): two implementations of the ap_fixed conversion that must agree."""
    values = hostile_vectors(InputLayout(2, FEATURES), port, per_family=8).values
    spec = {"type": port.to_dict(), "fractional_bits": port.fractional_bits, "width": port.width}
    exact = [[verifier.port_code(Fraction(v), spec) for v in row] for row in values.tolist()]
    np.testing.assert_array_equal(np.array(exact), port.encode(values))


def test_agreement_counts_per_family_and_names_the_first_difference():
    families = ("max_codes", "beyond_range", "beyond_range", "empty_jet")
    expected = np.zeros((4, 3))
    got = expected.copy()
    got[2, 1] = 2.0**-10
    rows = agreement(families, got, expected)
    assert rows == [
        {"family": "max_codes", "n_vectors": 1, "n_exact": 1, "first_differing_vector": None},
        {"family": "beyond_range", "n_vectors": 2, "n_exact": 1, "first_differing_vector": 2},
        {"family": "empty_jet", "n_vectors": 1, "n_exact": 1, "first_differing_vector": None},
    ]
