"""The one base of every schema in the project (model configs, scan specs, symbolic settings,
generator settings): strict (unknown keys are errors, naming the key) and frozen. Fields say
themselves how hashes treat them instead of side lists: ``outside("training")`` for a field a
hash leaves out, ``later()`` for a setting added after the first release that a hash includes
only when it differs from its default (:func:`without_later_defaults`).

:class:`SettingsModel` is the base of settings that code builds directly, such as the
generator's: a bad value raises :class:`~trigger_ml.errors.UsageError` with one line naming
the setting, its range and the value (config loading reports the same line through
``config.format_validation_error``).
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar

import annotated_types
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from trigger_ml.errors import UsageError

_MARKER = "outside_hashes"
_LATER = "later_setting"
SETTING_ERROR = "setting"
"""Type of the errors :class:`SettingsModel` raises (their ``ctx`` holds ``message`` and ``fix``)."""


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


def later() -> dict[str, Any]:
    """``json_schema_extra`` of a setting added after the first release: hashes and records
    leave it out while it holds its default, so what was made before it existed keeps its
    name and bytes. Never change the default of such a field: add a new field instead."""
    return {_LATER: True}


def is_later(model: type[BaseModel], name: str) -> bool:
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(_LATER))


def without_later_defaults(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump()`` without the ``later()`` fields that hold their defaults, at every
    level of nested models."""
    data = model.model_dump()
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if is_later(type(model), name) and value == field.get_default(call_default_factory=True):
            del data[name]
        elif isinstance(value, BaseModel):
            data[name] = without_later_defaults(value)
    return data


def setting_error(message: str, fix: str = "") -> PydanticCustomError:
    """The error a settings validator raises: ``message`` is the one line, ``fix`` the hint."""
    return PydanticCustomError(SETTING_ERROR, "{message}", {"message": message, "fix": fix})


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bounds(field: Any) -> str:
    lower = upper = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt | annotated_types.Ge):
            lower = item
        if isinstance(item, annotated_types.Lt | annotated_types.Le):
            upper = item
    if lower is not None and upper is not None:
        left = "[" if isinstance(lower, annotated_types.Ge) else "("
        right = "]" if isinstance(upper, annotated_types.Le) else ")"
        low = lower.ge if isinstance(lower, annotated_types.Ge) else lower.gt
        high = upper.le if isinstance(upper, annotated_types.Le) else upper.lt
        return f"in {left}{_number(low)}, {_number(high)}{right}"
    if lower is not None:
        return (
            f">= {_number(lower.ge)}" if isinstance(lower, annotated_types.Ge) else f"> {_number(lower.gt)}"
        )
    if upper is not None:
        return (
            f"<= {_number(upper.le)}" if isinstance(upper, annotated_types.Le) else f"< {_number(upper.lt)}"
        )
    return ""


def _choices(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return ()


class SettingsModel(StrictModel):
    """A :class:`StrictModel` whose errors are one line each, phrased from the field itself:
    ``<WHAT> <name> must be <range>, got <value>``; unknown keys list the known ones.

    Built directly (``Model(...)``) it raises :class:`~trigger_ml.errors.UsageError`; inside a
    model config the same lines reach ``config.format_validation_error``.
    """

    WHAT: ClassVar[str] = "setting"
    """How messages call a field, e.g. "generator setting"."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            first = error.errors()[0]
            if first["type"] == SETTING_ERROR:
                ctx = first.get("ctx", {})
                raise UsageError(ctx["message"], ctx["fix"]) from None
            key = ".".join(str(part) for part in first["loc"])
            raise UsageError(f"{self.WHAT} {key}: {first['msg']}", "fix the value") from None

    # Only for direct calls: validation inside another model (a model config) must not call
    # it, so that its errors stay ValidationErrors that name the key (pydantic calls an
    # __init__ it does not recognise as its own during validation).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                if name not in cls.model_fields:
                    raise setting_error(
                        f"unknown {cls.WHAT} '{name}' (one of: {', '.join(cls.model_fields)})",
                        "check the spelling",
                    )
        return data

    @field_validator("*", mode="wrap")
    @classmethod
    def _one_line(cls, value: Any, handler: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        assert name is not None
        field = cls.model_fields[name]
        try:
            if isinstance(value, bool) and field.annotation is not bool:
                raise ValidationError.from_exception_data(name, [{"type": "bool_type", "input": value}])
            return handler(value)
        except ValidationError as error:
            first = error.errors()[0]
            if first["type"] == SETTING_ERROR or (
                isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            ):
                raise  # already one line, or a nested model's own error
            choices = _choices(field.annotation)
            if choices:
                raise setting_error(
                    f"unknown {name} {value!r} (one of: {', '.join(map(str, choices))})", "check the spelling"
                ) from None
            bounds = _bounds(field)
            if field.annotation is bool:
                wanted = "true or false"
            elif field.annotation is int:
                wanted = " ".join(filter(None, ("an integer", bounds)))
            elif first["type"].startswith(("greater", "less")):
                wanted = bounds
            else:
                wanted = " ".join(filter(None, ("a number", bounds)))
            raise setting_error(
                f"{cls.WHAT} {name} must be {wanted}, got {value!r}",
                f"use {wanted}" if wanted.startswith(("a", "true")) else f"use a value {wanted}",
            ) from None
