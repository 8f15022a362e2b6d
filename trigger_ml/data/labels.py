"""Truth flavour labels of jets: weakly decaying b/c hadrons (and optionally tau leptons)
matched to jets by exclusive cone labelling, as ATLAS's HadronConeExclTruthLabelID."""

from __future__ import annotations

import math

import numpy as np

from trigger_ml.data.events import Event
from trigger_ml.data.kinematics import delta_r, nearest_jet

HADRON_PT_MIN = 5.0
HADRON_DR_MAX = 0.3
"""Weakly decaying b/c hadrons above HADRON_PT_MIN within HADRON_DR_MAX of a jet label it."""
TAU_LABEL = 15
"""Flavour of a jet labelled by a tau lepton (``label_taus``), as HadronConeExclTruthLabelID."""
_LABEL_PRIORITY = {5: 3, 4: 2, TAU_LABEL: 1, 0: 0}
"""b before c before tau before light, as in the ATLAS exclusive cone labelling."""


def heavy_flavour(ids: np.ndarray) -> np.ndarray:
    """5 for hadrons with a b quark, 4 for hadrons with a c quark (and no b), else 0.

    Uses the PDG numbering (quark digits nq1 nq2 nq3 of |id| mod 10000). Diquarks
    (nq3 = 0) and quarkonia (mesons q qbar of one flavour) are not heavy-flavour hadrons.
    """
    absid = np.abs(ids)
    digits = absid % 10000
    nq3, nq2, nq1 = (digits // 10) % 10, (digits // 100) % 10, (digits // 1000) % 10
    hadron = (absid >= 100) & (nq3 > 0) & (nq2 > 0) & ~((nq1 == 0) & (nq2 == nq3))
    has_b = (nq1 == 5) | (nq2 == 5) | (nq3 == 5)
    has_c = (nq1 == 4) | (nq2 == 4) | (nq3 == 4)
    return np.where(hadron & has_b, 5, np.where(hadron & has_c, 4, 0)).astype(np.int8)


def daughter_list(event: Event, index: int) -> list[int]:
    """Pythia's ``Particle::daughterList()`` for a particle that is not a beam."""
    first, last = int(event.daughter1[index]), int(event.daughter2[index])
    if first == 0 and last == 0:
        return []
    if last == 0 or last == first:
        return [first]
    if last > first:
        return list(range(first, last + 1))
    return [last, first]


def label_jets(
    jets: np.ndarray,
    stored: np.ndarray,
    event: Event,
    flavour: np.ndarray,
    status: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    pv: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
) -> None:
    """Set flavour, hadron_pt and hadron_lxy_mm of the stored jets (exclusive cone labelling).

    Each weakly decaying b (c) hadron with pT > HADRON_PT_MIN labels only the nearest jet
    (among all jets above the pT threshold) within HADRON_DR_MAX. A jet with a b hadron
    is a b jet (5); else with a c hadron a c jet (4); else, if ``flavour`` marks tau leptons
    (TAU_LABEL, ``label_taus``), with a decaying tau a tau jet (15); else light (0). The
    hardest matched particle of the label flavour gives hadron_pt and its transverse decay
    length.
    """
    candidates = np.flatnonzero((flavour > 0) & (status < 0) & (pt > HADRON_PT_MIN))
    weak: list[int] = []
    for index in candidates:
        daughters = daughter_list(event, index)
        if daughters and not any(flavour[d] == flavour[index] for d in daughters):
            weak.append(int(index))
    if not weak:
        return
    hadrons = np.array(weak)
    nearest = nearest_jet(delta_r(eta[hadrons], phi[hadrons], jet_eta, jet_phi), HADRON_DR_MAX)
    position = {int(jet): i for i, jet in enumerate(stored)}
    for hadron, jet in zip(hadrons, nearest, strict=True):
        row = position.get(int(jet))
        if row is None:
            continue
        hadron_flavour = int(flavour[hadron])
        current = int(jets["flavour"][row])
        rank, current_rank = _LABEL_PRIORITY[hadron_flavour], _LABEL_PRIORITY[current]
        if rank < current_rank or (rank == current_rank and pt[hadron] <= jets["hadron_pt"][row]):
            continue
        first_daughter = event.daughter1[hadron]
        jets["flavour"][row] = hadron_flavour
        jets["hadron_pt"][row] = pt[hadron]
        jets["hadron_lxy_mm"][row] = math.hypot(
            float(event.x[first_daughter]) - pv[0], float(event.y[first_daughter]) - pv[1]
        )
