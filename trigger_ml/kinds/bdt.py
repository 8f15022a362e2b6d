"""The BDT kind: gradient-boosted trees (scikit-learn) on the flat inputs of a dense model,
firmware by conifer (trigger_ml.bdt). Trained by the ``train`` stage, converted by the ``hls``
stage, each through its own ``write_run`` / ``write_project``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.config import ModelConfig
from trigger_ml.kinds.base import TrainedKind


class BDT(TrainedKind):
    name = "bdt"
    summary = "BDT (conifer)"
    exactness = (
        "bit-exact: the g++ C simulation of the trees == the quantized trees (emulator) on every test and "
        "evaluation jet and every hostile vector; conifer's HLS code == both for small ensembles"
    )
    claims_exactness = True
    firmware_sources = ("conifer_prj/firmware/parameters.h", "tree_csim/trees.txt")

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

    def bundle_project(self, config: ModelConfig, project_dir: Path, dst: Path) -> tuple[Any, str]:
        from trigger_ml.bdt.bundle import bdt_interface, copy_bdt_project

        script = copy_bdt_project(config, project_dir, dst)
        n_features = int((dst / "firmware" / "trees.txt").read_text(encoding="utf-8").split()[0])
        return bdt_interface(config, n_features), script

    def hostile_layout(self, config: ModelConfig, n_inputs: int) -> Any:
        from trigger_ml.firmware.hostile import InputLayout

        return InputLayout(0, (), n_inputs)  # flat inputs: the families without track slots

    def hostile_expected(
        self,
        config: ModelConfig,
        run_dir: Path,
        project_dir: Path,
        values: np.ndarray,
        fixed_in: Any,
        workdir: Path,
    ) -> tuple[np.ndarray, str]:
        from trigger_ml.bdt.bundle import hostile_expected

        return hostile_expected(config, run_dir, values), "the quantized trees (bdt claims bit-exactness)"

    def hostile_check(self, config: ModelConfig, workspace: Any, workdir: Path) -> list[dict[str, Any]]:
        from trigger_ml.bdt.bundle import hostile_check

        return hostile_check(config, workspace, workdir)

    def card_sections(self, config: ModelConfig, report: dict[str, Any]) -> dict[str, str]:
        from trigger_ml.bdt.bundle import card_sections

        return card_sections(config, report)
