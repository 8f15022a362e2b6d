"""The BDT kind: gradient-boosted trees (scikit-learn) on the flat inputs of a dense model,
firmware by conifer (trigger_ml.bdt). Trained by the ``train`` stage, converted by the ``hls``
stage, each through its own ``write_run`` / ``write_project``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_ml.config import ModelConfig
from trigger_ml.kinds.base import TrainedKind


class BDT(TrainedKind):
    name = "bdt"
    summary = "BDT (conifer)"
    exactness = (
        "bit-exact: the g++ C simulation of the trees == the quantized trees (emulator) on every test and "
        "evaluation jet; conifer's HLS code == both for small ensembles. The hostile vectors of "
        "trigger_ml.firmware.hostile drive hls4ml projects and are not run on conifer's"
    )
    claims_exactness = False

    def claims(self, config: ModelConfig) -> bool:
        return config.bdt is not None

    def write_run(self, config: ModelConfig, data_path: Path, out: Path) -> None:
        from trigger_ml.bdt.train import write_bdt_run

        write_bdt_run(config, data_path, out)

    def write_project(
        self, config: ModelConfig, run: Any, data_path: Path, out: Path, evaluation_path: Path
    ) -> None:
        from trigger_ml.bdt.project import write_bdt_project

        write_bdt_project(config, run, data_path, out, evaluation_path)

    def label(self, config: ModelConfig) -> str:
        return "flat inputs, BDT (conifer)"
