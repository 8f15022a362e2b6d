"""Hostile and realistic track words for the L1 front end: the words a track finder can send
that no training jet has (cleared valid bits, saturated fields, no tracks, more tracks than the
network's slots, exact ties, sectors that do not exist, a zero jet pT, random bits), in named
families like the network's hostile vectors (trigger_ml.firmware.hostile).

Used by the decision stage and the firmware bundle (``trigger_top``'s hostile vectors, checked
against the Python chain: preprocessing -> network reference -> decision) and by the tests of
the preprocessing alone.
"""

from __future__ import annotations

import math

import numpy as np

from trigger_ml.l1.preprocess import L1Inputs, L1Preprocessing
from trigger_ml.l1.word import PT_FROM_RINV, encode_tracks, jet_word, pack, unpack, vertex_word

DEFAULT_SEED = 20261203
"""Seed of the front end's hostile words (fixed: the same words in every build)."""

FAMILIES = (
    "l1_invalid_tracks",
    "l1_saturated_fields",
    "l1_no_tracks",
    "l1_all_slots_filled",
    "l1_ties_bad_sectors_zero_jet_pt",
    "l1_random_bits",
)


def realistic_jets(rng: np.random.Generator, n: int, n_tracks: int, spec: L1Preprocessing) -> L1Inputs:
    """``n`` jets with ``n_tracks`` real-looking tracks each (some outside the cone or the z
    window), the other ``spec.n_in - n_tracks`` slots empty."""
    jet_pt = rng.uniform(20, 300, n)
    jet_eta = rng.uniform(-2.3, 2.3, n)
    jet_phi = rng.uniform(-math.pi, math.pi, n)
    vz = rng.normal(0, 3.5, n)
    shape = (n, n_tracks)
    pt = 2 + rng.exponential(8, shape)
    eta = jet_eta[:, None] + rng.normal(0, 0.2, shape)
    phi = jet_phi[:, None] + rng.normal(0, 0.2, shape)
    z0 = vz[:, None] + rng.normal(0, 0.5, shape)
    d0 = rng.normal(0, 0.03, shape) + rng.exponential(0.02, shape) * (rng.random(shape) < 0.3)
    words, sector = encode_tracks(
        rng.choice([-1.0, 1.0], shape) * PT_FROM_RINV / pt,
        phi,
        np.sinh(eta),
        z0,
        d0,
        *rng.exponential(3, (3, *shape)),
    )
    pad = spec.n_in - n_tracks
    words = np.concatenate([words, np.zeros((n, pad, 3), np.uint32)], axis=1)
    sector = np.concatenate([sector, np.zeros((n, pad), np.uint8)], axis=1)
    j = jet_word(jet_pt, jet_eta, jet_phi)
    return L1Inputs(words, sector.astype(np.int64), j["pt"], j["eta"], j["phi"], vertex_word(vz))


def hostile_jets(rng: np.random.Generator, spec: L1Preprocessing) -> tuple[L1Inputs, tuple[str, ...]]:
    """The hostile jets and each one's family (:data:`FAMILIES`)."""
    n_in, n_tracks = spec.n_in, min(8, spec.n_in)
    blocks: list[tuple[str, L1Inputs]] = []
    w, s, pt, eta, phi, vz = realistic_jets(rng, 40, n_tracks, spec)
    f = unpack(w)
    f["valid"][:10] = 0  # every track invalid
    f["valid"][10:20, ::2] = 0  # every other one
    sat = {k: v.copy() for k, v in f.items()}
    for name, low, high in (
        ("rinv", -(2**14), 2**14 - 1),
        ("tanl", -(2**15), 2**15 - 1),
        ("d0", -(2**12), 2**12 - 1),
    ):
        sat[name][20:30] = np.where(rng.random((10, n_in)) < 0.5, low, high)
    sat["z0"][30:40] = np.where(rng.random((10, n_in)) < 0.5, -(2**11), 2**11 - 1)
    words = pack(sat)
    blocks.append(("l1_invalid_tracks", L1Inputs(words[:20], s[:20], pt[:20], eta[:20], phi[:20], vz[:20])))
    blocks.append(("l1_saturated_fields", L1Inputs(words[20:], s[20:], pt[20:], eta[20:], phi[20:], vz[20:])))
    empty = L1Inputs(
        np.zeros((5, n_in, 3), np.uint32), np.zeros((5, n_in), np.int64), pt[:5], eta[:5], phi[:5], vz[:5]
    )
    blocks.append(("l1_no_tracks", empty))
    # More tracks than the network's slots, all in the cone: the ordering decides who is kept.
    blocks.append(("l1_all_slots_filled", realistic_jets(rng, 10, n_in, spec)))
    w, s, pt, eta, phi, vz = realistic_jets(rng, 20, n_tracks, spec)
    w[:, 1] = w[:, 0]  # exact copies
    s[:, 1] = s[:, 0]
    f = unpack(w)
    f["d0"][:, 3] = -f["d0"][:, 2]  # equal |d0| (same bin) with opposite signs
    f["rinv"][:, 3], f["tanl"][:, 3] = f["rinv"][:, 2], f["tanl"][:, 2]
    s[:10, 5] = 9 + rng.integers(0, 7, 10)  # sectors that do not exist
    pt[:3] = 0
    vz[3:6] = rng.choice([-(2**11), 2**11 - 1], 3)
    blocks.append(("l1_ties_bad_sectors_zero_jet_pt", L1Inputs(pack(f), s, pt, eta, phi, vz)))
    random_words = rng.integers(0, 2**32, (30, n_in, 3), dtype=np.uint64).astype(np.uint32)
    random_jet = rng.integers(-1000, 1000, (3, 30))
    blocks.append(
        (
            "l1_random_bits",
            L1Inputs(random_words, rng.integers(0, 16, (30, n_in)), rng.integers(0, 2**16, 30), *random_jet),
        )
    )
    families = tuple(name for name, block in blocks for _ in range(len(block.words)))
    return L1Inputs.concatenate([block for _, block in blocks]), families
