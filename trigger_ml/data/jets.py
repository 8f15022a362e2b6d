"""From an event's particles to stored jets: jet inputs, anti-kt clustering in batches,
the jet selection, truth labels and tracks.

Events are clustered in batches in C++ (``fastjet._ext``); the per-event Python work is
vectorised.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trigger_ml.data.events import Event, EventBatch, GenerationTimer
from trigger_ml.data.kinematics import as_float32, pseudorapidity
from trigger_ml.data.l1tracks import fill_l1_jets
from trigger_ml.data.labels import TAU_LABEL, heavy_flavour, label_jets
from trigger_ml.data.settings import GeneratorSettings
from trigger_ml.data.tracks import fill_tracks, reconstruct_tracks

JET_INPUT_ETA_MAX = 4.9
"""Particles beyond this |eta| (outside the calorimeters) are not clustered."""
_NEUTRINOS = (12, 14, 16)


def make_jet_definition(jet_r: float) -> Any:
    """FastJet's anti-kt jet definition of radius ``jet_r``."""
    # The SWIG classes of the fastjet package: they let the banner be silenced (one per
    # worker process otherwise); the batch clustering in fastjet._ext shares the library.
    from fastjet import _swig as fj

    fj.ClusterSequence.set_fastjet_banner_stream(None)
    return fj.JetDefinition(fj.antikt_algorithm, jet_r)


def cluster_batch(
    batch: EventBatch,
    visible: list[np.ndarray],
    settings: GeneratorSettings,
    jet_def: Any,
    timer: GenerationTimer,
) -> list[np.ndarray]:
    """Anti-kt jets above jet_pt_min of every event of a batch, each as an (n, 4) array of
    (pt, eta, phi_std, m2) in decreasing pT.

    All events are clustered in one C++ call; the jets' kinematics come from FastJet
    PseudoJets built from the clustered four-momenta, ordered by ``sorted_by_pt``, so they
    are the numbers a per-event ``ClusterSequence`` gives.
    """
    import fastjet._ext
    from fastjet import _swig as fj

    start = time.perf_counter()
    inputs = [batch.event(i).table[mask][:, 3:7] for i, mask in enumerate(visible)]
    counts = np.array([len(rows) for rows in inputs], dtype=np.int64)
    stops = np.cumsum(counts)
    stacked = np.concatenate(inputs) if inputs else np.zeros((0, 4))
    columns = [np.ascontiguousarray(stacked[:, k]) for k in range(4)]
    result = fastjet._ext.interfacemulti(*columns, stops - counts, stops, jet_def)
    px, py, pz, e, offsets = (np.asarray(a) for a in result.to_numpy(settings.jet_pt_min))
    out = []
    for i in range(len(inputs)):
        lo, hi = offsets[i], offsets[i + 1]
        jets = fj.sorted_by_pt(
            [fj.PseudoJet(*row) for row in zip(px[lo:hi], py[lo:hi], pz[lo:hi], e[lo:hi], strict=True)]
        )
        out.append(
            np.array([(j.pt(), j.eta(), j.phi_std(), j.m2()) for j in jets], dtype=np.float64).reshape(-1, 4)
        )
    timer.fastjet += time.perf_counter() - start
    return out


def particle_kinematics(event: Event) -> dict[str, np.ndarray]:
    """Integer columns, pT, eta, phi, the jet-input mask and the heavy-flavour code
    (heavy_flavour) of an event's particles."""
    table = event.table
    ids = table[:, 0].astype(np.int64)
    status = table[:, 1].astype(np.int64)
    px, py, pz = table[:, 3], table[:, 4], table[:, 5]
    eta = pseudorapidity(px, py, pz)
    final = status > 0
    visible = final & ~np.isin(np.abs(ids), _NEUTRINOS) & (np.abs(eta) < JET_INPUT_ETA_MAX)
    return {
        "ids": ids,
        "status": status,
        "mother1": table[:, 2].astype(np.int64),
        "pt": np.hypot(px, py),
        "eta": eta,
        "phi": np.arctan2(py, px),
        "visible": visible,
        "flavour": heavy_flavour(ids),
    }


def process_event(
    event: Event,
    kinematics: dict[str, np.ndarray],
    jet_kin: np.ndarray,
    settings: GeneratorSettings,
    rng: np.random.Generator,
    event_number: int,
    pileup: tuple[int, dict[str, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stored jets (pT-ordered) and their tracks for one event, given its clustered jets."""
    flavour, status, pt, eta, phi = (kinematics[k] for k in ("flavour", "status", "pt", "eta", "phi"))
    pv = np.array([event.x[0], event.y[0], event.z[0]])  # event[0]: the (spread) primary vertex
    jet_pt, jet_eta, jet_phi = jet_kin[:, 0], jet_kin[:, 1], jet_kin[:, 2]
    # Cuts on stored quantities are applied to their float32 values, so the file obeys them.
    stored = np.flatnonzero(
        (as_float32(jet_pt) > settings.jet_pt_min) & (np.abs(as_float32(jet_eta)) < settings.jet_eta_max)
    )
    if len(stored) == 0:
        return np.zeros(0, settings.jet_dtype()), np.zeros((0, settings.max_tracks), settings.track_dtype())

    jets = np.zeros(len(stored), settings.jet_dtype())
    jets["pt"], jets["eta"], jets["phi"] = jet_pt[stored], jet_eta[stored], jet_phi[stored]
    jets["mass"] = np.sqrt(np.clip(jet_kin[stored, 3], 0.0, None))
    jets["event_number"] = event_number
    if pileup is not None:
        jets["n_pileup"] = min(pileup[0], np.iinfo(np.int16).max)
    if settings.label_taus:  # tau leptons label like hadrons, after b and c
        flavour = np.where(np.abs(kinematics["ids"]) == 15, TAU_LABEL, flavour).astype(np.int8)
    label_jets(jets, stored, event, flavour, status, pt, eta, phi, pv, jet_eta, jet_phi)

    track_table = reconstruct_tracks(
        settings, rng, event, kinematics, pv, stored, jet_eta, jet_phi, pileup[1] if pileup else None
    )
    tracks = fill_tracks(settings, jets, track_table)
    if settings.tracks == "l1":
        fill_l1_jets(jets, float(pv[2]))
    return jets, tracks
