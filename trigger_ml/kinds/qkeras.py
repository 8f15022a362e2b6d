"""QKeras kinds: quantization-aware Deep Sets and dense taggers (the default kinds).

Exactness (trigger_ml.hls.convert): the quantized weights are baked into the model before
conversion, the input layer takes the input quantizer's type, and a Deep Set's track pooling
gets the exact accumulator and result types of its average over 2^k slots.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from trigger_ml.config import ModelConfig
from trigger_ml.hls.precision import fixed_type, pooling_types
from trigger_ml.kinds.base import NetworkKind
from trigger_ml.models import INPUT_NAMES, POOL_NAME, bake_quantized_weights


class _QKerasKind(NetworkKind):
    architecture: str
    summary = "QAT"

    def claims(self, config: ModelConfig) -> bool:
        q = config.quantization
        return (
            config.hls.enabled
            and q.enabled
            and not q.is_hgq
            and config.architecture.kind == self.architecture
            and config.user_model is None
            and config.bdt is None
        )

    def prepare_for_conversion(self, model: tf.keras.Model, config: ModelConfig) -> None:
        bake_quantized_weights(model)

    def configure_hls(self, layers: dict[str, Any], config: ModelConfig) -> None:
        layers[INPUT_NAMES[config.architecture.kind]]["Precision"]["result"] = fixed_type(
            config.quantization.input
        )


class QKerasDeepSet(_QKerasKind):
    """A QKeras Deep Set (DIPS style): Φ per track, average pooling, F."""

    name = "qkeras-deepsets"
    architecture = "deepsets"

    def configure_hls(self, layers: dict[str, Any], config: ModelConfig) -> None:
        super().configure_hls(layers, config)
        if POOL_NAME in layers:
            layers[POOL_NAME]["Precision"] = pooling_types(config)


class QKerasDense(_QKerasKind):
    """A QKeras dense tagger on flat inputs."""

    name = "qkeras-dense"
    architecture = "dense"
