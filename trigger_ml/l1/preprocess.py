"""From a jet's track words to the network inputs: ONE integer definition.

:class:`L1Preprocessing` holds every constant and look-up table; :func:`preprocess` runs it on
numpy arrays (training, evaluation) and :mod:`trigger_ml.l1.hls` writes the same arithmetic as
HLS C++ with the same tables (``l1_preprocess.h``); a g++ testbench checks them bit for bit.

Per input word (``n_in`` per jet; the jet's pT/eta/phi and the vertex z as integers,
:mod:`trigger_ml.l1.word`):

1. geometry: global phi = local phi + the sector centre (a 9-entry table, track-phi LSB), into
   the jet's LSB (pi/720) by * 45 >> 9 (720/8192 = 45/512, exact); eta from |tanL| >> 4 by a
   2048-entry table; dphi wrapped to [-720, 720); dR^2 = deta^2 + dphi^2 in (pi/720)^2;
2. selection: valid bit, sector < 9, dR^2 < round((R / (pi/720))^2), |z0 - z_vertex| < dz_max;
3. lifetime signs: d0 is positive when d0 * (jet phi - track phi) >= 0, dz when
   (jet eta - track eta) * dz >= 0 (the offline convention, in integers);
4. features, each a signed ``out_bits`` integer q with value q / 2^out_frac (the network's
   input type, ap_fixed<10,4> for 10 bits with 6 fractional), saturated:
   sd0 = |d0| * M_D0[pT bin, eta bin] >> 12 (1/sigma(d0) as a 256-entry table indexed by
   |Rinv| >> 10 and |tanL| >> 11, times the feature scale), signed; sz0 likewise with dz;
   log_ptfrac = ln(pT / pT_jet) + 2 and log_dr = ln(dR) + 4 from one shift-based logarithm
   (leading-one position * ln 2 + a 64-entry mantissa table, 10 fractional bits);
   d0 = signed d0 code / 2^5 (d0 [cm] * 8); z0 = signed dz code / 2^4;
   valid = 1.0;
5. ordering: by |sd0| descending, ties by the feature vector (descending, lexicographic), the
   first ``max_tracks`` kept; unselected tracks and empty slots are all zero. Equal keys are
   equal rows, so the output does not depend on the order of the input words.

The feature scales are part of the definition (fixed, not fitted), so training sees exactly
the integers the firmware computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from trigger_ml.l1.word import (
    JET_ETAPHI_LSB,
    JET_PT_LSB,
    N_SECTORS,
    PT_FROM_RINV,
    SECTOR_WIDTH,
    STEP_D0,
    STEP_PHI0,
    STEP_RINV,
    STEP_TANL,
    STEP_Z0,
    unpack,
)

FEATURES = ("sd0", "sz0", "log_ptfrac", "log_dr", "d0", "z0", "valid")
LOG_FRAC = 10
"""Fractional bits of the internal logarithm."""
MANT_BITS = 6
"""Mantissa bits after the leading one that index the logarithm's table."""
SIG_SHIFT = 12
"""Right shift after the 1/sigma multiplication."""
RINV_BIN_SHIFT, TANL_BIN_SHIFT, N_BINS = 10, 11, 16
ETA_LUT_SHIFT, ETA_LUT_SIZE = 4, 2048
PHI_MUL, PHI_SHIFT = 45, 9
"""Track phi (LSB pi/8192) into the jet's LSB (pi/720): * 45 >> 9 (720/8192 = 45/512)."""
assert abs(PHI_MUL / 2**PHI_SHIFT - STEP_PHI0 / JET_ETAPHI_LSB) < 1e-9
SD0_SCALE = 4.0
"""sd0 and sz0 are divided by this (value = significance / 4)."""
LOG_PTFRAC_OFFSET, LOG_DR_OFFSET = 2.0, 4.0
D0_SHIFT, Z0_SHIFT = 5, 4
"""Feature d0 = d0 code / 2^5 (d0 [cm] * 8); feature z0 = dz code / 2^4 (dz in units of 16 LSB)."""


LOG_MANTISSA = np.round(
    np.log1p((np.arange(1 << MANT_BITS) + 0.5) / (1 << MANT_BITS)) * (1 << LOG_FRAC)
).astype(np.int64)
"""ln(1 + (m + 0.5) / 2^MANT_BITS) * 2^LOG_FRAC: the logarithm's mantissa table."""


class L1Inputs(NamedTuple):
    """Jets as the L1 preprocessing takes them: ``words`` (n, n_in, 3) uint32 and ``sector``
    (n, n_in) per input slot, the trigger jet's pT, eta, phi codes and the vertex z0 code."""

    words: np.ndarray
    sector: np.ndarray
    jet_pt: np.ndarray
    jet_eta: np.ndarray
    jet_phi: np.ndarray
    vertex_z0: np.ndarray

    @classmethod
    def concatenate(cls, parts: list[L1Inputs]) -> L1Inputs:
        return cls(*(np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(len(cls._fields))))


def _resolution_cm(const_um: float, ms_um_gev: float, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    sin_theta = 1.0 / np.cosh(eta)
    return np.hypot(const_um, ms_um_gev / (pt * np.sqrt(sin_theta))) * 1e-4


@dataclass(frozen=True)
class L1Preprocessing:
    """The preprocessing's parameters; every table derives from them (``tables``).

    ``sigma_*`` are the resolutions the 1/sigma tables assume (the L1 track model's, see
    trigger_ml.data.l1tracks; z0 resolution = z0 sin(theta) form / sin(theta)).
    """

    n_in: int = 32
    max_tracks: int = 16
    dr_max: float = 0.4
    dz_max_cm: float = 1.0
    out_bits: int = 10
    out_frac: int = 6
    sigma_d0_const_um: float = 40.0
    sigma_d0_ms_um_gev: float = 200.0
    sigma_z0_const_um: float = 300.0
    sigma_z0_ms_um_gev: float = 1000.0
    features: tuple[str, ...] = field(default=FEATURES)

    def __post_init__(self) -> None:
        if self.features != FEATURES:
            raise ValueError(f"the L1 preprocessing computes {FEATURES}")
        if not 5 <= self.out_frac <= LOG_FRAC or self.out_bits > 16:
            raise ValueError("need 5 <= out_frac <= 10 and out_bits <= 16")
        if not 1 <= self.max_tracks <= self.n_in <= 64:
            raise ValueError("need 1 <= max_tracks <= n_in <= 64")

    @property
    def q_min(self) -> int:
        return -(1 << (self.out_bits - 1))

    @property
    def q_max(self) -> int:
        return (1 << (self.out_bits - 1)) - 1

    @property
    def dr2_max(self) -> int:
        return int(round((self.dr_max / JET_ETAPHI_LSB) ** 2))

    @property
    def dz_max(self) -> int:
        return int(round(self.dz_max_cm / STEP_Z0))

    @cached_property
    def tables(self) -> dict[str, np.ndarray]:
        """Every constant table (int64), as the C++ holds it."""
        one = 1 << self.out_frac
        sector_offset = np.array(
            [round(math.remainder(s * SECTOR_WIDTH, 2 * math.pi) / STEP_PHI0) for s in range(N_SECTORS)]
        )
        tanl_centre = (np.arange(ETA_LUT_SIZE) + 0.5) * (1 << ETA_LUT_SHIFT) * STEP_TANL
        eta = np.round(np.arcsinh(tanl_centre) / JET_ETAPHI_LSB)
        rinv_centre = (np.arange(N_BINS) + 0.5) * (1 << RINV_BIN_SHIFT) * STEP_RINV
        pt = PT_FROM_RINV / rinv_centre
        eta_bin = np.arcsinh((np.arange(N_BINS) + 0.5) * (1 << TANL_BIN_SHIFT) * STEP_TANL)
        pt_grid, eta_grid = np.meshgrid(pt, eta_bin, indexing="ij")
        sig_d0 = _resolution_cm(self.sigma_d0_const_um, self.sigma_d0_ms_um_gev, pt_grid, eta_grid)
        sig_z0 = _resolution_cm(self.sigma_z0_const_um, self.sigma_z0_ms_um_gev, pt_grid, eta_grid) * np.cosh(
            eta_grid
        )
        scale = (1 << SIG_SHIFT) * one / SD0_SCALE
        return {
            "sector_offset": sector_offset.astype(np.int64),
            "eta": eta.astype(np.int64),
            "inv_sigma_d0": np.round(scale * STEP_D0 / sig_d0).astype(np.int64).ravel(),
            "inv_sigma_z0": np.round(scale * STEP_Z0 / sig_z0).astype(np.int64).ravel(),
            "log_mantissa": LOG_MANTISSA.copy(),
        }

    @cached_property
    def constants(self) -> dict[str, int]:
        """Integer constants of the arithmetic (C++ ``static const``)."""
        s = 1 << LOG_FRAC
        return {
            "LN2": int(round(math.log(2) * s)),
            # ln(pT/pT_jet) + offset = ln(PT_FROM_RINV / STEP_RINV / JET_PT_LSB) - ln|rinv| - ln(pt_jet) + offset
            "K_PTFRAC": int(round((math.log(PT_FROM_RINV / STEP_RINV / JET_PT_LSB) + LOG_PTFRAC_OFFSET) * s)),
            # 2 (ln dR + offset) = ln(dR2) + 2 (ln LSB + offset)
            "K_DR": int(round(2 * (math.log(JET_ETAPHI_LSB) + LOG_DR_OFFSET) * s)),
            "DR2_MAX": self.dr2_max,
            "DZ_MAX": self.dz_max,
        }

    @cached_property
    def bounds(self) -> dict[str, int]:
        """Bounds the firmware uses to narrow its arithmetic without changing any output (the
        Python above needs none): a track with abs(deta) or abs(dphi) >= ``NEAR`` has dR^2 >=
        DR2_MAX (not selected), so the squares take ``NEAR_BITS``-bit magnitudes; a selected
        track has abs(dz) < DZ_MAX (``DZ_BITS`` bits); abs(d0) >= 2^``D0_BITS`` - 1 >= the
        smallest abs(d0) whose sd0 saturates with the smallest 1/sigma, so abs(d0) clipped to
        ``D0_BITS`` bits gives the same sd0 code."""
        near = math.isqrt(self.dr2_max - 1) + 1
        smallest = int(self.tables["inv_sigma_d0"].min())
        saturating = -(-((self.q_max + 1) << SIG_SHIFT) // smallest) if smallest > 0 else 1 << 13
        return {
            "NEAR": near,
            "NEAR_BITS": max(1, (near - 1).bit_length()),
            "DZ_BITS": max(1, (self.dz_max - 1).bit_length()),
            "D0_BITS": min(14, saturating.bit_length()),
        }


def log_fixed(x: np.ndarray) -> np.ndarray:
    """ln(x) * 2^LOG_FRAC for integers x >= 1, shift-based: position p of the leading one,
    the MANT_BITS bits after it index a table; p * LN2 + table[m]. x < 1 counts as 1."""
    x = np.maximum(np.asarray(x, dtype=np.int64), 1)
    p = np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1  # exact below 2^53
    m = np.where(p >= MANT_BITS, x >> np.maximum(p - MANT_BITS, 0), x << np.maximum(MANT_BITS - p, 0))
    m &= (1 << MANT_BITS) - 1
    table = LOG_MANTISSA
    return p * int(round(math.log(2) * (1 << LOG_FRAC))) + table[m]


def track_features(
    spec: L1Preprocessing,
    words: np.ndarray,
    sector: np.ndarray,
    jet_pt: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    vertex_z0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, n_in, 7) int64 before ordering, selected (n, n_in) bool)."""
    t, c = spec.tables, spec.constants
    f = unpack(words)
    sector = np.asarray(sector, dtype=np.int64)
    jet_pt, jet_eta, jet_phi, vertex_z0 = (
        np.asarray(a, dtype=np.int64)[:, None] for a in (jet_pt, jet_eta, jet_phi, vertex_z0)
    )
    good_sector = sector < N_SECTORS
    phi_g = f["phi"] + t["sector_offset"][np.where(good_sector, sector, 0)]
    dphi = ((phi_g * PHI_MUL) >> PHI_SHIFT) - jet_phi
    dphi = np.where(dphi >= 720, dphi - 1440, np.where(dphi < -720, dphi + 1440, dphi))
    abs_tanl = np.abs(f["tanl"])
    eta_abs = t["eta"][np.minimum(abs_tanl >> ETA_LUT_SHIFT, ETA_LUT_SIZE - 1)]
    deta = np.where(f["tanl"] < 0, -eta_abs, eta_abs) - jet_eta
    dr2 = deta * deta + dphi * dphi
    dz = f["z0"] - vertex_z0
    selected = (f["valid"] == 1) & good_sector & (dr2 < c["DR2_MAX"]) & (np.abs(dz) < c["DZ_MAX"])

    d0_neg = f["d0"] * -dphi < 0
    dz_neg = -deta * dz < 0
    abs_rinv = np.abs(f["rinv"])
    sbin = np.minimum(abs_rinv >> RINV_BIN_SHIFT, N_BINS - 1) * N_BINS + np.minimum(
        abs_tanl >> TANL_BIN_SHIFT, N_BINS - 1
    )
    lo, hi = spec.q_min, spec.q_max

    def signed(mag: np.ndarray, negative: np.ndarray) -> np.ndarray:
        return np.clip(np.where(negative, -mag, mag), lo, hi)

    abs_d0, abs_dz = np.abs(f["d0"]), np.abs(dz)
    out = np.stack(
        [
            signed((abs_d0 * t["inv_sigma_d0"][sbin]) >> SIG_SHIFT, d0_neg),
            signed((abs_dz * t["inv_sigma_z0"][sbin]) >> SIG_SHIFT, dz_neg),
            np.clip(
                (c["K_PTFRAC"] - log_fixed(abs_rinv) - log_fixed(jet_pt)) >> (LOG_FRAC - spec.out_frac),
                lo,
                hi,
            ),
            np.clip((log_fixed(dr2) + c["K_DR"]) >> (LOG_FRAC - spec.out_frac + 1), lo, hi),
            signed(abs_d0 << (spec.out_frac - D0_SHIFT), d0_neg),
            signed(abs_dz << (spec.out_frac - Z0_SHIFT), dz_neg),
            np.full(dz.shape, 1 << spec.out_frac, dtype=np.int64),
        ],
        axis=-1,
    )
    return np.where(selected[..., None], out, 0), selected


def preprocess(
    spec: L1Preprocessing,
    words: np.ndarray,
    sector: np.ndarray,
    jet_pt: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    vertex_z0: np.ndarray,
) -> np.ndarray:
    """(n, max_tracks, 7) int64: each jet's selected tracks, ordered, as the firmware's input
    integers (value = q / 2^out_frac); words (n, n_in, 3) uint32, sector (n, n_in)."""
    words = np.asarray(words)
    n, n_in = words.shape[0], words.shape[1]
    if n_in != spec.n_in:
        raise ValueError(f"{n_in} words per jet, the preprocessing takes {spec.n_in}")
    feats, selected = track_features(spec, words, sector, jet_pt, jet_eta, jet_phi, vertex_z0)
    # Descending lexicographic order of (selected, |sd0|, features...): lexsort's last key is primary.
    keys = [-feats[..., i] for i in range(len(FEATURES) - 2, -1, -1)]
    keys += [-np.abs(feats[..., 0]), ~selected]
    rows = np.repeat(np.arange(n), n_in)
    order = np.lexsort([k.ravel() for k in keys] + [rows])
    sorted_feats = feats.reshape(n * n_in, -1)[order].reshape(n, n_in, -1)
    sorted_sel = selected.ravel()[order].reshape(n, n_in)
    out = np.where(sorted_sel[..., None], sorted_feats, 0)[:, : spec.max_tracks]
    return out
