"""Model configurations: the zoo of declarative YAML files, their schema, and overrides.

A model is named either plainly (``dips-small``) or with overrides
(``dips-small@training.epochs=5,reuse=2``). Every configuration is validated against the
schema below when it is loaded: wrong types, out-of-range values and unknown keys are
rejected with the offending key named. Stages never read raw dicts: they get a
:class:`ModelConfig`.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_obj
from trigger_ml.numerics import effective_isa
from trigger_ml.sample_config import EvaluationConfig, SampleConfig
from trigger_ml.schema import StrictModel, fields_outside, outside
from trigger_ml.user_config import UserModelConfig

TRACK_FEATURES = ("sd0", "sz0", "log_ptfrac", "log_dr", "d0", "z0sintheta", "valid")
"""Per-track features a model may ask for (see trigger_ml.data.dataset for definitions)."""

L1_TRACK_FEATURES = ("sd0", "sz0", "log_ptfrac", "log_dr", "d0", "z0", "valid")
"""The per-track features of ``inputs.tracks: l1`` (trigger_ml.l1.preprocess computes them from
the L1 track words, in this order)."""

JET_FEATURES = ("log_pt", "eta", "n_tracks")
"""Per-jet features a flat (dense) model may append to its track inputs."""

CLASSES = ("b", "c", "light")


class SplitConfig(StrictModel):
    train: float = Field(0.6, gt=0, lt=1)
    val: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.3, gt=0, lt=1)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        if not math.isclose(self.train + self.val + self.test, 1.0, abs_tol=1e-9):
            raise ValueError("split fractions train + val + test must add up to 1")
        return self


class InputsConfig(StrictModel):
    max_tracks: int = Field(16, ge=1, le=64)
    track_features: tuple[str, ...] = TRACK_FEATURES
    jet_features: tuple[str, ...] = ()
    # None: the sample's float tracks; "l1": the L1 track words through the integer
    # preprocessing (trigger_ml.l1), whose outputs are the network's input codes.
    tracks: Literal["l1"] | None = None

    @field_validator("track_features")
    @classmethod
    def _known_track_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in TRACK_FEATURES + L1_TRACK_FEATURES]
        if unknown:
            raise ValueError(f"unknown track feature(s) {unknown}; known: {list(TRACK_FEATURES)}")
        if len(set(value)) != len(value):
            raise ValueError("track features must not repeat")
        return value

    @model_validator(mode="after")
    def _l1_features(self) -> InputsConfig:
        if self.tracks == "l1" and self.track_features != L1_TRACK_FEATURES:
            raise ValueError(f"inputs.tracks l1 computes the track features {list(L1_TRACK_FEATURES)}")
        if self.tracks is None and "z0" in self.track_features:
            raise ValueError("track feature z0 is for inputs.tracks l1 (offline tracks have z0sintheta)")
        return self

    @field_validator("jet_features")
    @classmethod
    def _known_jet_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in JET_FEATURES]
        if unknown:
            raise ValueError(f"unknown jet feature(s) {unknown}; known: {list(JET_FEATURES)}")
        return value


class ArchitectureConfig(StrictModel):
    kind: Literal["deepsets", "dense"] = "deepsets"
    phi_widths: tuple[int, ...] = (32, 32)
    f_widths: tuple[int, ...] = (32, 16)
    classes: tuple[str, ...] = CLASSES

    @field_validator("phi_widths", "f_widths")
    @classmethod
    def _positive_widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(width < 1 or width > 1024 for width in value):
            raise ValueError("layer widths must be between 1 and 1024")
        return value

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if tuple(value) != CLASSES:
            raise ValueError(f"classes must be {list(CLASSES)} (the discriminant needs b, c and light)")
        return value

    def dense_layer_names(self) -> tuple[str, ...]:
        """Names of the Dense layers, input to output, as trigger_ml.models names them
        (Φ ``phi_i`` and F ``f_i`` of a Deep Set, ``dense_i`` of a flat model, ``logits``);
        each but ``logits`` is followed by its ReLU ``<name>_relu``."""
        if self.kind == "deepsets":
            hidden = [f"phi_{i}" for i in range(1, len(self.phi_widths) + 1)]
            hidden += [f"f_{i}" for i in range(1, len(self.f_widths) + 1)]
        else:
            hidden = [f"dense_{i}" for i in range(1, len(self.f_widths) + 1)]
        return (*hidden, "logits")


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


class ModelConfig(StrictModel):
    # outside("training"): not part of what determines the weights (training_digest)
    name: str = Field(json_schema_extra=outside("training"))
    description: str = Field("", json_schema_extra=outside("training"))
    sample: SampleConfig = SampleConfig()
    evaluation: EvaluationConfig = Field(EvaluationConfig(), json_schema_extra=outside("training"))
    split: SplitConfig = SplitConfig()
    inputs: InputsConfig = InputsConfig()
    architecture: ArchitectureConfig = ArchitectureConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    training: TrainingConfig = TrainingConfig()
    physics: PhysicsConfig = Field(PhysicsConfig(), json_schema_extra=outside("training"))
    hls: HLSConfig = Field(HLSConfig(), json_schema_extra=outside("training"))
    # None: the default decision (on); hashes leave None out, so older results stay valid.
    decision: DecisionConfig | None = Field(None, json_schema_extra=outside("training"))
    # A model trained elsewhere (trigger-ml hls --keras): imported instead of trained.
    user_model: UserModelConfig | None = None
    # A boosted decision tree instead of a network (trigger_ml.bdt, kind ``bdt``).
    bdt: BDTConfig | None = None

    @model_validator(mode="after")
    def _bdt_on_flat_quantized_inputs(self) -> ModelConfig:
        if self.bdt is not None and (
            self.architecture.kind != "dense"
            or not self.quantization.enabled
            or self.quantization.is_hgq
            or not self.hls.enabled
        ):
            raise ValueError(
                "a bdt model takes the flat inputs of a dense model on the input type "
                "quantization.input: it needs architecture.kind dense, quantization enabled (QKeras) "
                "and hls.enabled"
            )
        if self.bdt is not None and self.decision_settings.enabled:
            raise ValueError(
                "a bdt model has no decision block (trigger_ml.decision builds hls4ml networks' b-tag "
                "decision): set decision: {enabled: false}"
            )
        return self

    @model_validator(mode="after")
    def _evaluation_file_goes_with_a_file_sample(self) -> ModelConfig:
        if self.evaluation.path is not None:
            if not self.sample.is_file:
                raise ValueError(
                    "evaluation.path is for a file sample (sample.path); a generated sample's "
                    "evaluation sample is generated with evaluation.seed"
                )
            others = sorted(self.evaluation.model_fields_set - {"path"})
            if others:
                raise ValueError(f"evaluation.path names a file; drop evaluation {others}")
        return self

    @model_validator(mode="after")
    def _evaluation_is_independent(self) -> ModelConfig:
        if self.evaluation.seed == self.sample.seed:
            raise ValueError(
                f"evaluation.seed equals sample.seed ({self.sample.seed}): the evaluation sample "
                "must be generated independently of the training sample; choose another evaluation.seed"
            )
        return self

    @model_validator(mode="after")
    def _l1_inputs_need_l1_tracks(self) -> ModelConfig:
        if self.inputs.tracks == "l1":
            if self.sample.is_file or self.sample.tracks != "l1":
                raise ValueError("inputs.tracks l1 needs a generated sample with sample.tracks l1")
            if self.architecture.kind != "deepsets" or self.inputs.jet_features:
                raise ValueError("inputs.tracks l1 feeds a Deep Set (no jet features)")
            q = self.quantization.input
            if self.quantization.enabled and (q.bits > 16 or not 5 <= q.bits - 1 - q.integer <= 10):
                raise ValueError(
                    "inputs.tracks l1 needs an input type of at most 16 bits with 5 to 10 fractional bits"
                )
        return self

    @model_validator(mode="after")
    def _exact_track_average(self) -> ModelConfig:
        # The Deep Set sums tracks with an average pooling; dividing by a power of two is an
        # exact shift in fixed point, any other track count would round in the firmware.
        n = self.inputs.max_tracks
        if self.architecture.kind == "deepsets" and self.quantization.enabled and n & (n - 1):
            raise ValueError(f"inputs.max_tracks must be a power of two for a quantized Deep Set (got {n})")
        return self

    @model_validator(mode="after")
    def _dense_has_no_phi(self) -> ModelConfig:
        if self.architecture.kind == "dense" and self.architecture.phi_widths:
            raise ValueError("architecture.phi_widths is for Deep Sets; a dense model uses f_widths only")
        return self

    @model_validator(mode="after")
    def _distributed_arithmetic_is_unrolled(self) -> ModelConfig:
        if self.hls.strategy == "distributed_arithmetic" and self.why_not_fully_unrolled():
            raise ValueError(
                "hls.strategy distributed_arithmetic builds fully unrolled adder graphs: it needs "
                "hls.reuse_factor 1 and all tracks per clock (use strategy Latency or Resource to fold)"
            )
        return self

    @model_validator(mode="after")
    def _parallelization_divides_tracks(self) -> ModelConfig:
        pf = self.hls.track_parallelization
        if pf is not None and self.inputs.max_tracks % pf:
            raise ValueError(
                f"hls.track_parallelization ({pf}) must divide inputs.max_tracks ({self.inputs.max_tracks})"
            )
        return self

    @model_validator(mode="after")
    def _named_layers_exist(self) -> ModelConfig:
        names = self.architecture.dense_layer_names()
        known = ", ".join(names)
        for name, entry in (self.quantization.layers or {}).items():
            if name not in names:
                raise ValueError(f"quantization.layers names unknown layer '{name}' (layers: {known})")
            if entry.activation is not None and name == "logits":
                raise ValueError("quantization.layers.logits.activation: the logits have no activation")
            if entry.bias is not None and name.startswith("phi_"):
                raise ValueError(f"quantization.layers.{name}.bias: the Φ layers have no bias")
        pruning = self.training.pruning
        if pruning is not None:
            for key, given in (
                ("layers", pruning.layers or ()),
                ("layer_sparsity", pruning.layer_sparsity or {}),
            ):
                unknown = [name for name in given if name not in names]
                if unknown:
                    raise ValueError(
                        f"training.pruning.{key} names unknown layer '{unknown[0]}' (layers: {known})"
                    )
        return self

    @model_validator(mode="after")
    def _hgq_is_not_pruned(self) -> ModelConfig:
        if self.quantization.is_hgq and self.training.pruning is not None:
            raise ValueError("training.pruning is for QKeras; HGQ prunes by learning zero-bit weights")
        return self

    def why_not_fully_unrolled(self) -> str | None:
        """Why the firmware does not take one jet per clock with every product its own adder
        tree (None if it does): the design the da4ml source and the RTL stage describe."""
        h = self.hls
        if h.strategy not in ("Latency", "distributed_arithmetic") or h.reuse_factor != 1:
            return f"not fully unrolled (strategy {h.strategy}, reuse factor {h.reuse_factor})"
        if h.track_parallelization not in (None, self.inputs.max_tracks):
            return f"tracks processed {h.track_parallelization} per clock, not all at once"
        return None

    @property
    def decision_settings(self) -> DecisionConfig:
        """The decision section, its defaults when the configuration has none."""
        return self.decision if self.decision is not None else DecisionConfig()

    # Hashes leave out fields that are None (unset optional settings), so adding a new
    # optional section to the schema does not invalidate every cached result.
    def digest(self) -> str:
        """Hash of the whole resolved configuration (keys the HLS project)."""
        return sha256_of_obj(self.model_dump(mode="json", exclude_none=True))

    def training_digest(self) -> str:
        """Hash of what determines the trained weights (keys ``runs/<model>/<hash>``)."""
        data = self.model_dump(
            mode="json", exclude=fields_outside(ModelConfig, "training"), exclude_none=True
        )
        # The instruction-set cap of TensorFlow's kernels changes the weights (trigger_ml.numerics).
        data["numerics"] = {"onednn_max_cpu_isa": effective_isa()}
        return sha256_of_obj(data)


# Short names for overrides, e.g. ``dips-small@bits=6,reuse=2``.
OVERRIDE_ALIASES: dict[str, tuple[str, ...]] = {
    "bits": ("quantization.weight.bits", "quantization.activation.bits"),
    "reuse": ("hls.reuse_factor",),
    "epochs": ("training.epochs",),
    "tracks": ("inputs.max_tracks",),
    "seed": ("training.seed",),
    "n_jets": ("sample.n_jets",),
    "eval_jets": ("evaluation.n_jets",),
    "clock": ("hls.clock_period_ns",),
    "strategy": ("hls.strategy",),
}

FILE_OVERRIDES = ("sample.path", "evaluation.path")
"""Overrides that replace their whole section: ``dips-small@sample.path=data/ftag-…/jets.h5``
trains on the file instead of the zoo model's generated sample."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def zoo_dir() -> Path:
    """The folder holding one YAML file per model of the zoo."""
    return Path(str(resources.files("trigger_ml") / "zoo"))


def zoo_names() -> list[str]:
    return sorted(path.stem for path in zoo_dir().glob("*.yaml"))


def format_validation_error(source: str, error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    return f"{source}: key '{key}': {message}" if key else f"{source}: {message}"


def parse_model_config(data: Any, source: str) -> ModelConfig:
    """Validate a raw mapping against the schema; one-line error naming the key."""
    if not isinstance(data, dict):
        raise UsageError(
            f"{source}: expected a mapping at the top level", "see trigger_ml/zoo/dips-small.yaml"
        )
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as error:
        raise UsageError(format_validation_error(source, error), "fix the key or value") from None


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"{source}: override key '{dotted}' goes below a value", "use a section key")
        node = child
    node[parts[-1]] = value


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: ``a=1,b=[2,3]`` -> ["a=1", "b=[2,3]"]."""
    items, depth, current = [], 0, []
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


def split_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"dips-small@bits=6,reuse=2"`` -> ("dips-small", {"bits": 6, "reuse": 2}).

    Values are YAML scalars or flow lists: ``architecture.phi_widths=[8,8]``.
    """
    name, _, rest = spec.partition("@")
    overrides: dict[str, Any] = {}
    if rest:
        for item in _split_top_level(rest):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise UsageError(
                    f"model '{spec}': override '{item}' is not key=value",
                    "write e.g. dips-small@training.epochs=5,reuse=2",
                )
            overrides[key.strip()] = _parse_value(value.strip())
    return name, overrides


def _compact(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    if isinstance(value, dict):  # a YAML flow mapping that parses back: {bits: 4, integer: 0}
        return "{" + ", ".join(f"{key}: {_compact(value[key])}" for key in value) + "}"
    return str(value)


def canonical_spec(name: str, overrides: dict[str, Any]) -> str:
    if not overrides:
        return name
    items = ",".join(f"{key}={_compact(overrides[key])}" for key in sorted(overrides))
    return f"{name}@{items}"


def load_model_config(spec: str, zoo: Path | None = None) -> ModelConfig:
    """Load a zoo model by name, with optional ``@key=value,...`` overrides, validated."""
    name, overrides = split_model_spec(spec)
    zoo = zoo or zoo_dir()
    path = zoo / f"{name}.yaml"
    if not _NAME_RE.match(name) or not path.is_file():
        names = ", ".join(sorted(p.stem for p in zoo.glob("*.yaml")))
        raise UsageError(f"unknown model '{name}'", f"choose one of: {names}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML ({error.__class__.__name__})", "fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level", "see dips-small.yaml")
    if data.get("name") != name:
        raise UsageError(f"{path}: 'name' must be '{name}' (the file name)", "make them agree")
    for key in FILE_OVERRIDES:  # a file replaces the generator settings of its section
        if key in overrides:
            data[key.partition(".")[0]] = {"path": overrides[key]}
    for key, value in overrides.items():
        if key in FILE_OVERRIDES:
            continue
        for dotted in OVERRIDE_ALIASES.get(key, (key,)):
            _set_dotted(data, dotted, value, spec)
    data["name"] = canonical_spec(name, overrides)
    return parse_model_config(data, spec if overrides else str(path))


def read_yaml_mapping(path: Path, what: str, example: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; one-line UsageError naming the problem otherwise.

    ``what`` names the file in the error ("config file"), ``example`` is where to look for a good one.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a YAML file", "name the file itself") from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path}: not UTF-8 text (byte {error.start}): not a YAML file", "save it as UTF-8 text"
        ) from None
    except OSError as error:
        raise UsageError(f"{what} {path} cannot be read ({error.strerror})", "check the path") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: not valid YAML ({error.__class__.__name__})", "fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping at the top level", f"see {example}")
    return data


def load_config_file(path: Path) -> ModelConfig:
    """Load a configuration from an arbitrary YAML file (for user-defined models)."""
    return parse_model_config(
        read_yaml_mapping(path, "config file", "trigger_ml/zoo/dips-small.yaml"), str(path)
    )
