"""Scan specs and their points: a spec's grid and explicit points resolved to model configs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from trigger_ml.compare import DEFAULT_COST_SOURCE, CostSource
from trigger_ml.config import (
    ModelConfig,
    format_validation_error,
    load_model_config,
    read_yaml_mapping,
    split_model_spec,
)
from trigger_ml.errors import TriggerMLError, UsageError
from trigger_ml.fileio import sha256_of_obj
from trigger_ml.schema import StrictModel

Stages = Literal["hls", "train"]

_SPECIAL = set(",=[]{}:#'\"& *!|>%@`")


class ScanSpec(StrictModel):
    """A scan: ``base`` model spec, a ``grid`` (cartesian product) and/or explicit ``points``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    base: str = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)
    stages: Stages = "hls"
    # Where every point's latency and resources come from (trigger-ml compare --cost-source):
    # da4ml costs fully unrolled designs only; a scan over the reuse factor needs `estimate`.
    cost_source: CostSource = DEFAULT_COST_SOURCE

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [key for key, values in value.items() if not values]
        if empty:
            raise ValueError(f"grid key '{empty[0]}' lists no values")
        return value

    @model_validator(mode="after")
    def _something_to_scan(self) -> ScanSpec:
        if not self.grid and not self.points:
            raise ValueError("nothing to scan: give 'grid' and/or 'points'")
        return self


@dataclass(frozen=True)
class ScanPoint:
    """One point of a scan: its overrides, resolved configuration or the schema's error."""

    source: Literal["grid", "points", "with"]
    overrides: dict[str, Any]
    model_spec: str
    config: ModelConfig | None
    error: str | None

    @property
    def key(self) -> str:
        """Name of the point's result file: the configuration hash (``invalid-...`` if none)."""
        if self.config is not None:
            return self.config.digest()[:16]
        return "invalid-" + sha256_of_obj(self.model_spec)[:16]

    @property
    def label(self) -> str:
        """Short description for tables: the point's own overrides, or the model spec."""
        if self.source == "with":
            return self.model_spec
        return ", ".join(f"{key}={_spec_value(value)}" for key, value in self.overrides.items()) or "(base)"


def load_scan_spec(path: Path) -> ScanSpec:
    """Read and validate a scan spec; one-line :class:`UsageError` naming the key."""
    path = Path(path)
    data = read_yaml_mapping(path, "scan spec", "scans/example-bits-reuse.yaml")
    try:
        spec = ScanSpec.model_validate(data)
    except ValidationError as error:
        raise UsageError(format_validation_error(str(path), error), "fix the key or value") from None
    load_model_config(spec.base)  # an unknown or invalid base model is an error of the whole spec
    return spec


def _spec_value(value: Any) -> str:
    """A value as it is written after ``key=`` in a model spec (YAML flow syntax)."""
    if isinstance(value, str):
        return json.dumps(value) if not value or _SPECIAL & set(value) else value
    if isinstance(value, list | tuple):
        return "[" + ",".join(_spec_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_spec_value(k)}: {_spec_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and "e" in repr(value) and "." not in repr(value):
        return repr(value).replace("e", ".0e")  # YAML 1.1 reads 1e-05 as text, 1.0e-05 as a number
    return json.dumps(value)


def _round_trips(item: str, key: str, value: Any) -> bool:
    """Does ``key=value`` written as ``item`` read back as the same value in a model spec?"""
    try:
        return split_model_spec(f"x@{item}")[1] == {key: value}
    except UsageError:
        return False


def resolve_point(
    base: str, overrides: dict[str, Any], source: Literal["grid", "points", "with"] = "points"
) -> ScanPoint:
    """Merge ``overrides`` over the base spec's and validate the result with the schema.

    An invalid point is returned with its one-line error (the key named) instead of
    raising, so that a scan records it and runs the others.
    """
    name, merged = split_model_spec(base)
    merged.update(overrides)
    items = [f"{key}={_spec_value(value)}" for key, value in merged.items()]
    spec = name + ("@" + ",".join(items) if items else "")
    for (key, value), item in zip(merged.items(), items, strict=True):
        if not _round_trips(item, key, value):
            error = (
                f"key '{key}': the value {value!r} cannot be written in a model spec "
                "-> a string with a top-level comma cannot be an override"
            )
            return ScanPoint(source, dict(overrides), spec, None, error)
    try:
        config = load_model_config(spec)
    except TriggerMLError as error:
        message = error.one_line().removeprefix("error: ")
        message = message.removeprefix(f"model '{spec}': ").removeprefix(f"{spec}: ")
        return ScanPoint(source, dict(overrides), spec, None, message)
    return ScanPoint(source, dict(overrides), config.name, config, None)


def expand_points(spec: ScanSpec, with_models: Sequence[str] = ()) -> list[ScanPoint]:
    """The grid's cartesian product, then the explicit points, then ``with_models``.

    Points resolving to the same configuration are kept once. ``with_models`` (zoo models
    to compare against, e.g. ``dips-tiny``) must be valid: a bad one raises UsageError.
    """
    keys = list(spec.grid)
    candidates = []
    if keys:
        for values in itertools.product(*spec.grid.values()):
            candidates.append(resolve_point(spec.base, dict(zip(keys, values, strict=True)), "grid"))
    candidates += [resolve_point(spec.base, point, "points") for point in spec.points]
    for model in with_models:
        config = load_model_config(model)
        candidates.append(ScanPoint("with", {}, config.name, config, None))
    unique: dict[str, ScanPoint] = {}
    for point in candidates:
        unique.setdefault(point.key, point)
    return list(unique.values())
