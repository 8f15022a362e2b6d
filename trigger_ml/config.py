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

from trigger_ml.config_sections import (
    BDTConfig,
    DecisionConfig,
    HLSConfig,
    PhysicsConfig,
    QuantizationConfig,
    TrainingConfig,
)
from trigger_ml.config_sections import (
    FixedPoint as FixedPoint,
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
