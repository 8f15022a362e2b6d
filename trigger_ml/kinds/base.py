"""What a model kind is: the decisions that differ between kinds of model, in one object.

A *network* kind (:class:`NetworkKind`) is trained by the ``train`` stage and converted by the
``hls`` stage; it says which of the trained models the firmware must reproduce bit for bit,
how that model is built, trained, loaded and prepared for hls4ml, and which hls4ml settings
make the C simulation exact. A *symbolic* kind is fitted by the ``distill`` stage. Every kind
names the stage whose artefact is its firmware (None: a physics-only reference).
"""

from __future__ import annotations

from abc import ABC
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from trigger_ml.config import ModelConfig

QUANTIZED, FLOAT = "qkeras", "float"
"""The two trained models of a run (weights ``qkeras.weights.h5`` and ``float.weights.h5``;
the quantization-aware one keeps the name ``qkeras`` for HGQ too)."""


class ModelKind(ABC):
    """One kind of model; registered in :data:`trigger_ml.kinds.KINDS`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    firmware_stage: ClassVar[str | None]
    """The stage whose artefact is the firmware (``hls``, ``distill``; None: no firmware)."""
    exactness: ClassVar[str]
    """What the fidelity check requires of the C simulation against the reference."""
    claims_exactness: ClassVar[bool] = False
    """Does the kind promise that its firmware's C simulation equals its reference bit for bit on
    *any* input, the hostile vectors of :mod:`trigger_ml.firmware.hostile` included? (When False,
    ``exactness`` says why not.) Checked by the contract test and by every bundle's ``verify``."""

    def claims(self, config: ModelConfig) -> bool:
        """Is ``config`` a model of this kind? (Network kinds; symbolic kinds go by name.)"""
        return False

    def label(self, config: ModelConfig) -> str:
        """The ``kind`` column of a comparison."""
        return self.summary

    # --- the firmware bundle (trigger_ml.firmware.bundle): an hls4ml project unless overridden

    firmware_sources: ClassVar[tuple[str, ...]] = ("hls4ml_prj/firmware/myproject.cpp",)
    """Files of ``hls_projects/<model>/`` a bundle is made from (checked before building)."""

    def bundle_project(self, config: ModelConfig, project_dir: Path, dst: Path) -> tuple[Any, str]:
        """Copy the firmware project of ``project_dir`` into the bundle's ``hls/`` (``dst``):
        (its Interface, the name of the other vendor tool's build script)."""
        from trigger_ml.firmware.bundle import copy_hls4ml_project

        return copy_hls4ml_project(config, project_dir, dst)

    def hostile_layout(self, config: ModelConfig, n_inputs: int) -> Any:
        """The input layout the hostile vectors are made for (trigger_ml.firmware.hostile.InputLayout)."""
        from trigger_ml.firmware.hostile import InputLayout

        return InputLayout.of(config)

    def hostile_expected(
        self,
        config: ModelConfig,
        run_dir: Path,
        project_dir: Path,
        values: np.ndarray,
        fixed_in: Any,
        workdir: Path,
    ) -> tuple[np.ndarray, str]:
        """(expected outputs of the hostile ``values``, where they come from): the reference
        model's for a kind that claims exactness, else the C simulation's at build time."""
        from trigger_ml.firmware.hostile import hls4ml_hostile_expected

        return hls4ml_hostile_expected(self, config, run_dir, project_dir, values, fixed_in, workdir)

    def hostile_check(self, config: ModelConfig, workspace: Any, workdir: Path) -> list[dict[str, Any]]:
        """The finished firmware of ``config`` against the kind's reference on every hostile family
        (trigger_ml.firmware.hostile.agreement rows)."""
        from trigger_ml.firmware.hostile import hls4ml_hostile_check

        return hls4ml_hostile_check(config, workspace, workdir)

    def card_sections(self, config: ModelConfig, report: dict[str, Any]) -> dict[str, str]:
        """Paragraphs of the bundle's model card that replace the network's (``architecture``,
        ``build``); none by default."""
        return {}


class TrainedKind(ModelKind):
    """A kind trained by the ``train`` stage into ``runs/<model>/<hash>/`` and converted by the
    ``hls`` stage into ``hls_projects/<model>/``; the two stages hand the work to these methods."""

    firmware_stage = "hls"

    def write_run(self, config: ModelConfig, data_path: Path, out: Path) -> None:
        """Train on the sample at ``data_path`` and write the run's files into ``out``."""
        raise NotImplementedError

    def write_project(
        self, config: ModelConfig, run: Any, data_path: Path, out: Path, evaluation_path: Path
    ) -> None:
        """Convert the trained ``run``, check its C simulation and write the project (with
        report.json) into ``out``."""
        raise NotImplementedError


class NetworkKind(TrainedKind):
    """A Keras network trained by the ``train`` stage (QKeras by default)."""

    firmware_stage = "hls"

    def write_run(self, config: ModelConfig, data_path: Path, out: Path) -> None:
        from trigger_ml.training import write_run

        write_run(config, data_path, out)

    def write_project(
        self, config: ModelConfig, run: Any, data_path: Path, out: Path, evaluation_path: Path
    ) -> None:
        from trigger_ml.hls.stage import build_hls_project

        build_hls_project(config, run, data_path, out, evaluation_path)

    exactness = "bit-exact: C simulation == reference model on every test jet and every hostile vector"
    claims_exactness = True

    def reference(self, config: ModelConfig) -> str:
        """The trained model the firmware must reproduce: the quantization-aware one when
        quantization is on, else the float model (post-training quantization)."""
        return QUANTIZED if config.quantization.enabled else FLOAT

    def trained_models(self, config: ModelConfig) -> tuple[str, ...]:
        """Which models a run trains: the quantization-aware one when quantization is on,
        and the float twin when asked for."""
        wanted = {QUANTIZED: config.quantization.enabled, FLOAT: config.training.float_twin}
        return tuple(model for model in (QUANTIZED, FLOAT) if wanted[model])

    def build(self, config: ModelConfig, quantized: bool) -> tf.keras.Model:
        """An untrained model (``quantized=False``: the float twin)."""
        from trigger_ml.models import build_model

        return build_model(config, quantized=quantized)

    def callbacks(self, config: ModelConfig, quantized: bool) -> list[tf.keras.callbacks.Callback]:
        """Keras callbacks the kind's training needs."""
        return []

    def after_fit(
        self, model: tf.keras.Model, config: ModelConfig, x_train: np.ndarray, quantized: bool
    ) -> None:
        """Finish a fitted model in place (e.g. trace ranges)."""

    def predictor(self, model: tf.keras.Model, config: ModelConfig, quantized: bool) -> tf.keras.Model:
        """The model whose outputs the run records for a fitted ``model``: what the firmware computes."""
        return model

    def load(self, config: ModelConfig, weights: Path, quantized: bool) -> tf.keras.Model:
        """A trained model from its weights file (the one the firmware computes, for the quantized one)."""
        model = self.build(config, quantized)
        model.load_weights(weights)
        return model

    def training_metrics(
        self, model: tf.keras.Model, x_test: np.ndarray, logits: np.ndarray
    ) -> dict[str, Any]:
        """Kind-specific entries of the run's metrics.json (for the quantized model)."""
        return {}

    def count_parameters(self, model: tf.keras.Model, quantized: bool) -> int:
        from trigger_ml.models import count_parameters

        return count_parameters(model)

    def prepare_for_conversion(self, model: tf.keras.Model, config: ModelConfig) -> None:
        """Change ``model`` in place, outputs unchanged, so hls4ml converts it exactly."""

    def configure_hls(self, layers: dict[str, Any], config: ModelConfig) -> None:
        """Set the per-layer hls4ml precisions the kind's exactness needs (``layers``: the
        ``LayerName`` section of the hls4ml configuration)."""

    def label(self, config: ModelConfig) -> str:
        return f"{config.architecture.kind}, {self.summary}"
