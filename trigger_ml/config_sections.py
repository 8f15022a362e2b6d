"""The sections of a model configuration (:class:`trigger_ml.config.ModelConfig`): the
fixed-point types and quantization, pruning and training, physics, the firmware decision,
HLS and the BDT peer. Loaded and validated through :mod:`trigger_ml.config`, which re-exports
them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from trigger_ml.schema import StrictModel


class FixedPoint(StrictModel):
    """A signed fixed-point type as QKeras counts it: ``integer`` bits exclude the sign bit."""

    bits: int = Field(ge=2, le=32)
    integer: int = Field(ge=0, le=16)

    @model_validator(mode="after")
    def _fits(self) -> FixedPoint:
        if self.integer > self.bits - 1:
            raise ValueError("integer bits must be at most bits - 1 (one bit is the sign)")
        return self


class LayerQuantization(StrictModel):
    """Per-layer types overriding the model-wide ones; ``activation`` is the type of the
    layer's ReLU (``<layer>_relu``). Unset (None) fields keep the model-wide type."""

    weight: FixedPoint | None = None
    bias: FixedPoint | None = None
    activation: FixedPoint | None = None


class HGQConfig(StrictModel):
    """High-granularity quantization-aware training (HGQ, ``quantization.kind: hgq``): every
    weight and every activation channel learns its own number of fractional bits, integer
    bits come from the ranges traced on the training split, and the loss adds ``beta`` times
    the network's BOPs (bit operations, HGQ's resource estimate). The input type stays
    ``quantization.input``."""

    # Resource regulariser: loss += beta * BOPs.
    beta: float = Field(1e-5, ge=0, le=1)
    # Initial bits of each weight (HGQ shifts them to each weight's magnitude).
    init_bw_k: int = Field(4, ge=1, le=16)
    # Initial fractional bits of each activation channel.
    init_bw_a: int = Field(4, ge=0, le=16)


class QuantizationConfig(StrictModel):
    enabled: bool = True
    input: FixedPoint = FixedPoint(bits=10, integer=3)
    weight: FixedPoint = FixedPoint(bits=8, integer=0)
    bias: FixedPoint = FixedPoint(bits=8, integer=3)
    activation: FixedPoint = FixedPoint(bits=8, integer=3)
    # Per-layer overrides keyed by Dense layer name (phi_1, f_1, dense_1, logits, ...; see
    # dense_layer_names); None = every layer uses the types above.
    layers: dict[str, LayerQuantization] | None = None
    # Quantization-aware training: QKeras with the types above (None = qkeras) or HGQ with
    # learned weight and activation types (settings in ``hgq``; None = HGQConfig defaults).
    kind: Literal["qkeras", "hgq"] | None = None
    hgq: HGQConfig | None = None

    @model_validator(mode="after")
    def _hgq_settings(self) -> QuantizationConfig:
        if self.hgq is not None and self.kind != "hgq":
            raise ValueError("quantization.hgq needs quantization.kind: hgq")
        if self.kind == "hgq" and not self.enabled:
            raise ValueError("quantization.kind: hgq needs quantization.enabled: true")
        if self.kind == "hgq" and self.layers:
            raise ValueError("quantization.layers sets QKeras types; with kind: hgq the types are learned")
        return self

    @property
    def is_hgq(self) -> bool:
        return self.kind == "hgq"

    def hgq_settings(self) -> HGQConfig:
        """The HGQ settings (defaults when the ``hgq`` section is absent)."""
        return self.hgq or HGQConfig()

    def _override(self, layer: str, kind: str) -> FixedPoint | None:
        entry = (self.layers or {}).get(layer)
        return getattr(entry, kind) if entry is not None else None

    def weight_for(self, layer: str) -> FixedPoint:
        """Kernel type of Dense layer ``layer``."""
        return self._override(layer, "weight") or self.weight

    def bias_for(self, layer: str) -> FixedPoint:
        """Bias type of Dense layer ``layer``."""
        return self._override(layer, "bias") or self.bias

    def activation_for(self, layer: str) -> FixedPoint:
        """Type of the ReLU following Dense layer ``layer`` (the layer ``<layer>_relu``)."""
        return self._override(layer, "activation") or self.activation


class PruningConfig(StrictModel):
    """Magnitude pruning of the QKeras model's Dense kernels (tensorflow-model-optimization):
    the sparsity of each pruned kernel rises from 0 to ``final_sparsity`` along a cubic
    polynomial between ``begin_fraction`` and ``end_fraction`` of the training steps, then
    stays; early stopping only starts once the final sparsity is reached."""

    final_sparsity: float = Field(gt=0, lt=1)
    begin_fraction: float = Field(0.0, ge=0, lt=1)
    end_fraction: float = Field(0.5, gt=0, le=1)
    # Dense layers to prune (names as in dense_layer_names); None = all of them.
    layers: tuple[str, ...] | None = None
    # Final sparsity of individual layers, overriding final_sparsity for them (they are
    # pruned whether or not ``layers`` lists them).
    layer_sparsity: dict[str, float] | None = None

    @model_validator(mode="after")
    def _schedule(self) -> PruningConfig:
        if self.end_fraction <= self.begin_fraction:
            raise ValueError(
                f"end_fraction ({self.end_fraction}) must be larger than begin_fraction ({self.begin_fraction})"
            )
        for name, value in (self.layer_sparsity or {}).items():
            if not 0 < value < 1:
                raise ValueError(f"sparsity of layer {name} must be between 0 and 1 (exclusive), got {value}")
        return self

    def sparsity_by_layer(self, dense_layers: tuple[str, ...]) -> dict[str, float]:
        """Final sparsity of each pruned layer among ``dense_layers``."""
        chosen = dense_layers if self.layers is None else self.layers
        out = {name: self.final_sparsity for name in dense_layers if name in chosen}
        out.update(self.layer_sparsity or {})
        return {name: out[name] for name in dense_layers if name in out}


class TrainingConfig(StrictModel):
    epochs: int = Field(30, ge=1, le=1000)
    batch_size: int = Field(256, ge=1, le=65536)
    learning_rate: float = Field(2e-3, gt=0, lt=1)
    seed: int = Field(42, ge=0)
    early_stopping_patience: int = Field(5, ge=0, le=1000)
    float_twin: bool = True
    # Weight pruning of the QKeras model (the float twin is not pruned); None = no pruning.
    pruning: PruningConfig | None = None


class PhysicsConfig(StrictModel):
    f_c: float = Field(0.018, ge=0, le=1)
    working_points: tuple[float, ...] = (0.70, 0.77, 0.85)


class DecisionConfig(StrictModel):
    """The b-tag decision in firmware (trigger_ml.decision): the max-form score of the logits at
    physics.f_c, its working points as integer thresholds, and the tag bits."""

    enabled: bool = True
    working_points: tuple[float, ...] = (0.70, 0.77, 0.85)
    # Fractional bits of the score (default: the logits' own, the score exact; fewer truncate it).
    score_fractional_bits: int | None = Field(None, ge=0, le=40)

    @field_validator("working_points")
    @classmethod
    def _efficiencies(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not 0.0 < eff < 1.0 for eff in value):
            raise ValueError("decision.working_points are b-efficiencies strictly between 0 and 1")
        return value


class HLSConfig(StrictModel):
    backend: Literal["Vitis", "Vivado"] = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"
    clock_period_ns: float = Field(5.0, gt=0, le=100)
    io_type: Literal["io_parallel"] = "io_parallel"
    # distributed_arithmetic: every constant product as da4ml shift-and-add networks (hls4ml 1.3 with
    # da4ml; fully unrolled, reuse factor 1).
    strategy: Literal["Latency", "Resource", "distributed_arithmetic"] = "Latency"
    reuse_factor: int = Field(1, ge=1, le=4096)
    # Tracks Phi processes per clock (hls4ml's ParallelizationFactor of the per-track layers);
    # None = all tracks at once (initiation interval 1), the trigger default.
    track_parallelization: int | None = Field(None, ge=1, le=64)
    precision_overrides: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Type of every tensor hls4ml does not infer; matters for float models converted
    # post-training (quantization.enabled: false), where it is the whole quantization.
    default_precision: str = "fixed<16,6>"
    # False for physics-only float references: no firmware is built.
    enabled: bool = True


class BDTConfig(StrictModel):
    """A boosted decision tree peer (trigger_ml.bdt): scikit-learn's GradientBoostingClassifier
    (one tree per class and boosting round, softmax loss) on the flat inputs of a dense model,
    quantized onto the input type ``quantization.input`` exactly like them; its firmware is a
    conifer HLS project whose thresholds and leaf scores are ap_fixed of the types below."""

    n_trees: int = Field(100, ge=1, le=2000)  # boosting rounds (each adds one tree per class)
    max_depth: int = Field(3, ge=1, le=8)
    learning_rate: float = Field(0.1, gt=0, le=1)
    # Fraction of the training jets each tree sees (stochastic boosting: < 1 makes the
    # ensemble depend on training.seed, the seed `compare --seeds` varies).
    subsample: float = Field(1.0, gt=0, le=1)
    # Threshold type (QKeras convention: integer bits exclude the sign); as wide as the input
    # type, a threshold between two input codes compares exactly like the float threshold.
    threshold: FixedPoint = FixedPoint(bits=10, integer=3)
    # Type of the leaf scores, of the initial prediction and of their sum (the logits).
    score: FixedPoint = FixedPoint(bits=18, integer=7)
