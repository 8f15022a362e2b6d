"""Where each stage reads and writes: the stable on-disk layout of a trigger-ml workspace.

::

    data/<process>-<settings hash>/jets.h5          generated sample (trigger_ml.data)
    runs/<base model>/<training hash>/               trained weights, scaling, predictions
    hls_projects/<model>/                            hls4ml project + report.json/report.md
    firmware/<model>-<hash>/                         hand-off bundles

The root is the current directory unless ``TRIGGER_ML_HOME`` names another.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MAX_NAME = 160
"""Longer directory names (many overrides, a file path in one) keep their start and get a hash:
a file system allows 255 bytes, and temporary names add some."""


def _safe(name: str) -> str:
    # Model names with overrides ("dips-small@bits=6") become directory names.
    safe = name.replace("@", "__").replace("=", "-").replace(",", "_").replace("/", "_")
    if len(safe) > MAX_NAME:
        safe = f"{safe[: MAX_NAME - 17]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return safe


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def default(cls) -> Workspace:
        return cls(Path(os.environ.get("TRIGGER_ML_HOME", ".")).resolve())

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def run_dir(self, model_name: str, training_digest: str) -> Path:
        """Keyed by the base model name and the training hash only, so variants that differ in
        firmware settings (``dips-small@reuse=2``) share one training."""
        return self.root / "runs" / _safe(model_name.partition("@")[0]) / training_digest[:16]

    def cache_dir(self, name: str) -> Path:
        """``cache/<name>/``: results shared by every model, kept under the hash of what they
        depend on (e.g. the Yosys cost of an L1 preprocessing block)."""
        return self.root / "cache" / _safe(name)

    def hls_dir(self, model_name: str) -> Path:
        return self.root / "hls_projects" / _safe(model_name)

    @property
    def firmware_dir(self) -> Path:
        return self.root / "firmware"
