"""The CMS Phase-2 Level-1 track word (96 bits) and the trigger's jet and vertex words.

Track word: CMSSW ``DataFormats/L1TrackTrigger/interface/TTTrack_TrackWord.h`` (version
"modified March 9, 2021", A. Perloff; original M. Hildreth). Fields from the least to the most
significant bit: MVAOther 6, MVAQuality 3, HitPattern 7, BendChi2 3, D0 13, Chi2RZ 4, Z0 12,
TanL 16, Chi2RPhi 4, Phi 12, Rinv 15, Valid 1. Signed fields are two's complement; a value is
digitized as floor(value / lsb), saturated to the field's signed range, and undigitized as
(v + 0.5) * lsb. The chi2 fields hold bin numbers (upper_bound - 1 in the bin edges below).
Phi is relative to the centre of one of 9 phi sectors (the sector travels beside the word, as
the link a track arrives on does; here a 4-bit number).

Stored as three little-endian uint32 per track: word0 = bits 0-31, word1 = 32-63,
word2 = 64-95 (no field crosses a 32-bit boundary).

The trigger's jet (pT, eta, phi) and primary-vertex z are this project's own formats, chosen
after the CMS L1 Correlator's l1ct conventions (``DataFormats/L1TParticleFlow``: pT LSB
0.25 GeV, eta/phi LSB pi/720): jet pT unsigned 16 bits, eta signed 12 bits, phi signed 11 bits;
the vertex z in the track word's Z0 format (signed 12 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

B_FIELD_T = 3.8
"""CMS solenoid field; pT [GeV] = 0.3 * B[T] * 0.01 / |Rinv [1/cm]|."""
PT_FROM_RINV = 0.3 * B_FIELD_T * 0.01
"""GeV / cm^-1: pT = PT_FROM_RINV / |Rinv|."""
N_SECTORS = 9
SECTOR_WIDTH = 2.0 * math.pi / N_SECTORS

MIN_RINV = -0.006
STEP_RINV = 2.0 * 0.006 / 2**15
MIN_PHI0 = -0.7853981696
STEP_PHI0 = 2.0 * 0.7853981696 / 2**12
MIN_TANL = -8.0
STEP_TANL = 1.0 / 2**12
MIN_Z0 = -20.46912512
STEP_Z0 = 2.0 * 20.46912512 / 2**12
MIN_D0 = -16.0
STEP_D0 = 1.0 / 2**8

CHI2RPHI_BINS = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 10.0, 15.0, 20.0, 35.0, 60.0, 200.0)
CHI2RZ_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0, 20.0, 50.0)
BENDCHI2_BINS = (0.0, 0.75, 1.0, 1.5, 2.25, 3.5, 5.0, 20.0)

JET_PT_LSB = 0.25
"""GeV (l1ct convention)."""
JET_ETAPHI_LSB = math.pi / 720
"""rad (l1ct convention)."""
JET_PT_BITS, JET_ETA_BITS, JET_PHI_BITS = 16, 12, 11


@dataclass(frozen=True)
class Field:
    """One field of the track word: its first bit (from the LSB), width and signedness."""

    name: str
    offset: int
    bits: int
    signed: bool

    @property
    def word(self) -> int:
        return self.offset // 32

    @property
    def shift(self) -> int:
        return self.offset % 32


_LAYOUT = (
    ("mva_other", 6, False),
    ("mva_quality", 3, False),
    ("hit_pattern", 7, False),
    ("bend_chi2", 3, False),
    ("d0", 13, True),
    ("chi2_rz", 4, False),
    ("z0", 12, True),
    ("tanl", 16, True),
    ("chi2_rphi", 4, False),
    ("phi", 12, True),
    ("rinv", 15, True),
    ("valid", 1, False),
)


def _fields() -> dict[str, Field]:
    out, offset = {}, 0
    for name, bits, signed in _LAYOUT:
        out[name] = Field(name, offset, bits, signed)
        assert offset // 32 == (offset + bits - 1) // 32, f"{name} crosses a 32-bit boundary"
        offset += bits
    assert offset == 96
    return out


FIELDS = _fields()
WORD_BITS = 96


def digitize_signed(value: np.ndarray, bits: int, lsb: float) -> np.ndarray:
    """floor(value / lsb) saturated to [-2^(bits-1), 2^(bits-1) - 1] (int64)."""
    limit = 2 ** (bits - 1)
    v = np.floor(np.asarray(value, dtype=np.float64) / lsb)
    return np.clip(v, -limit, limit - 1).astype(np.int64)


def undigitize_signed(v: np.ndarray, lsb: float) -> np.ndarray:
    """The bin centre (v + 0.5) * lsb of a digitized value."""
    return (np.asarray(v, dtype=np.float64) + 0.5) * lsb


def chi2_bin(value: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """upper_bound(edges, value) - 1, as CMSSW bins the chi2 fields (values below 0 -> bin 0)."""
    return np.maximum(np.searchsorted(np.asarray(edges), np.asarray(value, dtype=np.float64), "right") - 1, 0)


def pack(fields: dict[str, np.ndarray]) -> np.ndarray:
    """(..., 3) uint32 words from integer field values (signed ones as negative ints); a field
    not given is 0. Values are masked to their width (callers saturate first)."""
    shape = np.shape(next(iter(fields.values())))
    words = np.zeros((*shape, 3), dtype=np.uint64)
    for name, values in fields.items():
        f = FIELDS[name]
        raw = np.asarray(values, dtype=np.int64) & ((1 << f.bits) - 1)
        words[..., f.word] |= raw.astype(np.uint64) << np.uint64(f.shift)
    return words.astype(np.uint32)


def unpack(words: np.ndarray) -> dict[str, np.ndarray]:
    """Integer field values (int64, signed fields sign-extended) of (..., 3) uint32 words."""
    words = np.asarray(words, dtype=np.uint32).astype(np.int64)
    out = {}
    for name, f in FIELDS.items():
        raw = (words[..., f.word] >> f.shift) & ((1 << f.bits) - 1)
        if f.signed:
            raw = np.where(raw >= 1 << (f.bits - 1), raw - (1 << f.bits), raw)
        out[name] = raw
    return out


def sector_of(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sector 0..8, phi relative to the sector centre) of global phi values: the nearest
    centre sector * 2 pi / 9; the local phi is wrapped into (-pi, pi]."""
    phi = np.asarray(phi, dtype=np.float64)
    sector = np.mod(np.round(phi / SECTOR_WIDTH), N_SECTORS).astype(np.int64)
    local = phi - sector * SECTOR_WIDTH
    local = local - 2 * math.pi * np.round(local / (2 * math.pi))
    return sector, local


def encode_tracks(
    rinv: np.ndarray,
    phi: np.ndarray,
    tanl: np.ndarray,
    z0_cm: np.ndarray,
    d0_cm: np.ndarray,
    chi2_rphi: np.ndarray,
    chi2_rz: np.ndarray,
    bend_chi2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(words (..., 3) uint32, sector (...) uint8) of tracks given in physical units: Rinv
    [1/cm], global phi [rad], tan(lambda), z0 and d0 [cm], chi2s. Valid bit set; MVA and hit
    pattern fields 0 (not modelled)."""
    sector, local = sector_of(phi)
    words = pack(
        {
            "valid": np.ones(np.shape(rinv), dtype=np.int64),
            "rinv": digitize_signed(rinv, 15, STEP_RINV),
            "phi": digitize_signed(local, 12, STEP_PHI0),
            "tanl": digitize_signed(tanl, 16, STEP_TANL),
            "z0": digitize_signed(z0_cm, 12, STEP_Z0),
            "d0": digitize_signed(d0_cm, 13, STEP_D0),
            "chi2_rphi": chi2_bin(chi2_rphi, CHI2RPHI_BINS),
            "chi2_rz": chi2_bin(chi2_rz, CHI2RZ_BINS),
            "bend_chi2": chi2_bin(bend_chi2, BENDCHI2_BINS),
        }
    )
    return words, sector.astype(np.uint8)


def decode_tracks(words: np.ndarray, sector: np.ndarray) -> dict[str, np.ndarray]:
    """Physical values (bin centres) of track words: valid, rinv, pt, phi (global), tanl,
    eta, z0_cm, d0_cm and the chi2 bin numbers."""
    f = unpack(words)
    rinv = undigitize_signed(f["rinv"], STEP_RINV)
    tanl = undigitize_signed(f["tanl"], STEP_TANL)
    phi = undigitize_signed(f["phi"], STEP_PHI0) + np.asarray(sector, dtype=np.float64) * SECTOR_WIDTH
    return {
        "valid": f["valid"].astype(bool),
        "rinv": rinv,
        "pt": PT_FROM_RINV / np.abs(rinv),
        "phi": np.angle(np.exp(1j * phi)),
        "tanl": tanl,
        "eta": np.arcsinh(tanl),
        "z0_cm": undigitize_signed(f["z0"], STEP_Z0),
        "d0_cm": undigitize_signed(f["d0"], STEP_D0),
        "chi2_rphi": f["chi2_rphi"],
        "chi2_rz": f["chi2_rz"],
        "bend_chi2": f["bend_chi2"],
    }


def jet_word(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> dict[str, np.ndarray]:
    """The trigger's jet as integers: pT (LSB 0.25 GeV, unsigned 16 bits, rounded down and
    saturated), eta and phi (LSB pi/720, rounded to nearest, signed 12 and 11 bits)."""
    pt_q = np.clip(np.floor(np.asarray(pt, dtype=np.float64) / JET_PT_LSB), 0, 2**JET_PT_BITS - 1)
    eta_q = np.clip(np.round(np.asarray(eta, dtype=np.float64) / JET_ETAPHI_LSB), -2048, 2047)
    phi_q = np.clip(np.round(np.asarray(phi, dtype=np.float64) / JET_ETAPHI_LSB), -1024, 1023)
    return {"pt": pt_q.astype(np.int64), "eta": eta_q.astype(np.int64), "phi": phi_q.astype(np.int64)}


def vertex_word(z_cm: np.ndarray) -> np.ndarray:
    """The trigger's primary-vertex z in the track word's Z0 format (signed 12 bits)."""
    return digitize_signed(z_cm, 12, STEP_Z0)
