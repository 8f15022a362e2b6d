"""The one base of every schema in the project (model configs, scan specs, symbolic settings):
strict (unknown keys are errors, naming the key) and frozen. Fields that a hash leaves out say
so themselves (``Field(json_schema_extra=outside("training"))``) instead of a side list."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

_MARKER = "outside_hashes"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def outside(*hashes: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field that the named hashes (e.g. ``"training"``) leave out."""
    return {_MARKER: list(hashes)}


def fields_outside(model: type[BaseModel], hash_name: str) -> set[str]:
    """Names of the fields of ``model`` marked ``outside(hash_name)``."""
    return {
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and hash_name in field.json_schema_extra.get(_MARKER, [])
    }
