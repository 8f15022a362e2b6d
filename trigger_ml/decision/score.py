"""The b-tag score the firmware computes from its logits, defined once.

With logits ``z = (z_b, z_c, z_l)`` on the network's result type (``ap_fixed<W, I>``, codes
``z * 2^F``, F = W - I fractional bits), the exact discriminant is

    D_b = z_b - logsumexp(z_c + ln f_c, z_l + ln(1 - f_c)),

and the firmware computes its max form

    s = z_b - max(z_c + c_c, z_l + c_l),   c_c = ln f_c, c_l = ln(1 - f_c) rounded onto 2^-F,

with ``max(a, b) <= logsumexp(a, b) <= max(a, b) + ln 2``: s - ln 2 <= D_b <= s (up to the
constants' rounding, at most 2^-(F+1) each). Every intermediate is an exact integer in units
of 2^-F: ``accum`` holds z + c, the max and s without overflow for *any* logits of the
result type (its width is derived from the exact bounds below). The score type keeps the
accumulator's integer bits and ``score_fractional_bits`` (default F: the score is s
exactly; fewer: s truncated towards minus infinity, AP_TRN). A jet is tagged at a working
point when ``score_code >= threshold_code``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_ml.errors import TriggerMLError
from trigger_ml.firmware.interface import FixedType
from trigger_ml.physics import LIGHT, B, C

CONSTANT_ROUNDING = "round half to even onto the result type's grid (2^-F), exact in the accumulator type"


def signed_width(low: int, high: int) -> int:
    """Fewest bits of a two's complement integer holding every value of [low, high]."""
    width = 1
    while not (-(1 << (width - 1)) <= low and high <= (1 << (width - 1)) - 1):
        width += 1
    return width


def constant_code(value: float, fractional_bits: int) -> int:
    """``value`` rounded half to even onto the grid 2^-fractional_bits, as an integer code."""
    return int(np.round(value * 2.0**fractional_bits))


@dataclass(frozen=True)
class ScoreSpec:
    """The decision block's arithmetic: the logits' type, the constants, the exact accumulator
    and the score type. Built by :func:`score_spec` from the result type and f_c."""

    result: FixedType
    f_c: float
    offset_c: int | None
    """Code of ln f_c on 2^-F (None when f_c = 0: the c term is absent)."""
    offset_l: int | None
    """Code of ln(1 - f_c) on 2^-F (None when f_c = 1)."""
    accum: FixedType
    score: FixedType
    accum_bounds: tuple[int, int]
    """Exact range of every intermediate code (z + c, their max, s) over all logits."""

    @property
    def shift(self) -> int:
        """Fractional bits dropped from the accumulator to the score (truncation)."""
        return self.accum.fractional_bits - self.score.fractional_bits

    def to_dict(self) -> dict[str, Any]:
        frac = self.result.fractional_bits
        constants = {}
        for name, code, exact in (
            ("ln_f_c", self.offset_c, math.log(self.f_c) if self.f_c > 0 else None),
            ("ln_1_minus_f_c", self.offset_l, math.log1p(-self.f_c) if self.f_c < 1 else None),
        ):
            constants[name] = (
                None
                if code is None
                else {"code": code, "value": code * 2.0**-frac, "exact": exact, "type": self.accum.c_type}
            )
        return {
            "formula": "score = z_b - max(z_c + ln f_c, z_l + ln(1 - f_c)) (max form of D_b's log-sum-exp)",
            "bound": "score - ln 2 <= D_b <= score, up to the constants' rounding (2^-(F+1) each)",
            "f_c": self.f_c,
            "result_type": self.result.c_type,
            "constants": constants,
            "constant_rounding": CONSTANT_ROUNDING,
            "accum_type": self.accum.c_type,
            "accum_code_bounds": list(self.accum_bounds),
            "score_type": self.score.to_dict(),
            "score_from_accum": "exact"
            if self.shift == 0
            else f"floor(accum_code / 2^{self.shift}) (AP_TRN)",
            "comparison": "tag = score_code >= threshold_code",
        }


def score_spec(result: FixedType, f_c: float, score_fractional_bits: int | None = None) -> ScoreSpec:
    """The decision arithmetic for logits of type ``result`` (a signed or unsigned ap_fixed)."""
    if not 0.0 <= f_c <= 1.0:
        raise TriggerMLError(f"f_c = {f_c} is not in [0, 1]", "set physics.f_c between 0 and 1")
    frac = result.fractional_bits
    low, high = result.code_range
    offsets = [
        constant_code(math.log(f_c), frac) if f_c > 0 else None,
        constant_code(math.log1p(-f_c), frac) if f_c < 1 else None,
    ]
    present = [o for o in offsets if o is not None]
    terms = [(low + o, high + o) for o in present]
    max_low, max_high = max(t[0] for t in terms), max(t[1] for t in terms)
    s_low, s_high = low - max_high, high - max_low
    bounds = (min([s_low, *(t[0] for t in terms)]), max([s_high, *(t[1] for t in terms)]))
    width = signed_width(*bounds)
    accum = FixedType(True, width, width - frac)
    score_frac = frac if score_fractional_bits is None else score_fractional_bits
    if not 0 <= score_frac <= frac:
        raise TriggerMLError(
            f"decision.score_fractional_bits = {score_fractional_bits}: the logits ({result.c_type}) have "
            f"{frac} fractional bits",
            f"choose 0..{frac} (fewer truncate the score, AP_TRN)",
        )
    score = FixedType(True, width - (frac - score_frac), width - frac)
    if max(width, result.width) > 53:
        raise TriggerMLError(
            f"decision accumulator of {width} bits exceeds what float64 carries exactly",
            "the testbench exchanges codes as doubles; narrower logits are needed",
        )
    return ScoreSpec(result, f_c, offsets[0], offsets[1], accum, score, bounds)


def max_form_codes(spec: ScoreSpec, logit_codes: np.ndarray) -> np.ndarray:
    """Score codes (int64, on ``spec.score``) of integer logit codes ``(n, 3)``: the firmware's
    arithmetic, exact integers, vectorised."""
    z = np.asarray(logit_codes, dtype=np.int64)
    terms = [z[:, k] + o for k, o in ((C, spec.offset_c), (LIGHT, spec.offset_l)) if o is not None]
    biggest = terms[0] if len(terms) == 1 else np.maximum(terms[0], terms[1])
    s = z[:, B] - biggest
    return s >> spec.shift  # arithmetic shift: floor, AP_TRN


def logit_codes(spec: ScoreSpec, logits: np.ndarray) -> np.ndarray:
    """Integer codes of logits that lie on the result type's grid (raises if one does not)."""
    scaled = np.asarray(logits, dtype=np.float64) * 2.0**spec.result.fractional_bits
    codes = np.round(scaled).astype(np.int64)
    if not np.array_equal(codes, scaled):
        raise TriggerMLError(
            f"logits are not on the result type {spec.result.c_type}",
            "rebuild the HLS project (`trigger-ml hls MODEL --force`)",
        )
    return codes


def score_values(spec: ScoreSpec, codes: np.ndarray) -> np.ndarray:
    """Float values of score codes."""
    return np.asarray(codes, dtype=np.float64) * spec.score.lsb


def threshold_code(b_codes: np.ndarray, efficiency: float) -> int:
    """The working point's integer code: the smallest score code among the top ``efficiency``
    fraction of b-jets (the rank of :func:`trigger_ml.physics.threshold_at_efficiency`), so
    ``score_code >= code`` keeps at least that fraction of them (more when codes tie)."""
    codes = np.sort(np.asarray(b_codes, dtype=np.int64))
    if len(codes) == 0:
        raise TriggerMLError("no b-jets to set a working point on", "use a sample with b-jets")
    index = int(np.floor((1.0 - efficiency) * len(codes) + 1e-9))
    return int(codes[min(max(index, 0), len(codes) - 1)])


def tag_bits(score_codes: np.ndarray, thresholds: list[int]) -> np.ndarray:
    """The tag word per jet: bit k set when ``score_code >= thresholds[k]``."""
    codes = np.asarray(score_codes, dtype=np.int64)
    word = np.zeros(len(codes), dtype=np.int64)
    for k, threshold in enumerate(thresholds):
        word |= (codes >= threshold).astype(np.int64) << k
    return word
