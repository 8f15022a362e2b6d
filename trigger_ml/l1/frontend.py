"""The trigger-level front end of ``trigger_top``: L1 track words in, the network's inputs out
(``l1_preprocess.h``), one implementation of the decision stage's front-end protocol
(trigger_ml/decision/frontend.py, docs/decision.md); ``front_end_for`` returns it for
``inputs.tracks: l1``.

Its words are the sample's (:meth:`TrackWordFrontEnd.words` reads the jets' L1 records, not the
network's inputs), its hostile vectors are track words (trigger_ml.l1.hostile), and its cost is
the Yosys count of the block's parts (trigger_ml.l1.rtl), kept in the workspace's cache under
the hash of the block's Verilog.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import make_section
from trigger_ml.data.settings import GeneratorSettings
from trigger_ml.decision.frontend import FrontEnd, FrontEndJets
from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import Interface
from trigger_ml.l1 import hls
from trigger_ml.l1.hostile import DEFAULT_SEED, hostile_jets
from trigger_ml.l1.inputs import sample_inputs, spec_for
from trigger_ml.l1.preprocess import L1Preprocessing, preprocess

SAMPLE_SLOTS = GeneratorSettings.model_fields["max_tracks"].default
"""Track words per jet in a generated L1 sample (the generator's ``max_tracks``): the top's
``L1_N_IN``."""

LUT_LEVELS_PER_CYCLE_5NS = 8
"""ASSUMPTION (not measured): logic levels (LUT + local routing, ~0.6 ns each on UltraScale+)
one 5 ns clock cycle holds; turns Yosys' measured depth into an estimated latency."""


class TrackWordFrontEnd(FrontEnd):
    """``inputs.tracks: l1``: the top takes n_in track words, their sectors, the jet and the vertex."""

    name = "l1_track_words"
    hostile_from_network = False

    def __init__(
        self, config: ModelConfig, interface: Interface | None = None, n_in: int = SAMPLE_SLOTS
    ) -> None:
        if config.inputs.tracks != "l1":
            raise TriggerMLError(
                f"{config.name}: the track-word front end is for inputs.tracks l1",
                "use front_end_for(config, interface)",
            )
        super().__init__(config, interface)  # type: ignore[arg-type]
        self.preprocessing: L1Preprocessing = spec_for(config, n_in)
        if interface is not None:
            port = interface.input.fixed
            p = self.preprocessing
            shape = (port.width, port.fractional_bits, interface.input.elements)
            if shape != (p.out_bits, p.out_frac, p.max_tracks * hls.N_FEATURES):
                raise TriggerMLError(
                    f"{config.name}: the network's input port ({port.c_type}[{interface.input.elements}]) is not "
                    f"the L1 preprocessing's output (ap_fixed<{p.out_bits},{p.out_bits - p.out_frac}>"
                    f"[{p.max_tracks * hls.N_FEATURES}])",
                    f"rebuild the HLS project: `trigger-ml hls --force '{config.name}'`",
                )

    @property
    def n_input(self) -> str:
        return f"{self.preprocessing.max_tracks}*{hls.N_FEATURES}"

    @property
    def files(self) -> dict[str, str]:
        return {hls.HEADER_NAME: hls.header(self.preprocessing)}

    @property
    def includes(self) -> list[str]:
        return [hls.HEADER_NAME]

    @property
    def parameters(self) -> list[str]:
        return [
            "const l1_track_word_t track_words[L1_N_IN]",
            "const l1_sector_t sectors[L1_N_IN]",
            "l1_jet_pt_t jet_pt",
            "l1_jet_eta_t jet_eta",
            "l1_jet_phi_t jet_phi",
            "l1_z0_t vertex_z0",
        ]

    @property
    def fill_network_input(self) -> str:
        b = self.preprocessing.out_bits
        return (
            f"    l1_code_t l1_codes[{self.n_input}];\n"
            "    l1_preprocess(track_words, sectors, jet_pt, jet_eta, jet_phi, vertex_z0, l1_codes);\n"
            f"    for (int i = 0; i < {self.n_input}; i++) {{\n"
            "        #pragma HLS UNROLL\n"
            f"        x[i].range({b - 1}, 0) = l1_codes[i].range({b - 1}, 0);\n"
            "    }\n"
        )

    @property
    def n_words(self) -> int:
        return hls.n_words(self.preprocessing)

    @property
    def testbench_declarations(self) -> str:
        return (
            "    l1_track_word_t track_words[L1_N_IN];\n    l1_sector_t sectors[L1_N_IN];\n"
            "    l1_jet_pt_t jet_pt; l1_jet_eta_t jet_eta; l1_jet_phi_t jet_phi; l1_z0_t vertex_z0;\n"
        )

    @property
    def testbench_load(self) -> str:
        return (
            "        for (int i = 0; i < L1_N_IN; i++) {\n"
            "            track_words[i].range(31, 0) = (unsigned long long)words[4 * i];\n"
            "            track_words[i].range(63, 32) = (unsigned long long)words[4 * i + 1];\n"
            "            track_words[i].range(95, 64) = (unsigned long long)words[4 * i + 2];\n"
            "            sectors[i] = words[4 * i + 3];\n"
            "        }\n"
            "        jet_pt = words[4 * L1_N_IN]; jet_eta = words[4 * L1_N_IN + 1];\n"
            "        jet_phi = words[4 * L1_N_IN + 2]; vertex_z0 = words[4 * L1_N_IN + 3];\n"
        )

    def words(self, jets: FrontEndJets) -> np.ndarray:
        """int64 (n, n_words): the flat layout of the jets' L1 records (trigger_ml.l1.hls.flat_words)."""
        inputs = sample_inputs(jets.jets, jets.tracks)
        if inputs.words.shape[1] != self.preprocessing.n_in:
            raise TriggerMLError(
                f"the sample has {inputs.words.shape[1]} track words per jet, trigger_top takes {self.preprocessing.n_in}",
                "generate the sample with the generator's default max_tracks",
            )
        return hls.flat_words(*inputs)

    def hostile(self) -> tuple[np.ndarray, tuple[str, ...]]:
        inputs, families = hostile_jets(np.random.default_rng(DEFAULT_SEED), self.preprocessing)
        return hls.flat_words(*inputs), families

    def network_codes(self, words: np.ndarray) -> np.ndarray:
        codes = preprocess(self.preprocessing, *hls.split_words(words, self.preprocessing))
        return codes.reshape(len(codes), -1)

    def shuffled(self, words: np.ndarray, seed: int) -> np.ndarray:
        """The same jets with their word slots (word and sector together) permuted."""
        words = np.asarray(words, np.int64)
        n_in = self.preprocessing.n_in
        slots = words[:, : 4 * n_in].reshape(len(words), n_in, 4)
        perm = np.argsort(np.random.default_rng(seed).random((len(words), n_in)), axis=1)
        slots = np.take_along_axis(slots, perm[..., None], axis=1)
        return np.concatenate([slots.reshape(len(words), -1), words[:, 4 * n_in :]], axis=1)

    def identity(self) -> dict[str, Any]:
        from trigger_ml.fileio import sha256_of_obj
        from trigger_ml.l1.rtl import PARTS

        verilog = {name: make(self.preprocessing) for name, make in PARTS.items()}
        return {**super().identity(), "verilog_sha256": sha256_of_obj(verilog)}

    def cost(
        self, clock_period_ns: float, cache_dir: Path | None = None, block: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The block's cost section from :func:`trigger_ml.l1.rtl.block_cost` (Yosys, counted;
        minutes, so kept in ``cache_dir`` when given; ``block`` gives the figures instead)."""
        if block is None:
            from trigger_ml.l1.rtl import block_cost, cached_block_cost

            block = (
                cached_block_cost(self.preprocessing, cache_dir)
                if cache_dir
                else block_cost(self.preprocessing)
            )
        levels = int(block["lut_levels_on_path"])
        cycles = math.ceil(levels / (LUT_LEVELS_PER_CYCLE_5NS * clock_period_ns / 5.0))
        return make_section(
            source="estimate",
            tool="yosys",
            clock_period_ns=clock_period_ns,
            latency_cycles=(cycles, cycles),
            initiation_interval=1,
            resources={"LUT": int(block["lut"]), "DSP": int(block.get("dsp", 0)), "BRAM_18K": 0},
            notes=[
                f"L1 preprocessing: {block['source']}",
                f"latency: {levels} LUT levels on the path (Yosys ltp) at an ASSUMED "
                f"{LUT_LEVELS_PER_CYCLE_5NS} levels per 5 ns; FF (pipeline registers) not counted",
            ],
        )

    def spec(self) -> dict[str, Any]:
        """The input spec of ``trigger_top``: the track word field by field (bits, LSB in physical
        units), the jet and vertex words, the per-jet word layout of the vectors, the selection."""
        from trigger_ml.l1 import word

        lsb = {
            "rinv": (word.STEP_RINV, "1/cm; pT [GeV] = 0.3 * 3.8 T * 0.01 / abs(Rinv)"),
            "phi": (word.STEP_PHI0, "rad, relative to the centre of the track's phi sector"),
            "tanl": (word.STEP_TANL, "tan(lambda) = sinh(eta)"),
            "z0": (word.STEP_Z0, "cm"),
            "d0": (word.STEP_D0, "cm"),
        }
        bins = {"chi2_rphi": word.CHI2RPHI_BINS, "chi2_rz": word.CHI2RZ_BINS, "bend_chi2": word.BENDCHI2_BINS}
        fields = []
        for f in word.FIELDS.values():
            row: dict[str, Any] = {"name": f.name, "bit_offset": f.offset, "bits": f.bits, "signed": f.signed}
            if f.name in lsb:
                row["lsb"], row["unit"] = lsb[f.name]
                row["digitization"] = "floor(value / lsb), saturated; value = (code + 0.5) * lsb"
            elif f.name in bins:
                row["bin_edges"] = list(bins[f.name])
            elif f.name == "valid":
                row["meaning"] = "1: a track; 0: an empty or invalid slot (not selected)"
            else:
                row["meaning"] = "not used by the preprocessing"
            fields.append(row)
        p = self.preprocessing
        return {
            "front_end": self.name,
            "trigger_top_inputs": self.parameters,
            "source": "CMS Phase-2 L1 track word: CMSSW DataFormats/L1TrackTrigger/interface/TTTrack_TrackWord.h; "
            "jet and vertex words after the L1 correlator's l1ct conventions (docs/l1-tracks.md)",
            "track_word": {
                "bits": word.WORD_BITS,
                "fields": fields,
                "sector": f"ap_uint<4> beside each word: phi sector 0..{word.N_SECTORS - 1} (centre = sector * 2 pi / "
                f"{word.N_SECTORS}); sectors >= {word.N_SECTORS} are not selected",
            },
            "jet_word": {
                "pt": {"type": f"ap_uint<{word.JET_PT_BITS}>", "lsb_gev": word.JET_PT_LSB},
                "eta": {"type": f"ap_int<{word.JET_ETA_BITS}>", "lsb": word.JET_ETAPHI_LSB},
                "phi": {"type": f"ap_int<{word.JET_PHI_BITS}>", "lsb_rad": word.JET_ETAPHI_LSB},
            },
            "vertex_word": {"z0": {"type": "ap_int<12>", "lsb_cm": word.STEP_Z0}},
            "n_in": p.n_in,
            "max_tracks": p.max_tracks,
            "selection": f"valid, sector < {word.N_SECTORS}, dR < {p.dr_max} to the jet, |z0 - vertex z0| < "
            f"{p.dz_max_cm} cm; ordered by |sd0| (ties by the features), the first {p.max_tracks} kept",
            "vector_layout": f"{self.n_words} integers per jet: for each of the {p.n_in} slots the track word's "
            "bits 0-31, 32-63, 64-95 (as unsigned integers) and the sector; then jet pT, eta, phi and vertex "
            "z0 codes (signed)",
            "permutation_invariant": "the output does not depend on the order of the slots (verified on shuffled words)",
        }

    def network_inputs_spec(self) -> dict[str, Any]:
        from trigger_ml.l1.preprocess import D0_SHIFT, LOG_DR_OFFSET, LOG_PTFRAC_OFFSET, Z0_SHIFT
        from trigger_ml.l1.word import STEP_D0, STEP_Z0

        p = self.preprocessing
        unit_d0 = STEP_D0 * 2**D0_SHIFT
        unit_z0 = STEP_Z0 * 2**Z0_SHIFT
        docs = {
            "sd0": (
                "lifetime-signed abs(d0) / sigma(d0); 1/sigma from a table over (abs(Rinv), abs(tanL)) bins of the L1 "
                "resolution parameterisation (docs/l1-tracks.md)",
                "1",
            ),
            "sz0": ("lifetime-signed abs(z0 - vertex z0) / sigma(z0 sin theta), the same table form", "1"),
            "log_ptfrac": (
                f"ln(track pT / jet pT) + {LOG_PTFRAC_OFFSET:g} (shift-based logarithm, 64-entry mantissa table)",
                "1",
            ),
            "log_dr": (
                f"ln(Delta R(track, jet)) + {LOG_DR_OFFSET:g} (same logarithm of Delta R^2, halved)",
                "1",
            ),
            "d0": (
                f"lifetime-signed d0 in units of {unit_d0:g} cm (d0 code >> {D0_SHIFT})",
                f"{unit_d0:g} cm",
            ),
            "z0": (
                f"lifetime-signed z0 - vertex z0 in units of {unit_z0:.6g} cm (dz code >> {Z0_SHIFT})",
                f"{unit_z0:.6g} cm",
            ),
            "valid": ("1 for a selected track; every feature of an empty slot is 0", "1"),
        }
        return {
            "entry": f"the bundle's input is trigger_top's: L1 track words (see trigger_top below); the port "
            f"above is the network's, inside trigger_top, driven by l1_preprocess ({hls.HEADER_NAME})",
            "feature_docs": docs,
            "scaled_value": "the integer preprocessing's code (trigger_ml.l1.preprocess, l1_preprocess.h: one "
            "definition); no offset or scale is fitted (offset 0, scale 1)",
            "tracks": {
                "selection": f"valid bit, sector < 9, Delta R < {p.dr_max} to the trigger jet, |z0 - vertex z0| < "
                f"{p.dz_max_cm} cm, from the {p.n_in} track words of the jet's region",
                "ordering": "by |sd0| descending, ties by the feature vector (descending, lexicographic): the "
                "output does not depend on the order of the words",
                "truncation": f"the first {p.max_tracks} tracks in that order are kept",
                "padding": "slots after the last selected track have every feature code 0",
            },
        }
