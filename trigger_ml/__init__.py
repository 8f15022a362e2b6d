"""trigger-ml: from a jet-flavour tagger to bit-exact FPGA firmware (see README.md).

For notebooks, the few calls a session needs (imported on first use, so ``import
trigger_ml`` stays light)::

    import trigger_ml
    config = trigger_ml.load_config("dips-small@epochs=5")      # a zoo name, or a YAML file
    report = trigger_ml.build_firmware(config)                  # data, training, hls: report.json
    report = trigger_ml.build_firmware(trigger_ml.load_keras("my.h5", "my.yaml"))  # your own model
    folder = trigger_ml.compare([config, "dips-small"])         # comparison/ table and plots
    trigger_ml.convert_ftag("dumper.h5")                        # data/ftag-<key>/jets.h5
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trigger_ml.numerics import pin_cpu_isa

pin_cpu_isa()  # before TensorFlow starts: the same weights on every x86-64 machine

if TYPE_CHECKING:
    from trigger_ml.config import ModelConfig
    from trigger_ml.workspace import Workspace

try:
    __version__ = version("trigger-ml")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "build_firmware", "compare", "convert_ftag", "load_config", "load_keras"]


def _workspace(ws: Workspace | str | Path | None) -> Workspace:
    from trigger_ml.workspace import Workspace

    return ws if isinstance(ws, Workspace) else Workspace(Path(ws).resolve()) if ws else Workspace.default()


def load_config(spec: str | Path) -> ModelConfig:
    """A model configuration: a zoo name with optional ``@key=value`` overrides, or a YAML file."""
    from trigger_ml.config import load_config_file, load_model_config

    path = Path(spec)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_config_file(path)
    return load_model_config(str(spec))


def load_keras(model_file: str | Path, meta: str | Path | None = None) -> ModelConfig:
    """The configuration of your own QKeras model file and its metadata YAML (``user-keras``)."""
    from trigger_ml.kinds.user_keras import load_user_model

    return load_user_model(Path(model_file), Path(meta) if meta is not None else None)


def build_firmware(
    config: ModelConfig | str, ws: Workspace | str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Build (or reuse) everything up to the model's HLS project; report.json's content."""
    from trigger_ml.pipeline import ensure_hls

    return ensure_hls(load_config(config) if isinstance(config, str) else config, _workspace(ws), force=force)


def compare(
    configs: list[ModelConfig | str], ws: Workspace | str | Path | None = None, **options: Any
) -> Path:
    """Build what is missing and compare the models (``trigger_ml.compare.compare`` options)."""
    from trigger_ml.compare import compare as run_compare
    from trigger_ml.symbolic import is_symbolic_name

    resolved = [c if not isinstance(c, str) or is_symbolic_name(c) else load_config(c) for c in configs]
    return run_compare(resolved, _workspace(ws), **options)


def convert_ftag(
    source: str | Path, ws: Workspace | str | Path | None = None, mapping: str | Path | None = None
) -> Path:
    """Convert a training-dataset-dumper file into the workspace; the jets.h5 path."""
    from trigger_ml.data.own import ConvertOptions, convert_ftag_into, load_mapping_file

    options = load_mapping_file(Path(mapping)) if mapping else ConvertOptions()
    return convert_ftag_into(Path(source), _workspace(ws), options)[0]
