"""Fixed-point types in hls4ml's notation: the QKeras convention translated, and the exact
types of a Deep Set's track average (rule 3 of trigger_ml.hls.convert)."""

from __future__ import annotations

import math

from trigger_ml.config import FixedPoint, ModelConfig


def fixed_type(fp: FixedPoint, signed: bool = True, quantizer_modes: bool = True) -> str:
    """hls4ml precision string of a QKeras-convention fixed-point type."""
    modes = ",RND_CONV,SAT" if quantizer_modes else ""
    if signed:
        return f"fixed<{fp.bits},{fp.integer + 1}{modes}>"
    return f"ufixed<{fp.bits},{fp.integer}{modes}>"


def pooling_types(config: ModelConfig) -> dict[str, str]:
    """Exact accumulator and result types of the track average (see module docstring, 3)."""
    k = int(math.log2(config.inputs.max_tracks))
    q = config.quantization
    if config.architecture.phi_widths:  # pooled values come out of the last Φ layer's quantized ReLU
        last = q.activation_for(f"phi_{len(config.architecture.phi_widths)}")
        width, integer, kind = last.bits, last.integer, "ufixed"
    else:
        width, integer, kind = q.input.bits, q.input.integer + 1, "fixed"
    return {
        "accum": f"{kind}<{width + 2 * k},{integer + k}>",
        "result": f"{kind}<{width + k},{integer}>",
    }
