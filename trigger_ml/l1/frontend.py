"""The trigger-level front end of ``trigger_top``: L1 track words in, the network's inputs out
(``l1_preprocess.h``), following the decision branch's front-end protocol
(trigger_ml/decision/frontend.py, docs/decision.md) attribute for attribute.

It does not subclass the protocol's ``FrontEnd`` so that it works whether or not that branch is
merged; ``front_end_for(config)`` returns it for ``inputs.tracks == "l1"`` once wired. One
difference: the words of a jet are not a function of the network's inputs (the protocol's
``words(network_inputs)``); they come from the sample (:meth:`words_of_sample`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.cost.sections import make_section
from trigger_ml.errors import TriggerMLError
from trigger_ml.l1 import hls
from trigger_ml.l1.inputs import sample_inputs, spec_for
from trigger_ml.l1.preprocess import L1Preprocessing, preprocess

LUT_LEVELS_PER_CYCLE_5NS = 8
"""ASSUMPTION (not measured): logic levels (LUT + local routing, ~0.6 ns each on UltraScale+)
one 5 ns clock cycle holds; turns Yosys' measured depth into an estimated latency."""


class TrackWordFrontEnd:
    """``inputs.tracks: l1``: the top takes n_in track words, their sectors, the jet and the vertex."""

    name = "l1_track_words"

    def __init__(self, config: ModelConfig, interface: Any = None, n_in: int = 32) -> None:
        if config.inputs.tracks != "l1":
            raise TriggerMLError(f"{config.name}: the track-word front end is for inputs.tracks l1", "")
        self.config = config
        self.interface = interface
        self.preprocessing: L1Preprocessing = spec_for(config, n_in)

    @property
    def n_input(self) -> str:
        return f"{self.preprocessing.max_tracks}*{hls.N_FEATURES}"

    @property
    def files(self) -> dict[str, str]:
        return {hls.HEADER_NAME: hls.header(self.preprocessing)}

    @property
    def includes(self) -> list[str]:
        return [f'"{hls.HEADER_NAME}"']

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

    def words(self, network_inputs: np.ndarray) -> np.ndarray:
        raise TriggerMLError(
            "the words of an L1 jet are not a function of the network's inputs",
            "take them from the sample with TrackWordFrontEnd.words_of_sample(jets, tracks)",
        )

    def words_of_sample(self, jets: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """int64 (n, n_words): the flat layout of an L1 sample's jets (trigger_ml.l1.hls.flat_words)."""
        return hls.flat_words(*sample_inputs(jets, tracks))

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

    def cost(self, clock_period_ns: float, block: dict[str, Any] | None = None) -> dict[str, Any]:
        """The block's cost section from :func:`trigger_ml.l1.rtl.block_cost` (Yosys, counted;
        run it if ``block`` is not given: minutes)."""
        if block is None:
            from trigger_ml.l1.rtl import block_cost

            block = block_cost(self.preprocessing)
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
        return {
            "front_end": self.name,
            "trigger_top_inputs": self.parameters,
            "note": "CMS Phase-2 L1 track words (TTTrack_TrackWord.h layout) and the trigger's jet and "
            "vertex words; docs/l1-tracks.md",
            "n_in": self.preprocessing.n_in,
            "max_tracks": self.preprocessing.max_tracks,
        }
