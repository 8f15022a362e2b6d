"""The ``sample:`` and ``evaluation:`` sections of a model configuration.

A model trains either on a generated sample (Pythia 8 + FastJet, the settings of
:class:`trigger_ml.data.settings.SampleSettings`) or on a file in this project's jets.h5
layout named by ``path`` (a converted ATLAS file: ``trigger-ml convert-ftag``). The two are
mutually exclusive. Its evaluation sample of record is generated with the training sample's
settings and its own seed, or, for a file sample, is the file ``evaluation.path``; without
one, the test split of the training file (docs/data-formats.md, *Your own jets*).

Unset optional fields dump as null (and configuration hashes leave nulls out), so a
configuration that does not use ``path`` keeps its hashes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from trigger_ml.data.settings import SampleSettings
from trigger_ml.schema import StrictModel, setting_error

FILE_SAMPLE_FIX = "write `sample: {path: FILE}` alone (override: sample.path=FILE replaces the section)"


class SampleConfig(SampleSettings):
    """Which sample a model trains on: a generated one (its size and seed here, its physics
    — ``process``, the pile-up, dijet and labelling settings, ``detector`` — as defined once in
    :class:`trigger_ml.data.settings.SampleSettings`, with the generator's defaults), or the
    jets.h5 file ``path`` (relative to the workspace, or absolute).

    A setting the file leaves out (or sets to null) keeps the generator's default and dumps
    as null, so that the configuration hashes of models that do not use a setting never
    change; ``detector`` dumps only the parameters the file sets. ``process``, ``n_jets``,
    ``seed`` and ``jets_per_shard`` are always dumped for a generated sample; a file sample
    dumps ``path`` only.
    """

    WHAT: ClassVar[str] = "sample setting"

    n_jets: int = Field(100_000, ge=100, le=10_000_000)
    seed: int = Field(1, ge=0, le=900_000_000)
    jets_per_shard: int = Field(5000, ge=10, le=1_000_000)
    path: str | None = Field(None, min_length=1, description="a jets.h5 file instead of the generator")

    _ALWAYS_DUMPED: ClassVar[tuple[str, ...]] = ("process", "n_jets", "seed", "jets_per_shard")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    @model_validator(mode="after")
    def _file_or_generator(self) -> SampleConfig:
        if self.path is not None:
            others = sorted(self.model_fields_set - {"path"})
            if others:
                raise setting_error(
                    f"sample.path names a file; the generator settings {others} cannot go with it",
                    FILE_SAMPLE_FIX,
                )
        return self

    @property
    def is_file(self) -> bool:
        """Does the model train on a file (``path``) instead of a generated sample?"""
        return self.path is not None

    def generator_fields(self) -> dict[str, Any]:
        """The generator settings this section sets (not for a file sample)."""
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k != "path"}

    @model_serializer(mode="wrap")
    def _unset_as_null(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        if self.path is not None:
            return {"path": self.path}
        data = handler(self)
        out = {key: data[key] for key in self._ALWAYS_DUMPED if key in data}
        for key in data:
            if key in out:
                continue
            if key not in self.model_fields_set:
                out[key] = None
            elif key == "detector":
                out[key] = self.detector.model_dump(mode=info.mode, exclude_unset=True)
            else:
                out[key] = data[key]
        if info.exclude_none:
            out = {key: value for key, value in out.items() if value is not None}
        return out


class EvaluationConfig(StrictModel):
    """The evaluation sample of record: jets generated with the training sample's settings but
    their own seed, shared by every model with those settings and used whole (no split) for the
    physics figures of ``make hls`` and ``make compare``. Training, validation and the fitted
    scaling stay on the training sample.

    For a file sample (``sample.path``) the evaluation sample is the file ``path`` (jets the
    model never trained on, e.g. another converted file); without one it is the test split of
    the training file, and the report says so (``evaluation.origin``). ``path`` is for file
    samples only.

    300 000 tt̄ jets hold about 173 000 light jets: at a light rejection R the ~173 000 / R
    passing jets give a binomial uncertainty of about sqrt(R / 173 000), 3.8 % at R = 250
    (dips-small) and 4.5 % at R = 350; docs/evaluation.md has the sizing."""

    n_jets: int = Field(300_000, ge=100, le=10_000_000)
    seed: int = Field(1001, ge=0, le=900_000_000)
    jets_per_shard: int = Field(10_000, ge=10, le=1_000_000)
    path: str | None = Field(None, min_length=1)

    def generator_fields(self) -> dict[str, Any]:
        """The generator settings of the evaluation sample (size, seed, shard size)."""
        return self.model_dump(exclude={"path"})

    @model_serializer(mode="wrap")
    def _file_alone(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {"path": self.path} if self.path is not None else handler(self)


def resolve_data_path(path: str, root: Path) -> Path:
    """A ``sample.path`` / ``evaluation.path``: relative to the workspace root, or absolute."""
    given = Path(path).expanduser()
    return given if given.is_absolute() else Path(root) / given
