"""cnn_vision models: a small fast CNN, a residual CNN and a deep MLP. All take float32 pixels in 0..255.

Rescaling lives inside the model, so the exported graph accepts raw pixel values and no client
has to know the normalisation. The last layer is float32 even under a mixed-precision policy,
so logits (and the softmax in the export) keep full precision.
"""

from __future__ import annotations

from collections.abc import Sequence

import gin
import keras
from keras import layers

from core.config import ConfigError

from .layers import ResidualBlock

# Pixel statistics of the 60,000 Fashion-MNIST training images, in 0..255 (the 55,000 images of the
# prepared train split give 72.98 and 8106.2). deep_mlp's Normalization layer stores them in its config.
FASHION_MNIST_MEAN = 72.94
FASHION_MNIST_VARIANCE = 8103.81  # std 90.02


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
    norm_momentum: float = 0.9,
) -> keras.Model:
    """A small pre-activation ResNet: stem conv, stages of ResidualBlocks (stride 2 between stages).

    norm_momentum: of every BatchNormalization; see `ResidualBlock` for why not Keras's 0.99.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="images")  # (batch, H, W, C), 0..255
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(stem_filters, 3, padding="same", use_bias=False)(x)  # (batch, H, W, stem)
    for stage, filters in enumerate(stage_filters):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = ResidualBlock(filters, strides=strides, layer_scale=layer_scale, weight_decay=weight_decay,
                              norm_momentum=norm_momentum,
                              name=f"stage{stage}_block{block}")(x)  # (batch, H/2^stage, W/2^stage, filters)
    x = layers.ReLU()(layers.BatchNormalization(momentum=norm_momentum)(x))
    x = layers.GlobalAveragePooling2D()(x)  # (batch, filters)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, _logits(x, num_classes), name="residual_cnn")


@gin.configurable
def deep_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int = 20,
    units: int = 100,
    activation: str = "relu",
    kernel_initializer: str = "he_normal",
    batch_norm: bool = False,
    dropout: float = 0.0,
    alpha_dropout: bool = False,
    standardize: bool = True,
    pixel_mean: float = FASHION_MNIST_MEAN,
    pixel_variance: float = FASHION_MNIST_VARIANCE,
) -> keras.Model:
    """`depth` hidden Dense layers of `units` on flattened pixels, for comparing how deep nets train.

    standardize: (pixels - mean) / std with the training set's statistics, as SELU's self-normalisation
      assumes inputs of mean 0 and variance 1; False only scales pixels to [0, 1].
    pixel_mean, pixel_variance: of the training pixels in 0..255 (Fashion-MNIST's; bind them for other data).
    batch_norm: Dense (no bias) -> BatchNormalization -> activation in every hidden layer.
    dropout: rate of one dropout layer before the logits; AlphaDropout (which keeps SELU's mean and
      variance) instead of Dropout when `alpha_dropout`.
    """
    if depth < 1 or units < 1:
        raise ConfigError(f"deep_mlp.depth={depth}, deep_mlp.units={units}: both must be >= 1.")
    if alpha_dropout and not dropout:
        raise ConfigError("deep_mlp.alpha_dropout=True needs deep_mlp.dropout > 0 (the rate).")
    inputs = keras.Input(shape=tuple(input_shape), name="images")  # (batch, H, W, C), 0..255
    if standardize:
        # axis=None: one scalar mean and variance for all pixels and channels.
        x = layers.Normalization(axis=None, mean=pixel_mean, variance=pixel_variance, name="standardize")(inputs)
    else:
        x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Flatten()(x)  # (batch, H*W*C)
    for i in range(depth):
        if batch_norm:
            # The bias would be cancelled by BatchNorm's mean subtraction; its beta plays that role.
            x = layers.Dense(units, use_bias=False, kernel_initializer=kernel_initializer, name=f"hidden{i}")(x)
            x = layers.BatchNormalization(name=f"hidden{i}_bn")(x)
            x = layers.Activation(activation, name=f"hidden{i}_{activation}")(x)
        else:
            x = layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer,
                             name=f"hidden{i}")(x)  # (batch, units)
    if dropout:
        x = (layers.AlphaDropout if alpha_dropout else layers.Dropout)(dropout, name="dropout")(x)
    return keras.Model(inputs, _logits(x, num_classes), name="deep_mlp")
