"""Network builders: QKeras Deep Sets (DIPS style) and their float twins.

A Deep Set here is ``F(mean_t Phi(track_t))`` over ``max_tracks`` track slots:

* ``Phi`` is a stack of bias-free Dense layers applied to every track (Keras applies a
  Dense on a (tracks, features) tensor track by track; hls4ml turns it into a pointwise
  1D convolution). With no bias and ReLU activations, a padded (all-zero) track maps to
  exactly zero, so the pooling ignores padding with no mask input; the ``valid`` feature
  gives real tracks their bias back through its weight.
* The pooling is an average over the (power-of-two) slots, i.e. the sum over valid tracks
  followed by an exact shift: permutation invariant by construction.
* ``F`` is a stack of Dense layers on the pooled representation, ending in three logits
  (b, c, light).

The quantized model uses QKeras quantizers from the configuration; the float twin has the
same layers and names without quantizers.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from qkeras import QActivation, QDense, quantized_bits, quantized_relu  # noqa: E402

from trigger_ml.config import FixedPoint, ModelConfig  # noqa: E402

INPUT_NAMES = {"deepsets": "tracks", "dense": "features"}
POOL_NAME = "track_pool"
LOGITS_NAME = "logits"


def _bits(fp: FixedPoint) -> quantized_bits:
    return quantized_bits(fp.bits, fp.integer, alpha=1)


def _relu(fp: FixedPoint) -> quantized_relu:
    return quantized_relu(fp.bits, fp.integer)


def _dense(
    config: ModelConfig, width: int, name: str, use_bias: bool, quantized: bool
) -> tf.keras.layers.Layer:
    q = config.quantization
    if quantized:
        return QDense(
            width,
            use_bias=use_bias,
            kernel_quantizer=_bits(q.weight_for(name)),
            bias_quantizer=_bits(q.bias_for(name)) if use_bias else None,
            name=name,
        )
    return tf.keras.layers.Dense(width, use_bias=use_bias, name=name)


def _activation(config: ModelConfig, name: str, quantized: bool) -> tf.keras.layers.Layer:
    if quantized:
        # The ReLU "<layer>_relu" takes the activation type of Dense layer "<layer>".
        return QActivation(_relu(config.quantization.activation_for(name.removesuffix("_relu"))), name=name)
    return tf.keras.layers.ReLU(name=name)


def _inputs(config: ModelConfig, shape: tuple[int, ...], quantized: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """The input tensor and, for a quantized model, its quantization onto the input type."""
    inputs = tf.keras.Input(shape=shape, name=INPUT_NAMES[config.architecture.kind])
    if not quantized:
        return inputs, inputs
    return inputs, QActivation(_bits(config.quantization.input), name="input_quant")(inputs)


def _dense_relu_stack(
    config: ModelConfig, x: tf.Tensor, widths: tuple[int, ...], prefix: str, use_bias: bool, quantized: bool
) -> tf.Tensor:
    """``prefix_1``, ``prefix_1_relu``, ``prefix_2``, ... for each width."""
    for i, width in enumerate(widths, start=1):
        x = _dense(config, width, f"{prefix}_{i}", use_bias=use_bias, quantized=quantized)(x)
        x = _activation(config, f"{prefix}_{i}_relu", quantized)(x)
    return x


def _model(config: ModelConfig, inputs: tf.Tensor, x: tf.Tensor, quantized: bool) -> tf.keras.Model:
    """Close the network with the three logits (b, c, light)."""
    n_classes = len(config.architecture.classes)
    outputs = _dense(config, n_classes, LOGITS_NAME, use_bias=True, quantized=quantized)(x)
    suffix = "qkeras" if quantized else "float"
    return tf.keras.Model(inputs, outputs, name=f"{config.architecture.kind}_{suffix}")


def build_deepsets(config: ModelConfig, quantized: bool) -> tf.keras.Model:
    """The Deep Set of ``config``; ``quantized=False`` gives the float twin."""
    shape = (config.inputs.max_tracks, len(config.inputs.track_features))
    inputs, x = _inputs(config, shape, quantized)
    x = _dense_relu_stack(
        config, x, config.architecture.phi_widths, "phi", use_bias=False, quantized=quantized
    )
    x = tf.keras.layers.GlobalAveragePooling1D(name=POOL_NAME)(x)
    x = _dense_relu_stack(config, x, config.architecture.f_widths, "f", use_bias=True, quantized=quantized)
    return _model(config, inputs, x, quantized)


def flat_input_size(config: ModelConfig) -> int:
    """Width of a dense model's input: leading tracks' features, flattened, then jet features."""
    return config.inputs.max_tracks * len(config.inputs.track_features) + len(config.inputs.jet_features)


def build_dense(config: ModelConfig, quantized: bool) -> tf.keras.Model:
    """A dense tagger on flat inputs (the IP3D/RNNIP-style input of the leading tracks by
    signed d0 significance, plus jet kinematics): hidden layers ``architecture.f_widths``."""
    inputs, x = _inputs(config, (flat_input_size(config),), quantized)
    x = _dense_relu_stack(
        config, x, config.architecture.f_widths, "dense", use_bias=True, quantized=quantized
    )
    return _model(config, inputs, x, quantized)


BUILDERS = {"deepsets": build_deepsets, "dense": build_dense}


def build_model(config: ModelConfig, quantized: bool) -> tf.keras.Model:
    """The model of ``config`` (``architecture.kind`` picks the builder)."""
    return BUILDERS[config.architecture.kind](config, quantized)


def bake_quantized_weights(model: tf.keras.Model) -> None:
    """Replace each quantized layer's float weights by their quantized values, in place.

    QKeras quantizers are idempotent, so the model's outputs do not change; hls4ml then
    writes the exact quantized values (it would otherwise truncate the float kernels of
    layers it rewrites, such as Dense on tracks -> PointwiseConv1D, breaking bit-exactness).
    """
    for layer in model.layers:
        kernel_q = getattr(layer, "kernel_quantizer_internal", None)
        if kernel_q is not None:
            layer.kernel.assign(kernel_q(layer.kernel))
        bias_q = getattr(layer, "bias_quantizer_internal", None)
        if bias_q is not None and getattr(layer, "use_bias", False):
            layer.bias.assign(bias_q(layer.bias))


def count_parameters(model: tf.keras.Model) -> int:
    return int(sum(int(tf.size(w)) for w in model.trainable_weights))
