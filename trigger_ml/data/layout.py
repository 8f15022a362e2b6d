"""The record layout of the generated jet files: dtypes, codes and the format version.

Every ``jets.h5`` (and every shard) holds a ``jets`` dataset of JET_DTYPE (or
JET_DTYPE_EXTENDED) and a ``tracks`` dataset of TRACK_DTYPE, ``max_tracks`` per jet; the
codes below are the values of their ``process`` and ``origin`` fields. docs/data-formats.md
describes the layout in full.
"""

from __future__ import annotations

import numpy as np

FORMAT_VERSION = 1
"""Version of the file layout and generation recipe; part of every digest."""
PROCESS_CODES = {"ttbar": 0, "dijet": 1}
"""Values of the jets' ``process`` field (present in extended-layout files only)."""

JET_DTYPE = np.dtype(
    [
        ("pt", "<f4"),
        ("eta", "<f4"),
        ("phi", "<f4"),
        ("mass", "<f4"),
        ("flavour", "i1"),
        ("n_tracks", "<i2"),
        ("hadron_pt", "<f4"),
        ("hadron_lxy_mm", "<f4"),
        ("event_number", "<i8"),
    ]
)
JET_DTYPE_EXTENDED = np.dtype(JET_DTYPE.descr + [("process", "i1"), ("n_pileup", "<i2")])
"""Jet layout of samples with dijets or pile-up: adds the process code and the number of
pile-up interactions overlaid on the jet's event. Pure tt-bar without pile-up keeps
JET_DTYPE, the layout of the first release."""
TRACK_DTYPE = np.dtype(
    [
        ("valid", "?"),
        ("pt", "<f4"),
        ("eta", "<f4"),
        ("phi", "<f4"),
        ("charge", "i1"),
        ("d0_mm", "<f4"),
        ("z0sintheta_mm", "<f4"),
        ("d0_sigma_mm", "<f4"),
        ("z0sintheta_sigma_mm", "<f4"),
        ("dr", "<f4"),
        ("ptfrac", "<f4"),
        ("origin", "i1"),
    ]
)
TRACK_DTYPE_L1 = np.dtype(
    TRACK_DTYPE.descr + [("word0", "<u4"), ("word1", "<u4"), ("word2", "<u4"), ("sector", "u1")]
)
"""Track layout of L1 samples (``tracks: l1``): adds the 96-bit L1 track word as three uint32
(bits 0-31, 32-63, 64-95; trigger_ml.l1.word) and its phi sector (0-8)."""
L1_JET_FIELDS = [("l1_pt", "<u2"), ("l1_eta", "<i2"), ("l1_phi", "<i2"), ("l1_vertex_z0", "<i2")]
"""Jet fields of L1 samples: the trigger's jet pT (LSB 0.25 GeV), eta and phi (LSB pi/720) and
the primary-vertex z in the track word's Z0 format."""
JET_DTYPE_L1 = np.dtype(JET_DTYPE_EXTENDED.descr + L1_JET_FIELDS)
# Values of the tracks' ``origin`` field.
ORIGIN_PRIMARY, ORIGIN_HEAVY_FLAVOUR, ORIGIN_OTHER_SECONDARY, ORIGIN_FAKE, ORIGIN_PILEUP = 0, 1, 2, 3, 4
ORIGIN_MATERIAL = 5
"""Secondary of a photon conversion or hadronic interaction in the detector material."""
