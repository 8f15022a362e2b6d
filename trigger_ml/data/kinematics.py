"""Small vectorised kinematics helpers shared by the event, labelling and track code."""

from __future__ import annotations

import numpy as np


def pseudorapidity(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Pseudorapidity of momenta (+-inf along the beam)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore"):
        return np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.copysign(np.inf, pz))


def as_float32(values: np.ndarray) -> np.ndarray:
    """The values as stored in the files (float32); cuts on stored quantities use these."""
    return np.asarray(values).astype(np.float32)


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b wrapped into [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Pairwise Delta R, shape (len(eta1), len(eta2))."""
    deta = eta1[:, None] - eta2[None, :]
    dphi = delta_phi(phi1[:, None], phi2[None, :])
    return np.hypot(deta, dphi)


def nearest_jet(dr: np.ndarray, dr_max: float) -> np.ndarray:
    """Index of the nearest jet per row of a Delta-R matrix, -1 if none is within dr_max."""
    if dr.shape[1] == 0:
        return np.full(dr.shape[0], -1)
    best = np.argmin(dr, axis=1)
    return np.where(dr[np.arange(len(best)), best] < dr_max, best, -1)
