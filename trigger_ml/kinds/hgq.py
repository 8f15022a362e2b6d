"""The HGQ kind: high-granularity quantization-aware training (``quantization.kind: hgq``).

Every weight and activation channel learns its bit width; integer bits come from the ranges
traced on the training inputs after the fit. The firmware reproduces HGQ's *proxy* model
(its quantized weights and learned types), converted through hls4ml's bit-exact flow, so
only the input type is set here (trigger_ml.hgq_models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from trigger_ml.config import ModelConfig
from trigger_ml.hls.precision import fixed_type
from trigger_ml.kinds.base import NetworkKind
from trigger_ml.models import INPUT_NAMES


class HGQ(NetworkKind):
    name = "hgq"
    summary = "HGQ"

    def claims(self, config: ModelConfig) -> bool:
        return config.hls.enabled and config.quantization.is_hgq

    def build(self, config: ModelConfig, quantized: bool) -> tf.keras.Model:
        if not quantized:
            return super().build(config, quantized)
        from trigger_ml.hgq_models import build_hgq_model

        return build_hgq_model(config)

    def callbacks(self, config: ModelConfig, quantized: bool) -> list[tf.keras.callbacks.Callback]:
        from trigger_ml.hgq_models import hgq_callbacks

        return hgq_callbacks() if quantized else []

    def after_fit(
        self, model: tf.keras.Model, config: ModelConfig, x_train: np.ndarray, quantized: bool
    ) -> None:
        if quantized:  # integer bits from the ranges on the training inputs
            from trigger_ml.hgq_models import trace_ranges

            trace_ranges(model, config, x_train)

    def predictor(self, model: tf.keras.Model, config: ModelConfig, quantized: bool) -> tf.keras.Model:
        if not quantized:
            return model
        from trigger_ml.hgq_models import to_proxy

        return to_proxy(model, config)  # what the firmware computes

    def load(self, config: ModelConfig, weights: Path, quantized: bool) -> tf.keras.Model:
        if not quantized:
            return super().load(config, weights, quantized)
        from trigger_ml.hgq_models import load_proxy

        return load_proxy(config, weights)

    def training_metrics(
        self, model: tf.keras.Model, x_test: np.ndarray, logits: np.ndarray
    ) -> dict[str, Any]:
        from trigger_ml.hgq_models import hgq_metrics

        return {"hgq": hgq_metrics(model, x_test, logits)}

    def count_parameters(self, model: tf.keras.Model, quantized: bool) -> int:
        if not quantized:
            return super().count_parameters(model, quantized)
        from trigger_ml.hgq_models import count_hgq_parameters

        return count_hgq_parameters(model)

    def configure_hls(self, layers: dict[str, Any], config: ModelConfig) -> None:
        # The proxy's learned types hold everything else, pooling included.
        layers[INPUT_NAMES[config.architecture.kind]]["Precision"]["result"] = fixed_type(
            config.quantization.input
        )
