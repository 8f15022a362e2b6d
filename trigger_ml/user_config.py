"""The ``user_model`` section of a configuration: a QKeras model the user trained elsewhere
(``trigger-ml hls --keras MODEL.h5 --meta MODEL.yaml``, the ``user-keras`` model kind).

Pure schema; the loader that builds a configuration from the metadata file is
:func:`trigger_ml.kinds.user_keras.load_user_model`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trigger_ml.schema import StrictModel


class GivenScaling(StrictModel):
    """Offsets and scales per input feature (x' = (x - offset) / scale, valid tracks only),
    as the user's model was trained with; every track feature (and jet feature) named."""

    offsets: dict[str, float]
    scales: dict[str, float]


class UserModelConfig(StrictModel):
    """The user's model file, its sha256 (filled in by the loader: results are keyed by it)
    and the input scaling: ``fit`` (fitted on the training split of the sample, as trigger-ml
    does for its own models) or the offsets and scales the model was trained with."""

    keras: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scaling: Literal["fit"] | GivenScaling = "fit"
