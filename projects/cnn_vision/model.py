"""cnn_vision models: a small fast CNN and a residual CNN. Both take float32 pixels in 0..255.

Rescaling lives inside the model, so the exported graph accepts raw pixel values and no client
has to know the normalisation. The last layer is float32 even under a mixed-precision policy,
so logits (and the softmax in the export) keep full precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import gin
import keras
from keras import layers

from core.layers import ResidualBlock


def _conv_bn_relu(x, filters: int, weight_decay: float):
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _logits(x, num_classes: int):
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)


@gin.configurable
def small_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: Sequence[int] = (32, 64),
    dense_units: int = 256,
    dropout: float = 0.4,
    weight_decay: float = 0.0,
) -> keras.Model:
    """(Conv-BN-ReLU, max-pool) per entry of `filters`, then dropout, a dense layer and the classifier."""
    inputs = keras.Input(shape=tuple(input_shape), name="images")  # (batch, H, W, C), 0..255
    x = layers.Rescaling(1.0 / 255)(inputs)
    for f in filters:
        x = _conv_bn_relu(x, f, weight_decay)  # (batch, h, w, f)
        x = layers.MaxPooling2D()(x)  # (batch, h/2, w/2, f)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _logits(x, num_classes), name="small_cnn")


@gin.configurable
def residual_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    stem_filters: int = 32,
    stage_filters: Sequence[int] = (32, 64, 128),
    blocks_per_stage: int = 2,
    layer_scale: float | None = None,
    dropout: float = 0.2,
    weight_decay: float = 0.0,
) -> keras.Model:
    """A small pre-activation ResNet: stem conv, stages of ResidualBlocks (stride 2 between stages)."""
    inputs = keras.Input(shape=tuple(input_shape), name="images")  # (batch, H, W, C), 0..255
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(stem_filters, 3, padding="same", use_bias=False)(x)  # (batch, H, W, stem)
    for stage, filters in enumerate(stage_filters):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = ResidualBlock(filters, strides=strides, layer_scale=layer_scale, weight_decay=weight_decay,
                              name=f"stage{stage}_block{block}")(x)  # (batch, H/2^stage, W/2^stage, filters)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)  # (batch, filters)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _logits(x, num_classes), name="residual_cnn")
