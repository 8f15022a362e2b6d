"""Parametrised model of the ATLAS Run-2 inner detector, as seen by jet-flavour tagging.

A charged particle from the generator becomes a "track" here in four steps:

1. acceptance: its true production point lies inside the pixel detector
   (``max_prod_radius_mm``), so a standard inside-out track can be found;
2. efficiency: it is found with probability ``efficiency(eta)``;
3. impact parameters: its true straight-line transverse (d0) and longitudinal
   (z0 sin theta) impact parameters are smeared with resolutions that depend on pT and
   eta, with a small fraction of tracks smeared by a wider Gaussian (non-Gaussian tails);
4. selection: the smeared impact parameters pass the loose Deep-Sets track selection
   (``|d0| < d0_max_mm``, ``|z0 sin theta| < z0sintheta_max_mm``).

A small rate of fake tracks (random hit combinations, no true particle) can be added.
Pile-up particles (``GeneratorSettings.pileup_mu``) pass through the same four steps, with
impact parameters measured from the hard-scatter vertex. Secondary tracks from K0S,
Lambda and other decays are Pythia decay products; photon conversions and hadronic
interactions in the detector material are not modelled.

All lengths are in mm unless a name says otherwise; momenta in GeV. The physics sources,
the conventions, and a comparison of the resolution defaults with the Run-1 ATLAS
parameterisation are in docs/detector-model.md. The defaults must not change: they
define the default sample (``ttbar-ad997cf82d9a``) that trained models depend on; a new
detector needs new values in a new ``DetectorModel``, which gives a new sample digest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_ml.errors import UsageError

_UM_TO_MM = 1.0e-3


@dataclass(frozen=True)
class DetectorModel:
    """The tracking-detector parameters; every field is part of the sample's digest.

    Resolutions follow sigma = a (+) b / (pT sqrt(sin theta)) (quadrature sum), with the
    constant terms ``*_const_um`` (a, micrometres) and the multiple-scattering terms
    ``*_ms_um_gev`` (b, micrometres x GeV).
    """

    d0_const_um: float = 10.0
    d0_ms_um_gev: float = 70.0
    z0sintheta_const_um: float = 91.0
    z0sintheta_ms_um_gev: float = 105.0
    # Non-Gaussian tails: this fraction of tracks is smeared with tail_scale x sigma.
    tail_fraction: float = 0.05
    tail_scale: float = 3.0
    # Track-finding efficiency: eff_central at eta = 0, falling linearly in |eta|.
    eff_central: float = 0.91
    eff_slope_per_eta: float = 0.044
    # Only particles produced inside the outermost pixel barrel layer are tracked.
    max_prod_radius_mm: float = 122.5
    # Loose track selection of the ATLAS Deep-Sets (DIPS) tagger.
    d0_max_mm: float = 3.5
    z0sintheta_max_mm: float = 5.0
    # Fake tracks: mean number per selected real track in a jet, and the width of their
    # impact-parameter distributions in units of the resolution.
    fake_rate: float = 0.003
    fake_ip_scale: float = 5.0

    def __post_init__(self) -> None:
        positive = {
            "d0_const_um": self.d0_const_um,
            "d0_ms_um_gev": self.d0_ms_um_gev,
            "z0sintheta_const_um": self.z0sintheta_const_um,
            "z0sintheta_ms_um_gev": self.z0sintheta_ms_um_gev,
            "tail_scale": self.tail_scale,
            "max_prod_radius_mm": self.max_prod_radius_mm,
            "d0_max_mm": self.d0_max_mm,
            "z0sintheta_max_mm": self.z0sintheta_max_mm,
            "fake_ip_scale": self.fake_ip_scale,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UsageError(
                    f"detector parameter {name} must be > 0, got {value}", "set a positive value"
                )
        for name, value in {"tail_fraction": self.tail_fraction, "eff_central": self.eff_central}.items():
            if not 0 <= value <= 1:
                raise UsageError(
                    f"detector parameter {name} must be in [0, 1], got {value}", "set a probability"
                )
        if self.eff_slope_per_eta < 0 or self.fake_rate < 0:
            raise UsageError(
                "detector parameters eff_slope_per_eta and fake_rate must be >= 0",
                "set them to 0 or a positive value",
            )

    def sigma_d0_mm(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Transverse impact-parameter resolution (mm) for tracks of the given pT (GeV) and eta."""
        return _resolution_mm(self.d0_const_um, self.d0_ms_um_gev, pt, eta)

    def sigma_z0sintheta_mm(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Resolution (mm) of z0 sin(theta) for tracks of the given pT (GeV) and eta."""
        return _resolution_mm(self.z0sintheta_const_um, self.z0sintheta_ms_um_gev, pt, eta)

    def efficiency(self, eta: np.ndarray) -> np.ndarray:
        """Probability that a charged particle inside the acceptance is reconstructed."""
        return np.clip(self.eff_central - self.eff_slope_per_eta * np.abs(eta), 0.0, 1.0)

    def in_acceptance(self, prod_radius_mm: np.ndarray) -> np.ndarray:
        """True for particles produced close enough to the beam line to be tracked."""
        return prod_radius_mm < self.max_prod_radius_mm

    def smear(
        self,
        rng: np.random.Generator,
        d0_mm: np.ndarray,
        z0sintheta_mm: np.ndarray,
        pt: np.ndarray,
        eta: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Smear true impact parameters; return (d0, z0 sin theta, sigma_d0, sigma_z0 sin theta).

        A track is in the tail with probability ``tail_fraction``; then both of its impact
        parameters are smeared with ``tail_scale`` times the resolution. The returned
        sigmas are the core resolutions, the uncertainty a track fit would quote.
        """
        sigma_d0 = self.sigma_d0_mm(pt, eta)
        sigma_z0 = self.sigma_z0sintheta_mm(pt, eta)
        n = len(pt)
        width = np.where(rng.random(n) < self.tail_fraction, self.tail_scale, 1.0)
        d0_smeared = d0_mm + rng.standard_normal(n) * sigma_d0 * width
        z0_smeared = z0sintheta_mm + rng.standard_normal(n) * sigma_z0 * width
        return d0_smeared, z0_smeared, sigma_d0, sigma_z0

    def passes_selection(self, d0_mm: np.ndarray, z0sintheta_mm: np.ndarray) -> np.ndarray:
        """The impact-parameter part of the track selection, applied to measured values."""
        return (np.abs(d0_mm) < self.d0_max_mm) & (np.abs(z0sintheta_mm) < self.z0sintheta_max_mm)


def _resolution_mm(const_um: float, ms_um_gev: float, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    sin_theta = 1.0 / np.cosh(eta)
    ms = ms_um_gev / (np.asarray(pt) * np.sqrt(sin_theta))
    return np.hypot(const_um, ms) * _UM_TO_MM


def straight_line_impact_parameters(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    z_pv: float,
) -> tuple[np.ndarray, np.ndarray]:
    """True impact parameters of straight tracks from their production points (mm).

    Returns (d0, z0 sin theta). d0 is the signed transverse distance of closest approach
    to the beam line (x = y = 0) in the ATLAS perigee convention,
    d0 = (y px - x py) / pT, so the point of closest approach (PCA) is
    d0 (-sin phi, cos phi). z0 is the z of that point minus the primary-vertex z.
    """
    pt2 = px * px + py * py
    pt = np.sqrt(pt2)
    d0 = (y * px - x * py) / pt
    # Path parameter (in units of the momentum vector) from production to the PCA.
    t_pca = -(x * px + y * py) / pt2
    z0 = z + t_pca * pz - z_pv
    sin_theta = pt / np.sqrt(pt2 + pz * pz)
    return d0, z0 * sin_theta


def lifetime_signs(
    d0_mm: np.ndarray,
    z0sintheta_mm: np.ndarray,
    track_phi: np.ndarray,
    track_eta: np.ndarray,
    jet_phi: np.ndarray,
    jet_eta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lifetime-signed impact parameters (ATLAS convention), from measured perigee values.

    d0 is positive when the PCA lies in front of the primary vertex along the jet axis in
    the transverse plane: sign(PCA . jet) = sign(d0 sin(phi_jet - phi_track)).
    z0 sin theta is positive when sign((eta_jet - eta_track) z0) is. A zero product
    counts as positive.
    """
    d0_sign = np.where(d0_mm * np.sin(jet_phi - track_phi) < 0, -1.0, 1.0)
    z0_sign = np.where((jet_eta - track_eta) * z0sintheta_mm < 0, -1.0, 1.0)
    return np.abs(d0_mm) * d0_sign, np.abs(z0sintheta_mm) * z0_sign
