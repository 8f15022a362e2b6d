"""Post-training quantization: a float network converted with hls4ml's fixed-point types
(``quantization.enabled: false`` with firmware). The firmware is compared with the float
model; it is not bit-exact by construction, and the report says how far it is."""

from __future__ import annotations

from trigger_ml.config import ModelConfig
from trigger_ml.kinds.base import NetworkKind


class PostTrainingQuantized(NetworkKind):
    name = "ptq"
    summary = "float, PTQ firmware"
    exactness = (
        "none by construction: the float model is rounded onto hls4ml's default fixed-point types, "
        "so the C simulation differs from it (differences reported)"
    )
    claims_exactness = False

    def claims(self, config: ModelConfig) -> bool:
        return config.hls.enabled and not config.quantization.enabled


class FloatReference(NetworkKind):
    """A physics-only reference (``hls.enabled: false``): trained, evaluated, no firmware."""

    name = "float-reference"
    summary = "float"
    firmware_stage = None
    exactness = "no firmware"
    claims_exactness = False

    def claims(self, config: ModelConfig) -> bool:
        return not config.hls.enabled

    def label(self, config: ModelConfig) -> str:
        quantized = "QAT" if config.quantization.enabled else "float"
        return f"{config.architecture.kind}, {quantized}"
