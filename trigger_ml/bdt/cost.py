"""Latency and resources of a conifer ensemble from a per-node model (source ``estimate``).

conifer's fully unrolled HLS design (arXiv:2002.02534, Summers et al., JINST 15 (2020) P05026;
``BDT_unrolled.h``) evaluates every node's comparison in parallel, turns them into one active
leaf per tree, and sums each class's leaf scores with a balanced adder tree. Counted here:

* comparator: one per split node, an input-width comparison with a constant, ⌈W_in / 2⌉ LUT6
  (two bits per LUT on the carry chain);
* leaf selection: per tree and score bit, a function of the tree's split bits, ⌈(s − 1) / 5⌉
  LUT6 for s split bits (a tree of 6-input LUTs), for the bits where some leaf is non-zero;
* adder tree: per class, one W_score-bit adder per tree (init_predict included), W_score LUTs;
* registers: the comparison bits, the selected leaf scores, every adder level's sums;
* latency: one cycle of comparisons, one of leaf selection, one per adder level
  (⌈log2(trees per class + 1)⌉); II 1; no DSP (no multiplications).

Without Vivado no vendor figure exists here (conifer's HLS project has no estimate of its own);
docs/bdt.md says what this model is checked against and what is not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trigger_ml.bdt.ensemble import LEAF, QuantizedEnsemble

TOOL = "trigger_ml.bdt.cost (per-node comparator + leaf-select + adder-tree model of conifer's unrolled HLS)"


def bdt_cost(quantized: QuantizedEnsemble, clock_period_ns: float, part: str) -> dict[str, Any]:
    """The ``estimate`` cost section (trigger_ml.artefacts.CostSection) of ``quantized``."""
    ens = quantized.ensemble
    w_in = quantized.input_type.bits
    w_score = quantized.score_type.bits
    splits_per_tree = np.count_nonzero(ens.feature != LEAF, axis=1)
    comparator_lut = int(splits_per_tree.sum()) * math.ceil(w_in / 2)
    select_lut = 0
    codes = quantized.value_codes
    leaf = ens.left == -1
    for t in range(ens.n_trees):
        s = int(splits_per_tree[t])
        leaf_codes = codes[t][leaf[t]] & ((1 << w_score) - 1)
        used_bits = int(np.count_nonzero(np.bitwise_or.reduce(leaf_codes) >> np.arange(w_score) & 1))
        select_lut += used_bits * max(1, math.ceil((s - 1) / 5))
    per_class = [int(np.count_nonzero(ens.tree_class == c)) for c in range(ens.n_classes)]
    adder_lut = sum(n * w_score for n in per_class)
    levels = max(math.ceil(math.log2(n + 1)) for n in per_class)
    adder_ff = 0
    for n in per_class:
        width = n + 1
        while width > 1:
            width = math.ceil(width / 2)
            adder_ff += width * w_score
    ff = int(splits_per_tree.sum()) + ens.n_trees * w_score + adder_ff
    latency = 2 + levels
    return {
        "source": "estimate",
        "tool": TOOL,
        "tool_version": None,
        "part": part,
        "clock_period_ns": clock_period_ns,
        "estimated_clock_period_ns": None,
        "latency_cycles": {"min": latency, "max": latency},
        "latency_ns": {"min": latency * clock_period_ns, "max": latency * clock_period_ns},
        "initiation_interval": 1,
        "resources": {
            "LUT": comparator_lut + select_lut + adder_lut,
            "FF": ff,
            "DSP": 0,
            "BRAM_18K": 0,
            "URAM": 0,
        },
        "available": None,
        "logic_synthesis": None,
        "per_layer": None,
        "notes": [
            "analytic per-node model of conifer's unrolled HLS design (docs/bdt.md); not a vendor figure",
            "Vivado/Vitis HLS is absent on this machine: no C synthesis report to read",
            f"LUT: comparators {comparator_lut} ({int(splits_per_tree.sum())} splits), leaf selection "
            f"{select_lut} ({ens.n_trees} trees), adder trees {adder_lut} ({levels} levels)",
        ],
    }
