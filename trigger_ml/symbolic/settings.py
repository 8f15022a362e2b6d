"""Settings of the symbolic-distillation stage, validated like the model configurations.

They come from defaults, a YAML file (``--sr-config``) and/or overrides written like the
model overrides (``backend=operon,max_complexity=[9,17,33]``). Unknown keys and
out-of-range values are rejected with the key named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from trigger_ml.config import FixedPoint, read_yaml_mapping, split_model_spec
from trigger_ml.errors import UsageError
from trigger_ml.fileio import sha256_of_obj
from trigger_ml.schema import StrictModel

BINARY_OPERATORS = ("+", "-", "*")
"""Binary operators with a firmware implementation that needs no vendor header."""

POLYNOMIAL_UNARY = ("square", "cube")
"""Unary operators that are products in the firmware."""

LUT_UNARY = ("exp", "sin", "cos")
"""Unary operators implemented as hls4ml look-up tables (non-polynomial).

hls4ml fills its ``nnet::lookup_table`` with ``hls::<function>``; the stand-in ``hls_math.h``
it ships for C simulation without the vendor headers defines exactly these."""

UNARY_OPERATORS = POLYNOMIAL_UNARY + LUT_UNARY

SELECTION_METRICS = ("auc", "rej_light_at_70", "rej_light_at_77")
"""What the sums generator and the choice rank candidates by (validation split): the AUC of b
vs light jets, or the light-jet rejection at 70 % / 77 % b-efficiency."""

FLAT_INPUT_MODEL = "dense-small"
"""Zoo model whose inputs define the flat jet-level inputs of a Deep Set teacher."""


class LUTSettings(StrictModel):
    """Look-up tables replacing the non-polynomial functions in the firmware."""

    table_size: int = Field(1024, ge=16, le=65536)
    # Tables cover [-2^k, 2^k) with the smallest k holding the function's argument on the
    # training subsample, at most this k.
    max_range_log2: int = Field(4, ge=0, le=12)


class SumSettings(StrictModel):
    """The hardware-aware generator (``trigger_ml.symbolic.sums``): forward selection of a
    few terms, least squares, constants snapped to few set bits (docs/symbolic.md)."""

    enabled: bool = True
    max_terms: int = Field(8, ge=1, le=32)
    # Inputs offered: the k most rank-correlated with the target (None = all flat inputs).
    features: int | None = Field(None, ge=1, le=1024)
    # Saturating terms min(x, t) / max(x, t): thresholds at these quantiles of each input on
    # the training subsample (rounded onto the design type). Empty: no saturating terms.
    upper_quantiles: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
    lower_quantiles: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    # Squares and pairwise products of the k inputs most rank-correlated with the target
    # (when '*' / 'square' are offered operators); 0 = none.
    product_features: int = Field(6, ge=0, le=64)
    # Set bits of each coefficient's mantissa on the design type (<= 2: the product is a
    # shift or one shift-and-add, no DSP); None = any constant on the grid.
    constant_set_bits: int | None = Field(2, ge=1, le=8)
    # Stop adding terms once the validation AUC gains less than this.
    min_auc_gain: float = Field(1e-4, ge=0, le=1)
    # With a rejection selection_metric: stop once the validation rejection gains less than
    # this fraction of its current value (the AUC rule above is not used then).
    min_rejection_gain: float = Field(0.01, ge=0, le=10)

    @field_validator("upper_quantiles", "lower_quantiles")
    @classmethod
    def _quantiles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 <= q <= 1 for q in value):
            raise ValueError("quantiles must be between 0 and 1")
        return tuple(sorted(set(value)))


class DeepSetSettings(StrictModel):
    """The symbolic Deep Set (``structure: deepsets``, ``trigger_ml.symbolic.deepsets``)."""

    # Terms of each latent expression phi_k (besides the ``valid`` feature, its bias).
    phi_terms: int = Field(6, ge=1, le=32)
    # Valid tracks of the fit subsample the phi_k are fitted on (a random subset).
    phi_tracks: int = Field(50_000, ge=100, le=10_000_000)
    # Squares and pairwise products of the track features among the phi_k's terms (each a
    # product of two signals per slot and latent: a DSP in the cost model); off by default.
    phi_products: bool = False
    # F is fitted to the teacher's D_b on the pooled latents of the expressions, of the
    # teacher, or both (both sets of candidates are scored on the expressions' latents).
    f_inputs: tuple[Literal["expression", "teacher"], ...] = ("expression", "teacher")
    # Latency budget as a fraction of the teacher's, replacing the top-level
    # max_latency_fraction for this structure: the phi_k run once per slot, all slots in
    # parallel, then the sum and F, so a third of the teacher's latency is out of reach
    # (docs/symbolic.md); None = no budget.
    max_latency_fraction: float | None = Field(1.0, gt=0, le=10)

    @field_validator("f_inputs")
    @classmethod
    def _f_inputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("f_inputs must be a non-empty list without repeats")
        return value


class SymbolicConfig(StrictModel):
    """How to distil a teacher into expressions (see docs/symbolic.md)."""

    # flat: expressions of the flat jet-level inputs (<teacher>-sr); deepsets: a symbolic
    # Deep Set of a Deep Set teacher, phi_k and F each an expression (<teacher>-srds).
    structure: Literal["flat", "deepsets"] = "flat"
    backend: Literal["auto", "pysr", "operon"] = "auto"
    # discriminant: fit D_b; logits: fit each class logit (b, c, light) and rebuild D_b.
    targets: tuple[Literal["discriminant", "logits"], ...] = ("discriminant",)
    binary_operators: tuple[str, ...] = BINARY_OPERATORS
    unary_operators: tuple[str, ...] = ("square",)
    # The sweep: one front per search, reported at each of these complexity limits; the
    # largest is the search's size limit (nodes of the expression tree).
    max_complexity: tuple[int, ...] = (5, 9, 13, 17, 25, 33, 41)
    # Training jets the expressions are fitted on (a random subsample of the training split).
    subsample: int = Field(10_000, ge=100, le=10_000_000)
    # Inputs offered to the search: the k most rank-correlated with the target (None = all).
    select_features: int | None = Field(16, ge=1, le=1024)
    population_size: int = Field(400, ge=10, le=100_000)
    generations: int = Field(60, ge=1, le=100_000)  # operon generations / PySR iterations
    populations: int = Field(8, ge=1, le=1000)  # PySR only
    seed: int = Field(1, ge=0, le=2**31 - 1)
    threads: int = Field(2, ge=1, le=64)  # operon only; PySR runs serially to stay deterministic
    pysr_probe_timeout_s: float = Field(120.0, gt=0, le=3600)
    # Selection: the least complex expression on the front whose validation AUC is within
    # auc_tolerance of the teacher's and whose estimated latency is at most
    # max_latency_fraction of the teacher's; else the best validation AUC within the latency
    # budget.
    auc_tolerance: float = Field(0.02, ge=0, le=1)
    # What candidates are ranked by (the sums generator's forward selection and scale search,
    # the Pareto front and the choice): validation AUC, or validation light rejection at 70 %
    # / 77 % b-efficiency. With a rejection, "good enough" is a validation rejection of at
    # least (1 - rejection_tolerance) times the teacher's (auc_tolerance is then unused).
    selection_metric: Literal["auc", "rej_light_at_70", "rej_light_at_77"] = "auc"
    rejection_tolerance: float = Field(0.5, ge=0, le=1)
    max_latency_fraction: float | None = Field(1 / 3, gt=0, le=10)
    # Fixed-point type of inputs, constants and result in the firmware (QKeras convention:
    # integer bits exclude the sign bit); constants are rounded onto it before conversion.
    precision: FixedPoint = FixedPoint(bits=16, integer=6)
    lut: LUTSettings = LUTSettings()
    # The hardware-aware generator beside the backend (discriminant target only).
    sums: SumSettings = SumSettings()
    deepsets: DeepSetSettings = DeepSetSettings()

    @field_validator("binary_operators")
    @classmethod
    def _known_binary(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [op for op in value if op not in BINARY_OPERATORS]
        if unknown:
            raise ValueError(
                f"binary operator(s) {unknown} have no firmware without vendor headers; "
                f"choose from {list(BINARY_OPERATORS)}"
            )
        if not value:
            raise ValueError("at least one binary operator is needed")
        return value

    @field_validator("unary_operators")
    @classmethod
    def _known_unary(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [op for op in value if op not in UNARY_OPERATORS]
        if unknown:
            raise ValueError(f"unary operator(s) {unknown} unknown; choose from {list(UNARY_OPERATORS)}")
        return value

    @field_validator("max_complexity")
    @classmethod
    def _sweep(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(c < 3 or c > 200 for c in value):
            raise ValueError("complexity limits must be between 3 and 200")
        return tuple(sorted(set(value)))

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("targets must be a non-empty list without repeats")
        return value

    @model_validator(mode="after")
    def _cube_needs_pysr(self) -> SymbolicConfig:
        if "cube" in self.unary_operators and self.backend == "operon":
            raise ValueError("operon has no 'cube' operator; use 'square' or backend pysr")
        return self

    def key_dump(self) -> dict[str, Any]:
        """The settings as they enter a cache key: the Deep Set keys only for ``structure:
        deepsets``, the rejection-selection keys only for a rejection ``selection_metric``, so
        a distillation keeps the key it had before these settings existed."""
        data = self.model_dump(mode="json")
        if self.structure == "flat":
            data.pop("structure")
            data.pop("deepsets")
        if self.selection_metric == "auc":
            data.pop("selection_metric")
            data.pop("rejection_tolerance")
            data["sums"].pop("min_rejection_gain")
        return data

    def digest(self) -> str:
        """Hash of the settings (part of the stage's cache key)."""
        return sha256_of_obj(self.key_dump())


def _format_error(source: str, error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown symbolic setting '{key}'"
    return f"{source}: symbolic setting '{key}': {message}" if key else f"{source}: {message}"


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"symbolic override '{dotted}' goes below a value", "use a section key")
    node[leaf] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    """Update ``base`` in place, section by section (a partial section keeps the other keys)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def load_symbolic_config(overrides: str | None = None, path: Path | None = None) -> SymbolicConfig:
    """Defaults, updated by the YAML file ``path`` and then by ``key=value,...`` overrides."""
    data: dict[str, Any] = SymbolicConfig().model_dump(mode="json")
    source = "symbolic settings"
    if path is not None:
        source = str(path)
        loaded = read_yaml_mapping(Path(path), "symbolic settings file", "docs/symbolic.md")
        _merge(data, loaded)
    if overrides:
        _, items = split_model_spec(f"sr@{overrides}")
        for key, value in items.items():
            _set_dotted(data, key, value)
        source = f"symbolic overrides '{overrides}'"
    try:
        return SymbolicConfig.model_validate(data)
    except ValidationError as error:
        raise UsageError(_format_error(source, error), "see docs/symbolic.md for the settings") from None
