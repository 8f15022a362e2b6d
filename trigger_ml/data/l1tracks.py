"""Tracks as a Level-1 track finder delivers them (``sample.tracks: l1``).

The CMS Phase-2 L1 track finder (outer tracker stubs, pT > 2 GeV from the stub pT modules,
|eta| < 2.4) sends every track as a 96-bit word (trigger_ml.l1.word). This module is the
detector model of those tracks: what differs from the offline-like model of
trigger_ml.data.detector is a higher pT threshold, a smaller acceptance, coarser resolutions,
no offline impact-parameter selection (the track finder does not know the primary vertex; the
firmware selects tracks near the trigger's vertex) and the track parameters' quantization.

Every resolution here is THIS PROJECT'S ASSUMPTION, chosen to be of the order of magnitude the
CMS Phase-2 Tracker TDR (CERN-LHCC-2017-009) and L1 Trigger TDR (CERN-LHCC-2020-004) show
for L1 tracks; none is a published figure (docs/l1-tracks.md). The fit is the extended
(displaced, 5-parameter) fit, which measures d0: the baseline 4-parameter fit sets d0 = 0,
and a lifetime b-tagger without d0 has only z0 and kinematics (``fit: prompt`` models that).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from trigger_ml.l1.word import PT_FROM_RINV, encode_tracks, jet_word, vertex_word
from trigger_ml.schema import SettingsModel

_MM_PER_CM = 10.0


class L1TrackModel(SettingsModel):
    """Parameters of the L1 track model (every one an assumption of this project).

    Impact-parameter resolutions have the offline model's form sigma = a (+) b / (pT
    sqrt(sin theta)) (um, um GeV) for d0 and for z0 sin(theta) (so sigma(z0) grows as
    1/sin(theta)); pT is smeared in curvature: sigma(1/pT) / (1/pT) = ``pt_rel_const`` (+)
    ``pt_rel_per_gev`` * pT; phi and eta with Gaussian widths. The reduced chi2 of the fits is
    drawn from chi2 distributions with ``chi2_*_dof`` degrees of freedom (fakes: times
    ``fake_chi2_scale``); the MVA and hit-pattern fields are written as 0.
    """

    WHAT: ClassVar[str] = "L1 track parameter"

    fit: Literal["displaced", "prompt"] = Field(
        "displaced", description="5-parameter (d0) or 4-parameter fit"
    )
    pt_min_gev: float = Field(2.0, gt=0)
    eta_max: float = Field(2.4, gt=0)
    efficiency: float = Field(0.95, ge=0, le=1)
    d0_const_um: float = Field(40.0, gt=0)
    d0_ms_um_gev: float = Field(200.0, gt=0)
    z0sintheta_const_um: float = Field(300.0, gt=0)
    z0sintheta_ms_um_gev: float = Field(1000.0, gt=0)
    pt_rel_const: float = Field(0.01, ge=0)
    pt_rel_per_gev: float = Field(0.001, ge=0)
    phi_sigma_mrad: float = Field(1.0, ge=0)
    eta_sigma: float = Field(0.002, ge=0)
    d0_max_mm: float = Field(100.0, gt=0)
    chi2_rphi_dof: int = Field(4, ge=1)
    chi2_rz_dof: int = Field(4, ge=1)
    bend_chi2_dof: int = Field(4, ge=1)
    fake_chi2_scale: float = Field(5.0, gt=0)

    def sigma_d0_mm(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        return _resolution_mm(self.d0_const_um, self.d0_ms_um_gev, pt, eta)

    def sigma_z0sintheta_mm(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        return _resolution_mm(self.z0sintheta_const_um, self.z0sintheta_ms_um_gev, pt, eta)

    def measure(
        self,
        rng: np.random.Generator,
        d0_true: np.ndarray,
        z0sintheta_true: np.ndarray,
        pt: np.ndarray,
        eta: np.ndarray,
        phi: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Measured pt, eta, phi, d0, z0 sin(theta) (mm) and the resolutions of tracks.

        Random numbers, in this order: pT, phi, eta, d0, z0 (one standard normal per track each).
        z0 is smeared in z0 (resolution / sin theta) and returned as z0 sin(theta) of the
        measured theta, like the offline model's column.
        """
        n = len(pt)
        rel = np.hypot(self.pt_rel_const, self.pt_rel_per_gev * pt)
        inv_pt = (1.0 / pt) * (1.0 + rel * rng.standard_normal(n))
        pt_m = 1.0 / np.maximum(inv_pt, 1e-6)
        phi_m = np.angle(np.exp(1j * (phi + 1e-3 * self.phi_sigma_mrad * rng.standard_normal(n))))
        eta_m = eta + self.eta_sigma * rng.standard_normal(n)
        sigma_d0 = self.sigma_d0_mm(pt, eta)
        sigma_z0s = self.sigma_z0sintheta_mm(pt, eta)
        d0 = d0_true + sigma_d0 * rng.standard_normal(n)
        sin_true, sin_m = 1.0 / np.cosh(eta), 1.0 / np.cosh(eta_m)
        z0 = z0sintheta_true / sin_true + sigma_z0s / sin_true * rng.standard_normal(n)
        if self.fit == "prompt":
            d0 = np.zeros(n)
        return {
            "pt": pt_m,
            "eta": eta_m,
            "phi": phi_m,
            "d0": d0,
            "z0": z0 * sin_m,
            "sigma_d0": self.sigma_d0_mm(pt_m, eta_m),
            "sigma_z0": self.sigma_z0sintheta_mm(pt_m, eta_m),
        }

    def accepted(self, pt: np.ndarray, eta: np.ndarray, d0_mm: np.ndarray) -> np.ndarray:
        """The track finder's acceptance on measured values: pT, |eta| and |d0| limits."""
        return (pt > self.pt_min_gev) & (np.abs(eta) < self.eta_max) & (np.abs(d0_mm) < self.d0_max_mm)

    def words(
        self, rng: np.random.Generator, table: dict[str, np.ndarray], pv_z_mm: float, fake: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(words (n, 3) uint32, sector (n,) uint8) of the tracks in ``table`` (the track
        table's raw perigee d0 and z0 sin(theta) relative to the primary vertex, in mm)."""
        n = len(table["pt"])
        scale = np.where(fake, self.fake_chi2_scale, 1.0)
        chi2 = [
            rng.chisquare(dof, n) / dof * scale
            for dof in (self.chi2_rphi_dof, self.chi2_rz_dof, self.bend_chi2_dof)
        ]
        z0_abs_cm = (table["z0"] * np.cosh(table["eta"]) + pv_z_mm) / _MM_PER_CM
        return encode_tracks(
            table["charge"] * PT_FROM_RINV / table["pt"],
            table["phi"],
            np.sinh(table["eta"]),
            z0_abs_cm,
            table["d0"] / _MM_PER_CM,
            *chi2,
        )


def _resolution_mm(const_um: float, ms_um_gev: float, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    sin_theta = 1.0 / np.cosh(eta)
    return np.hypot(const_um, ms_um_gev / (np.asarray(pt) * np.sqrt(sin_theta))) * 1e-3


def fill_l1_jets(jets: np.ndarray, pv_z_mm: float) -> None:
    """The trigger's jet words (from the generator's jet: no L1 jet-energy resolution is
    modelled) and the vertex z (the true primary vertex: a perfect vertex finder, quantized)."""
    word = jet_word(jets["pt"], jets["eta"], jets["phi"])
    jets["l1_pt"], jets["l1_eta"], jets["l1_phi"] = word["pt"], word["eta"], word["phi"]
    jets["l1_vertex_z0"] = vertex_word(np.full(len(jets), pv_z_mm / _MM_PER_CM))
