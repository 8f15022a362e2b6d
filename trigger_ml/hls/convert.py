"""hls4ml conversion: an hls4ml configuration derived from the model's quantizers, then
convert, write and compile the C simulation.

What makes the C simulation compute exactly what QKeras computes (each was measured to
break exactness when left out):

1. The input type is the input quantizer's type, ``ap_fixed<bits, integer+1, AP_RND_CONV,
   AP_SAT>``, and inputs are quantized onto it before they reach either model
   (:func:`trigger_ml.data.dataset.quantize_to_fixed`), so the C simulation's
   float-to-fixed conversion is exact.
2. The quantized weights are baked into the Keras model before conversion
   (:func:`trigger_ml.models.bake_quantized_weights`): hls4ml rewrites a Dense applied to
   tracks as a PointwiseConv1D and would otherwise truncate its float kernel.
3. The track pooling gets exact types: for 2^k slots, accumulator ``+2k`` bits
   (``+k`` integer bits for the sum, ``+k`` fractional bits so that the division by 2^k,
   done in the accumulator type, is exact) and result ``+k`` fractional bits. hls4ml's
   default (``fixed<16,6>``, or the input type) truncates the average.
4. Accumulators and Dense outputs are left to hls4ml's precision inference (``auto``),
   which sizes them to hold the exact sums.

Which rules apply is the model kind's decision (trigger_ml.kinds: ``prepare_for_conversion``
and ``configure_hls``): QKeras kinds apply 1-3; HGQ models are converted as HGQ's proxy model
(:func:`trigger_ml.hgq_models.to_proxy`), whose quantized weights and learned types go
through hls4ml's bit-exact flow, so rules 2 and 3 do not apply; rule 1 does. A
post-training-quantized float model gets hls4ml's types and no rule.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import hls4ml
import tensorflow as tf

from trigger_ml.config import ModelConfig
from trigger_ml.errors import UsageError
from trigger_ml.hls.precision import fixed_type, pooling_types
from trigger_ml.kinds import kind_of
from trigger_ml.logs import stage_logger
from trigger_ml.tools import run_tool, timeout_variable, tool_timeout

__all__ = [
    "PROJECT_NAME",
    "compile_csim",
    "convert",
    "fixed_type",
    "hls_config_for",
    "layer_types",
    "make_relocatable",
    "pooling_types",
]

PROJECT_NAME = "myproject"
GXX_TIMEOUT_S = 1800.0
"""g++ builds the C simulation of dips-small in under a minute; half an hour catches a hang."""

logger = stage_logger("hls")


def hls_config_for(model: tf.keras.Model, config: ModelConfig) -> dict[str, Any]:
    """The hls4ml configuration (granularity 'name') with the exactness rules applied."""
    h = config.hls
    with contextlib.redirect_stdout(io.StringIO()):
        hls_cfg = hls4ml.utils.config_from_keras_model(
            model,
            granularity="name",
            backend=h.backend,
            default_precision=h.default_precision,
            default_reuse_factor=h.reuse_factor,
        )
    hls_cfg["Model"]["Strategy"] = h.strategy
    hls_cfg["Model"]["ReuseFactor"] = h.reuse_factor
    layers = hls_cfg["LayerName"]
    kind_of(config).configure_hls(layers, config)
    track_pf = h.track_parallelization or config.inputs.max_tracks
    for name in layers:
        if name.startswith("phi_") and not name.endswith("_relu"):
            layers[name]["ParallelizationFactor"] = track_pf
    for layer_name, precisions in h.precision_overrides.items():
        if layer_name not in layers:
            raise UsageError(
                f"{config.name}: hls.precision_overrides names unknown layer '{layer_name}'",
                f"layers are: {', '.join(layers)}",
            )
        layers[layer_name].setdefault("Precision", {}).update(precisions)
    return hls_cfg


def convert(model: tf.keras.Model, config: ModelConfig, output_dir: str, trace: bool = False) -> Any:
    """Convert a trained Keras/QKeras model into an hls4ml ModelGraph written at ``output_dir``.

    The model's weights are baked to their quantized values in place (outputs unchanged).
    ``trace=True`` records every layer's output in the C simulation (for blame).
    """
    kind_of(config).prepare_for_conversion(model, config)
    hls_cfg = hls_config_for(model, config)
    if trace:
        for layer in hls_cfg["LayerName"].values():
            layer["Trace"] = True
    h = config.hls
    with contextlib.redirect_stdout(io.StringIO()):
        return hls4ml.converters.convert_from_keras_model(
            model,
            hls_config=hls_cfg,
            output_dir=output_dir,
            project_name=PROJECT_NAME,
            backend=h.backend,
            io_type=h.io_type,
            part=h.part,
            clock_period=h.clock_period_ns,
        )


def compile_csim(hls_model: Any, name: str = "g++ C simulation") -> None:
    """Write the project and build its C simulation library with g++.

    hls4ml's own build (``build_lib.sh``) runs through :func:`trigger_ml.tools.run_tool`: a
    time limit (``TRIGGER_ML_GXX_TIMEOUT_S``, default :data:`GXX_TIMEOUT_S`), a heartbeat, and
    its output in ``build_lib.log`` beside the script; ``name`` names it in lines and errors.
    hls4ml then loads the library as usual.
    """
    from hls4ml.backends.fpga.fpga_backend import FPGABackend

    backend = hls_model.config.backend

    def build(model: Any) -> str:
        project_dir = Path(model.config.get_output_dir())
        run_tool(
            ["./build_lib.sh"],
            name=name,
            log_path=project_dir / "build_lib.log",
            timeout_s=tool_timeout("gxx", GXX_TIMEOUT_S),
            timeout_variable=timeout_variable("gxx"),
            logger=logger,
            cwd=project_dir,
        )
        # The library FPGABackend.compile builds (hls4ml 1.3).
        stamp = model.config.get_config_value("Stamp")
        return f"{project_dir}/firmware/{model.config.get_project_name()}-{stamp}.so"

    if type(backend).compile is not FPGABackend.compile:  # a backend with its own build
        with contextlib.redirect_stdout(io.StringIO()):
            hls_model.compile()
        return
    # The backend object is shared by every model of its kind: replaced for this call only.
    backend.compile = build
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            hls_model.compile()
    finally:
        del backend.compile


def make_relocatable(project_dir: Path) -> None:
    """Rewrite the absolute (temporary) paths hls4ml records in hls4ml_config.yml as paths
    relative to the project itself, so the project can be moved, copied and bundled."""
    config_file = project_dir / "hls4ml_config.yml"
    text = config_file.read_text()
    written = str(project_dir)
    text = text.replace(f"{written}/", "").replace(f"OutputDir: {written}", "OutputDir: .")
    config_file.write_text(text)


def layer_types(hls_model: Any) -> list[dict[str, Any]]:
    """Per layer of the converted graph: class and every fixed-point type after hls4ml's passes."""
    rows = []
    for layer in hls_model.get_layers():
        rows.append(
            {
                "name": layer.name,
                "class": layer.class_name,
                "types": {name: str(t.precision) for name, t in layer.types.items()},
            }
        )
    return rows
