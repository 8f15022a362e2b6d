"""A boosted ensemble as arrays, evaluated in float (the trees as trained) and in fixed point
(the trees as conifer's firmware holds them: the emulator the C simulation must equal).

The source of truth is conifer's own description of the trained ensemble (its sklearn
converter's dictionary: per boosting round one tree per class, leaf values already multiplied
by the learning rate, ``init_predict``, splitting convention ``<=``), saved as ``trees.json``.

Fixed point as conifer's HLS code computes it (``BDT_unrolled.h``): a threshold and a leaf
value are C++ double literals converted to ``ap_fixed<W, I>`` with the default modes AP_TRN
(towards minus infinity) and AP_WRAP; a node compares the input ``x <= threshold`` exactly;
each class's score is ``init_predict`` plus the sum of its trees' leaves, every partial sum in
``score_t`` (wrapping, so the order of the adder tree does not change the result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_ml.config import FixedPoint
from trigger_ml.errors import TriggerMLError

LEAF = -2
"""conifer's (and scikit-learn's) feature index of a leaf."""

CHUNK = 20_000
"""Jets evaluated at once (bounds the memory of the (jets, trees) node arrays)."""


def fractional_bits(fp: FixedPoint) -> int:
    return fp.bits - 1 - fp.integer


def hls_type(fp: FixedPoint) -> str:
    """The ``ap_fixed`` of a QKeras-convention type (integer bits exclude the sign)."""
    return f"ap_fixed<{fp.bits},{fp.integer + 1}>"


def to_codes(values: np.ndarray, fp: FixedPoint) -> np.ndarray:
    """int64 codes of ``values`` converted to ``fp`` with AP_TRN and AP_WRAP, as
    ``ap_fixed<W, I>(double)`` does."""
    scaled = np.floor(np.asarray(values, dtype=np.float64) * 2.0 ** fractional_bits(fp))
    codes = scaled.astype(np.int64)
    return wrap(codes, fp.bits)


def wrap(codes: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 ``codes`` to ``bits`` bits."""
    half = np.int64(1) << np.int64(bits - 1)
    return ((codes + half) & ((half << np.int64(1)) - 1)) - half


@dataclass(frozen=True)
class Ensemble:
    """Every tree padded to the same number of nodes; trees ordered round by round, class by class."""

    feature: np.ndarray  # (n_trees, n_nodes) int64, LEAF for leaves and padding
    threshold: np.ndarray  # (n_trees, n_nodes) float64
    value: np.ndarray  # (n_trees, n_nodes) float64 (learning rate included)
    left: np.ndarray  # (n_trees, n_nodes) int64, -1 for leaves
    right: np.ndarray
    tree_class: np.ndarray  # (n_trees,) class of each tree
    init_predict: np.ndarray  # (n_classes,)
    n_features: int
    max_depth: int

    @classmethod
    def from_conifer(cls, document: dict[str, Any]) -> Ensemble:
        if document.get("splitting_convention", "<=") != "<=":
            raise TriggerMLError("trees.json: only the '<=' splitting convention is supported", "retrain")
        trees = [(ic, tree) for rnd in document["trees"] for ic, tree in enumerate(rnd)]
        n_nodes = max(len(tree["feature"]) for _, tree in trees)
        shape = (len(trees), n_nodes)
        feature = np.full(shape, LEAF, dtype=np.int64)
        threshold = np.zeros(shape)
        value = np.zeros(shape)
        left = np.full(shape, -1, dtype=np.int64)
        right = np.full(shape, -1, dtype=np.int64)
        for i, (_, tree) in enumerate(trees):
            n = len(tree["feature"])
            feature[i, :n] = tree["feature"]
            threshold[i, :n] = tree["threshold"]
            value[i, :n] = tree["value"]
            left[i, :n] = tree["children_left"]
            right[i, :n] = tree["children_right"]
        return cls(
            feature=feature,
            threshold=threshold,
            value=value,
            left=left,
            right=right,
            tree_class=np.array([ic for ic, _ in trees], dtype=np.int64),
            init_predict=np.asarray(document["init_predict"], dtype=np.float64),
            n_features=int(document["n_features"]),
            max_depth=int(document["max_depth"]),
        )

    @property
    def n_trees(self) -> int:
        return len(self.tree_class)

    @property
    def n_classes(self) -> int:
        return len(self.init_predict)

    @property
    def n_splits(self) -> int:
        """Comparator nodes (non-leaf nodes) of all trees."""
        return int(np.count_nonzero(self.feature != LEAF))

    @property
    def n_leaves(self) -> int:
        return int(np.count_nonzero((self.feature == LEAF) & (self.left == -1) & self._real_nodes()))

    def _real_nodes(self) -> np.ndarray:
        # padding nodes are leaves with value 0 that no path reaches: count those reached
        reached = np.zeros(self.feature.shape, dtype=bool)
        reached[:, 0] = True
        for node in range(self.feature.shape[1]):
            rows = reached[:, node] & (self.left[:, node] >= 0)
            idx = np.nonzero(rows)[0]
            reached[idx, self.left[idx, node]] = True
            reached[idx, self.right[idx, node]] = True
        return reached

    def leaves(self, x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """(n_jets, n_trees) leaf index of each jet in each tree: ``x <= threshold`` goes left.
        ``x`` and ``thresholds`` are compared exactly (both float64 holding exact values)."""
        x = np.asarray(x, dtype=np.float64)
        trees = np.arange(self.n_trees)
        out = np.empty((len(x), self.n_trees), dtype=np.int64)
        for start in range(0, len(x), CHUNK):
            chunk = x[start : start + CHUNK]
            node = np.zeros((len(chunk), self.n_trees), dtype=np.int64)
            rows = np.arange(len(chunk))[:, None]
            for _ in range(self.max_depth):
                feat = self.feature[trees, node]
                inner = feat != LEAF
                values = chunk[rows, np.where(inner, feat, 0)]
                go_left = values <= thresholds[trees, node]
                child = np.where(go_left, self.left[trees, node], self.right[trees, node])
                node = np.where(inner, child, node)
            out[start : start + CHUNK] = node
        return out

    def float_logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The trees as trained (float64): logits (n_jets, n_classes) and the leaves."""
        leaves = self.leaves(x, self.threshold)
        values = self.value[np.arange(self.n_trees), leaves]
        logits = np.tile(self.init_predict, (len(x), 1))
        for c in range(self.n_classes):
            logits[:, c] += values[:, self.tree_class == c].sum(axis=1)
        return logits, leaves


@dataclass(frozen=True)
class QuantizedEnsemble:
    """The ensemble with conifer's fixed-point thresholds and scores: the bit-exact emulator."""

    ensemble: Ensemble
    input_type: FixedPoint
    threshold_type: FixedPoint
    score_type: FixedPoint

    @property
    def threshold_values(self) -> np.ndarray:
        step = 2.0 ** -fractional_bits(self.threshold_type)
        return to_codes(self.ensemble.threshold, self.threshold_type).astype(np.float64) * step

    @property
    def value_codes(self) -> np.ndarray:
        return to_codes(self.ensemble.value, self.score_type)

    @property
    def init_codes(self) -> np.ndarray:
        return to_codes(self.ensemble.init_predict, self.score_type)

    @property
    def score_step(self) -> float:
        return 2.0 ** -fractional_bits(self.score_type)

    def input_values(self, x: np.ndarray) -> np.ndarray:
        """Inputs as ``input_t`` holds them (the C simulation converts the doubles it is given)."""
        step = 2.0 ** -fractional_bits(self.input_type)
        return to_codes(x, self.input_type).astype(np.float64) * step

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Firmware logits (exact multiples of the score step) and the leaves."""
        ens = self.ensemble
        leaves = ens.leaves(self.input_values(x), self.threshold_values)
        codes = self.value_codes[np.arange(ens.n_trees), leaves]
        out = np.tile(self.init_codes, (len(x), 1))
        for c in range(ens.n_classes):
            out[:, c] += codes[:, ens.tree_class == c].sum(axis=1)
        return wrap(out, self.score_type.bits).astype(np.float64) * self.score_step, leaves

    def score_range_fits(self) -> bool:
        """Can no sum of leaves (one per tree) and init_predict leave the score type's range?"""
        ens = self.ensemble
        codes = self.value_codes.astype(np.float64)
        reached = ens._real_nodes() & (ens.left == -1)
        low = np.where(reached, codes, np.inf).min(axis=1)
        high = np.where(reached, codes, -np.inf).max(axis=1)
        limit = 2.0 ** (self.score_type.bits - 1)
        for c in range(ens.n_classes):
            mine = ens.tree_class == c
            lo = self.init_codes[c] + low[mine].sum()
            hi = self.init_codes[c] + high[mine].sum()
            if lo < -limit or hi > limit - 1:
                return False
        return math.isfinite(limit)
