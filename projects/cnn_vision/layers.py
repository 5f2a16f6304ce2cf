"""The residual network's layers: a pre-activation residual block, and the learned scale on its branch.

Both round-trip through get_config and `.keras`. They show the two ways a custom layer makes its state:
LayerScale creates a weight in `build`, once the input's channel count is known; ResidualBlock holds
sublayers, made in `__init__` (the projection shortcut in `build`) and built in `build`.
"""

from __future__ import annotations

import keras
from keras import layers

PACKAGE = "cnn_vision"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LayerScale(layers.Layer):
    """Multiplies the last axis by a learned per-channel scale (Touvron et al., 2021, "CaiT").

    Placed at the end of a residual branch with a small `init_value`, it lets a deep network start
    close to the identity. It shows the weight-creating pattern: weights are made in `build`,
    once the input's channel count is known, with `add_weight`.
    """

    def __init__(self, init_value: float = 1e-1, **kwargs):
        super().__init__(**kwargs)
        self.init_value = init_value

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale",
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init_value),
            trainable=True,
        )

    def call(self, inputs):
        return inputs * keras.ops.cast(self.scale, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "init_value": self.init_value}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(layers.Layer):
    """A pre-activation residual block: (BN, ReLU, Conv) x 2 plus a shortcut (He et al., 2016).

    When `strides` > 1 or the channel count changes, the shortcut is a strided 1x1 convolution,
    created in `build` because only then is the input's channel count known. The other
    sub-layers are created in `__init__` and built in `build`.

    norm_momentum: of both BatchNormalizations' moving statistics. Their moving variance starts
      at 1 and forgets that start as `norm_momentum ** steps`, but `norm1` reads the residual
      stream, which in a pre-activation network is never normalised and can be far smaller (about
      0.01 behind a stem conv of pixels in [0, 1]). At Keras's default 0.99, 0.99 ** 429 = 0.013
      is still as large as that variance after an epoch of 429 steps: resnet.gin's inference then
      divided by up to 1.8 times the true std and scored 30% where training mode scored 80%. At
      0.9 the start is gone within 100 steps (PyTorch's default, 0.1 in its convention).
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        kernel_size: int = 3,
        layer_scale: float | None = None,
        weight_decay: float = 0.0,
        norm_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.kernel_size = kernel_size
        self.layer_scale = layer_scale
        self.weight_decay = weight_decay
        self.norm_momentum = norm_momentum
        reg = keras.regularizers.L2(weight_decay) if weight_decay else None
        # Sub-layers do not inherit the parent's dtype policy by themselves; pass it on so the
        # block computes in bfloat16/float16 under a mixed policy like any built-in layer.
        policy = self.dtype_policy
        conv = dict(padding="same", use_bias=False, kernel_regularizer=reg, dtype=policy)
        norm = dict(momentum=norm_momentum, dtype=policy)
        self.norm1 = layers.BatchNormalization(name="norm1", **norm)
        self.conv1 = layers.Conv2D(filters, kernel_size, strides=strides, name="conv1", **conv)
        self.norm2 = layers.BatchNormalization(name="norm2", **norm)
        self.conv2 = layers.Conv2D(filters, kernel_size, name="conv2", **conv)
        self.scale = LayerScale(layer_scale, name="scale", dtype=policy) if layer_scale else None
        self.shortcut = None

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut = layers.Conv2D(
                self.filters, 1, strides=self.strides, use_bias=False, name="shortcut",
                kernel_regularizer=self.conv1.kernel_regularizer, dtype=self.dtype_policy,
            )
            self.shortcut.build(input_shape)
        self.norm1.build(input_shape)
        self.conv1.build(input_shape)
        mid_shape = self.conv1.compute_output_shape(input_shape)
        self.norm2.build(mid_shape)
        self.conv2.build(mid_shape)
        if self.scale is not None:
            self.scale.build(mid_shape)

    def call(self, inputs, training=None):
        x = keras.ops.relu(self.norm1(inputs, training=training))
        # The shortcut reads the normalised input when it projects, as in pre-activation ResNets.
        shortcut = self.shortcut(x) if self.shortcut is not None else inputs
        x = self.conv1(x)
        x = self.conv2(keras.ops.relu(self.norm2(x, training=training)))
        if self.scale is not None:
            x = self.scale(x)
        return x + shortcut

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "kernel_size": self.kernel_size,
            "layer_scale": self.layer_scale,
            "weight_decay": self.weight_decay,
            "norm_momentum": self.norm_momentum,
        }
