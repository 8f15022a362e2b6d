"""Tracks of the stored jets: charged particles (hard scatter, pile-up, material
secondaries) through the detector model, fake tracks, and the per-jet track arrays."""

from __future__ import annotations

import numpy as np

from trigger_ml.data.detector import lifetime_signs, straight_line_impact_parameters
from trigger_ml.data.events import Event
from trigger_ml.data.kinematics import as_float32, delta_phi, delta_r, nearest_jet, pseudorapidity
from trigger_ml.data.l1tracks import L1TrackModel
from trigger_ml.data.layout import (
    ORIGIN_FAKE,
    ORIGIN_HEAVY_FLAVOUR,
    ORIGIN_MATERIAL,
    ORIGIN_OTHER_SECONDARY,
    ORIGIN_PILEUP,
    ORIGIN_PRIMARY,
)
from trigger_ml.data.settings import GeneratorSettings

_PHOTON = 22
_MATERIAL_INPUT_ETA_MARGIN = 0.5  # photons/hadrons up to track_eta_max + this may interact
_DISPLACED_MM = 1.0e-3  # a track produced this far from the PV is a secondary
_FAKE_PT_SLOPE_GEV = 1.0  # fake-track pT above threshold is exponential with this mean


def track_origins(
    indices: np.ndarray, status: np.ndarray, mother1: np.ndarray, flavour: np.ndarray
) -> np.ndarray:
    """1 where a b/c hadron is among the decay ancestors of each particle, else 0 (for now).

    Walks all the particles' decay chains at once: from a particle produced in a decay
    (|status| 91-99) to its first mother, until a heavy-flavour hadron or a particle not
    produced in a decay is reached.
    """
    from_decay = (np.abs(status) >= 91) & (np.abs(status) <= 99)
    current = np.asarray(indices, dtype=np.int64).copy()
    heavy = np.zeros(len(current), dtype=bool)
    active = from_decay[current]
    while active.any():
        current[active] = mother1[current[active]]
        hit = active & (flavour[current] != 0)
        heavy |= hit
        active &= ~hit & from_decay[current]
    return np.where(heavy, ORIGIN_HEAVY_FLAVOUR, ORIGIN_PRIMARY).astype(np.int8)


def reconstruct_tracks(
    settings: GeneratorSettings,
    rng: np.random.Generator,
    event: Event,
    kinematics: dict[str, np.ndarray],
    pv: np.ndarray,
    stored: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    pileup: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Selected tracks (real and fake) of the stored jets, as column arrays with a jet row.

    Pile-up particles (if any) follow the hard-scatter ones through the same detector
    model; their impact parameters are measured from the hard-scatter vertex.
    """
    detector = settings.detector
    ids, status, mother1, pt, eta, phi = (
        kinematics[k] for k in ("ids", "status", "mother1", "pt", "eta", "phi")
    )
    table = event.table
    px, py, pz = table[:, 3], table[:, 4], table[:, 5]
    charged = np.flatnonzero(
        (status > 0)
        & (as_float32(pt) > settings.track_pt_min)
        & (np.abs(as_float32(eta)) < settings.track_eta_max)
    )
    charge = event.charge_of(ids[charged])
    charged = charged[charge != 0]
    charge = charge[charge != 0]
    n_hard = len(charged)
    cand = {
        "pt": pt[charged],
        "eta": eta[charged],
        "phi": phi[charged],
        "px": px[charged],
        "py": py[charged],
        "pz": pz[charged],
        "charge": charge,
    }
    vertex = np.stack([event.x[charged], event.y[charged], event.z[charged]], axis=1).reshape(-1, 3)
    if pileup is not None and len(pileup["px"]):
        pu_pt = np.hypot(pileup["px"], pileup["py"])
        extra = {
            "pt": pu_pt,
            "eta": pseudorapidity(pileup["px"], pileup["py"], pileup["pz"]),
            "phi": np.arctan2(pileup["py"], pileup["px"]),
            "px": pileup["px"],
            "py": pileup["py"],
            "pz": pileup["pz"],
            "charge": pileup["charge"],
        }
        cand = {key: np.concatenate([cand[key], extra[key]]) for key in cand}
        vertex = np.concatenate([vertex, np.stack([pileup["x"], pileup["y"], pileup["z"]], axis=1)])
    n_real = len(cand["pt"])
    if detector.material_layers:
        extra = _material_candidates(settings, rng, event, kinematics)
        cand = {key: np.concatenate([cand[key], extra[key]]) for key in cand}
        vertex = np.concatenate([vertex, np.stack([extra["x"], extra["y"], extra["z"]], axis=1)])
    is_pileup = np.arange(len(cand["pt"])) >= n_hard
    is_material = np.arange(len(cand["pt"])) >= n_real
    particle = np.concatenate([charged, np.full(len(cand["pt"]) - n_hard, -1, dtype=charged.dtype)])

    # Each track belongs to the nearest jet within the cone (all jets above threshold).
    nearest = nearest_jet(delta_r(cand["eta"], cand["phi"], jet_eta, jet_phi), settings.jet_r)
    row_of_jet = np.full(len(jet_eta), -1)
    row_of_jet[stored] = np.arange(len(stored))
    keep = (nearest >= 0) & (row_of_jet[np.maximum(nearest, 0)] >= 0)
    jet_index = nearest[keep]
    cand = {key: values[keep] for key, values in cand.items()}
    vertex, is_pileup, particle, is_material = (
        vertex[keep],
        is_pileup[keep],
        particle[keep],
        is_material[keep],
    )

    found = detector.in_acceptance(np.hypot(vertex[:, 0], vertex[:, 1]))
    l1 = settings.l1 if settings.tracks == "l1" else None
    efficiency = l1.efficiency if l1 is not None else detector.efficiency(cand["eta"])
    found &= rng.random(len(jet_index)) < efficiency
    jet_index, vertex, is_pileup, particle, is_material = (
        jet_index[found],
        vertex[found],
        is_pileup[found],
        particle[found],
        is_material[found],
    )
    cand = {key: values[found] for key, values in cand.items()}

    d0_true, z0_true = straight_line_impact_parameters(
        vertex[:, 0], vertex[:, 1], vertex[:, 2], cand["px"], cand["py"], cand["pz"], pv[2]
    )
    if l1 is None:
        d0, z0, sigma_d0, sigma_z0 = detector.smear(rng, d0_true, z0_true, cand["pt"], cand["eta"])
        selected = detector.passes_selection(d0, z0)
    else:
        measured = l1.measure(rng, d0_true, z0_true, cand["pt"], cand["eta"], cand["phi"])
        cand["pt"], cand["eta"], cand["phi"] = measured["pt"], measured["eta"], measured["phi"]
        d0, z0, sigma_d0, sigma_z0 = (measured[k] for k in ("d0", "z0", "sigma_d0", "sigma_z0"))
        selected = l1.accepted(cand["pt"], cand["eta"], d0)

    flavour = kinematics["flavour"]
    displaced = np.linalg.norm(vertex - pv, axis=1) > _DISPLACED_MM
    hard = selected & ~is_pileup
    origin = np.full(int(selected.sum()), ORIGIN_PILEUP, dtype=np.int8)
    hard_origin = track_origins(particle[hard], status, mother1, flavour)
    hard_origin[(hard_origin == ORIGIN_PRIMARY) & displaced[hard]] = ORIGIN_OTHER_SECONDARY
    origin[~is_pileup[selected]] = hard_origin
    origin[is_material[selected]] = ORIGIN_MATERIAL

    real = {
        "jet_row": row_of_jet[jet_index[selected]],
        "pt": cand["pt"][selected],
        "eta": cand["eta"][selected],
        "phi": cand["phi"][selected],
        "charge": cand["charge"][selected],
        "d0": d0[selected],
        "z0": z0[selected],
        "sigma_d0": sigma_d0[selected],
        "sigma_z0": sigma_z0[selected],
        "origin": origin,
    }
    fakes = _fake_tracks(
        settings, rng, np.bincount(real["jet_row"], minlength=len(stored)), stored, jet_eta, jet_phi
    )
    table_out = {key: np.concatenate([real[key], fakes[key]]) for key in real}
    if l1 is not None:
        table_out = _l1_words(l1, rng, table_out, float(pv[2]))
    rows = table_out["jet_row"]
    table_out["d0"], table_out["z0"] = lifetime_signs(
        table_out["d0"],
        table_out["z0"],
        table_out["phi"],
        table_out["eta"],
        jet_phi[stored][rows],
        jet_eta[stored][rows],
    )
    return table_out


def _l1_words(
    l1: L1TrackModel, rng: np.random.Generator, table: dict[str, np.ndarray], pv_z_mm: float
) -> dict[str, np.ndarray]:
    """The L1 tracks of ``table`` (fakes within the track finder's acceptance too) with their
    words and sectors, from the raw perigee values (before lifetime signing)."""
    keep = l1.accepted(table["pt"], table["eta"], table["d0"])
    table = {key: values[keep] for key, values in table.items()}
    words, sector = l1.words(rng, table, pv_z_mm, table["origin"] == ORIGIN_FAKE)
    table["word0"], table["word1"], table["word2"] = words[:, 0], words[:, 1], words[:, 2]
    table["sector"] = sector
    return table


def _material_candidates(
    settings: GeneratorSettings, rng: np.random.Generator, event: Event, kinematics: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Charged secondaries of conversions and hadronic interactions that pass the
    candidate cuts (pT, |eta|), as candidate columns plus their production point.

    The inputs are the hard-scatter final-state photons and hadrons (|PDG id| >= 100,
    charged or neutral) with pT > track_pt_min and |eta| < track_eta_max + 0.5, in event
    order; DetectorModel.material_secondaries draws their interactions.
    """
    ids, status, pt, eta = (kinematics[k] for k in ("ids", "status", "pt", "eta"))
    photon = ids == _PHOTON
    rows = np.flatnonzero(
        (status > 0)
        & (photon | (np.abs(ids) >= 100))
        & (pt > settings.track_pt_min)
        & (np.abs(eta) < settings.track_eta_max + _MATERIAL_INPUT_ETA_MARGIN)
    )
    table = event.table
    charge = np.zeros(len(rows))
    hadrons = ~photon[rows]
    charge[hadrons] = event.charge_of(ids[rows][hadrons])
    out = settings.detector.material_secondaries(
        rng,
        table[rows, 3:6],
        np.stack([event.x[rows], event.y[rows], event.z[rows]], axis=1).reshape(-1, 3),
        photon[rows],
        charge,
    )
    out_pt = np.hypot(out["px"], out["py"])
    out_eta = pseudorapidity(out["px"], out["py"], out["pz"])
    keep = (as_float32(out_pt) > settings.track_pt_min) & (
        np.abs(as_float32(out_eta)) < settings.track_eta_max
    )
    return {
        "pt": out_pt[keep],
        "eta": out_eta[keep],
        "phi": np.arctan2(out["py"], out["px"])[keep],
        "px": out["px"][keep],
        "py": out["py"][keep],
        "pz": out["pz"][keep],
        "charge": out["charge"][keep],
        "x": out["x"][keep],
        "y": out["y"][keep],
        "z": out["z"][keep],
    }


def _fake_tracks(
    settings: GeneratorSettings,
    rng: np.random.Generator,
    n_real: np.ndarray,
    stored: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Fake tracks: Poisson(fake_rate x real tracks) per jet, uniform in the jet cone.

    Their pT is the threshold plus an exponential; their impact parameters are Gaussian
    with ``fake_ip_scale`` times the resolution; the quoted sigma is the resolution.
    """
    detector = settings.detector
    n_fake = rng.poisson(detector.fake_rate * n_real)
    rows = np.repeat(np.arange(len(stored)), n_fake)
    n = len(rows)
    pt = settings.track_pt_min + rng.exponential(_FAKE_PT_SLOPE_GEV, n)
    radius = settings.jet_r * np.sqrt(rng.random(n))
    angle = 2 * np.pi * rng.random(n)
    eta = jet_eta[stored][rows] + radius * np.cos(angle)
    phi = delta_phi(jet_phi[stored][rows] + radius * np.sin(angle), 0.0)
    charge = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    sigma_d0 = detector.sigma_d0_mm(pt, eta)
    sigma_z0 = detector.sigma_z0sintheta_mm(pt, eta)
    d0 = rng.standard_normal(n) * sigma_d0 * detector.fake_ip_scale
    z0 = rng.standard_normal(n) * sigma_z0 * detector.fake_ip_scale
    keep = (
        (as_float32(pt) > settings.track_pt_min)
        & (np.abs(as_float32(eta)) < settings.track_eta_max)
        & detector.passes_selection(d0, z0)
    )
    return {
        "jet_row": rows[keep],
        "pt": pt[keep],
        "eta": eta[keep],
        "phi": phi[keep],
        "charge": charge[keep],
        "d0": d0[keep],
        "z0": z0[keep],
        "sigma_d0": sigma_d0[keep],
        "sigma_z0": sigma_z0[keep],
        "origin": np.full(int(keep.sum()), ORIGIN_FAKE, dtype=np.int8),
    }


def fill_tracks(settings: GeneratorSettings, jets: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
    """Per jet, the max_tracks tracks of highest signed d0 significance (L1 tracks: of highest
    pT, with their words); sets jets n_tracks."""
    rows = table["jet_row"]
    # Ordered by the significance of the stored (float32) values, so readers see it sorted.
    significance = table["d0"].astype(np.float32) / table["sigma_d0"].astype(np.float32)
    if settings.tracks == "l1":  # the track finder's tracks by pT (no offline significance ordering)
        significance = table["pt"].astype(np.float32)
    order = np.lexsort((-significance, rows))  # by jet, then significance descending (stable)
    rows = rows[order]
    counts = np.bincount(rows, minlength=len(jets))
    jets["n_tracks"] = np.minimum(counts, np.iinfo(np.int16).max)
    first_of_jet = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(rows)) - first_of_jet[rows]
    keep = slot < settings.max_tracks
    rows, slot, order = rows[keep], slot[keep], order[keep]

    tracks = np.zeros((len(jets), settings.max_tracks), settings.track_dtype())
    target = tracks[rows, slot]
    target["valid"] = True
    target["pt"] = table["pt"][order]
    target["eta"] = table["eta"][order]
    target["phi"] = table["phi"][order]
    target["charge"] = table["charge"][order]
    target["d0_mm"] = table["d0"][order]
    target["z0sintheta_mm"] = table["z0"][order]
    target["d0_sigma_mm"] = table["sigma_d0"][order]
    target["z0sintheta_sigma_mm"] = table["sigma_z0"][order]
    jet_eta = jets["eta"][rows].astype(np.float64)
    jet_phi = jets["phi"][rows].astype(np.float64)
    # Tracks were assigned with Delta R < jet_r in double precision; keep that true after
    # rounding to float32 (changes a value by at most one unit in the last place).
    dr = np.hypot(table["eta"][order] - jet_eta, delta_phi(table["phi"][order], jet_phi))
    target["dr"] = np.minimum(as_float32(dr), np.nextafter(np.float32(settings.jet_r), np.float32(0)))
    target["ptfrac"] = table["pt"][order] / jets["pt"][rows]
    target["origin"] = table["origin"][order]
    if settings.tracks == "l1":
        for name in ("word0", "word1", "word2", "sector"):
            target[name] = table[name][order]
    tracks[rows, slot] = target
    return tracks
