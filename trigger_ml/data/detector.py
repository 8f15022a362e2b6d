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
Lambda and other decays are Pythia decay products. Photon conversions and hadronic
(nuclear) interactions in the detector material are modelled when ``material_layers``
lists material (``material_secondaries``); the default has none, because no material
budget could be taken from a readable source for this release (docs/detector-model.md).

All lengths are in mm unless a name says otherwise; momenta in GeV. The physics sources,
the conventions, and a comparison of the resolution defaults with the Run-1 ATLAS
parameterisation are in docs/detector-model.md. Every field enters the sample digest; a
field added after the first release (``material_layers``, marked ``later()``) enters it only
when it differs from its default.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from trigger_ml.schema import SettingsModel, later, setting_error

_UM_TO_MM = 1.0e-3

CONVERSION_X0_FACTOR = 7.0 / 9.0
"""Pair-production probability per radiation length at high energy: P = 1 - exp(-7/9 x/X0)."""
HADRONIC_N_SECONDARIES = 3
"""Charged secondaries of one hadronic (nuclear) interaction (a model assumption)."""
HADRONIC_MOMENTUM_FRACTION = 0.5
"""Share of the interacting hadron's momentum carried by its charged secondaries together."""
HADRONIC_PT_KICK_GEV = 0.3
"""Width of the Gaussian transverse-momentum kick of each secondary (per axis, GeV)."""


class DetectorModel(SettingsModel):
    """The tracking-detector parameters; every field is part of the sample's digest.

    Resolutions follow sigma = a (+) b / (pT sqrt(sin theta)) (quadrature sum), with the
    constant terms ``*_const_um`` (a, micrometres) and the multiple-scattering terms
    ``*_ms_um_gev`` (b, micrometres x GeV). A field added after the first release is marked
    ``later()`` (docs/detector-model.md says where a new parameter goes).
    """

    WHAT: ClassVar[str] = "detector parameter"

    d0_const_um: float = Field(10.0, gt=0)
    d0_ms_um_gev: float = Field(70.0, gt=0)
    z0sintheta_const_um: float = Field(91.0, gt=0)
    z0sintheta_ms_um_gev: float = Field(105.0, gt=0)
    # Non-Gaussian tails: this fraction of tracks is smeared with tail_scale x sigma.
    tail_fraction: float = Field(0.05, ge=0, le=1)
    tail_scale: float = Field(3.0, gt=0)
    # Track-finding efficiency: eff_central at eta = 0, falling linearly in |eta|.
    eff_central: float = Field(0.91, ge=0, le=1)
    eff_slope_per_eta: float = Field(0.044, ge=0)
    # Only particles produced inside the outermost pixel barrel layer are tracked.
    max_prod_radius_mm: float = Field(122.5, gt=0)
    # Loose track selection of the ATLAS Deep-Sets (DIPS) tagger.
    d0_max_mm: float = Field(3.5, gt=0)
    z0sintheta_max_mm: float = Field(5.0, gt=0)
    # Fake tracks: mean number per selected real track in a jet, and the width of their
    # impact-parameter distributions in units of the resolution.
    fake_rate: float = Field(0.003, ge=0)
    fake_ip_scale: float = Field(5.0, gt=0)
    # Material layers for conversions and hadronic interactions: (radius mm, thickness in
    # radiation lengths X/X0, thickness in nuclear interaction lengths x/lambda_I), both at
    # normal incidence, as concentric cylinders in increasing radius. Empty: no material.
    material_layers: tuple[tuple[float, float, float], ...] = Field((), json_schema_extra=later())

    @field_validator("material_layers", mode="before")
    @classmethod
    def _three_numbers_per_layer(cls, value: Any) -> Any:
        try:
            layers = tuple(tuple(float(v) for v in layer) for layer in value)
        except (TypeError, ValueError):
            layers = ((),)
        if any(len(layer) != 3 for layer in layers):
            raise setting_error(
                "detector parameter material_layers must be a list of (radius_mm, x_over_x0, x_over_lambda_i)",
                "give three numbers per layer",
            )
        return layers

    @field_validator("material_layers")
    @classmethod
    def _layers_in_order(
        cls, layers: tuple[tuple[float, float, float], ...]
    ) -> tuple[tuple[float, float, float], ...]:
        radii = [layer[0] for layer in layers]
        if any(not (r > 0 and x >= 0 and lam >= 0) for r, x, lam in layers) or radii != sorted(set(radii)):
            raise setting_error(
                "material_layers need radii > 0 in increasing order and thicknesses >= 0",
                "sort the layers by radius",
            )
        return layers

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

    def material_secondaries(
        self,
        rng: np.random.Generator,
        momentum: np.ndarray,
        vertex: np.ndarray,
        is_photon: np.ndarray,
        charge: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Charged secondaries of photon conversions and hadronic interactions in the material.

        ``momentum`` and ``vertex`` are (n, 3) arrays (GeV, mm) of photons (``is_photon``) and
        hadrons with ``charge`` (0 for neutral ones). Each particle meets the layers outside
        its production radius in turn, on a straight line; in a layer it interacts with
        probability 1 - exp(-t / sin theta), t = 7/9 X/X0 for photons and x/lambda_I for
        hadrons. At the first interaction a photon becomes an e+ e- pair, collinear with it,
        the e+ taking a uniform fraction of its momentum; a hadron gives
        HADRONIC_N_SECONDARIES charged particles that share HADRONIC_MOMENTUM_FRACTION of
        its momentum (uniform random shares) along its direction, each with a Gaussian
        transverse kick of HADRONIC_PT_KICK_GEV per axis; charges alternate starting with
        the parent's sign (+ for neutral parents). Secondaries start at the interaction
        point. The interacting particles themselves are not removed.

        Random numbers, always in this order: one uniform per particle and layer; one per
        conversion; the shares and then the kicks of the hadronic secondaries.
        Returns px, py, pz, x, y, z, charge and ``parent`` (row of the input) per secondary.
        """
        layers = np.asarray(self.material_layers, dtype=np.float64).reshape(-1, 3)
        n, n_layers = len(momentum), len(layers)
        empty = {key: np.zeros(0) for key in ("px", "py", "pz", "x", "y", "z", "charge")}
        empty["parent"] = np.zeros(0, dtype=np.int64)
        if n == 0 or n_layers == 0:
            return empty
        px, py, pz = momentum[:, 0], momentum[:, 1], momentum[:, 2]
        pt2 = px * px + py * py
        p = np.sqrt(pt2 + pz * pz)
        sin_theta = np.sqrt(pt2) / p
        per_layer = np.where(
            is_photon[:, None], CONVERSION_X0_FACTOR * layers[None, :, 1], layers[None, :, 2]
        )
        probability = -np.expm1(-per_layer / sin_theta[:, None])
        start_r2 = vertex[:, 0] ** 2 + vertex[:, 1] ** 2
        hit = (layers[None, :, 0] ** 2 > start_r2[:, None]) & (rng.random((n, n_layers)) < probability)
        parents = np.flatnonzero(hit.any(axis=1))
        radius = layers[np.argmax(hit[parents], axis=1), 0]
        # Straight line from the production point to the layer's cylinder (t > 0).
        x0, y0 = vertex[parents, 0], vertex[parents, 1]
        a = pt2[parents]
        b = x0 * px[parents] + y0 * py[parents]
        t = (-b + np.sqrt(b * b + a * (radius**2 - start_r2[parents]))) / a
        point = vertex[parents] + t[:, None] * momentum[parents]

        photon = is_photon[parents]
        conv, had = parents[photon], parents[~photon]
        share = rng.random(len(conv))
        k = HADRONIC_N_SECONDARIES
        shares = rng.random((len(had), k))
        shares *= HADRONIC_MOMENTUM_FRACTION / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)
        kicks = rng.normal(0.0, HADRONIC_PT_KICK_GEV, (len(had), k, 2))

        direction = momentum[had] / p[had, None]
        e1 = np.stack([py[had], -px[had], np.zeros(len(had))], axis=1) / np.sqrt(pt2[had])[:, None]
        e2 = np.cross(direction, e1)
        had_p = (
            (shares * p[had, None])[:, :, None] * direction[:, None, :]
            + kicks[:, :, :1] * e1[:, None, :]
            + kicks[:, :, 1:] * e2[:, None, :]
        )
        sign = np.where(charge[had] < 0, -1.0, 1.0)
        had_charge = sign[:, None] * np.where(np.arange(k) % 2 == 0, 1.0, -1.0)[None, :]
        conv_p = np.concatenate([share[:, None] * momentum[conv], (1 - share)[:, None] * momentum[conv]])
        conv_point = point[photon]
        out_p = np.concatenate([conv_p, had_p.reshape(-1, 3)])
        out_x = np.concatenate([conv_point, conv_point, np.repeat(point[~photon], k, axis=0)])
        return {
            "px": out_p[:, 0],
            "py": out_p[:, 1],
            "pz": out_p[:, 2],
            "x": out_x[:, 0],
            "y": out_x[:, 1],
            "z": out_x[:, 2],
            "charge": np.concatenate([np.ones(len(conv)), -np.ones(len(conv)), had_charge.ravel()]),
            "parent": np.concatenate([conv, conv, np.repeat(had, k)]).astype(np.int64),
        }


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
